//! Kafka settings shared by every service.

use herald_core::duration::{serde_human, serde_human_option};
use herald_core::topics::Topics;
use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Where the brokers are and how Herald's topics are laid out.
#[derive(Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]` of the brokers.
    pub brokers: String,
    /// Prefix of every topic name (`herald.`).
    pub topic_prefix: String,
    /// Partitions of the events topic (and of retry tiers and the DLQ).
    pub partitions: i32,
    /// Replication factor of every topic (3 on a real cluster, 1 on a single broker).
    pub replication_factor: i16,
    /// `min.insync.replicas` of every topic Herald creates: with `acks=all`, a write is
    /// acknowledged only once this many replicas have it. Unset: `min(replication_factor, 2)`.
    #[serde(default)]
    pub min_insync_replicas: Option<i16>,
    /// Retention of the events topic.
    #[serde(with = "serde_human")]
    pub events_retention: Duration,
    /// Retention of the dead-letter and audit topics.
    #[serde(with = "serde_human")]
    pub dlq_retention: Duration,
    /// Retention of the attempts topic (the delivery log).
    #[serde(with = "serde_human")]
    pub attempts_retention: Duration,
    /// How long a produce may wait for the broker's acknowledgement before failing.
    #[serde(with = "serde_human")]
    pub produce_timeout: Duration,
    /// Largest record Herald writes or accepts on its topics: the producer's
    /// `message.max.bytes` and every topic's `max.message.bytes`. A retry task or a dead
    /// letter carries the whole event plus up to 32 attempt summaries, so it must exceed the
    /// ingest body limit by [`OUTCOME_OVERHEAD`] (checked at start).
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: usize,
    /// How long the dispatcher's fetch of the events topic may wait for records
    /// (`fetch.wait.max.ms` of that one consumer; unset: 100 ms, or `kafka.client`'s). On
    /// Apache Kafka it only bounds how often an idle consumer polls: a fetch is answered as
    /// soon as records arrive. tansu 0.6 holds every fetch this long even when it found
    /// records at once, so there it is the latency floor of the event path: `herald dev`
    /// sets 10 ms on its embedded broker.
    #[serde(
        default,
        with = "serde_human_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub events_fetch_wait: Option<Duration>,
    /// Extra librdkafka properties (`security.protocol`, `sasl.mechanism`, …).
    #[serde(default)]
    pub client: BTreeMap<String, String>,
}

/// `Debug` shows every setting but the values of secret client properties (passwords,
/// secrets, SASL configs, PEM keys).
impl std::fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let client: BTreeMap<&str, &str> = self
            .client
            .iter()
            .map(|(k, v)| {
                let value = if is_secret_property(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), value)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("min_insync_replicas", &self.min_insync_replicas)
            .field("events_retention", &self.events_retention)
            .field("dlq_retention", &self.dlq_retention)
            .field("attempts_retention", &self.attempts_retention)
            .field("produce_timeout", &self.produce_timeout)
            .field("max_record_bytes", &self.max_record_bytes)
            .field("events_fetch_wait", &self.events_fetch_wait)
            .field("client", &client)
            .finish()
    }
}

/// Whether a librdkafka property holds a secret.
fn is_secret_property(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("password")
        || key.contains("secret")
        || (key.starts_with("sasl.") && key.ends_with(".config"))
        || key == "ssl.key.pem"
        || key == "ssl.keystore.location"
}

/// The most a retry task or dead letter adds to the event it carries: ids, timestamps, the
/// first and last failure and 32 attempt summaries of at most 512 bytes of error each.
pub const OUTCOME_OVERHEAD: usize = 64 << 10;

/// `fetch.wait.max.ms` of Herald's consumers unless `kafka.client` sets one.
pub const DEFAULT_FETCH_WAIT_MS: u32 = 100;

fn default_max_record_bytes() -> usize {
    2 << 20
}

impl KafkaConfig {
    /// Defaults for `brokers`: single node, week-long event retention.
    pub fn with_brokers(brokers: impl Into<String>) -> Self {
        let days = |n: u64| Duration::from_secs(n * 86_400);
        Self {
            brokers: brokers.into(),
            topic_prefix: herald_core::topics::DEFAULT_PREFIX.to_owned(),
            partitions: 6,
            replication_factor: 1,
            min_insync_replicas: None,
            events_retention: days(7),
            dlq_retention: days(30),
            attempts_retention: days(7),
            produce_timeout: Duration::from_secs(10),
            max_record_bytes: default_max_record_bytes(),
            events_fetch_wait: None,
            client: BTreeMap::new(),
        }
    }

    /// `fetch.wait.max.ms` of the dispatcher's events consumer: `events_fetch_wait`, else
    /// `kafka.client`'s, else 100 ms.
    pub fn events_fetch_wait_ms(&self) -> u32 {
        match self.events_fetch_wait {
            Some(wait) => u32::try_from(wait.as_millis()).unwrap_or(u32::MAX),
            None => self
                .client
                .get("fetch.wait.max.ms")
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(DEFAULT_FETCH_WAIT_MS),
        }
    }

    /// `min.insync.replicas` for the topics Herald creates.
    pub fn min_insync_replicas(&self) -> i16 {
        self.min_insync_replicas
            .unwrap_or(self.replication_factor.min(2))
    }

    /// The topic names under this config's prefix.
    pub fn topics(&self) -> Topics {
        Topics::new(self.topic_prefix.clone())
    }

    /// Checks values that Kafka would refuse later with a less helpful message.
    pub fn validate(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("kafka.brokers: must name at least one host:port".into());
        }
        if self.partitions < 1 {
            return Err("kafka.partitions: must be at least 1".into());
        }
        if self.replication_factor < 1 {
            return Err("kafka.replication_factor: must be at least 1".into());
        }
        let min_isr = self.min_insync_replicas();
        if min_isr < 1 || min_isr > self.replication_factor {
            return Err(format!(
                "kafka.min_insync_replicas: must be between 1 and kafka.replication_factor ({}), not {min_isr}",
                self.replication_factor
            ));
        }
        if !(OUTCOME_OVERHEAD * 2..=64 << 20).contains(&self.max_record_bytes) {
            return Err(format!(
                "kafka.max_record_bytes: must be between {} and {}",
                OUTCOME_OVERHEAD * 2,
                64 << 20
            ));
        }
        if self.produce_timeout < Duration::from_millis(100) {
            return Err("kafka.produce_timeout: must be at least 100ms".into());
        }
        if let Some(wait) = self.events_fetch_wait {
            if !(Duration::from_millis(1)..=Duration::from_secs(5)).contains(&wait) {
                return Err("kafka.events_fetch_wait: must be between 1ms and 5s".into());
            }
        }
        Ok(())
    }

    /// A librdkafka config with the brokers and the user's overrides.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", client_id)
            .set("socket.keepalive.enable", "true")
            .set("reconnect.backoff.ms", "50")
            .set("reconnect.backoff.max.ms", "2000")
            .set("topic.metadata.refresh.interval.ms", "10000");
        for (key, value) in &self.client {
            config.set(key, value);
        }
        config
    }

    /// Sets on `client` each of `defaults` that `kafka.client` does not set itself: Herald's
    /// tuning, which the user's overrides win over.
    pub fn set_defaults<V: AsRef<str>>(&self, client: &mut ClientConfig, defaults: &[(&str, V)]) {
        for (key, value) in defaults {
            if !self.client.contains_key(*key) {
                client.set(*key, value.as_ref());
            }
        }
    }
}

#[cfg(test)]
mod defaults_tests {
    use super::*;

    #[test]
    fn a_default_gives_way_to_the_users_setting() {
        let mut config = KafkaConfig::with_brokers("127.0.0.1:9092");
        config.client.insert("linger.ms".into(), "20".into());
        let mut client = config.client_config("t");
        config.set_defaults(
            &mut client,
            &[("linger.ms", "2"), ("compression.type", "lz4")],
        );
        assert_eq!(client.get("linger.ms"), Some("20"));
        assert_eq!(client.get("compression.type"), Some("lz4"));
    }

    #[test]
    fn the_events_fetch_wait_is_the_setting_else_the_clients_else_100ms() {
        let mut config = KafkaConfig::with_brokers("127.0.0.1:9092");
        assert_eq!(config.events_fetch_wait_ms(), 100);
        config
            .client
            .insert("fetch.wait.max.ms".into(), "250".into());
        assert_eq!(config.events_fetch_wait_ms(), 250);
        config.events_fetch_wait = Some(Duration::from_millis(10));
        assert_eq!(config.events_fetch_wait_ms(), 10);
        assert!(config.validate().is_ok());
        config.events_fetch_wait = Some(Duration::ZERO);
        let err = config.validate().unwrap_err();
        assert!(err.contains("kafka.events_fetch_wait"), "{err}");
    }
}
