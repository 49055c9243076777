//! Test deliveries: a signed `herald.test` event sent to one endpoint at once, through the
//! same transport, SSRF guard and signing as real deliveries, answered synchronously with
//! what the receiver said, and recorded in the attempts log and the audit trail like any
//! attempt. Used by `POST /v1/endpoints/{id}/test` and `herald endpoints test`.

use crate::deliver::summarize;
use crate::transport::Outbound;
use herald_core::clock::SharedClock;
use herald_core::endpoint::Endpoint;
use herald_core::ids::{DeliveryId, EventId};
use herald_core::outcome::AttemptOutcome;
use herald_core::topics::Topics;
use herald_kafka::audit::{Actor, AuditLog};
use herald_kafka::Producer;
use herald_proto::{v1, Message};
use serde_json::{json, Value};

/// The event type of test deliveries.
pub const TEST_EVENT_TYPE: &str = "herald.test";

/// What a test delivery needs.
#[derive(Clone)]
pub struct Prober {
    pub outbound: Outbound,
    pub producer: Producer,
    pub topics: Topics,
    pub clock: SharedClock,
}

impl Prober {
    /// Sends one test event to `endpoint` for `actor`, records the attempt and the audit
    /// record, and describes the result. Err only when the records could not be written
    /// (the attempt itself happened; the error says so).
    pub async fn probe(&self, endpoint: &Endpoint, actor: &Actor) -> herald_kafka::Result<Value> {
        let now = self.clock.now_ms();
        let event_id = EventId::generate(now);
        let delivery_id = DeliveryId::for_delivery(&event_id, &endpoint.id);
        let payload = json!({
            "type": TEST_EVENT_TYPE,
            "timestamp": chrono::DateTime::from_timestamp_millis(now)
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
            "data": {
                "endpoint_id": endpoint.id.as_str(),
                "message": "A test delivery from Herald: if this arrived signed, the endpoint works.",
            },
        })
        .to_string();
        let output = self
            .outbound
            .attempt(endpoint, event_id.as_str(), payload.clone().into(), now)
            .await;
        let success = output.result.is_success();
        let summary = summarize(&output, 1);
        let record = v1::AttemptRecord {
            delivery_id: delivery_id.to_string(),
            event_id: event_id.to_string(),
            endpoint_id: endpoint.id.to_string(),
            event_type: TEST_EVENT_TYPE.to_owned(),
            tenant: endpoint.tenant.clone(),
            summary: Some(summary.clone()),
            outcome: if success {
                AttemptOutcome::Delivered
            } else {
                AttemptOutcome::Dead
            }
            .as_str()
            .to_owned(),
            response_excerpt: output.excerpt.clone(),
            event_accepted_at_ms: now,
            replay_id: String::new(),
        };
        self.producer
            .send(
                self.topics.attempts(),
                record.delivery_id.as_bytes(),
                &record.encode_to_vec(),
            )
            .await?;
        let result = json!({
            "event_id": event_id.to_string(),
            "delivery_id": delivery_id.to_string(),
            "endpoint_id": endpoint.id.as_str(),
            "success": success,
            "status": (output.status != 0).then_some(output.status),
            "class": output.result.class(),
            "latency_ms": summary.latency_ms,
            "error": (!output.error.is_empty()).then(|| output.error.clone()),
            "response_excerpt": String::from_utf8_lossy(&output.excerpt),
            "payload": serde_json::from_str::<Value>(&payload).unwrap_or(Value::Null),
        });
        AuditLog::new(self.producer.clone(), &self.topics, self.clock.clone())
            .record(
                actor,
                &endpoint.tenant,
                "endpoint.tested",
                endpoint.id.as_str(),
                json!({"event_id": event_id.to_string(), "success": success,
                       "status": output.status, "class": output.result.class()}),
            )
            .await?;
        Ok(result)
    }
}
