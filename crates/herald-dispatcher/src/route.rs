//! Durable writes of outcomes: the attempt log, retry tiers, dead letters and endpoint state.
//! Every write is retried until the broker acknowledges it or the drain deadline passes; only
//! then may the caller store the consumed offset.

use herald_core::clock::SharedClock;
use herald_core::endpoint::Endpoint;
use herald_core::outcome::DeadReason;
use herald_core::topics::Topics;
use herald_kafka::Producer;
use herald_proto::{convert, v1, Message};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The broker did not take a write before the drain deadline; the offset must not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("outcome could not be written before the shutdown deadline")]
pub struct Abandoned;

/// Writes outcome records, retrying until acknowledged.
#[derive(Clone)]
pub struct OutcomeWriter {
    pub producer: Producer,
    pub topics: Topics,
    /// Cancelled when in-flight work must be abandoned (the drain deadline passed).
    pub abort: CancellationToken,
    /// Stamps dead letters and audit records.
    pub clock: SharedClock,
}

impl OutcomeWriter {
    /// Sends one record, retrying unavailability with backoff until acknowledged.
    pub async fn durable_send(
        &self,
        topic: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), Abandoned> {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.producer.send(topic, key, value).await {
                Ok(_) => return Ok(()),
                Err(herald_kafka::Error::Rejected(reason)) => {
                    // Retrying the same bytes cannot help; losing them is worse. Keep trying
                    // (an operator must act: the ERROR says so) but slowly.
                    tracing::error!(%topic, %reason, "Broker rejects an outcome record; retrying.");
                    delay = Duration::from_secs(5);
                }
                Err(err) => tracing::warn!(%topic, error = %err, "Outcome write failed; retrying."),
            }
            tokio::select! {
                _ = self.abort.cancelled() => return Err(Abandoned),
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(2));
        }
    }

    /// Appends to the delivery log.
    pub async fn attempt(&self, record: &v1::AttemptRecord) -> Result<(), Abandoned> {
        self.durable_send(
            &self.topics.attempts(),
            record.delivery_id.as_bytes(),
            &record.encode_to_vec(),
        )
        .await
    }

    /// Puts a task in the retry tier that holds waits of `tier` length.
    pub async fn retry(&self, tier: Duration, task: &v1::DeliveryTask) -> Result<(), Abandoned> {
        self.durable_send(
            &self.topics.retry(tier),
            task.endpoint_id.as_bytes(),
            &task.encode_to_vec(),
        )
        .await
    }

    /// Parks a task in the dead-letter topic.
    pub async fn dead(&self, task: v1::DeliveryTask, reason: DeadReason) -> Result<(), Abandoned> {
        tracing::error!(
            event_id = %task.event.as_ref().map(|e| e.id.as_str()).unwrap_or_default(),
            endpoint_id = %task.endpoint_id,
            reason = reason.as_str(),
            "Delivery parked in the dead-letter topic."
        );
        metrics::counter!("herald_dlq_writes_total", "reason" => reason.as_str()).increment(1);
        let key = task.endpoint_id.clone();
        let letter = v1::DeadLetter {
            task: Some(task),
            reason: reason.as_str().to_owned(),
            dead_at_ms: self.clock.now_ms(),
            attempts_topic: self.topics.attempts(),
            undecodable: None,
        };
        self.durable_send(&self.topics.dlq(), key.as_bytes(), &letter.encode_to_vec())
            .await
    }

    /// Parks a record of the events topic that is not a valid event (see [`crate::inbound`]).
    pub async fn undecodable(&self, letter: v1::DeadLetter) -> Result<(), Abandoned> {
        let record = letter.undecodable.as_ref();
        let partition = record.map(|r| r.partition).unwrap_or_default();
        tracing::error!(
            partition,
            offset = record.map(|r| r.offset).unwrap_or_default(),
            error = record.map(|r| r.error.as_str()).unwrap_or_default(),
            "Undecodable event parked in the dead-letter topic."
        );
        metrics::counter!("herald_events_undecodable_total").increment(1);
        metrics::counter!("herald_dlq_writes_total", "reason" => letter.reason.clone())
            .increment(1);
        let key = format!("undecodable/{partition}");
        self.durable_send(&self.topics.dlq(), key.as_bytes(), &letter.encode_to_vec())
            .await
    }

    /// Appends an operational record to the audit trail (actor `system:dispatcher`). The
    /// change it records is already durable, so a failed write (logged and counted by the
    /// writer) does not undo it.
    pub async fn audit(&self, tenant: &str, action: &str, target: &str, detail: serde_json::Value) {
        let log = herald_kafka::audit::AuditLog::new(
            self.producer.clone(),
            &self.topics,
            self.clock.clone(),
        );
        let _ = log
            .record(
                &herald_kafka::audit::Actor::named("system:dispatcher"),
                tenant,
                action,
                target,
                detail,
            )
            .await;
    }

    /// Writes a health-only state record of an endpoint (failing since, disabled): the
    /// configuration in `endpoint` is not written (see `health_only` in the proto).
    pub async fn endpoint_health(
        &self,
        endpoint: &Endpoint,
        version: u64,
    ) -> Result<v1::EndpointState, Abandoned> {
        let state = convert::endpoint_health_to_state(endpoint, version);
        self.durable_send(
            &self.topics.endpoints(),
            herald_kafka::endpoints::health_key(&endpoint.id).as_bytes(),
            &state.encode_to_vec(),
        )
        .await?;
        Ok(state)
    }
}
