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

/// How a send ended (unavailability is retried inside).
enum Sent {
    Acked,
    /// The broker refused the record for good.
    Refused(String),
}

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
    /// Sends one record, retrying unavailability with backoff until acknowledged. A record
    /// the broker refuses (too large for the topic, topic gone) is not retried: sending the
    /// same bytes again cannot help, and retrying forever would pin the delivery's slot and
    /// its partition's offset. It is logged, counted and dropped; [`Self::retry`] and
    /// [`Self::dead`] park a slim dead letter instead.
    pub async fn durable_send(
        &self,
        topic: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<(), Abandoned> {
        if let Sent::Refused(reason) = self.send(topic, key, value).await? {
            metrics::counter!("herald_outcome_records_dropped_total").increment(1);
            tracing::error!(%topic, %reason, bytes = value.len(), "Broker refuses an outcome record; dropped.");
        }
        Ok(())
    }

    /// Sends one record, retrying unavailability with backoff until acknowledged or refused.
    async fn send(&self, topic: &str, key: &[u8], value: &[u8]) -> Result<Sent, Abandoned> {
        let mut delay = Duration::from_millis(50);
        loop {
            match self.producer.send(topic, key, value).await {
                Ok(_) => return Ok(Sent::Acked),
                Err(herald_kafka::Error::Rejected(reason)) => return Ok(Sent::Refused(reason)),
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
            self.topics.attempts(),
            record.delivery_id.as_bytes(),
            &record.encode_to_vec(),
        )
        .await
    }

    /// Puts a task in the retry tier that holds waits of `tier` length.
    /// A task the tier refuses is parked slim (see [`Self::park_slim`]).
    pub async fn retry(&self, tier: Duration, task: &v1::DeliveryTask) -> Result<(), Abandoned> {
        let topic = self.topics.retry(tier);
        match self
            .send(&topic, task.endpoint_id.as_bytes(), &task.encode_to_vec())
            .await?
        {
            Sent::Acked => Ok(()),
            Sent::Refused(reason) => self.park_slim(task.clone(), &topic, &reason).await,
        }
    }

    /// Parks a task in the dead-letter topic.
    pub async fn dead(&self, task: v1::DeliveryTask, reason: DeadReason) -> Result<(), Abandoned> {
        tracing::error!(
            event_id = %task.event.as_ref().map(|e| e.id.as_str()).unwrap_or_default(),
            endpoint_id = %task.endpoint_id,
            reason = reason.as_str(),
            "Delivery parked in the dead-letter topic."
        );
        let (key, letter) = self.letter(task, reason);
        match self
            .send(&self.topics.dlq(), key.as_bytes(), &letter.encode_to_vec())
            .await?
        {
            Sent::Acked => Ok(()),
            Sent::Refused(why) => {
                let task = letter.task.unwrap_or_default();
                self.park_slim(task, &self.topics.dlq(), &why).await
            }
        }
    }

    /// The dead letter of `task` for `reason`, with its record key (counted as a DLQ write).
    fn letter(&self, task: v1::DeliveryTask, reason: DeadReason) -> (String, v1::DeadLetter) {
        metrics::counter!("herald_dlq_writes_total", "reason" => reason.as_str()).increment(1);
        let key = task.endpoint_id.clone();
        let letter = v1::DeadLetter {
            task: Some(task),
            reason: reason.as_str().to_owned(),
            dead_at_ms: self.clock.now_ms(),
            attempts_topic: self.topics.attempts().to_owned(),
            undecodable: None,
        };
        (key, letter)
    }

    /// Parks a delivery whose retry task or dead letter the broker refused, in a form that
    /// fits: the task without the event's payload and with only its last attempt summary,
    /// reason `record_too_large`. The event stays in the events topic, so `herald replay
    /// events` can still deliver it. If even that is refused, it is logged and counted.
    async fn park_slim(
        &self,
        mut task: v1::DeliveryTask,
        refused_by: &str,
        why: &str,
    ) -> Result<(), Abandoned> {
        tracing::error!(
            delivery_id = %task.delivery_id,
            event_id = %task.event.as_ref().map(|e| e.id.as_str()).unwrap_or_default(),
            topic = %refused_by,
            reason = %why,
            "Broker refused the delivery's record; parking it without its payload."
        );
        if let Some(event) = task.event.as_mut() {
            event.payload.clear();
        }
        let keep = task.attempts.len().saturating_sub(1);
        task.attempts.drain(..keep);
        let (key, letter) = self.letter(task, DeadReason::RecordTooLarge);
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
