//! The audit trail writer. Every service (the admin API, the dispatcher's endpoint
//! transitions, replay runs) appends `AuditRecord`s to `audit.v1` through this one type, so
//! every record has the same shape and a failed write is reported the same way.
//!
//! The policy, in one place: a record that cannot be written is logged at ERROR (an operator
//! must act: evidence is missing) and counted in `herald_audit_write_failures_total`, and
//! the error is returned. A caller about to act (starting or resuming a replay) refuses to
//! act without its evidence; a caller whose change is already durable (an endpoint update)
//! carries on.

use crate::{Producer, Result};
use herald_core::clock::SharedClock;
use herald_core::topics::Topics;
use herald_proto::{v1, Message};

/// Who acted, and from where.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Actor {
    /// Key id, `system:<service>` or `cli:<user>`.
    pub id: String,
    /// Source address of the request (empty outside HTTP).
    pub source_ip: String,
    /// The request's id (empty outside HTTP).
    pub request_id: String,
}

impl Actor {
    /// An actor without a request: a service (`system:dispatcher`) or a CLI user.
    pub fn named(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            ..Self::default()
        }
    }
}

/// Appends records to the audit topic.
#[derive(Clone)]
pub struct AuditLog {
    producer: Producer,
    topic: String,
    clock: SharedClock,
}

impl AuditLog {
    /// A writer to `topics.audit()` through `producer`, stamping records by `clock`.
    pub fn new(producer: Producer, topics: &Topics, clock: SharedClock) -> Self {
        Self {
            producer,
            topic: topics.audit(),
            clock,
        }
    }

    /// Writes one record (keyed by actor) of what `actor` did to `target` of `tenant` (empty:
    /// none, or every tenant), and waits for the broker's acknowledgement.
    pub async fn record(
        &self,
        actor: &Actor,
        tenant: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        let record = v1::AuditRecord {
            actor: actor.id.clone(),
            action: action.to_owned(),
            target: target.to_owned(),
            at_ms: self.clock.now_ms(),
            detail_json: detail.to_string(),
            tenant: tenant.to_owned(),
            source_ip: actor.source_ip.clone(),
            request_id: actor.request_id.clone(),
        };
        let sent = self
            .producer
            .send(
                &self.topic,
                record.actor.as_bytes(),
                &record.encode_to_vec(),
            )
            .await;
        if let Err(err) = &sent {
            metrics::counter!("herald_audit_write_failures_total").increment(1);
            tracing::error!(actor = %actor.id, %action, %target, error = %err, "Audit record not written.");
        }
        sent.map(|_| ())
    }
}
