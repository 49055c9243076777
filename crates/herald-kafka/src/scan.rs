//! Bounded reads of a topic: every partition from a start offset up to an end offset fixed
//! beforehand, so a scan always ends even while the topic keeps growing.

use crate::consumer::Closing;
use crate::{Error, KafkaConfig, Result};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// How long a scan waits for the next record of an unfinished partition before giving up.
const STALL_AFTER: Duration = Duration::from_secs(20);
const META_TIMEOUT: Duration = Duration::from_secs(10);

/// `[start, end)` per partition.
pub type Ranges = BTreeMap<i32, (i64, i64)>;

/// One record read.
#[derive(Debug, Clone)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub payload: Vec<u8>,
}

/// A group-less reader for metadata queries and scans, closed off the async workers.
pub fn reader(kafka: &KafkaConfig, name: &str) -> Result<Closing<StreamConsumer>> {
    Ok(Closing::new(crate::consumer::reader(kafka, name)?))
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Unavailable(format!("blocking task: {e}")))?
}

/// Low and high watermark of every partition of `topic`; [`Error::MissingTopic`] if absent.
pub async fn watermarks(consumer: &Arc<StreamConsumer>, topic: &str) -> Result<Ranges> {
    let marks = crate::view::watermarks(consumer, topic, META_TIMEOUT).await?;
    if marks.is_empty() {
        return Err(Error::MissingTopic(topic.to_owned()));
    }
    Ok(marks.into_iter().collect())
}

/// Per partition, the offset of the first record with a timestamp at or after `at_ms`, or
/// `None` when there is none (the partition ends before `at_ms`).
pub async fn offsets_for_time(
    consumer: &Arc<StreamConsumer>,
    topic: &str,
    partitions: &[i32],
    at_ms: i64,
) -> Result<BTreeMap<i32, Option<i64>>> {
    let consumer = consumer.clone();
    let topic = topic.to_owned();
    let partitions = partitions.to_vec();
    blocking(move || {
        let kafka = Error::from_kafka;
        let mut query = TopicPartitionList::new();
        for p in &partitions {
            query
                .add_partition_offset(&topic, *p, Offset::Offset(at_ms))
                .map_err(kafka)?;
        }
        let found = consumer
            .offsets_for_times(query, META_TIMEOUT)
            .map_err(kafka)?;
        Ok(found
            .elements()
            .iter()
            .map(|e| {
                let offset = match e.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o),
                    _ => None,
                };
                (e.partition(), offset)
            })
            .collect())
    })
    .await
}

/// Reads every partition of a topic from its start to its end offset.
pub struct Scanner {
    consumer: Closing<StreamConsumer>,
    topic: String,
    /// Partitions not finished yet: partition → end offset.
    open: BTreeMap<i32, i64>,
}

impl Scanner {
    /// Starts reading `ranges` of `topic`; partitions with nothing to read are done at once.
    pub fn open(kafka: &KafkaConfig, topic: &str, ranges: &Ranges) -> Result<Self> {
        let consumer = reader(kafka, "herald-scan")?;
        let mut assignment = TopicPartitionList::new();
        let mut open = BTreeMap::new();
        for (partition, (start, end)) in ranges {
            if start < end {
                assignment
                    .add_partition_offset(topic, *partition, Offset::Offset(*start))
                    .map_err(Error::from_kafka)?;
                open.insert(*partition, *end);
            }
        }
        if !open.is_empty() {
            consumer.assign(&assignment).map_err(Error::from_kafka)?;
        }
        Ok(Self {
            consumer,
            topic: topic.to_owned(),
            open,
        })
    }

    /// The next record inside the ranges, or `None` when every partition reached its end.
    pub async fn next(&mut self) -> Result<Option<Record>> {
        while !self.open.is_empty() {
            let message = tokio::time::timeout(STALL_AFTER, self.consumer.recv()).await;
            let message = match message {
                Err(_) => {
                    let partition = self.open.keys().next().copied().unwrap_or_default();
                    return Err(Error::Stalled {
                        topic: self.topic.clone(),
                        partition,
                    });
                }
                Ok(message) => message.map_err(Error::from_kafka)?,
            };
            let partition = message.partition();
            let offset = message.offset();
            let Some(end) = self.open.get(&partition).copied() else {
                continue;
            };
            if offset + 1 >= end {
                self.open.remove(&partition);
                let mut list = TopicPartitionList::new();
                list.add_partition(&self.topic, partition);
                let _ = self.consumer.pause(&list);
            }
            if offset >= end {
                continue;
            }
            return Ok(Some(Record {
                partition,
                offset,
                key: message.key().unwrap_or_default().to_vec(),
                payload: message.payload().unwrap_or_default().to_vec(),
            }));
        }
        Ok(None)
    }
}
