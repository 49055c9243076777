//! Reading Herald's topics straight from the broker: record values, watermarks, committed
//! offsets.

use rdkafka::consumer::Consumer;
use rdkafka::Message;
use std::time::{Duration, Instant};

/// High watermark of every partition of every topic whose name starts with `prefix`.
pub fn topic_watermarks(
    brokers: &str,
    prefix: &str,
) -> std::collections::BTreeMap<(String, i32), i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "herald-e2e-watermarks")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(None, timeout).expect("metadata");
    let mut marks = std::collections::BTreeMap::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| t.name().starts_with(prefix))
    {
        for partition in topic.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic.name(), partition.id(), timeout)
                .expect("watermarks");
            marks.insert((topic.name().to_owned(), partition.id()), high);
        }
    }
    marks
}

/// A group-less reader on `broker` and the high watermark of each partition of `topic`.
async fn reader_and_ends(
    brokers: &str,
    topic: &str,
) -> (
    std::sync::Arc<rdkafka::consumer::StreamConsumer>,
    std::collections::HashMap<i32, i64>,
) {
    let config = herald_kafka::KafkaConfig::with_brokers(brokers);
    let reader = std::sync::Arc::new(herald_kafka::consumer::reader(&config, "e2e").unwrap());
    let ends = herald_kafka::view::high_watermarks(&reader, topic)
        .await
        .unwrap();
    (reader, ends)
}

/// Reads every record value of `topic` up to its current end.
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (reader, ends) = reader_and_ends(brokers, topic).await;
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in ends.keys() {
            list.add_partition_offset(topic, *partition, rdkafka::Offset::Beginning)
                .unwrap();
        }
        reader.assign(&list).unwrap();
        let mut left: std::collections::HashMap<i32, i64> =
            ends.into_iter().filter(|(_, end)| *end > 0).collect();
        let mut values = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !left.is_empty() {
            assert!(Instant::now() < deadline, "reading {topic} timed out");
            let message = tokio::time::timeout(Duration::from_secs(10), reader.recv())
                .await
                .expect("record within 10s")
                .unwrap();
            values.push(message.payload().unwrap_or_default().to_vec());
            if left
                .get(&message.partition())
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                left.remove(&message.partition());
            }
        }
        values
    })
}

/// For each partition of `topic`: (offset `group` committed, high watermark).
pub fn committed_and_end(brokers: &str, group: &str, topic: &str) -> Vec<(i64, i64)> {
    use rdkafka::consumer::BaseConsumer;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_reader, ends) = runtime.block_on(reader_and_ends(brokers, topic));
    let group_client: BaseConsumer = herald_kafka::KafkaConfig::with_brokers(brokers)
        .client_config("e2e-offsets")
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in ends.keys() {
        list.add_partition(topic, *partition);
    }
    let committed = group_client
        .committed_offsets(list, Duration::from_secs(30))
        .unwrap();
    ends.iter()
        .map(|(partition, end)| {
            let offset = committed
                .find_partition(topic, *partition)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(-1);
            (offset, *end)
        })
        .collect()
}

/// One partition as the cluster's metadata describes it.
#[derive(Debug, Clone)]
pub struct PartitionState {
    pub topic: String,
    pub partition: i32,
    /// Node id of the leader; -1 while there is none.
    pub leader: i32,
    pub replicas: usize,
    pub in_sync: usize,
}

/// Every partition of every topic whose name starts with `prefix`, from the metadata that
/// `brokers` answer with (`None` while no broker answers).
pub fn partition_states(brokers: &str, prefix: &str) -> Option<Vec<PartitionState>> {
    use rdkafka::consumer::BaseConsumer;
    let client: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "0")
        .create()
        .ok()?;
    let metadata = client.fetch_metadata(None, Duration::from_secs(5)).ok()?;
    Some(
        metadata
            .topics()
            .iter()
            .filter(|t| t.name().starts_with(prefix))
            .flat_map(|t| {
                t.partitions().iter().map(|p| PartitionState {
                    topic: t.name().to_owned(),
                    partition: p.id(),
                    leader: p.leader(),
                    replicas: p.replicas().len(),
                    in_sync: p.isr().len(),
                })
            })
            .collect(),
    )
}

/// Asserts that `group` committed every partition of `topic` that holds records up to its end
/// (a restart would re-read nothing).
pub fn assert_committed_to_end(brokers: &str, group: &str, topic: &str) {
    for (committed, end) in committed_and_end(brokers, group, topic) {
        assert!(
            end == 0 || committed == end,
            "{group} committed {committed} of {end} records of a partition of {topic}"
        );
    }
}
