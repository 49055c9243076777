//! Kafka topic names, all under one configurable prefix (default `herald.`).

use crate::duration;
use std::time::Duration;

/// The default prefix of every Herald topic.
pub const DEFAULT_PREFIX: &str = "herald.";

/// Names of Herald's topics under a prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    prefix: String,
}

impl Topics {
    /// Topics under `prefix` (for example `herald.` or `staging.herald.`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Accepted events (`EventEnvelope`).
    pub fn events(&self) -> String {
        format!("{}events.v1", self.prefix)
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
    pub fn attempts(&self) -> String {
        format!("{}attempts.v1", self.prefix)
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

impl Default for Topics {
    fn default() -> Self {
        Self::new(DEFAULT_PREFIX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
