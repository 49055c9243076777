//! The delivery log: every attempt as the dispatcher wrote it to `attempts.v1`, filtered by
//! event, endpoint, tenant, status class and time, paged by position with bounded memory.

use crate::window::{format_instant, Window};
use crate::{Error, Result};
use herald_kafka::page::{Page, Pager, Position, Positioned};
use herald_kafka::scan::Scanner;
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How far a record's timestamp may lag the attempt it logs.
const SLACK_MS: i64 = 60_000;

/// The status classes an attempt can have (`AttemptResult::class`).
pub const CLASSES: [&str; 8] = [
    "2xx",
    "3xx",
    "4xx",
    "5xx",
    "timeout",
    "connection",
    "forbidden",
    "other",
];

/// Which attempts.
#[derive(Debug, Clone, Default)]
pub struct AttemptQuery {
    pub event_id: Option<String>,
    pub endpoint_id: Option<String>,
    /// Only this tenant's (a key limited to a tenant always sets it).
    pub tenant: Option<String>,
    /// One of [`CLASSES`].
    pub class: Option<String>,
    pub window: Window,
}

impl AttemptQuery {
    /// Checks the class.
    pub fn validate(&self) -> Result<()> {
        if let Some(class) = &self.class {
            if !CLASSES.contains(&class.as_str()) {
                return Err(Error::Invalid(format!(
                    "status: `{}` is not one of {}",
                    class.chars().take(20).collect::<String>(),
                    CLASSES.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn matches(&self, record: &v1::AttemptRecord) -> bool {
        let summary = record.summary.clone().unwrap_or_default();
        self.event_id
            .as_ref()
            .is_none_or(|id| *id == record.event_id)
            && self
                .endpoint_id
                .as_ref()
                .is_none_or(|id| *id == record.endpoint_id)
            && self.tenant.as_ref().is_none_or(|t| *t == record.tenant)
            && self
                .class
                .as_ref()
                .is_none_or(|c| *c == summary.result_class)
            && self.window.contains(summary.started_at_ms)
    }
}

/// One attempt where it lies in the topic.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub partition: i32,
    pub offset: i64,
    pub record: v1::AttemptRecord,
}

impl Positioned for Attempt {
    fn position(&self) -> Position {
        let at = self.record.summary.as_ref().map_or(0, |s| s.started_at_ms);
        (at, self.partition, self.offset)
    }
}

impl Attempt {
    /// The JSON shape of the API and `herald deliveries --json`.
    pub fn to_json(&self) -> Value {
        let r = &self.record;
        let s = r.summary.clone().unwrap_or_default();
        json!({
            "delivery_id": r.delivery_id,
            "event_id": r.event_id,
            "endpoint_id": r.endpoint_id,
            "event_type": r.event_type,
            "tenant": r.tenant,
            "attempt": s.attempt,
            "at": format_instant(s.started_at_ms),
            "at_ms": s.started_at_ms,
            "latency_ms": s.latency_ms,
            "status": (s.status != 0).then_some(s.status),
            "class": s.result_class,
            "error": (!s.error.is_empty()).then_some(s.error),
            "outcome": r.outcome,
            "response_excerpt": String::from_utf8_lossy(&r.response_excerpt),
            "replay_id": (!r.replay_id.is_empty()).then(|| r.replay_id.clone()),
        })
    }
}

/// Hands every attempt `query` selects to `visit`, in topic order; keeps nothing itself.
pub async fn scan_each(
    kafka: &KafkaConfig,
    query: &AttemptQuery,
    mut visit: impl FnMut(Attempt),
) -> Result<()> {
    query.validate()?;
    let topic = kafka.topics().attempts().to_owned();
    let ranges = query.window.ranges(kafka, &topic, SLACK_MS).await?;
    let mut scanner = Scanner::open(kafka, &topic, &ranges)?;
    while let Some(record) = scanner.next().await? {
        let Ok(attempt) = herald_proto::decode::<v1::AttemptRecord>("attempt", &record.payload)
        else {
            continue;
        };
        if query.matches(&attempt) {
            visit(Attempt {
                partition: record.partition,
                offset: record.offset,
                record: attempt,
            });
        }
    }
    Ok(())
}

/// One page of the attempts `query` selects, oldest first.
pub async fn list(
    kafka: &KafkaConfig,
    query: &AttemptQuery,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page<Attempt>> {
    let mut pager = Pager::new(limit, cursor).map_err(Error::Invalid)?;
    scan_each(kafka, query, |a| pager.offer(a)).await?;
    Ok(pager.finish())
}

/// At most this many attempts are kept per delivery in an event's summary.
const PER_DELIVERY: usize = 100;

/// Did event `query.event_id` reach each endpoint, when, with what answer: one entry per
/// delivery (event × endpoint), its attempts oldest first and where it stands.
pub async fn deliveries_of_event(kafka: &KafkaConfig, query: &AttemptQuery) -> Result<Vec<Value>> {
    let mut by_delivery: BTreeMap<String, Vec<Attempt>> = BTreeMap::new();
    scan_each(kafka, query, |a| {
        let list = by_delivery.entry(a.record.delivery_id.clone()).or_default();
        if list.len() < PER_DELIVERY {
            list.push(a);
        }
    })
    .await?;
    Ok(by_delivery
        .into_values()
        .map(|mut attempts| {
            attempts.sort_by_key(Positioned::position);
            summarize(&attempts)
        })
        .collect())
}

fn summarize(attempts: &[Attempt]) -> Value {
    let last = attempts.last().map(Attempt::to_json).unwrap_or_default();
    let delivered = attempts.iter().find(|a| a.record.outcome == "delivered");
    let state = if delivered.is_some() {
        "delivered"
    } else if last["outcome"] == "dead" {
        "dead"
    } else {
        "pending"
    };
    json!({
        "delivery_id": last["delivery_id"],
        "endpoint_id": last["endpoint_id"],
        "state": state,
        "delivered_at": delivered.map(|a| a.to_json()["at"].clone()),
        "attempts": attempts.len(),
        "last_attempt": last,
        "history": attempts.iter().map(Attempt::to_json).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        event: &str,
        endpoint: &str,
        tenant: &str,
        class: &str,
        at: i64,
    ) -> v1::AttemptRecord {
        v1::AttemptRecord {
            event_id: event.into(),
            endpoint_id: endpoint.into(),
            tenant: tenant.into(),
            summary: Some(v1::AttemptSummary {
                result_class: class.into(),
                started_at_ms: at,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn queries_narrow_on_every_field() {
        let r = record("evt_1", "ep_1", "acme", "5xx", 1_000);
        assert!(AttemptQuery::default().matches(&r));
        let q = |f: fn(&mut AttemptQuery)| {
            let mut q = AttemptQuery::default();
            f(&mut q);
            q.matches(&r)
        };
        assert!(q(|q| q.event_id = Some("evt_1".into())));
        assert!(!q(|q| q.event_id = Some("evt_2".into())));
        assert!(!q(|q| q.endpoint_id = Some("ep_2".into())));
        assert!(!q(|q| q.tenant = Some("other".into())));
        assert!(q(|q| q.class = Some("5xx".into())));
        assert!(!q(|q| q.class = Some("2xx".into())));
        assert!(!q(|q| q.window.since_ms = Some(1_001)));
        assert!(q(|q| q.window.until_ms = Some(1_001)));
        let bad = AttemptQuery {
            class: Some("500".into()),
            ..Default::default()
        };
        assert!(bad
            .validate()
            .unwrap_err()
            .to_string()
            .starts_with("status:"));
    }

    #[test]
    fn a_delivery_summary_says_where_it_stands() {
        let mk = |outcome: &str, at: i64| {
            let mut r = record("evt_1", "ep_1", "", "5xx", at);
            r.delivery_id = "dlv_1".into();
            r.outcome = outcome.into();
            Attempt {
                partition: 0,
                offset: at,
                record: r,
            }
        };
        let s = summarize(&[mk("retry", 1), mk("delivered", 2)]);
        assert_eq!(
            (s["state"].as_str(), s["attempts"].as_u64()),
            (Some("delivered"), Some(2))
        );
        assert_eq!(summarize(&[mk("retry", 1), mk("dead", 2)])["state"], "dead");
        assert_eq!(summarize(&[mk("retry", 1)])["state"], "pending");
    }
}
