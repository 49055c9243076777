//! The retry consumer: one group member over every retry tier topic. Each tier holds tasks
//! waiting about the same time, so the head of a partition is (nearly) always the earliest
//! due. When the head is not due yet, the partition is paused and rewound to it, and resumed
//! when it is due: no sleeping in the poll loop, no busy polling, other partitions flow.

use crate::consumer::complete;
use crate::deliver::Deliverer;
use herald_kafka::consumer::tracked_consumer;
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type Partition = (String, i32);

/// Consumes the retry tiers until `shutdown`; in-flight work is left on `tasks` to drain.
pub async fn run(
    kafka: &KafkaConfig,
    group: &str,
    max_in_flight: usize,
    deliverer: Arc<Deliverer>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> herald_kafka::Result<Arc<herald_kafka::consumer::TrackedConsumer>> {
    let (consumer, tracker) = tracked_consumer(kafka, &format!("{group}-retry"), "herald-retry")?;
    let topics: Vec<String> = deliverer
        .policy
        .tiers()
        .iter()
        .map(|tier| kafka.topics().retry(*tier))
        .collect();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(herald_kafka::Error::from_kafka)?;
    let consumer = Arc::new(consumer);
    let slots = Arc::new(Semaphore::new(max_in_flight));
    // Paused partitions: when to resume, and the assignment generation they belong to.
    let mut paused: HashMap<Partition, (Instant, u64)> = HashMap::new();
    loop {
        let generation = tracker.lock().expect("tracker lock").generation();
        paused.retain(|_, (_, g)| *g == generation);
        let next_resume = paused.values().map(|(at, _)| *at).min();
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore open"),
        };
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = sleep_until(next_resume) => {
                resume_due(&consumer, &mut paused);
                continue;
            }
            message = consumer.recv() => message,
        };
        let message = match message {
            Ok(message) => message,
            Err(err) => {
                tracing::warn!(error = %err, "Retry consumer error; continuing.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let partition = (message.topic().to_owned(), message.partition());
        if paused.contains_key(&partition) {
            continue; // fetched before the pause; it comes again after the rewind
        }
        let task = match herald_proto::decode::<v1::DeliveryTask>(
            "delivery task",
            message.payload().unwrap_or_default(),
        ) {
            Ok(task) => task,
            Err(err) => {
                tracing::error!(topic = %partition.0, offset = message.offset(), error = %err, "Undecodable retry task skipped.");
                let ticket = tracker.lock().expect("tracker lock").begin(
                    &partition.0,
                    partition.1,
                    message.offset(),
                );
                complete(&consumer, &tracker, &ticket);
                continue;
            }
        };
        let wait_ms = task.due_at_ms - herald_kafka::now_ms();
        if wait_ms > 0 {
            pause_until(&consumer, &partition, message.offset(), wait_ms)?;
            paused.insert(
                partition,
                (
                    Instant::now() + Duration::from_millis(wait_ms as u64),
                    generation,
                ),
            );
            continue;
        }
        let ticket = tracker.lock().expect("tracker lock").begin(
            &partition.0,
            partition.1,
            message.offset(),
        );
        let deliverer = deliverer.clone();
        let consumer = consumer.clone();
        let tracker = tracker.clone();
        tasks.spawn(async move {
            let _permit = permit;
            if deliverer.step(task).await.is_ok() {
                complete(&consumer, &tracker, &ticket);
            }
        });
    }
    Ok(consumer)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn pause_until(
    consumer: &herald_kafka::consumer::TrackedConsumer,
    (topic, partition): &Partition,
    offset: i64,
    wait_ms: i64,
) -> herald_kafka::Result<()> {
    let mut list = TopicPartitionList::new();
    list.add_partition(topic, *partition);
    consumer
        .pause(&list)
        .map_err(herald_kafka::Error::from_kafka)?;
    // Rewind so the head is fetched again after resuming; timeout 0 = asynchronous.
    consumer
        .seek(topic, *partition, Offset::Offset(offset), Duration::ZERO)
        .map_err(herald_kafka::Error::from_kafka)?;
    tracing::debug!(%topic, partition, offset, wait_ms, "Tier partition paused until its head is due.");
    Ok(())
}

fn resume_due(
    consumer: &herald_kafka::consumer::TrackedConsumer,
    paused: &mut HashMap<Partition, (Instant, u64)>,
) {
    let now = Instant::now();
    let due: Vec<Partition> = paused
        .iter()
        .filter(|(_, (at, _))| *at <= now)
        .map(|(p, _)| p.clone())
        .collect();
    for partition in due {
        paused.remove(&partition);
        let mut list = TopicPartitionList::new();
        list.add_partition(&partition.0, partition.1);
        if let Err(err) = consumer.resume(&list) {
            tracing::warn!(topic = %partition.0, partition = partition.1, error = %err, "Resume failed.");
        }
    }
}
