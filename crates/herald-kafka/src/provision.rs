//! Topic provisioning: every topic Herald needs, created idempotently with its cleanup policy,
//! retention and `min.insync.replicas`. Runs at every start (`herald topics create` runs it on
//! demand). A topic that exists already is never changed, but it must match: a different
//! partition count or cleanup policy is a configuration error, named, not a silent mismatch.

use crate::{Error, KafkaConfig, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
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
        spec(
            topics.events().to_owned(),
            p,
            Cleanup::Delete(config.events_retention),
        ),
        spec(topics.dlq(), p, Cleanup::Delete(config.dlq_retention)),
        spec(
            topics.attempts().to_owned(),
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
    let min_isr = config.min_insync_replicas().to_string();
    let max_record = config.max_record_bytes.to_string();
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
            .set("min.insync.replicas", &min_isr)
            .set("max.message.bytes", &max_record)
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
    let existing: Vec<&TopicSpec> = specs
        .iter()
        .filter(|spec| {
            outcome
                .iter()
                .any(|(name, created)| !created && *name == spec.name)
        })
        .collect();
    if !existing.is_empty() {
        check_existing(admin, config, &existing).await?;
    }
    Ok(outcome)
}

/// Checks that topics which existed already have the partition count and cleanup policy
/// Herald would have created them with.
async fn check_existing(
    admin: &AdminClient<DefaultClientContext>,
    config: &KafkaConfig,
    specs: &[&TopicSpec],
) -> Result<()> {
    let client: rdkafka::consumer::BaseConsumer = config
        .client_config("herald-admin")
        .create()
        .map_err(Error::from_kafka)?;
    let metadata = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer as _;
        client.fetch_metadata(None, Duration::from_secs(10))
    })
    .await
    .map_err(|err| Error::Unavailable(err.to_string()))?
    .map_err(Error::from_kafka)?;
    let actual: Vec<(String, i32)> = metadata
        .topics()
        .iter()
        .map(|t| (t.name().to_owned(), t.partitions().len() as i32))
        .collect();
    let resources: Vec<ResourceSpecifier> = specs
        .iter()
        .map(|spec| ResourceSpecifier::Topic(&spec.name))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let policies: Vec<Option<String>> = match admin.describe_configs(&resources, &options).await {
        Ok(results) => results
            .into_iter()
            .map(|r| {
                r.ok()
                    .and_then(|c| c.get("cleanup.policy").and_then(|e| e.value.clone()))
            })
            .collect(),
        Err(err) => {
            // Some brokers (the embedded one) do not describe configs: the partition check
            // still runs.
            tracing::warn!(error = %err, "Could not read topic configs; cleanup policies not checked.");
            vec![None; specs.len()]
        }
    };
    for (spec, policy) in specs.iter().zip(policies) {
        let partitions = actual
            .iter()
            .find(|(name, _)| *name == spec.name)
            .map(|(_, n)| *n);
        if let Some(problem) = mismatch(spec, partitions, policy.as_deref()) {
            return Err(Error::Config(problem));
        }
    }
    Ok(())
}

/// What is wrong with an existing topic, if anything: its partition count (from metadata)
/// or its cleanup policy (when the broker said) differs from `spec`.
fn mismatch(spec: &TopicSpec, partitions: Option<i32>, policy: Option<&str>) -> Option<String> {
    if let Some(actual) = partitions.filter(|n| *n != spec.partitions) {
        let key = if spec.partitions == 1 {
            "(always 1 for state topics)"
        } else {
            "(kafka.partitions)"
        };
        return Some(format!(
            "topic {} exists with {actual} partitions, but Herald expects {} {key}; Herald \
             never changes an existing topic: set kafka.partitions to match the cluster, or \
             recreate or alter the topic",
            spec.name, spec.partitions
        ));
    }
    let wanted = match spec.cleanup {
        Cleanup::Compact => "compact",
        Cleanup::Delete(_) => "delete",
    };
    match policy {
        Some(actual) if actual != wanted => Some(format!(
            "topic {} exists with cleanup.policy={actual}, but Herald needs \
             cleanup.policy={wanted}; alter the topic (kafka-configs --alter \
             --add-config cleanup.policy={wanted})",
            spec.name
        )),
        _ => None,
    }
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

    #[test]
    fn an_existing_topic_must_match_partitions_and_cleanup_policy() {
        let config = KafkaConfig::with_brokers("localhost:9092");
        let specs = topic_specs(&config, &[]);
        let events = specs.iter().find(|s| s.name == "herald.events.v1").unwrap();
        let endpoints = specs
            .iter()
            .find(|s| s.name == "herald.endpoints.v1")
            .unwrap();
        assert_eq!(mismatch(events, Some(6), Some("delete")), None);
        assert_eq!(mismatch(events, Some(6), None), None);
        assert_eq!(mismatch(endpoints, Some(1), Some("compact")), None);
        let wrong = mismatch(events, Some(3), Some("delete")).unwrap();
        assert!(
            wrong.contains("exists with 3 partitions") && wrong.contains("kafka.partitions"),
            "{wrong}"
        );
        let wrong = mismatch(endpoints, Some(1), Some("delete")).unwrap();
        assert!(wrong.contains("cleanup.policy=compact"), "{wrong}");
    }
}
