//! A compacted topic folded into memory: read from the beginning at start, marked ready once
//! it reached the high watermarks it saw then, and followed live afterwards (changes show up
//! within about 100 ms: `fetch.wait.max.ms`).
//!
//! Writers may also [`View::apply_local`] what they just wrote and got acknowledged, so an
//! admin API reads its own writes at once; the same record arriving from the topic later is
//! applied again, which every fold treats as idempotent.

use crate::fresh::Freshness;
use crate::{consumer, Error, KafkaConfig, Result};
use rdkafka::consumer::Consumer;
use rdkafka::{Message, Offset, TopicPartitionList};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How a record (key, value or tombstone) changes the state.
pub type Apply<S> = Arc<dyn Fn(&mut S, &[u8], Option<&[u8]>) + Send + Sync>;

/// A live, in-memory fold of one topic.
pub struct View<S> {
    topic: String,
    state: Arc<RwLock<S>>,
    apply: Apply<S>,
    ready: watch::Receiver<bool>,
    fresh: Arc<Freshness>,
}

impl<S> Clone for View<S> {
    fn clone(&self) -> Self {
        Self {
            topic: self.topic.clone(),
            state: self.state.clone(),
            apply: self.apply.clone(),
            ready: self.ready.clone(),
            fresh: self.fresh.clone(),
        }
    }
}

impl<S: Default + Send + Sync + 'static> View<S> {
    /// Starts following `topic` on `tasks` until `shutdown`.
    pub fn spawn(
        config: &KafkaConfig,
        topic: String,
        apply: Apply<S>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let state = Arc::new(RwLock::new(S::default()));
        let (ready_tx, ready) = watch::channel(false);
        let view = Self {
            topic: topic.clone(),
            state,
            apply,
            ready,
            fresh: Freshness::new(topic.clone()),
        };
        let follower = view.clone();
        let config = config.clone();
        tasks.spawn(view.fresh.clone().run_syncs(shutdown.clone()));
        tasks.spawn(async move {
            follower.follow(config, ready_tx, shutdown).await;
        });
        view
    }

    /// Reads the state.
    pub fn read<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&self.state.read().expect("view lock"))
    }

    /// Applies a record this service just wrote and got acknowledged.
    pub fn apply_local(&self, key: &[u8], value: Option<&[u8]>) {
        (self.apply)(&mut self.state.write().expect("view lock"), key, value);
    }

    /// Whether the view has caught up with its topic since start.
    pub fn is_ready(&self) -> bool {
        *self.ready.borrow()
    }

    /// Waits until the view has applied every record its topic acknowledged before `at_ms`
    /// (see [`crate::fresh`]), at most `patience`; false when it could not be made sure of.
    pub async fn wait_synced(&self, at_ms: i64, patience: Duration) -> bool {
        self.fresh.wait_synced(at_ms, patience).await
    }

    /// Whether the view's syncs stopped for shutdown (see [`crate::fresh`]).
    pub fn syncs_halted(&self) -> bool {
        self.fresh.is_halted()
    }

    /// Keeps its syncs running for `period` after each [`View::wait_synced`], for a view
    /// that is asked all the time (see [`crate::fresh`]).
    pub fn keep_syncs_warm(&self, period: Duration) {
        self.fresh.keep_warm(period);
    }

    /// Waits until the view has caught up, at most `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let mut ready = self.ready.clone();
        let waited = tokio::time::timeout(timeout, ready.wait_for(|r| *r)).await;
        match waited {
            Err(_) => Err(Error::NotCaughtUp {
                topic: self.topic.clone(),
                seconds: timeout.as_secs(),
            }),
            Ok(Err(_)) => Err(Error::ShuttingDown),
            Ok(Ok(_)) => Ok(()),
        }
    }

    async fn follow(
        &self,
        config: KafkaConfig,
        ready: watch::Sender<bool>,
        shutdown: CancellationToken,
    ) {
        let mut delay = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            // Syncs ask for watermarks on a client of their own: on the follower's
            // connection a ListOffsets request would queue behind its long-poll fetch (a
            // broker answers one request per connection at a time), and every sync would
            // take up to `fetch.wait.max.ms` — measured: 100 ms per sync on Apache Kafka,
            // the bulk of the end-to-end latency at low load.
            let clients = consumer::reader(&config, "herald-view")
                .and_then(|reader| Ok((reader, consumer::reader(&config, "herald-view-marks")?)));
            let followed = match clients {
                Ok((reader, marks)) => {
                    let reader = consumer::Closing::new(reader);
                    let marks = consumer::Closing::new(marks);
                    let followed = self.follow_once(&reader, &marks, &ready, &shutdown).await;
                    // Their last handles: the clients close off the async workers.
                    self.fresh.stopped();
                    drop(reader);
                    drop(marks);
                    followed
                }
                Err(err) => Err(err),
            };
            match followed {
                Ok(()) => return,
                Err(err) => {
                    tracing::warn!(topic = %self.topic, error = %err, "View lost its topic; restarting.");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn follow_once(
        &self,
        reader: &Arc<rdkafka::consumer::StreamConsumer>,
        marks_client: &Arc<rdkafka::consumer::StreamConsumer>,
        ready: &watch::Sender<bool>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let marks = watermarks(reader, &self.topic, Duration::from_secs(5)).await?;
        if marks.is_empty() {
            return Err(Error::Unavailable(format!(
                "topic {} has no partitions (not provisioned?)",
                self.topic
            )));
        }
        let targets: HashMap<i32, i64> = marks.iter().map(|(p, (_, high))| (*p, *high)).collect();
        let mut assignment = TopicPartitionList::new();
        for partition in targets.keys() {
            assignment
                .add_partition_offset(&self.topic, *partition, Offset::Beginning)
                .map_err(Error::from_kafka)?;
        }
        reader.assign(&assignment).map_err(Error::from_kafka)?;
        self.fresh.following(
            marks_client.clone(),
            marks.iter().map(|(p, (low, _))| (*p, *low)).collect(),
        );
        let mut catch_up = CatchUp::new(targets, |_| 0);
        if catch_up.is_done() {
            ready.send_replace(true);
        }
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = reader.recv() => message.map_err(Error::from_kafka)?,
            };
            (self.apply)(
                &mut self.state.write().expect("view lock"),
                message.key().unwrap_or_default(),
                message.payload(),
            );
            self.fresh.applied(message.partition(), message.offset());
            if catch_up.seen(message.partition(), message.offset()) {
                tracing::info!(topic = %self.topic, "View caught up.");
                ready.send_replace(true);
            }
        }
    }
}

/// Partitions still to reach the high watermark they had when reading started.
#[derive(Debug)]
pub struct CatchUp {
    behind: HashMap<i32, i64>,
}

impl CatchUp {
    /// From each partition's high watermark and the offset reading starts at in it.
    pub fn new(ends: HashMap<i32, i64>, start: impl Fn(i32) -> i64) -> Self {
        Self {
            behind: ends
                .into_iter()
                .filter(|(p, end)| start(*p) < *end)
                .collect(),
        }
    }

    /// Whether every partition has been read up to its watermark.
    pub fn is_done(&self) -> bool {
        self.behind.is_empty()
    }

    /// Records a record read; true exactly when it completes the catch-up.
    pub fn seen(&mut self, partition: i32, offset: i64) -> bool {
        if self.behind.is_empty() {
            return false;
        }
        if self
            .behind
            .get(&partition)
            .is_some_and(|end| offset + 1 >= *end)
        {
            self.behind.remove(&partition);
        }
        self.behind.is_empty()
    }
}

/// The high watermark of every partition of `topic` (blocking calls, off the runtime).
pub async fn high_watermarks<C>(consumer: &Arc<C>, topic: &str) -> Result<HashMap<i32, i64>>
where
    C: Consumer + Send + Sync + 'static,
{
    let marks = watermarks(consumer, topic, Duration::from_secs(5)).await?;
    if marks.is_empty() {
        return Err(Error::Unavailable(format!(
            "topic {topic} has no partitions (not provisioned?)"
        )));
    }
    Ok(marks
        .into_iter()
        .map(|(p, (_low, high))| (p, high))
        .collect())
}

/// The (low, high) watermarks of every partition of `topic`, empty when the topic does not
/// exist or has no partitions (blocking calls, off the runtime; `timeout` per request).
pub async fn watermarks<C>(
    consumer: &Arc<C>,
    topic: &str,
    timeout: Duration,
) -> Result<HashMap<i32, (i64, i64)>>
where
    C: Consumer + Send + Sync + 'static,
{
    let consumer = consumer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = consumer
            .fetch_metadata(Some(&topic), timeout)
            .map_err(Error::from_kafka)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        partitions
            .into_iter()
            .map(|p| {
                let marks = consumer
                    .fetch_watermarks(&topic, p, timeout)
                    .map_err(Error::from_kafka)?;
                Ok((p, marks))
            })
            .collect()
    })
    .await
    .map_err(|e| Error::Unavailable(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::CatchUp;
    use std::collections::HashMap;

    #[test]
    fn catch_up_completes_once_every_partition_reached_its_end() {
        let ends = HashMap::from([(0, 3), (1, 0), (2, 5)]);
        let mut c = CatchUp::new(ends, |p| if p == 2 { 5 } else { 0 });
        assert!(!c.is_done(), "partition 0 has records to read");
        assert!(!c.seen(0, 1));
        assert!(c.seen(0, 2), "the last record before the end completes it");
        assert!(!c.seen(0, 3), "reported once");
        assert!(CatchUp::new(HashMap::from([(0, 0)]), |_| 0).is_done());
    }
}
