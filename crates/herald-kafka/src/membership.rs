//! Who a consumer is and how it gets its partitions: the group and instance ids, and the
//! group protocol or every partition by hand. Plain data; [`crate::assign`] acts on it.
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

use crate::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Cluster id of Herald's embedded broker (`herald dev`, `herald broker`).
pub const EMBEDDED_CLUSTER_ID: &str = "herald";

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

/// Who a consumer is in its group.
///
/// `instance` turns on static membership (`group.instance.id`): a restarted instance takes
/// its partitions back at once instead of waiting out the dead member's session. Two live
/// consumers must never share an instance id (the broker fences one of them). On Herald's
/// embedded broker the group protocol is not used at all by default (see [`crate::assign`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub group: String,
    pub instance: Option<String>,
    /// Group protocol or every partition by hand (resolved: `Auto` counts as `Group`).
    pub assignment: Assignment,
}

impl Membership {
    /// The membership of a sibling group (`<group>-<suffix>`, `<instance>-<suffix>`).
    pub fn sibling(&self, suffix: &str) -> Self {
        Self {
            group: format!("{}-{suffix}", self.group),
            instance: self.instance.as_ref().map(|i| format!("{i}-{suffix}")),
            assignment: self.assignment,
        }
    }
}
