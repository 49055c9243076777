//! The retry consumer: one group member over every retry tier topic. Each tier holds tasks
//! waiting about the same time, so the head of a partition is (nearly) always the earliest
//! due. When the head is not due yet, the partition is paused and the head is held in memory
//! (see [`crate::hold`]) until it is due; then the partition resumes from where it stopped.
//! No sleeping in the poll loop, no busy polling, no seeking; other partitions flow.

use crate::consumer::complete;
use crate::deliver::Deliverer;
use crate::hold::{Held, Holding, Offer, Partition};
use herald_kafka::consumer::{tracked_consumer, Drain, Prefetch, TrackedConsumer};
use herald_kafka::membership::Membership;
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
    drain_on_revoke: Duration,
    deliverer: Arc<Deliverer>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> herald_kafka::Result<Arc<TrackedConsumer>> {
    let membership = membership.sibling("retry");
    // A revocation waits for the deliveries running, not for the tasks held until they are
    // due (minutes away: waiting for them would stall the group's rebalance). The commit
    // then lands on the first held task, which the next owner holds again; what this member
    // delivered is not delivered again there (unless the drain's wait ran out).
    let (consumer, tracker) = tracked_consumer(
        kafka,
        &membership,
        "herald-retry",
        Drain::started(drain_on_revoke),
        Prefetch::PAUSED,
    )?;
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
    let tiers = longest_waits(&deliverer.policy)
        .into_iter()
        .map(|(tier, wait)| (deliverer.writer.topics.retry(tier), wait))
        .collect();
    let mut retry = RetryLoop {
        consumer,
        tracker,
        slots: Arc::new(Semaphore::new(max_in_flight)),
        deliverer,
        holding: Holding::default(),
        generation: 0,
        last_offset: HashMap::new(),
        tiers,
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
            Ok(mut task) => {
                let written = message.timestamp().to_millis();
                let due = bounded_due(
                    task.due_at_ms,
                    written,
                    retry.tiers.get(&partition.0).copied(),
                );
                if due < task.due_at_ms {
                    tracing::warn!(topic = %partition.0, offset, due_at_ms = task.due_at_ms, "Retry task due later than its tier allows; due earlier.");
                    task.due_at_ms = due;
                }
                task
            }
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
    /// The longest wait each tier may hold a task for, by topic name.
    tiers: HashMap<String, Duration>,
}

/// The longest wait a task written to each tier can legitimately have: a wait goes to the
/// largest tier not above 1.25 × it, so anything shorter than the next tier can land in a
/// tier; `Retry-After` reaches 2 × the step; jitter adds up to its fraction; throttled
/// failures wait at least the throttle floor. Generous on purpose: this only catches the
/// absurd.
fn longest_waits(policy: &herald_core::retry::RetryPolicy) -> Vec<(Duration, Duration)> {
    let tiers = policy.tiers();
    let stretch = 1.0 + policy.jitter();
    tiers
        .iter()
        .enumerate()
        .map(|(i, tier)| {
            let next = tiers.get(i + 1).copied().unwrap_or(Duration::ZERO);
            let wait = (*tier * 2)
                .max(next)
                .max(policy.throttle_floor())
                .mul_f64(stretch);
            (*tier, wait)
        })
        .collect()
}

/// A task's due time, bounded by the longest wait its tier allows after it was written (plus
/// a second). A record with a due time far in the future (a bug, a clock gone wrong, a
/// hand-written record) would otherwise pause its whole partition until then.
fn bounded_due(due_at_ms: i64, written_at_ms: Option<i64>, longest: Option<Duration>) -> i64 {
    match (written_at_ms, longest) {
        (Some(written), Some(wait)) => due_at_ms.min(written + wait.as_millis() as i64 + 1_000),
        _ => due_at_ms,
    }
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
        // Running from here on: a revocation waits for it (see `Drain::started`).
        self.tracker
            .lock()
            .expect("tracker lock")
            .start(&held.ticket);
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

#[cfg(test)]
mod tests {
    use super::bounded_due;
    use std::time::Duration;

    #[test]
    fn every_legitimate_wait_fits_its_tier_and_the_absurd_is_brought_in() {
        use herald_core::retry::RetryPolicy;
        let policy = RetryPolicy::production();
        let waits = super::longest_waits(&policy);
        // Every wait next_delay can produce fits the tier tier_for puts it in.
        for attempt in 1..=7 {
            for unit in [0.0, 0.5, 0.999] {
                for kind in [
                    herald_core::retry::FailureKind::Ordinary,
                    herald_core::retry::FailureKind::Throttled,
                ] {
                    for hint in [None, Some(Duration::from_secs(36_000 * 3))] {
                        let Some(delay) = policy.next_delay(attempt, kind, hint, unit) else {
                            continue;
                        };
                        let (_, max) = waits[policy.tier_for(delay)];
                        assert!(delay <= max, "{delay:?} > {max:?}");
                    }
                }
            }
        }
        let tier = Some(Duration::from_secs(10));
        assert_eq!(bounded_due(1_004_000, Some(1_000_000), tier), 1_004_000);
        let year_3000 = 32_503_680_000_000;
        assert_eq!(bounded_due(year_3000, Some(1_000_000), tier), 1_011_000);
        // Without a timestamp or a known tier nothing is changed.
        assert_eq!(bounded_due(year_3000, None, tier), year_3000);
        assert_eq!(bounded_due(year_3000, Some(1_000_000), None), year_3000);
    }
}
