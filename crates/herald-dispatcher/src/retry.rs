//! The retry consumer: one group member over every retry tier topic. Each tier holds tasks
//! waiting about the same time, so the head of a partition is (nearly) always the earliest
//! due. When the head is not due yet, the partition is paused and the head is held in memory
//! (see [`crate::hold`]) until it is due; then the partition resumes from where it stopped.
//! No sleeping in the poll loop, no busy polling, no seeking; other partitions flow.

use crate::consumer::complete;
use crate::deliver::Deliverer;
use crate::hold::{Held, Holding, Offer, Partition};
use herald_kafka::consumer::{tracked_consumer, Membership, TrackedConsumer};
use herald_kafka::tracker::OffsetTracker;
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Consumes the retry tiers until `shutdown`; in-flight work is left on `tasks` to drain.
pub async fn run(
    kafka: &KafkaConfig,
    membership: &Membership,
    max_in_flight: usize,
    deliverer: Arc<Deliverer>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> herald_kafka::Result<Arc<TrackedConsumer>> {
    let membership = membership.sibling("retry");
    // No drain on revocation: a retry tier holds tasks that are not due for minutes, and
    // waiting for them would stall the group's rebalance; their next owner holds them again
    // (a delivery running at that moment may be repeated, with the same webhook-id).
    let (consumer, tracker) = tracked_consumer(kafka, &membership, "herald-retry", Duration::ZERO)?;
    let topics: Vec<String> = deliverer
        .policy
        .tiers()
        .iter()
        .map(|tier| kafka.topics().retry(*tier))
        .collect();
    let consumer = Arc::new(consumer);
    herald_kafka::assign::start(
        &consumer,
        &membership.group,
        membership.assignment,
        &topics,
        &shutdown,
    )
    .await?;
    let mut retry = RetryLoop {
        consumer,
        tracker,
        slots: Arc::new(Semaphore::new(max_in_flight)),
        deliverer,
        holding: Holding::default(),
        generation: 0,
        last_offset: HashMap::new(),
    };
    loop {
        retry.on_rebalance();
        let (due, emptied) = retry.holding.take_due(herald_kafka::now_ms());
        for held in due {
            if !retry.dispatch(held, tasks, &shutdown).await {
                return Ok(retry.consumer);
            }
        }
        retry.resume(&emptied);
        metrics::gauge!("herald_retry_held_tasks").set(retry.holding.len() as f64);
        let next_due = retry.holding.next_due_ms();
        let consumer = retry.consumer.clone();
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sleep_until_ms(next_due) => continue,
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(rdkafka::error::KafkaError::MessageConsumptionFatal(code)) => {
                // Unrecoverable for this client: stop consuming (both consumers), drain,
                // and let the service report it (see `Error::ConsumerFatal`).
                tracing::error!(error = %code, "Fatal consumer error; stopping the dispatcher.");
                shutdown.cancel();
                break;
            }
            Err(err) => {
                tracing::warn!(error = %err, "Retry consumer error; continuing.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        // A rebalance runs inside `recv`: this message already belongs to the new assignment.
        retry.on_rebalance();
        let partition = (message.topic().to_owned(), message.partition());
        let offset = message.offset();
        if retry.already_seen(&partition, offset) {
            continue;
        }
        let ticket =
            retry
                .tracker
                .lock()
                .expect("tracker lock")
                .begin(&partition.0, partition.1, offset);
        let task = match herald_proto::decode::<v1::DeliveryTask>(
            "delivery task",
            message.payload().unwrap_or_default(),
        ) {
            Ok(task) => task,
            Err(err) => {
                tracing::error!(topic = %partition.0, offset, error = %err, "Undecodable retry task skipped.");
                complete(&retry.consumer, &retry.tracker, &ticket);
                continue;
            }
        };
        drop(message);
        let held = Held { ticket, task };
        match retry
            .holding
            .offer(&partition, held, herald_kafka::now_ms())
        {
            Offer::Deliver(held) => {
                if !retry.dispatch(*held, tasks, &shutdown).await {
                    break;
                }
            }
            Offer::HeldPause => retry.pause(&partition)?,
            Offer::Held => {}
        }
    }
    Ok(retry.consumer)
}

struct RetryLoop {
    consumer: Arc<TrackedConsumer>,
    tracker: Arc<Mutex<OffsetTracker>>,
    slots: Arc<Semaphore>,
    deliverer: Arc<Deliverer>,
    holding: Holding,
    generation: u64,
    /// The last offset handed to the holding/delivery per partition in this generation.
    last_offset: HashMap<Partition, i64>,
}

impl RetryLoop {
    /// After a rebalance the held tickets are void: drop them and resume their partitions
    /// (the new assignment starts again from the committed offsets).
    fn on_rebalance(&mut self) {
        let generation = self.tracker.lock().expect("tracker lock").generation();
        if generation != self.generation {
            self.generation = generation;
            self.last_offset.clear();
            let paused = self.holding.clear();
            self.resume(&paused);
        }
    }

    /// Belt and braces against a client re-fetching what it already handed out.
    fn already_seen(&mut self, partition: &Partition, offset: i64) -> bool {
        match self.last_offset.get(partition) {
            Some(last) if offset <= *last => {
                tracing::debug!(topic = %partition.0, partition = partition.1, offset, "Already handed out; ignored.");
                true
            }
            _ => {
                self.last_offset.insert(partition.clone(), offset);
                false
            }
        }
    }

    /// Delivers one due task under an in-flight slot; false when shut down while waiting.
    async fn dispatch(
        &self,
        held: Held,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
    ) -> bool {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => return false,
            permit = self.slots.clone().acquire_owned() => permit.expect("semaphore open"),
        };
        let deliverer = self.deliverer.clone();
        let consumer = self.consumer.clone();
        let tracker = self.tracker.clone();
        tasks.spawn(async move {
            let _permit = permit;
            if deliverer.step(held.task).await.is_ok() {
                complete(&consumer, &tracker, &held.ticket);
            }
        });
        true
    }

    fn pause(&self, (topic, partition): &Partition) -> herald_kafka::Result<()> {
        let mut list = TopicPartitionList::new();
        list.add_partition(topic, *partition);
        self.consumer
            .pause(&list)
            .map_err(herald_kafka::Error::from_kafka)?;
        tracing::debug!(%topic, partition, "Tier partition paused until its head is due.");
        Ok(())
    }

    fn resume(&self, partitions: &[Partition]) {
        for (topic, partition) in partitions {
            let mut list = TopicPartitionList::new();
            list.add_partition(topic, *partition);
            if let Err(err) = self.consumer.resume(&list) {
                tracing::debug!(%topic, partition, error = %err, "Resume failed (partition moved?).");
            }
        }
    }
}

async fn sleep_until_ms(at_ms: Option<i64>) {
    match at_ms {
        Some(at) => {
            let wait = (at - herald_kafka::now_ms()).max(0) as u64;
            tokio::time::sleep(Duration::from_millis(wait)).await;
        }
        None => std::future::pending().await,
    }
}
