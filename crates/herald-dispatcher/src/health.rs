//! Endpoint health as the dispatcher sees it: every attempt result feeds a rolling record per
//! endpoint; transitions (starts failing, recovers, failing too long) become durable endpoint
//! state, an audit record and metrics. Per-endpoint series are bounded by a configured limit.

use herald_core::health::{Health, HealthPolicy, Transition};
use herald_core::ids::EndpointId;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// Health of every endpoint this dispatcher delivered to.
pub struct HealthBook {
    book: Mutex<HashMap<EndpointId, Health>>,
    labelled: Mutex<HashSet<EndpointId>>,
    label_limit: usize,
    policy: HealthPolicy,
}

impl HealthBook {
    /// `label_limit`: endpoints that get their own metric series (others share `other`).
    pub fn new(policy: HealthPolicy, label_limit: usize) -> Self {
        Self {
            book: Mutex::new(HashMap::new()),
            labelled: Mutex::new(HashSet::new()),
            label_limit,
            policy,
        }
    }

    /// Records an attempt; `failing_since` is the endpoint's persisted state, used when this
    /// process has not seen the endpoint yet (after a restart).
    pub fn record(
        &self,
        endpoint: &EndpointId,
        failing_since: Option<i64>,
        success: bool,
        class: &str,
        error: &str,
        now: i64,
    ) -> Transition {
        let mut book = self.book.lock().expect("health lock");
        let health = book
            .entry(endpoint.clone())
            .or_insert_with(|| Health::resumed(failing_since));
        let transition = health.record(success, now, error, &self.policy);
        let label = self.label(endpoint);
        metrics::gauge!("herald_endpoint_consecutive_failures", "endpoint_id" => label.clone())
            .set(f64::from(health.consecutive_failures));
        metrics::gauge!("herald_endpoint_healthy", "endpoint_id" => label.clone())
            .set(if health.is_healthy() { 1.0 } else { 0.0 });
        if !success {
            metrics::counter!("herald_endpoint_failed_attempts_total", "endpoint_id" => label, "class" => class.to_owned())
                .increment(1);
        }
        let kind = match transition {
            Transition::None => None,
            Transition::StartedFailing => Some("failing"),
            Transition::Recovered => Some("recovered"),
            Transition::Disable => Some("disabled"),
        };
        if let Some(kind) = kind {
            metrics::counter!("herald_endpoint_transitions_total", "kind" => kind).increment(1);
        }
        let failing = book.values().filter(|h| !h.is_healthy()).count();
        metrics::gauge!("herald_endpoints", "state" => "failing").set(failing as f64);
        transition
    }

    /// Whether the endpoint is healthy (true until this process saw it fail).
    pub fn is_healthy(&self, endpoint: &EndpointId) -> bool {
        self.book
            .lock()
            .expect("health lock")
            .get(endpoint)
            .is_none_or(Health::is_healthy)
    }

    /// A copy of an endpoint's health, if this process delivered to it.
    pub fn get(&self, endpoint: &EndpointId) -> Option<Health> {
        self.book
            .lock()
            .expect("health lock")
            .get(endpoint)
            .cloned()
    }

    fn label(&self, endpoint: &EndpointId) -> String {
        let mut labelled = self.labelled.lock().expect("labels lock");
        if labelled.contains(endpoint) {
            return endpoint.to_string();
        }
        if labelled.len() < self.label_limit {
            labelled.insert(endpoint.clone());
            return endpoint.to_string();
        }
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_from_persisted_state_and_reports_transitions() {
        let policy = HealthPolicy {
            failing_after: 2,
            disable_after_ms: 1_000,
        };
        let book = HealthBook::new(policy, 1);
        let a = EndpointId::generate(1);
        assert_eq!(
            book.record(&a, Some(0), false, "5xx", "500", 1_000),
            Transition::Disable
        );
        let b = EndpointId::generate(2);
        assert_eq!(
            book.record(&b, None, false, "timeout", "t", 4),
            Transition::None
        );
        assert!(book.is_healthy(&b), "one failure is below failing_after");
        assert_eq!(
            book.record(&b, None, false, "timeout", "t", 5),
            Transition::StartedFailing
        );
        assert!(!book.is_healthy(&b));
        assert_eq!(
            book.record(&b, None, true, "2xx", "", 6),
            Transition::Recovered
        );
        assert_eq!(book.get(&b).unwrap().consecutive_failures, 0);
        assert_eq!(book.label(&b), "other", "beyond the label limit");
        assert_eq!(book.label(&a), a.to_string());
    }
}
