//! Starting a consumer on its topics, as its [`Membership`](crate::membership::Membership)
//! says: subscribe to the group (with a watchdog for members left without partitions), or
//! assign every partition by hand (see [`crate::membership`] for why the embedded broker
//! needs that).

use crate::consumer::TrackedConsumer;
use crate::membership::Assignment;
use crate::{stats, Error, Result};
use rdkafka::consumer::Consumer;
use rdkafka::TopicPartitionList;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long a member may stay without partitions in a group before it rejoins.
pub const UNASSIGNED_PATIENCE: Duration = Duration::from_secs(40);

/// How often `All` looks for partitions added to its topics.
const PARTITION_CHECK: Duration = Duration::from_secs(60);

/// Starts `consumer` on `topics`: subscribes to `group` (with the watchdog below) or
/// assigns itself every partition, as `assignment` says.
pub async fn start(
    consumer: &Arc<TrackedConsumer>,
    group: &str,
    assignment: Assignment,
    topics: &[String],
    shutdown: &CancellationToken,
) -> Result<()> {
    if assignment == Assignment::All {
        let list = every_partition(consumer, topics).await?;
        consumer.assign(&list).map_err(Error::from_kafka)?;
        consumer.context().forget_in_flight();
        stats::assigned(group, &list);
        tracing::info!(%group, partitions = list.count(), "Consuming every partition (dispatcher.assignment = all).");
        spawn_partition_check(consumer.clone(), topics.to_vec(), list, shutdown.clone());
        return Ok(());
    }
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&names).map_err(Error::from_kafka)?;
    spawn_assignment_watch(
        consumer.clone(),
        group.to_owned(),
        topics.to_vec(),
        UNASSIGNED_PATIENCE,
        shutdown.clone(),
    );
    Ok(())
}

/// Every partition of `topics` (the offsets left unset: each starts at its committed offset).
async fn every_partition(
    consumer: &Arc<TrackedConsumer>,
    topics: &[String],
) -> Result<TopicPartitionList> {
    let partitions = partitions_of(consumer.clone(), topics.to_vec()).await?;
    let mut list = TopicPartitionList::new();
    for (topic, partition) in &partitions {
        list.add_partition(topic, *partition);
    }
    Ok(list)
}

async fn partitions_of(
    consumer: Arc<TrackedConsumer>,
    topics: Vec<String>,
) -> Result<BTreeSet<(String, i32)>> {
    tokio::task::spawn_blocking(move || {
        let mut found = BTreeSet::new();
        for topic in &topics {
            let metadata = consumer
                .fetch_metadata(Some(topic), Duration::from_secs(30))
                .map_err(Error::from_kafka)?;
            let partitions = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions().iter().map(|p| p.id()));
            let before = found.len();
            found.extend(partitions.map(|p| (topic.clone(), p)));
            if found.len() == before {
                return Err(Error::Unavailable(format!(
                    "topic {topic} has no partitions on the broker"
                )));
            }
        }
        Ok(found)
    })
    .await
    .map_err(|e| Error::Unavailable(format!("metadata task: {e}")))?
}

/// Warns (every check) when a topic gained partitions this consumer does not read: they are
/// picked up at the next start. Re-assigning in place would reset fetch positions and paused
/// partitions under work in flight.
fn spawn_partition_check(
    consumer: Arc<TrackedConsumer>,
    topics: Vec<String>,
    assigned: TopicPartitionList,
    shutdown: CancellationToken,
) {
    let assigned: BTreeSet<(String, i32)> = assigned
        .elements()
        .iter()
        .map(|e| (e.topic().to_owned(), e.partition()))
        .collect();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PARTITION_CHECK) => {}
            }
            let Ok(now) = partitions_of(consumer.clone(), topics.clone()).await else {
                continue;
            };
            let added = now.difference(&assigned).count();
            if added > 0 {
                tracing::warn!(added, "Partitions were added to a dispatcher topic; restart the dispatcher to consume them.");
            }
        }
    });
}

// A watchdog for group members that stay without partitions.
//
// On a healthy Kafka group a member without partitions is a spare (more members than
// partitions) and rejoining changes nothing. The embedded tansu broker's coordinator can
// however leave a member unassigned for good after another member was killed (for example a
// static member that rejoined while the group was half-way through a rebalance). A member
// that stays unassigned longer than `patience` therefore re-subscribes, which sends a fresh
// JoinGroup; the patience doubles each time (up to 16×) so a real spare rejoins rarely.

/// How often the assignment is looked at.
const WATCH_TICK: Duration = Duration::from_secs(5);

/// Starts the watchdog; it ends with `shutdown`.
fn spawn_assignment_watch(
    consumer: Arc<TrackedConsumer>,
    group: String,
    topics: Vec<String>,
    patience: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut unassigned_since: Option<Instant> = None;
        let mut factor = 1u32;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(WATCH_TICK) => {}
            }
            let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
            if assigned > 0 {
                unassigned_since = None;
                factor = 1;
                continue;
            }
            let since = *unassigned_since.get_or_insert_with(Instant::now);
            if since.elapsed() < patience * factor {
                continue;
            }
            tracing::warn!(%group, waited_s = since.elapsed().as_secs(), "No partitions assigned for too long; rejoining the group.");
            metrics::counter!("herald_kafka_group_rejoins_total", "group" => group.clone())
                .increment(1);
            consumer.unsubscribe();
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(err) = consumer.subscribe(&names) {
                tracing::error!(%group, error = %err, "Re-subscribing failed.");
            }
            unassigned_since = None;
            factor = (factor * 2).min(16);
        }
    });
}
