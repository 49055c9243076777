//! The reconciliation report: per endpoint, the events accepted for it over a window and
//! where each delivery stands now: delivered, dead-lettered or still pending; with a verdict
//! that the numbers add up.
//!
//! Computed from the topics alone: `events.v1` over the window gives the deliveries owed
//! (each event × each endpoint subscribed to it when it was accepted, by the same rule the
//! dispatcher fans out with); `attempts.v1` and the dead-letter topic from the window's
//! start to now say what became of each. A delivery is counted once however many attempts,
//! duplicate events or replays it took; delivered wins over dead-lettered (a replay that
//! delivered a dead letter settles it).

use crate::window::{format_instant, Window};
use crate::{Error, Result};
use herald_core::ids::{DeliveryId, EndpointId, EventId};
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::scan::Scanner;
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};

/// How far a record's timestamp may lag the time it carries.
const SLACK_MS: i64 = 60_000;
/// Most deliveries one report follows (memory stays bounded; a larger window is refused).
pub const MAX_DELIVERIES: usize = 500_000;
/// Pending deliveries listed per endpoint, for a look at what is still open.
const PENDING_SAMPLE: usize = 20;

/// Which deliveries a report covers.
#[derive(Debug, Clone, Default)]
pub struct ReconcileQuery {
    /// Events accepted in this window (`since` required).
    pub window: Window,
    pub endpoint_id: Option<String>,
    /// Only this tenant's events (a key limited to a tenant always sets it).
    pub tenant: Option<String>,
}

/// Where one owed delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// No attempt or dead letter seen yet (not dispatched yet, or waiting for its turn).
    Unattempted,
    /// Attempted, failed, waiting for its next attempt.
    Retrying,
    Dead,
    Delivered,
}

#[derive(Debug)]
struct Owed {
    endpoint: usize,
    event_id: String,
    standing: Standing,
}

/// The counts of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    pub endpoint_id: String,
    pub accepted: u64,
    pub delivered: u64,
    pub dead_lettered: u64,
    pub retrying: u64,
    pub unattempted: u64,
    /// Deliveries recorded in the window for events this report did not count as owed to
    /// the endpoint (it subscribed differently then, or the events topic no longer holds
    /// the event): the numbers cannot be closed while there are any.
    pub unexpected: u64,
    /// A few of the still-pending deliveries: (delivery id, event id).
    pub pending_sample: Vec<(String, String)>,
}

impl EndpointCounts {
    /// Still owed: retrying or not attempted yet.
    pub fn pending(&self) -> u64 {
        self.retrying + self.unattempted
    }

    /// `balanced` (every accepted event delivered or dead-lettered), `open` (the rest is
    /// still pending) or `mismatch` (deliveries nobody owed, or the sum does not hold).
    pub fn verdict(&self) -> &'static str {
        let settled = self.delivered + self.dead_lettered;
        if self.unexpected > 0 || settled + self.pending() != self.accepted {
            "mismatch"
        } else if self.pending() > 0 {
            "open"
        } else {
            "balanced"
        }
    }

    fn to_json(&self) -> Value {
        json!({
            "endpoint_id": self.endpoint_id,
            "accepted": self.accepted,
            "delivered": self.delivered,
            "dead_lettered": self.dead_lettered,
            "pending": self.pending(),
            "pending_retrying": self.retrying,
            "pending_unattempted": self.unattempted,
            "unexpected": self.unexpected,
            "adds_up": self.delivered + self.dead_lettered + self.pending() == self.accepted,
            "verdict": self.verdict(),
            "pending_sample": self.pending_sample.iter().map(|(d, e)| json!({"delivery_id": d, "event_id": e})).collect::<Vec<_>>(),
        })
    }
}

/// Folds what the topics say into per-endpoint counts; pure, so the rules are unit-tested.
#[derive(Debug, Default)]
pub struct Reconciler {
    endpoints: Vec<String>,
    index: HashMap<String, usize>,
    owed: HashMap<String, Owed>,
    unexpected: BTreeMap<String, HashSet<String>>,
    unexpected_total: usize,
    /// Events read in the window (duplicates included) and undecodable records.
    pub events_read: u64,
    pub undecodable: u64,
}

impl Reconciler {
    fn endpoint(&mut self, id: &str) -> usize {
        if let Some(i) = self.index.get(id) {
            return *i;
        }
        self.endpoints.push(id.to_owned());
        self.index.insert(id.to_owned(), self.endpoints.len() - 1);
        self.endpoints.len() - 1
    }

    /// Counts the delivery of `event` to `endpoint` as owed (once, however often the event
    /// is in the topic).
    pub fn owe(&mut self, event: &EventId, endpoint: &EndpointId) -> Result<()> {
        let delivery = DeliveryId::for_delivery(event, endpoint).to_string();
        if self.owed.contains_key(&delivery) {
            return Ok(());
        }
        if self.owed.len() >= MAX_DELIVERIES {
            return Err(Error::Invalid(format!(
                "the window holds more than {MAX_DELIVERIES} deliveries: narrow it (since/until) or name an endpoint"
            )));
        }
        let endpoint = self.endpoint(endpoint.as_str());
        self.owed.insert(
            delivery,
            Owed {
                endpoint,
                event_id: event.to_string(),
                standing: Standing::Unattempted,
            },
        );
        Ok(())
    }

    /// Registers an endpoint that is owed nothing (so it is listed with zeros).
    pub fn list_endpoint(&mut self, endpoint: &EndpointId) {
        self.endpoint(endpoint.as_str());
    }

    fn settle(&mut self, delivery: &str, endpoint: &str, standing: Standing) {
        match self.owed.get_mut(delivery) {
            // Delivered is final; otherwise the latest word counts (a replayed dead letter
            // that is retrying again is pending again).
            Some(owed) if owed.standing != Standing::Delivered => owed.standing = standing,
            Some(_) => {}
            None if self.index.contains_key(endpoint) => self.unexpected(endpoint, delivery),
            None => {}
        }
    }

    /// A record of a delivery nobody owed, counted once per delivery however many records
    /// it has (and bounded like the rest).
    fn unexpected(&mut self, endpoint: &str, delivery: &str) {
        if self.unexpected_total >= MAX_DELIVERIES {
            return;
        }
        let fresh = self
            .unexpected
            .entry(endpoint.to_owned())
            .or_default()
            .insert(delivery.to_owned());
        self.unexpected_total += usize::from(fresh);
    }

    /// One attempt record (in topic order).
    pub fn on_attempt(&mut self, record: &v1::AttemptRecord) {
        let standing = match record.outcome.as_str() {
            "delivered" => Standing::Delivered,
            "dead" => Standing::Dead,
            _ => Standing::Retrying,
        };
        self.settle(&record.delivery_id, &record.endpoint_id, standing);
    }

    /// One dead letter (in topic order).
    pub fn on_dead_letter(&mut self, letter: &v1::DeadLetter) {
        if let Some(task) = &letter.task {
            self.settle(&task.delivery_id, &task.endpoint_id, Standing::Dead);
        }
    }

    /// The counts per endpoint, by endpoint id.
    pub fn counts(&self) -> Vec<EndpointCounts> {
        let mut counts: Vec<EndpointCounts> = self
            .endpoints
            .iter()
            .map(|id| EndpointCounts {
                endpoint_id: id.clone(),
                unexpected: self.unexpected.get(id).map_or(0, |d| d.len() as u64),
                ..Default::default()
            })
            .collect();
        let mut owed: Vec<(&String, &Owed)> = self.owed.iter().collect();
        owed.sort_by(|a, b| a.0.cmp(b.0));
        for (delivery, owed) in owed {
            let c = &mut counts[owed.endpoint];
            c.accepted += 1;
            match owed.standing {
                Standing::Delivered => c.delivered += 1,
                Standing::Dead => c.dead_lettered += 1,
                Standing::Retrying => c.retrying += 1,
                Standing::Unattempted => c.unattempted += 1,
            }
            if owed.standing != Standing::Delivered
                && owed.standing != Standing::Dead
                && c.pending_sample.len() < PENDING_SAMPLE
            {
                c.pending_sample
                    .push((delivery.clone(), owed.event_id.clone()));
            }
        }
        counts.sort_by(|a, b| a.endpoint_id.cmp(&b.endpoint_id));
        counts
    }
}

/// The whole report as JSON: per endpoint, totals and the overall verdict.
pub fn report_json(reconciler: &Reconciler, query: &ReconcileQuery, now_ms: i64) -> Value {
    let counts = reconciler.counts();
    let mut total = EndpointCounts::default();
    for c in &counts {
        total.accepted += c.accepted;
        total.delivered += c.delivered;
        total.dead_lettered += c.dead_lettered;
        total.retrying += c.retrying;
        total.unattempted += c.unattempted;
        total.unexpected += c.unexpected;
    }
    let verdict = if counts.iter().any(|c| c.verdict() == "mismatch") {
        "mismatch"
    } else {
        total.verdict()
    };
    let mut totals = total.to_json();
    if let Some(t) = totals.as_object_mut() {
        t.remove("endpoint_id");
        t.remove("pending_sample");
        t.insert("verdict".into(), json!(verdict));
    }
    json!({
        "since": query.window.since_ms.map(format_instant),
        "until": format_instant(query.window.until_ms.unwrap_or(now_ms)),
        "generated_at": format_instant(now_ms),
        "events_read": reconciler.events_read,
        "undecodable_events": reconciler.undecodable,
        "totals": totals,
        "verdict": verdict,
        "endpoints": counts.iter().map(EndpointCounts::to_json).collect::<Vec<_>>(),
    })
}

/// Reads the topics and builds the report's counts.
pub async fn reconcile(
    kafka: &KafkaConfig,
    endpoints: &EndpointsView,
    query: &ReconcileQuery,
) -> Result<Reconciler> {
    let since = query
        .window
        .since_ms
        .ok_or_else(|| Error::Invalid("since: required (for example since=24h)".into()))?;
    let wanted = |id: &EndpointId| query.endpoint_id.as_ref().is_none_or(|w| w == id.as_str());
    let mut reconciler = Reconciler::default();
    for entry in endpoints.list() {
        let tenant_ok = query.tenant.as_ref().is_none_or(|t| *t == entry.tenant);
        if wanted(&entry.id)
            && tenant_ok
            && entry.created_at < query.window.until_ms.unwrap_or(i64::MAX)
        {
            reconciler.list_endpoint(&entry.id);
        }
    }
    let topic = kafka.topics().events().to_owned();
    let ranges = query.window.ranges(kafka, &topic, SLACK_MS).await?;
    let mut scanner = Scanner::open(kafka, &topic, &ranges)?;
    while let Some(record) = scanner.next().await? {
        let Ok(event) = herald_proto::decode::<v1::EventEnvelope>("event", &record.payload) else {
            reconciler.undecodable += 1;
            continue;
        };
        if !query.window.contains(event.accepted_at_ms)
            || query.tenant.as_ref().is_some_and(|t| *t != event.tenant)
        {
            continue;
        }
        reconciler.events_read += 1;
        let Ok(id) = EventId::parse(&event.id) else {
            reconciler.undecodable += 1;
            continue;
        };
        for endpoint in endpoints.subscribers(&event) {
            if wanted(&endpoint.id) {
                reconciler.owe(&id, &endpoint.id)?;
            }
        }
    }
    // What became of them: everything from the window's start to now.
    let after = Window {
        since_ms: Some(since),
        until_ms: None,
    };
    let in_window = |accepted_at: i64| query.window.contains(accepted_at);
    let topic = kafka.topics().attempts().to_owned();
    let mut scanner = Scanner::open(kafka, &topic, &after.ranges(kafka, &topic, SLACK_MS).await?)?;
    while let Some(record) = scanner.next().await? {
        if let Ok(attempt) = herald_proto::decode::<v1::AttemptRecord>("attempt", &record.payload) {
            if in_window(attempt.event_accepted_at_ms) {
                reconciler.on_attempt(&attempt);
            }
        }
    }
    let topic = kafka.topics().dlq();
    let mut scanner = Scanner::open(kafka, &topic, &after.ranges(kafka, &topic, SLACK_MS).await?)?;
    while let Some(record) = scanner.next().await? {
        if let Ok(letter) = herald_proto::decode::<v1::DeadLetter>("dead letter", &record.payload) {
            let accepted = letter
                .task
                .as_ref()
                .and_then(|t| t.event.as_ref())
                .map(|e| e.accepted_at_ms);
            if accepted.is_some_and(in_window) {
                reconciler.on_dead_letter(&letter);
            }
        }
    }
    Ok(reconciler)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt(delivery: &str, endpoint: &EndpointId, outcome: &str) -> v1::AttemptRecord {
        v1::AttemptRecord {
            delivery_id: delivery.into(),
            endpoint_id: endpoint.to_string(),
            outcome: outcome.into(),
            ..Default::default()
        }
    }

    fn delivery(event: &EventId, endpoint: &EndpointId) -> String {
        DeliveryId::for_delivery(event, endpoint).to_string()
    }

    #[test]
    fn every_owed_delivery_is_counted_once_where_it_stands() {
        let (a, b) = (EndpointId::generate(1), EndpointId::generate(2));
        let events: Vec<EventId> = (0..5).map(|i| EventId::generate(1_000 + i)).collect();
        let mut r = Reconciler::default();
        for e in &events {
            r.owe(e, &a).unwrap();
            r.owe(e, &a).unwrap(); // the same event twice in the topic
        }
        r.owe(&events[0], &b).unwrap();
        // a: two delivered (one after a retry), one dead, one retrying, one never attempted.
        r.on_attempt(&attempt(&delivery(&events[0], &a), &a, "retry"));
        r.on_attempt(&attempt(&delivery(&events[0], &a), &a, "delivered"));
        r.on_attempt(&attempt(&delivery(&events[1], &a), &a, "delivered"));
        r.on_attempt(&attempt(&delivery(&events[1], &a), &a, "delivered")); // redelivery
        r.on_attempt(&attempt(&delivery(&events[2], &a), &a, "dead"));
        r.on_attempt(&attempt(&delivery(&events[3], &a), &a, "retry"));
        // b: parked without an attempt (endpoint disabled): only in the dead-letter topic.
        r.on_dead_letter(&v1::DeadLetter {
            task: Some(v1::DeliveryTask {
                delivery_id: delivery(&events[0], &b),
                endpoint_id: b.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let counts = r.counts();
        let ca = counts.iter().find(|c| c.endpoint_id == a.as_str()).unwrap();
        assert_eq!(
            (
                ca.accepted,
                ca.delivered,
                ca.dead_lettered,
                ca.retrying,
                ca.unattempted
            ),
            (5, 2, 1, 1, 1)
        );
        assert_eq!(ca.verdict(), "open");
        assert_eq!(ca.pending_sample.len(), 2);
        let cb = counts.iter().find(|c| c.endpoint_id == b.as_str()).unwrap();
        assert_eq!((cb.accepted, cb.dead_lettered), (1, 1));
        assert_eq!(cb.verdict(), "balanced");
    }

    #[test]
    fn a_replay_that_delivers_a_dead_letter_settles_it_and_delivered_is_final() {
        let a = EndpointId::generate(1);
        let e = EventId::generate(1);
        let mut r = Reconciler::default();
        r.owe(&e, &a).unwrap();
        let d = delivery(&e, &a);
        r.on_attempt(&attempt(&d, &a, "dead"));
        r.on_attempt(&attempt(&d, &a, "retry")); // re-driven by a replay
        assert_eq!(r.counts()[0].verdict(), "open");
        r.on_attempt(&attempt(&d, &a, "delivered"));
        r.on_dead_letter(&v1::DeadLetter {
            task: Some(v1::DeliveryTask {
                delivery_id: d.clone(),
                endpoint_id: a.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        });
        let c = &r.counts()[0];
        assert_eq!((c.delivered, c.dead_lettered), (1, 0));
        assert_eq!(c.verdict(), "balanced");
    }

    #[test]
    fn deliveries_nobody_owed_make_a_mismatch() {
        let a = EndpointId::generate(1);
        let mut r = Reconciler::default();
        r.list_endpoint(&a);
        r.on_attempt(&attempt("dlv_x", &a, "retry"));
        r.on_attempt(&attempt("dlv_x", &a, "delivered"));
        // Another endpoint's records (not in this report) are not counted at all.
        r.on_attempt(&attempt("dlv_y", &EndpointId::generate(2), "delivered"));
        let counts = r.counts();
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0].unexpected, 1);
        assert_eq!(counts[0].verdict(), "mismatch");
        let query = ReconcileQuery::default();
        assert_eq!(report_json(&r, &query, 0)["verdict"], "mismatch");
    }

    #[test]
    fn an_endpoint_owed_nothing_balances_at_zero() {
        let mut r = Reconciler::default();
        r.list_endpoint(&EndpointId::generate(1));
        let report = report_json(&r, &ReconcileQuery::default(), 0);
        assert_eq!(report["verdict"], "balanced");
        assert_eq!(report["endpoints"][0]["accepted"], 0);
    }
}
