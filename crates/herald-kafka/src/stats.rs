//! Kafka client metrics from librdkafka's statistics and error callbacks, and the state of
//! this process's consumer group memberships (for `/readyz`).
//!
//! - `herald_kafka_consumer_lag{group,topic,partition}`: from the statistics of every tracked
//!   consumer (`consumer_lag`, committed offset to high watermark), only for partitions this
//!   member owns right now; a revoked partition's series is set to 0 at once.
//! - `herald_kafka_producer_queue_depth`: records waiting in the producer's queues.
//! - `herald_kafka_broker_errors_total{kind}`: client-level errors (broker down, transport…).
//!
//! Memberships are kept in one process-wide table, like the metrics recorder itself: the
//! consumers are created deep inside the services, and the health endpoints only read it.

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientConfig, ClientContext, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{LazyLock, Mutex};

/// How often librdkafka emits statistics unless `kafka.client` sets `statistics.interval.ms`.
pub const STATS_INTERVAL_MS: &str = "5000";

/// Sets `statistics.interval.ms` unless the operator chose a value.
pub fn enable_statistics(client: &mut ClientConfig) {
    if client.get("statistics.interval.ms").is_none() {
        client.set("statistics.interval.ms", STATS_INTERVAL_MS);
    }
}

/// One group membership of this process.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Membership {
    /// The member has an assignment from the current generation (possibly empty).
    pub joined: bool,
    /// Partitions it owns now: (topic, partition).
    pub owned: BTreeSet<(String, i32)>,
}

static GROUPS: LazyLock<Mutex<BTreeMap<String, Membership>>> = LazyLock::new(Default::default);

fn groups() -> std::sync::MutexGuard<'static, BTreeMap<String, Membership>> {
    GROUPS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Every group a consumer of this process belongs to, by group name.
pub fn memberships() -> BTreeMap<String, Membership> {
    groups().clone()
}

/// Records a consumer created for `group` (not joined yet).
pub fn register_group(group: &str) {
    groups().entry(group.to_owned()).or_default();
}

/// Records a new assignment: the member joined and owns `list`.
pub fn assigned(group: &str, list: &TopicPartitionList) {
    let mut groups = groups();
    let member = groups.entry(group.to_owned()).or_default();
    member.joined = true;
    for element in list.elements() {
        member
            .owned
            .insert((element.topic().to_owned(), element.partition()));
    }
}

/// Records a revocation: `list` is no longer owned and its lag series drop to 0. With `all`
/// (an eager rebalance or an error) the member holds nothing until the next assignment.
pub fn revoked(group: &str, list: Option<&TopicPartitionList>, all: bool) {
    let mut groups = groups();
    let member = groups.entry(group.to_owned()).or_default();
    let gone: Vec<(String, i32)> = match list {
        Some(list) if !all => list
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect(),
        _ => member.owned.iter().cloned().collect(),
    };
    for key in &gone {
        member.owned.remove(key);
        lag_gauge(group, &key.0, key.1).set(0.0);
    }
    if all {
        member.joined = false;
    }
}

fn lag_gauge(group: &str, topic: &str, partition: i32) -> metrics::Gauge {
    metrics::gauge!(
        "herald_kafka_consumer_lag",
        "group" => group.to_owned(),
        "topic" => topic.to_owned(),
        "partition" => partition.to_string()
    )
}

/// Sets the lag gauges of `group` from one statistics report: owned partitions only, and
/// only where librdkafka knows the lag (it reports -1 before the first commit is known).
pub fn record_consumer(group: &str, statistics: &Statistics) {
    let groups = groups();
    let Some(member) = groups.get(group) else {
        return;
    };
    for (topic, stats) in &statistics.topics {
        for (partition, p) in &stats.partitions {
            let partition = *partition;
            if partition < 0 || !member.owned.contains(&(topic.clone(), partition)) {
                continue;
            }
            if let Some(lag) = consumer_lag(p) {
                lag_gauge(group, topic, partition).set(lag as f64);
            }
        }
    }
}

/// Lag from committed offset to high watermark; when nothing is committed yet but the
/// partition has records, the whole partition from its low watermark counts.
fn consumer_lag(p: &rdkafka::statistics::Partition) -> Option<i64> {
    if p.consumer_lag >= 0 {
        return Some(p.consumer_lag);
    }
    if p.hi_offset >= 0 && p.committed_offset < 0 && p.lo_offset >= 0 {
        return Some(p.hi_offset - p.lo_offset);
    }
    None
}

/// Sets the producer queue gauge from one statistics report.
pub fn record_producer(statistics: &Statistics) {
    metrics::gauge!("herald_kafka_producer_queue_depth").set(statistics.msg_cnt as f64);
}

/// Counts a client-level error (`ClientContext::error`) and logs it without secrets.
pub fn record_error(client: &'static str, error: &KafkaError, reason: &str) {
    let kind = error_kind(error);
    metrics::counter!("herald_kafka_broker_errors_total", "kind" => kind).increment(1);
    tracing::warn!(client, kind, error = %error, reason, "Kafka client error.");
}

/// A fixed, low-cardinality label for a client-level error.
pub fn error_kind(error: &KafkaError) -> &'static str {
    match error.rdkafka_error_code() {
        Some(RDKafkaErrorCode::AllBrokersDown) => "all_brokers_down",
        Some(RDKafkaErrorCode::BrokerTransportFailure) => "transport",
        Some(RDKafkaErrorCode::Resolve) => "resolve",
        Some(RDKafkaErrorCode::Authentication | RDKafkaErrorCode::SaslAuthenticationFailed) => {
            "authentication"
        }
        Some(RDKafkaErrorCode::SSL) => "tls",
        Some(RDKafkaErrorCode::MessageTimedOut | RDKafkaErrorCode::RequestTimedOut) => "timed_out",
        _ => "other",
    }
}

/// Every `kind` [`error_kind`] returns (to export the counter at 0 from the start).
pub const ERROR_KINDS: [&str; 7] = [
    "all_brokers_down",
    "transport",
    "resolve",
    "authentication",
    "tls",
    "timed_out",
    "other",
];

/// The producer's client context: statistics to the queue gauge, errors counted.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProducerStats;

impl ClientContext for ProducerStats {
    fn stats(&self, statistics: Statistics) {
        record_producer(&statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        record_error("producer", &error, reason);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Offset;

    fn list(items: &[(&str, i32)]) -> TopicPartitionList {
        let mut list = TopicPartitionList::new();
        for (topic, partition) in items {
            list.add_partition_offset(topic, *partition, Offset::Invalid)
                .unwrap();
        }
        list
    }

    #[test]
    fn assignment_and_revocation_track_owned_partitions() {
        let group = "stats-test-group";
        register_group(group);
        assert!(!memberships()[group].joined);
        assigned(group, &list(&[("t", 0), ("t", 1)]));
        let member = memberships()[group].clone();
        assert!(member.joined);
        assert_eq!(member.owned.len(), 2);
        revoked(group, Some(&list(&[("t", 0)])), false);
        let member = memberships()[group].clone();
        assert!(member.joined);
        assert_eq!(member.owned, [("t".to_owned(), 1)].into_iter().collect());
        revoked(group, None, true);
        let member = memberships()[group].clone();
        assert!(!member.joined);
        assert!(member.owned.is_empty());
    }

    #[test]
    fn error_kinds_are_listed() {
        for code in [
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::Resolve,
            RDKafkaErrorCode::SSL,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::UnknownTopic,
        ] {
            let kind = error_kind(&KafkaError::Global(code));
            assert!(ERROR_KINDS.contains(&kind), "{kind}");
        }
        assert_eq!(
            error_kind(&KafkaError::Global(RDKafkaErrorCode::AllBrokersDown)),
            "all_brokers_down"
        );
    }
}
