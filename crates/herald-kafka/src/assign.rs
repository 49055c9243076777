//! How a consumer gets its partitions: the Kafka group protocol, or every partition assigned
//! by hand.
//!
//! On a Kafka cluster the group protocol shares partitions among dispatcher instances and
//! moves them when one dies. Herald's embedded broker (tansu 0.6) has a coordinator bug that
//! makes the protocol unusable across restarts: when the group's leader is expired for missed
//! heartbeats while the group is formed, the group keeps the expired member as its leader,
//! and every later generation waits for an assignment from it, forever. A dispatcher that
//! restarts later than the session timeout after the previous one stopped (killed, stopped,
//! or `herald dev` restarted) is enough to trigger it. With [`Assignment::All`] the consumer
//! assigns itself every partition and commits offsets under the group id, which the broker
//! accepts without membership: nothing depends on the coordinator. It suits exactly one
//! dispatcher per group, which is what a single-node embedded broker runs.

use crate::consumer::TrackedConsumer;
use crate::{stats, Error, KafkaConfig, Result};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::TopicPartitionList;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Cluster id of Herald's embedded broker (`herald dev`, `herald broker`).
pub const EMBEDDED_CLUSTER_ID: &str = "herald";

/// How long a member may stay without partitions in a group before it rejoins.
pub const UNASSIGNED_PATIENCE: Duration = Duration::from_secs(40);

/// How often `All` looks for partitions added to its topics.
const PARTITION_CHECK: Duration = Duration::from_secs(60);

/// How a dispatcher's consumers get their partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Assignment {
    /// `All` on Herald's embedded broker, `Group` on any other cluster.
    Auto,
    /// The Kafka consumer group protocol: run as many dispatchers as there are partitions.
    Group,
    /// Every partition, assigned by hand; offsets committed under the group id. Run exactly
    /// one dispatcher per group (two would both deliver everything).
    All,
}

impl Assignment {
    /// Resolves `Auto` by asking the cluster for its id; the others stay as they are.
    pub async fn resolve(self, config: &KafkaConfig) -> Assignment {
        if self != Assignment::Auto {
            return self;
        }
        match cluster_id(config).await {
            Some(id) if id == EMBEDDED_CLUSTER_ID => Assignment::All,
            Some(_) => Assignment::Group,
            None => {
                tracing::warn!(
                    "The cluster did not say its id; using the consumer group protocol."
                );
                Assignment::Group
            }
        }
    }
}

async fn cluster_id(config: &KafkaConfig) -> Option<String> {
    let client: BaseConsumer = config.client_config("herald-probe").create().ok()?;
    tokio::task::spawn_blocking(move || client.client().fetch_cluster_id(Duration::from_secs(30)))
        .await
        .ok()
        .flatten()
}

/// Starts `consumer` on `topics`: subscribes to `group` (with the watchdog of
/// [`crate::watch`]) or assigns itself every partition, as `assignment` says.
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
    crate::watch::spawn_assignment_watch(
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
