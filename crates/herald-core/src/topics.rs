//! Kafka topic names, all under one configurable prefix (default `herald.`).

use crate::duration;
use std::time::Duration;

/// The default prefix of every Herald topic.
pub const DEFAULT_PREFIX: &str = "herald.";

/// Names of Herald's topics under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
    /// The two names used for every record (each event in, each attempt out), made once.
    events: String,
    attempts: String,
}

impl Topics {
    /// Topics under `prefix` (for example `herald.` or `staging.herald.`).
    pub fn new(prefix: impl Into<String>) -> Self {
        let prefix = prefix.into();
        Self {
            events: format!("{prefix}events.v1"),
            attempts: format!("{prefix}attempts.v1"),
            prefix,
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Accepted events (`EventEnvelope`).
    pub fn events(&self) -> &str {
        &self.events
    }

    /// The retry tier that holds tasks waiting `delay` (`DeliveryTask`).
    pub fn retry(&self, delay: Duration) -> String {
        format!(
            "{}deliveries.retry.{}",
            self.prefix,
            duration::format(delay)
        )
    }

    /// Dead letters (`DeadLetter`).
    pub fn dlq(&self) -> String {
        format!("{}deliveries.dlq.v1", self.prefix)
    }

    /// Every attempt: the delivery log (`AttemptRecord`).
    pub fn attempts(&self) -> &str {
        &self.attempts
    }

    /// Endpoint state, compacted (`EndpointState`).
    pub fn endpoints(&self) -> String {
        format!("{}endpoints.v1", self.prefix)
    }

    /// API key records, compacted (`KeyRecord`).
    pub fn keys(&self) -> String {
        format!("{}keys.v1", self.prefix)
    }

    /// Audit trail (`AuditRecord`).
    pub fn audit(&self) -> String {
        format!("{}audit.v1", self.prefix)
    }

    /// Replay run progress, compacted (`ReplayProgress`).
    pub fn replays(&self) -> String {
        format!("{}replays.v1", self.prefix)
    }

    /// Leases on roles one process holds at a time, compacted (`Lease`).
    pub fn leases(&self) -> String {
        format!("{}leases.v1", self.prefix)
    }
}

/// The topics of a deployment with its retry tiers: the tiers decide the names of the retry
/// topics, so they are known in one place, from the retry schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicLayout {
    topics: Topics,
    tiers: Vec<Duration>,
}

impl TopicLayout {
    /// `topics` with one retry topic per tier (sorted, distinct, at least one).
    pub fn new(topics: Topics, tiers: &[Duration]) -> crate::Result<Self> {
        let mut tiers = tiers.to_vec();
        tiers.sort();
        tiers.dedup();
        if tiers.is_empty() {
            return Err(crate::Error::InvalidSchedule("no retry tier"));
        }
        Ok(Self { topics, tiers })
    }

    /// The topic names.
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    /// The retry tiers, shortest first.
    pub fn tiers(&self) -> &[Duration] {
        &self.tiers
    }

    /// The shortest tier: where replays re-drive and busy endpoints defer.
    pub fn shortest_tier(&self) -> Duration {
        self.tiers[0]
    }

    /// The retry topics, shortest tier first.
    pub fn retry_topics(&self) -> Vec<String> {
        self.tiers.iter().map(|t| self.topics.retry(*t)).collect()
    }
}

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layout_names_one_retry_topic_per_distinct_tier() {
        let layout = TopicLayout::new(
            Topics::default(),
            &[
                Duration::from_secs(300),
                Duration::from_secs(5),
                Duration::from_secs(5),
            ],
        )
        .unwrap();
        assert_eq!(layout.shortest_tier(), Duration::from_secs(5));
        assert_eq!(
            layout.retry_topics(),
            ["herald.deliveries.retry.5s", "herald.deliveries.retry.5m"]
        );
        assert!(TopicLayout::new(Topics::default(), &[]).is_err());
    }

    #[test]
    fn names_follow_the_design() {
        let t = Topics::default();
        assert_eq!(t.events(), "herald.events.v1");
        assert_eq!(
            t.retry(Duration::from_secs(300)),
            "herald.deliveries.retry.5m"
        );
        assert_eq!(
            t.retry(Duration::from_millis(100)),
            "herald.deliveries.retry.100ms"
        );
        assert_eq!(t.dlq(), "herald.deliveries.dlq.v1");
        assert_eq!(Topics::new("x.").keys(), "x.keys.v1");
    }
}
