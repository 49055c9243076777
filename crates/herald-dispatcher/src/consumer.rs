//! The events consumer: a group member on `events.v1` that fans every event out to the
//! endpoints subscribed when it was accepted, runs the deliveries concurrently, and stores
//! the offset only once every delivery's outcome is durable (ordered per partition).

use crate::deliver::Deliverer;
use crate::inbound::{self, Inbound};
use herald_kafka::consumer::{tracked_consumer, Drain, Prefetch, TrackedConsumer};
use herald_kafka::membership::Membership;
use herald_kafka::tracker::{OffsetTracker, Ticket};
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Stores the position a completed ticket allows, if it advanced.
pub fn complete(consumer: &TrackedConsumer, tracker: &Mutex<OffsetTracker>, ticket: &Ticket) {
    let position = tracker.lock().expect("tracker lock").complete(ticket);
    if let Some(position) = position {
        let mut list = TopicPartitionList::new();
        if list
            .add_partition_offset(&ticket.topic, ticket.partition, Offset::Offset(position))
            .is_ok()
        {
            if let Err(err) = consumer.store_offsets(&list) {
                tracing::debug!(error = %err, partition = ticket.partition, "Offset not stored (partition moved?).");
            }
        }
    }
}

/// Consumes the events topic until `shutdown`; in-flight work is left on `tasks` to drain.
pub async fn run(
    kafka: &KafkaConfig,
    membership: &Membership,
    max_in_flight: usize,
    drain_on_revoke: Duration,
    deliverer: Arc<Deliverer>,
    tasks: &TaskTracker,
    shutdown: CancellationToken,
) -> herald_kafka::Result<Arc<TrackedConsumer>> {
    let (consumer, tracker) = tracked_consumer(
        kafka,
        membership,
        "herald-dispatcher",
        Drain::in_flight(drain_on_revoke),
        // The one hop on the event path: its fetch wait may be shorter than the others'
        // (`kafka.events_fetch_wait`, the embedded broker's latency floor).
        Prefetch {
            fetch_wait_ms: Some(kafka.events_fetch_wait_ms()),
            ..Prefetch::STREAM
        },
    )?;
    let consumer = Arc::new(consumer);
    herald_kafka::assign::start(
        &consumer,
        &membership.group,
        membership.assignment,
        &[kafka.topics().events().to_owned()],
        &shutdown,
    )
    .await?;
    let slots = Arc::new(Semaphore::new(max_in_flight));
    loop {
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("semaphore open"),
        };
        let message = tokio::select! {
            _ = shutdown.cancelled() => break,
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
                tracing::warn!(error = %err, "Consumer error; continuing.");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let ticket = tracker.lock().expect("tracker lock").begin(
            message.topic(),
            message.partition(),
            message.offset(),
        );
        let timestamp = message.timestamp().to_millis();
        let envelope = match inbound::read(message.payload().unwrap_or_default(), timestamp) {
            Inbound::Event(envelope) => envelope,
            Inbound::Undecodable(error) => {
                let letter = inbound::dead_letter(
                    &message,
                    error,
                    deliverer.writer.topics.attempts().to_owned(),
                );
                let (writer, consumer, tracker) =
                    (deliverer.writer.clone(), consumer.clone(), tracker.clone());
                tasks.spawn(async move {
                    let _permit = permit;
                    if writer.undecodable(letter).await.is_ok() {
                        complete(&consumer, &tracker, &ticket);
                    }
                });
                continue;
            }
        };
        let deliverer = deliverer.clone();
        let consumer = consumer.clone();
        let tracker = tracker.clone();
        tasks.spawn(async move {
            let _permit = permit;
            if fan_out(&deliverer, envelope).await {
                complete(&consumer, &tracker, &ticket);
            }
        });
    }
    Ok(consumer)
}

/// Delivers one event to every subscriber; true when every outcome is durable.
pub(crate) async fn fan_out(deliverer: &Deliverer, envelope: v1::EventEnvelope) -> bool {
    // The event exists, so it was accepted before now whatever the producer's clock says:
    // an endpoint created before it was accepted must be in the view before fan-out.
    let accepted = envelope.accepted_at_ms.min(herald_kafka::now_ms());
    if deliverer.endpoints_synced(accepted).await.is_err() {
        return false;
    }
    let subscribers = deliverer.endpoints.subscribers(&envelope);
    metrics::counter!("herald_fanout_deliveries_total").increment(subscribers.len() as u64);
    let steps = subscribers
        .iter()
        .map(|endpoint| Deliverer::first_task(&envelope, &endpoint.id))
        .filter(|task| deliverer.claim(task))
        // Boxed, so each step's state (several KiB: the request, its signature, the outcome
        // produce) is freed as soon as that step is done, not when the event's slowest
        // subscriber is, and the fan-out's own list holds pointers only.
        .map(|task| Box::pin(deliverer.step(task)));
    futures::future::join_all(steps)
        .await
        .iter()
        .all(Result::is_ok)
}
