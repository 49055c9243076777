//! Topic provisioning: every topic Herald needs, created idempotently with its cleanup policy
//! and retention. Runs at every start (`herald topics create` runs it on demand).

use crate::{Error, KafkaConfig, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a topic is cleaned up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    /// Keep the latest record per key forever (state topics).
    Compact,
    /// Delete records older than the retention.
    Delete(Duration),
}

/// One topic to provision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    pub name: String,
    pub partitions: i32,
    pub cleanup: Cleanup,
}

/// Every topic Herald uses, given the retry tiers of the delivery policy.
pub fn topic_specs(config: &KafkaConfig, retry_tiers: &[Duration]) -> Vec<TopicSpec> {
    let topics = config.topics();
    let p = config.partitions;
    let spec = |name: String, partitions, cleanup| TopicSpec {
        name,
        partitions,
        cleanup,
    };
    let mut specs = vec![
        spec(topics.events(), p, Cleanup::Delete(config.events_retention)),
        spec(topics.dlq(), p, Cleanup::Delete(config.dlq_retention)),
        spec(
            topics.attempts(),
            p,
            Cleanup::Delete(config.attempts_retention),
        ),
        spec(topics.endpoints(), 1, Cleanup::Compact),
        spec(topics.keys(), 1, Cleanup::Compact),
        spec(topics.replays(), 1, Cleanup::Compact),
        spec(topics.leases(), 1, Cleanup::Compact),
        spec(topics.audit(), 1, Cleanup::Delete(config.dlq_retention)),
    ];
    for tier in retry_tiers {
        // A tier must keep a task at least as long as it waits, with a day to spare.
        let retention = (*tier * 2).max(Duration::from_secs(86_400));
        specs.push(spec(topics.retry(*tier), p, Cleanup::Delete(retention)));
    }
    specs
}

/// Creates missing topics; existing ones are left as they are. Retries while the broker is
/// unreachable, with exponential backoff, until `shutdown` or `give_up_after`.
pub async fn ensure_topics(
    config: &KafkaConfig,
    specs: &[TopicSpec],
    give_up_after: Duration,
    shutdown: &CancellationToken,
) -> Result<Vec<(String, bool)>> {
    let admin: AdminClient<DefaultClientContext> = config
        .client_config("herald-admin")
        .create()
        .map_err(Error::from_kafka)?;
    let policy = backoff::ExponentialBackoffBuilder::new()
        .with_initial_interval(Duration::from_millis(100))
        .with_max_interval(Duration::from_secs(2))
        .with_max_elapsed_time(Some(give_up_after))
        .build();
    let attempt = || async {
        if shutdown.is_cancelled() {
            return Err(backoff::Error::permanent(Error::ShuttingDown));
        }
        create_once(&admin, config, specs).await.map_err(|err| match err {
            Error::Unavailable(_) => {
                tracing::warn!(error = %err, "Kafka not reachable yet; retrying topic provisioning.");
                backoff::Error::transient(err)
            }
            other => backoff::Error::permanent(other),
        })
    };
    backoff::future::retry(policy, attempt).await
}

async fn create_once(
    admin: &AdminClient<DefaultClientContext>,
    config: &KafkaConfig,
    specs: &[TopicSpec],
) -> Result<Vec<(String, bool)>> {
    let retention_ms: Vec<String> = specs
        .iter()
        .map(|s| match s.cleanup {
            Cleanup::Delete(r) => r.as_millis().to_string(),
            Cleanup::Compact => "-1".to_owned(),
        })
        .collect();
    let new_topics: Vec<NewTopic> = specs
        .iter()
        .zip(&retention_ms)
        .map(|(spec, retention)| {
            let policy = match spec.cleanup {
                Cleanup::Compact => "compact",
                Cleanup::Delete(_) => "delete",
            };
            NewTopic::new(
                &spec.name,
                spec.partitions,
                TopicReplication::Fixed(config.replication_factor.into()),
            )
            .set("cleanup.policy", policy)
            .set("retention.ms", retention)
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(Error::from_kafka)?;
    let mut outcome = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok(name) => {
                tracing::info!(topic = %name, "Created topic.");
                outcome.push((name, true));
            }
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => outcome.push((name, false)),
            Err((name, code)) => {
                return Err(Error::Unavailable(format!("creating topic {name}: {code}")))
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_cover_every_topic_and_tier() {
        let config = KafkaConfig::with_brokers("localhost:9092");
        let tiers = [Duration::from_secs(5), Duration::from_secs(60)];
        let specs = topic_specs(&config, &tiers);
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert!(names.contains(&"herald.events.v1"));
        assert!(names.contains(&"herald.deliveries.retry.5s"));
        assert!(names.contains(&"herald.deliveries.retry.1m"));
        let endpoints = specs
            .iter()
            .find(|s| s.name == "herald.endpoints.v1")
            .unwrap();
        assert_eq!(endpoints.cleanup, Cleanup::Compact);
        let leases = specs.iter().find(|s| s.name == "herald.leases.v1").unwrap();
        assert_eq!((leases.partitions, leases.cleanup), (1, Cleanup::Compact));
        assert_eq!(specs.len(), 10);
    }
}
