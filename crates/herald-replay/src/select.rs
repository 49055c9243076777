//! The decision for each record scanned: re-drive it, mark it, skip it or ignore it. Shared
//! by the plan (dry run) and the run itself, so a dry run shows exactly what a run does.

use crate::filter::{DlqFilter, EventsFilter, ReplaySpec, Selection};
use crate::state::RunsView;
use herald_core::ids::{DeliveryId, EndpointId, EventId};
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::scan::Record;
use herald_proto::v1;
use std::collections::HashSet;

/// What to do with one scanned record (an events record may give one per endpoint).
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Write this task to the retry tier; for a dead letter, then mark it.
    Redrive {
        task: Box<v1::DeliveryTask>,
        reason: String,
        marker: Option<(i32, i64)>,
    },
    /// A dead letter of a delivery this run re-drives already: only mark it.
    Mark {
        marker: (i32, i64),
        delivery_id: String,
    },
    /// This run re-drove the delivery before it was interrupted (found in the retry tier or
    /// by its marker): count it as re-driven, and mark the dead letter if not yet marked.
    Recovered {
        marker: Option<(i32, i64)>,
        delivery_id: String,
    },
    /// Selected but left alone: re-driven before, or delivered already.
    Skip,
}

/// Decides record by record; remembers the deliveries it chose so none goes twice.
pub struct Selector {
    spec: ReplaySpec,
    replay_id: String,
    endpoints: EndpointsView,
    runs: RunsView,
    /// Deliveries this run re-drives.
    pub chosen: HashSet<String>,
    /// Deliveries this run wrote to the retry tier before an interruption, not yet met again.
    pub recovered: HashSet<String>,
    /// Deliveries that succeeded already (`only_failed`).
    pub delivered: HashSet<String>,
}

impl Selector {
    /// A selector for `spec` on behalf of run `replay_id`.
    pub fn new(
        spec: ReplaySpec,
        replay_id: String,
        endpoints: EndpointsView,
        runs: RunsView,
    ) -> Self {
        Self {
            spec,
            replay_id,
            endpoints,
            runs,
            chosen: HashSet::new(),
            recovered: HashSet::new(),
            delivered: HashSet::new(),
        }
    }

    /// The decisions for one record, at time `now`.
    pub fn decide(&mut self, record: &Record, now: i64) -> Vec<Decision> {
        match self.spec.selection.clone() {
            Selection::Dlq(filter) => self.decide_dead(&filter, record, now),
            Selection::Events(filter) => self.decide_event(&filter, record, now),
        }
    }

    fn decide_dead(&mut self, filter: &DlqFilter, record: &Record, now: i64) -> Vec<Decision> {
        let letter = match herald_proto::decode::<v1::DeadLetter>("dead letter", &record.payload) {
            Ok(letter) => letter,
            Err(err) => {
                tracing::warn!(partition = record.partition, offset = record.offset, error = %err, "Undecodable dead letter ignored.");
                return Vec::new();
            }
        };
        if !filter.matches(&letter) {
            return Vec::new();
        }
        let Some(task) = letter.task else {
            return Vec::new();
        };
        let position = (record.partition, record.offset);
        if let Some(marker) = self.runs.marker(position.0, position.1) {
            if marker.replay_id == self.replay_id && self.chosen.insert(task.delivery_id.clone()) {
                self.recovered.remove(&task.delivery_id);
                return vec![Decision::Recovered {
                    marker: None,
                    delivery_id: task.delivery_id,
                }];
            }
            return vec![Decision::Skip];
        }
        if self.recovered.remove(&task.delivery_id) {
            self.chosen.insert(task.delivery_id.clone());
            return vec![Decision::Recovered {
                marker: Some(position),
                delivery_id: task.delivery_id,
            }];
        }
        if !self.chosen.insert(task.delivery_id.clone()) {
            return vec![Decision::Mark {
                marker: position,
                delivery_id: task.delivery_id,
            }];
        }
        vec![Decision::Redrive {
            task: Box::new(redrive(task, &self.replay_id, now)),
            reason: letter.reason,
            marker: Some(position),
        }]
    }

    fn decide_event(&mut self, filter: &EventsFilter, record: &Record, now: i64) -> Vec<Decision> {
        let event = match herald_proto::decode::<v1::EventEnvelope>("event", &record.payload) {
            Ok(event) => event,
            Err(err) => {
                tracing::warn!(partition = record.partition, offset = record.offset, error = %err, "Undecodable event ignored.");
                return Vec::new();
            }
        };
        if !filter.matches(&event) {
            return Vec::new();
        }
        let Ok(event_id) = EventId::parse(&event.id) else {
            return Vec::new();
        };
        let targets: Vec<EndpointId> = self
            .endpoints
            .subscribers(&event)
            .into_iter()
            .map(|e| e.id.clone())
            .filter(|id| filter.endpoint.as_ref().is_none_or(|only| only == id))
            .collect();
        let mut decisions = Vec::with_capacity(targets.len());
        for endpoint in targets {
            let delivery_id = DeliveryId::for_delivery(&event_id, &endpoint).to_string();
            if self.recovered.remove(&delivery_id) {
                self.chosen.insert(delivery_id.clone());
                decisions.push(Decision::Recovered {
                    marker: None,
                    delivery_id,
                });
                continue;
            }
            if (filter.only_failed && self.delivered.contains(&delivery_id))
                || !self.chosen.insert(delivery_id.clone())
            {
                decisions.push(Decision::Skip);
                continue;
            }
            let task = v1::DeliveryTask {
                event: Some(event.clone()),
                endpoint_id: endpoint.to_string(),
                delivery_id,
                next_attempt: 1,
                due_at_ms: now,
                replay_id: self.replay_id.clone(),
                ..Default::default()
            };
            decisions.push(Decision::Redrive {
                task: Box::new(task),
                reason: String::new(),
                marker: None,
            });
        }
        decisions
    }
}

/// A dead delivery with a fresh attempt budget: attempt 1, due now, the attempt list cleared
/// (it stays in the attempts topic), the first and last failure kept as a note of why it died,
/// the same delivery id and event (so the same `webhook-id`), and the replay id set. A rate
/// limit turn the task had reserved before it died (parked while it waited for it) is long
/// past: it is dropped, so the redriven delivery takes a fresh turn instead of passing the
/// endpoint's rate limit as already paced.
pub fn redrive(mut task: v1::DeliveryTask, replay_id: &str, now: i64) -> v1::DeliveryTask {
    task.next_attempt = 1;
    task.attempts.clear();
    task.due_at_ms = now;
    task.replay_id = replay_id.to_owned();
    task.deferrals = 0;
    task.paced_turn_ms = 0;
    task
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redriven_task_keeps_identity_and_resets_the_budget() {
        let failure = v1::AttemptSummary {
            attempt: 4,
            status: 500,
            ..Default::default()
        };
        let task = v1::DeliveryTask {
            event: Some(v1::EventEnvelope {
                id: "evt_1".into(),
                ..Default::default()
            }),
            endpoint_id: "ep_1".into(),
            delivery_id: "dlv_1".into(),
            next_attempt: 5,
            due_at_ms: 10,
            first_failure: Some(failure.clone()),
            last_failure: Some(failure.clone()),
            attempts: vec![failure.clone(); 4],
            replay_id: String::new(),
            paced_turn_ms: 7,
            deferrals: 3,
        };
        let again = redrive(task.clone(), "rpl_9", 99);
        assert_eq!(again.next_attempt, 1);
        assert_eq!(again.deferrals, 0);
        assert_eq!(
            again.paced_turn_ms, 0,
            "a stale rate-limit turn is not kept"
        );
        assert!(again.attempts.is_empty());
        assert_eq!(again.due_at_ms, 99);
        assert_eq!(again.replay_id, "rpl_9");
        assert_eq!(again.event, task.event, "same event: same webhook-id");
        assert_eq!(again.delivery_id, "dlv_1");
        assert_eq!(again.last_failure, Some(failure), "why it died is kept");
    }
}
