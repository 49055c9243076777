//! Operational webhooks: Herald's own events about a tenant's endpoints and deliveries
//! (`endpoint.failing`, `endpoint.recovered`, `endpoint.disabled`,
//! `delivery.dead_lettered`), written to the events topic like a producer's event and
//! delivered by the normal pipeline (signed, retried, dead-lettered) to the tenant's
//! operational endpoint.
//!
//! Emitted only while such an endpoint exists (the tenant's, or an untenanted one), and
//! never about an operational endpoint or its deliveries, so a failing admin endpoint does
//! not feed itself. Each event's id is derived from what it reports, so the same
//! transition or dead letter reported twice (a dispatcher restarted mid-way) is one event.

use crate::route::{Abandoned, OutcomeWriter};
use herald_core::event::OPERATIONAL_SOURCE;
use herald_core::ids::{EndpointId, EventId};
use herald_kafka::endpoints::EndpointsView;
use herald_proto::{v1, Message};
use serde_json::{json, Value};

/// Writes operational events.
pub struct Operational {
    writer: OutcomeWriter,
    endpoints: EndpointsView,
}

/// One operational event to report.
pub struct Report<'a> {
    /// One of [`herald_core::event::OPERATIONAL_TYPES`].
    pub kind: &'static str,
    pub tenant: &'a str,
    /// The endpoint it is about.
    pub about: &'a str,
    /// What makes this report unique (the event id is derived from it).
    pub key: String,
    pub data: Value,
}

impl Operational {
    /// Writes through `writer`; asks `endpoints` who wants them.
    pub fn new(writer: OutcomeWriter, endpoints: EndpointsView) -> Self {
        Self { writer, endpoints }
    }

    fn wanted(&self, report: &Report<'_>) -> bool {
        let about_operational = EndpointId::parse(report.about)
            .ok()
            .and_then(|id| self.endpoints.get(&id))
            .is_some_and(|e| e.endpoint.operational);
        !about_operational && self.endpoints.has_operational(report.tenant)
    }

    /// Writes `report` to the events topic (when someone wants it), retrying until the
    /// broker acknowledged it, like every outcome record.
    pub async fn emit(&self, report: Report<'_>) -> Result<(), Abandoned> {
        if !self.wanted(&report) {
            return Ok(());
        }
        let key = format!("{}:{}", report.kind, report.key);
        let envelope = v1::EventEnvelope {
            id: EventId::from_idempotency_key(report.tenant, &key).to_string(),
            event_type: report.kind.to_owned(),
            payload: serde_json::to_vec(&report.data).unwrap_or_default().into(),
            tenant: report.tenant.to_owned(),
            ordering_key: report.about.to_owned(),
            accepted_at_ms: self.writer.clock.now_ms(),
            idempotency_key: key,
            source: OPERATIONAL_SOURCE.to_owned(),
        };
        self.writer
            .durable_send(
                self.writer.topics.events(),
                envelope.ordering_key.as_bytes(),
                &envelope.encode_to_vec(),
            )
            .await?;
        metrics::counter!("herald_operational_events_total", "type" => report.kind).increment(1);
        tracing::info!(event_id = %envelope.id, kind = report.kind, endpoint_id = report.about, "Operational event emitted.");
        Ok(())
    }

    /// `delivery.dead_lettered` for a delivery just parked.
    pub async fn dead_lettered(
        &self,
        task: &v1::DeliveryTask,
        reason: &str,
    ) -> Result<(), Abandoned> {
        let event = task.event.clone().unwrap_or_default();
        let last = task.last_failure.clone().unwrap_or_default();
        self.emit(Report {
            kind: "delivery.dead_lettered",
            tenant: &event.tenant,
            about: &task.endpoint_id,
            key: format!(
                "{}:{}:{}",
                task.delivery_id,
                task.attempts.len(),
                task.replay_id
            ),
            data: json!({
                "delivery_id": task.delivery_id,
                "event_id": event.id,
                "event_type": event.event_type,
                "endpoint_id": task.endpoint_id,
                "tenant": event.tenant,
                "reason": reason,
                "attempts": task.attempts.len(),
                "last_status": (last.status != 0).then_some(last.status),
                "last_error": (!last.error.is_empty()).then_some(last.error),
                "replay_id": (!task.replay_id.is_empty()).then(|| task.replay_id.clone()),
                "dead_at_ms": self.writer.clock.now_ms(),
            }),
        })
        .await
    }
}
