//! Deliveries known to have succeeded, folded from the recent tail of the attempts topic.
//!
//! After a crash the events consumer re-reads everything past the last committed offset. The
//! attempts topic already says which of those deliveries succeeded, so the dispatcher reads
//! its recent tail (a time window) before it starts consuming and skips them: duplicates after
//! a crash are limited to deliveries in flight at the kill, not a whole uncommitted batch.
//! Only `delivered` outcomes count: a failed attempt is logged before its retry or dead letter
//! is written, so skipping on it could lose the delivery.

use crate::dedupe::Claims;
use herald_core::outcome::AttemptOutcome;
use herald_kafka::consumer::{lagging_reader, Closing};
use herald_kafka::view::{high_watermarks, CatchUp};
use herald_kafka::{Error, KafkaConfig, Result};
use herald_proto::v1;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A bounded, live set of delivered delivery ids.
#[derive(Clone)]
pub struct Delivered {
    ids: Arc<Mutex<Claims>>,
    ready: watch::Receiver<bool>,
}

impl Delivered {
    /// An empty set that is ready at once (tests, or when the tail is not wanted).
    pub fn empty(capacity: usize) -> Self {
        Self {
            ids: Arc::new(Mutex::new(Claims::with_capacity(capacity))),
            ready: watch::channel(true).1,
        }
    }

    /// Starts folding the attempts topic from `now - window` and following it.
    pub fn spawn(
        kafka: &KafkaConfig,
        window: Duration,
        capacity: usize,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (ready_tx, ready) = watch::channel(false);
        let delivered = Self {
            ids: Arc::new(Mutex::new(Claims::with_capacity(capacity))),
            ready,
        };
        let follower = delivered.clone();
        let kafka = kafka.clone();
        tasks.spawn(async move {
            let mut delay = Duration::from_millis(200);
            while !shutdown.is_cancelled() {
                match follower.follow(&kafka, window, &ready_tx, &shutdown).await {
                    Ok(()) => return,
                    Err(err) => {
                        tracing::warn!(error = %err, "Attempts tail lost; restarting.");
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(delay) => {}
                        }
                        delay = (delay * 2).min(Duration::from_secs(5));
                    }
                }
            }
        });
        delivered
    }

    /// Records a delivery this process just saw succeed.
    pub fn insert(&self, delivery_id: &str) {
        self.ids.lock().expect("delivered lock").claim(delivery_id);
    }

    /// Whether `delivery_id` is known to have been delivered.
    pub fn contains(&self, delivery_id: &str) -> bool {
        self.ids
            .lock()
            .expect("delivered lock")
            .contains(delivery_id)
    }

    /// Waits until the tail has been read up to where it stood at start, at most `timeout`.
    /// Returns false when it did not catch up in time (the dispatcher then starts anyway:
    /// this is an optimisation against duplicates, never a condition for delivering).
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut ready = self.ready.clone();
        let waited = tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await;
        matches!(waited, Ok(Ok(_)))
    }

    async fn follow(
        &self,
        kafka: &KafkaConfig,
        window: Duration,
        ready: &watch::Sender<bool>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        // Closed off the async workers when this returns.
        let consumer = Closing::new(lagging_reader(kafka, "herald-dispatcher-attempts")?);
        let topic = kafka.topics().attempts().to_owned();
        let targets = high_watermarks(&consumer, &topic).await?;
        let since = herald_kafka::now_ms() - window.as_millis() as i64;
        let assignment = start_offsets(&consumer, &topic, &targets, since).await?;
        consumer.assign(&assignment).map_err(Error::from_kafka)?;
        let starts: HashMap<i32, i64> = assignment
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(start) => Some((e.partition(), start)),
                _ => None,
            })
            .collect();
        let mut catch_up = CatchUp::new(targets, |p| starts.get(&p).copied().unwrap_or(0));
        if catch_up.is_done() {
            ready.send_replace(true);
        }
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = consumer.recv() => message.map_err(Error::from_kafka)?,
            };
            if let Ok(record) = herald_proto::decode::<v1::AttemptRecord>(
                "attempt record",
                message.payload().unwrap_or_default(),
            ) {
                if record.attempt_outcome() == Some(AttemptOutcome::Delivered) {
                    self.insert(&record.delivery_id);
                }
            }
            if catch_up.seen(message.partition(), message.offset()) {
                tracing::info!(
                    known = self.ids.lock().expect("delivered lock").len(),
                    "Attempts tail read."
                );
                ready.send_replace(true);
            }
        }
    }
}

/// The first offset at or after `since_ms` in every partition (the end where nothing is).
async fn start_offsets(
    consumer: &Arc<rdkafka::consumer::StreamConsumer>,
    topic: &str,
    targets: &HashMap<i32, i64>,
    since_ms: i64,
) -> Result<TopicPartitionList> {
    let mut query = TopicPartitionList::new();
    for partition in targets.keys() {
        query
            .add_partition_offset(topic, *partition, Offset::Offset(since_ms.max(0)))
            .map_err(Error::from_kafka)?;
    }
    let consumer = consumer.clone();
    let found = tokio::task::spawn_blocking(move || {
        consumer.offsets_for_times(query, Duration::from_secs(10))
    })
    .await
    .map_err(|e| Error::Unavailable(e.to_string()))?
    .map_err(Error::from_kafka)?;
    let mut assignment = TopicPartitionList::new();
    for element in found.elements() {
        let offset = match element.offset() {
            Offset::Offset(offset) => Offset::Offset(offset),
            // No record at or after the time: start at the end.
            _ => Offset::Offset(targets.get(&element.partition()).copied().unwrap_or(0)),
        };
        assignment
            .add_partition_offset(topic, element.partition(), offset)
            .map_err(Error::from_kafka)?;
    }
    Ok(assignment)
}
