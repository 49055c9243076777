//! Endpoint health as the dispatcher sees it: every attempt result feeds a rolling record per
//! endpoint; transitions (starts failing, recovers, failing too long) become durable endpoint
//! state, an audit record and metrics. Per-endpoint series are bounded by a configured limit.

use herald_core::health::{Health, HealthPolicy, Transition};
use herald_core::ids::EndpointId;
use herald_kafka::endpoints::Entry;
use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

/// One endpoint's health and the persisted state it was last reconciled with.
struct Tracked {
    health: Health,
    /// (version, updated_at) of the endpoint state this process last saw or wrote. A newer
    /// version, or the same version written by someone else, means the endpoint changed
    /// elsewhere, and its `failing_since` is adopted. Older states (an attempt that read the
    /// view before this process's own write) are ignored.
    seen: (u64, i64),
}

/// The tracked endpoints and how many of them are not healthy (kept as they change, so an
/// attempt does not count them all).
#[derive(Default)]
struct Book {
    tracked: HashMap<EndpointId, Tracked>,
    failing: usize,
}

impl Book {
    /// Starts tracking an endpoint unless it is tracked already; true if it was not.
    fn track(&mut self, endpoint: &EndpointId, new: impl FnOnce() -> Tracked) -> bool {
        if self.tracked.contains_key(endpoint) {
            return false;
        }
        let tracked = new();
        if !tracked.health.is_healthy() {
            self.failing += 1;
        }
        self.tracked.insert(endpoint.clone(), tracked);
        true
    }

    /// Runs `change` on a tracked endpoint and keeps `failing` right. Returns what `change`
    /// returned and whether the health (healthy or not, consecutive failures) moved; `None`
    /// when the endpoint is not tracked.
    fn change<R>(
        &mut self,
        endpoint: &EndpointId,
        change: impl FnOnce(&mut Tracked) -> R,
    ) -> Option<(R, bool)> {
        let tracked = self.tracked.get_mut(endpoint)?;
        let gauges = |t: &Tracked| (t.health.is_healthy(), t.health.consecutive_failures);
        let before = gauges(tracked);
        let result = change(tracked);
        let after = gauges(tracked);
        match (before.0, after.0) {
            (true, false) => self.failing += 1,
            (false, true) => self.failing -= 1,
            _ => {}
        }
        Some((result, before != after))
    }
}

/// Health of every endpoint this dispatcher delivered to.
pub struct HealthBook {
    book: Mutex<Book>,
    labelled: Mutex<HashSet<EndpointId>>,
    label_limit: usize,
    policy: HealthPolicy,
}

impl HealthBook {
    /// `label_limit`: endpoints that get their own metric series (others share `other`).
    pub fn new(policy: HealthPolicy, label_limit: usize) -> Self {
        Self {
            book: Mutex::new(Book::default()),
            labelled: Mutex::new(HashSet::new()),
            label_limit,
            policy,
        }
    }

    /// Adopts `state` (the endpoint as the view has it now) if someone else changed the
    /// endpoint since this book last saw it; true if so. A decision taken on the older state
    /// (disable it) is then stale: the next attempt decides again.
    pub fn adopt_if_changed(&self, state: &Entry) -> bool {
        let mut book = self.book.lock().expect("health lock");
        let Some((adopted, moved)) = book.change(&state.endpoint.id, |tracked| {
            adopt_if_changed(tracked, state)
        }) else {
            return false;
        };
        if moved {
            self.publish(&book, &state.endpoint.id);
        }
        adopted
    }

    /// Records an attempt on `state`, the endpoint as the view has it now: its persisted
    /// `failing_since` seeds the health of an endpoint this process has not seen yet (after
    /// a restart) and is adopted when someone else changed the endpoint since.
    pub fn record(
        &self,
        state: &Entry,
        success: bool,
        class: &str,
        error: &str,
        now: i64,
    ) -> Transition {
        let endpoint = &state.endpoint.id;
        let identity = (state.version, state.endpoint.updated_at);
        let mut book = self.book.lock().expect("health lock");
        let new = book.track(endpoint, || Tracked {
            health: Health::resumed(state.endpoint.failing_since),
            seen: identity,
        });
        let (transition, moved) = book
            .change(endpoint, |tracked| {
                adopt_if_changed(tracked, state);
                tracked.health.record(success, now, error, &self.policy)
            })
            .unwrap_or((Transition::None, false));
        // The gauges are set when the health moves: a healthy endpoint's attempts (nearly
        // all of them) cost no metric lookups here.
        if new || moved {
            self.publish(&book, endpoint);
        }
        if !success {
            metrics::counter!("herald_endpoint_failed_attempts_total", "endpoint_id" => self.label(endpoint), "class" => class.to_owned())
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
        transition
    }

    /// Sets the endpoint's health gauges and the count of failing endpoints.
    fn publish(&self, book: &Book, endpoint: &EndpointId) {
        let Some(tracked) = book.tracked.get(endpoint) else {
            return;
        };
        let label = self.label(endpoint);
        metrics::gauge!("herald_endpoint_consecutive_failures", "endpoint_id" => label.clone())
            .set(f64::from(tracked.health.consecutive_failures));
        metrics::gauge!("herald_endpoint_healthy", "endpoint_id" => label).set(
            if tracked.health.is_healthy() {
                1.0
            } else {
                0.0
            },
        );
        metrics::gauge!("herald_endpoints", "state" => "failing").set(book.failing as f64);
    }

    /// How many tracked endpoints are not healthy.
    pub fn failing(&self) -> usize {
        self.book.lock().expect("health lock").failing
    }

    /// Whether the endpoint is healthy (true until this process saw it fail).
    pub fn is_healthy(&self, endpoint: &EndpointId) -> bool {
        self.book
            .lock()
            .expect("health lock")
            .tracked
            .get(endpoint)
            .is_none_or(|t| t.health.is_healthy())
    }

    /// A copy of an endpoint's health, if this process delivered to it.
    pub fn get(&self, endpoint: &EndpointId) -> Option<Health> {
        self.book
            .lock()
            .expect("health lock")
            .tracked
            .get(endpoint)
            .map(|t| t.health.clone())
    }

    /// Notes the state this process just wrote for the endpoint, so it is not mistaken for
    /// someone else's change.
    pub fn wrote(&self, state: &Entry) {
        let mut book = self.book.lock().expect("health lock");
        if let Some(tracked) = book.tracked.get_mut(&state.endpoint.id) {
            tracked.seen = (state.version, state.endpoint.updated_at);
        }
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

/// Adopts the persisted health of `state` when it changed elsewhere since `tracked` saw it.
fn adopt_if_changed(tracked: &mut Tracked, state: &Entry) -> bool {
    let identity = (state.version, state.endpoint.updated_at);
    let changed_elsewhere = identity.0 > tracked.seen.0
        || (identity.0 == tracked.seen.0 && identity.1 != tracked.seen.1);
    if changed_elsewhere {
        tracked.health.adopt(state.endpoint.failing_since);
        tracked.seen = identity;
    }
    changed_elsewhere
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::endpoint::Endpoint;
    use std::sync::Arc;

    #[test]
    fn seeds_from_persisted_state_and_reports_transitions() {
        let policy = HealthPolicy {
            failing_after: 2,
            disable_after_ms: 1_000,
        };
        let book = HealthBook::new(policy, 1);
        let a = entry(1, 1, 0, Some(0));
        assert_eq!(
            book.record(&a, false, "5xx", "500", 1_000),
            Transition::Disable
        );
        let b = entry(2, 1, 0, None);
        assert_eq!(book.record(&b, false, "timeout", "t", 4), Transition::None);
        assert!(
            book.is_healthy(&b.endpoint.id),
            "one failure is below failing_after"
        );
        assert_eq!(
            book.record(&b, false, "timeout", "t", 5),
            Transition::StartedFailing
        );
        assert!(!book.is_healthy(&b.endpoint.id));
        assert_eq!(book.record(&b, true, "2xx", "", 6), Transition::Recovered);
        assert_eq!(book.get(&b.endpoint.id).unwrap().consecutive_failures, 0);
        assert_eq!(
            book.label(&b.endpoint.id),
            "other",
            "beyond the label limit"
        );
        assert_eq!(book.label(&a.endpoint.id), a.endpoint.id.to_string());
    }

    #[test]
    fn the_failing_count_follows_failures_recoveries_and_adopted_state() {
        let policy = HealthPolicy {
            failing_after: 1,
            disable_after_ms: 1_000_000,
        };
        let book = HealthBook::new(policy, 10);
        let (a, b) = (entry(1, 1, 0, None), entry(2, 1, 0, Some(5)));
        book.record(&a, true, "2xx", "", 10);
        assert_eq!(book.failing(), 0);
        book.record(&b, true, "2xx", "", 10);
        assert_eq!(book.failing(), 0, "b was failing when seeded and recovered");
        book.record(&a, false, "5xx", "500", 11);
        book.record(&a, false, "5xx", "500", 12);
        book.record(&b, false, "timeout", "t", 13);
        assert_eq!(book.failing(), 2, "each endpoint counted once");
        // An admin re-enabled a (a newer version without failing_since).
        let mut reenabled = (*a.endpoint).clone();
        reenabled.updated_at = 20;
        reenabled.failing_since = None;
        let reenabled = Entry {
            version: 2,
            endpoint: Arc::new(reenabled),
        };
        assert!(book.adopt_if_changed(&reenabled));
        assert_eq!(book.failing(), 1);
        assert!(
            !book.adopt_if_changed(&entry(3, 1, 0, Some(1))),
            "untracked"
        );
        assert_eq!(book.failing(), 1);
        book.record(&entry(4, 1, 0, Some(1)), false, "5xx", "500", 14);
        assert_eq!(book.failing(), 2, "seeded failing");
    }

    #[test]
    fn a_disable_decided_on_a_state_an_admin_has_since_changed_is_stale() {
        let policy = HealthPolicy {
            failing_after: 1,
            disable_after_ms: 1_000,
        };
        let book = HealthBook::new(policy, 10);
        let failing = entry(4, 1, 10, Some(0));
        assert_eq!(
            book.record(&failing, false, "5xx", "500", 0),
            Transition::None
        );
        assert_eq!(
            book.record(&failing, false, "5xx", "500", 2_000),
            Transition::Disable
        );
        // The view unchanged: the decision stands.
        assert!(!book.adopt_if_changed(&failing));
        // An admin re-enabled it meanwhile (version 2, failing_since cleared): stale, and the
        // run starts over from the next failure.
        let reenabled = Entry {
            version: 2,
            endpoint: Arc::new(Endpoint {
                updated_at: 20,
                failing_since: None,
                ..(*failing.endpoint).clone()
            }),
        };
        assert!(book.adopt_if_changed(&reenabled));
        assert_eq!(
            book.record(&reenabled, false, "5xx", "500", 2_100),
            Transition::StartedFailing
        );
    }

    #[test]
    fn a_change_by_someone_else_is_adopted_and_old_or_own_states_are_not() {
        let policy = HealthPolicy {
            failing_after: 1,
            disable_after_ms: 1_000,
        };
        let book = HealthBook::new(policy, 10);
        let before = entry(3, 1, 10, None);
        assert_eq!(
            book.record(&before, false, "5xx", "500", 0),
            Transition::StartedFailing
        );
        // This process writes version 2 with failing_since = 0.
        let written = Entry {
            version: 2,
            endpoint: Arc::new(Endpoint {
                failing_since: Some(0),
                updated_at: 20,
                ..(*before.endpoint).clone()
            }),
        };
        book.wrote(&written);
        assert_eq!(
            book.record(&written, false, "5xx", "500", 500),
            Transition::None
        );
        // An attempt that read the view before the write: its old state is not adopted.
        assert_eq!(
            book.record(&before, false, "5xx", "500", 600),
            Transition::None
        );
        assert!(!book.is_healthy(&before.endpoint.id));
        // An admin re-enables it (version 3, failing_since reset): the period starts over.
        let reenabled = entry(3, 3, 30, None);
        let reenabled = Entry {
            endpoint: Arc::new(Endpoint {
                id: before.endpoint.id.clone(),
                ..(*reenabled.endpoint).clone()
            }),
            ..reenabled
        };
        assert_eq!(
            book.record(&reenabled, false, "5xx", "500", 5_000),
            Transition::StartedFailing,
            "not disabled although the first failure was 5 s ago"
        );
    }

    fn entry(n: i64, version: u64, updated_at: i64, failing_since: Option<i64>) -> Entry {
        Entry {
            version,
            endpoint: Arc::new(Endpoint {
                id: EndpointId::generate(n),
                url: "https://example.com/hook".into(),
                description: String::new(),
                event_types: vec![],
                tenant: String::new(),
                enabled: true,
                disabled_reason: String::new(),
                signing_keys: vec![],
                created_at: 0,
                updated_at,
                failing_since,
                payload_format: Default::default(),
                rate_limit: None,
                operational: false,
            }),
        }
    }
}
