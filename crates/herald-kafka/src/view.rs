//! A compacted topic folded into memory: read from the beginning at start, marked ready once
//! it reached the high watermarks it saw then, and followed live afterwards (changes show up
//! within about 100 ms: `fetch.wait.max.ms`).
//!
//! Writers may also [`View::apply_local`] what they just wrote and got acknowledged, so an
//! admin API reads its own writes at once; the same record arriving from the topic later is
//! applied again, which every fold treats as idempotent.

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
}

impl<S> Clone for View<S> {
    fn clone(&self) -> Self {
        Self {
            topic: self.topic.clone(),
            state: self.state.clone(),
            apply: self.apply.clone(),
            ready: self.ready.clone(),
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
        };
        let follower = view.clone();
        let config = config.clone();
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
            match self.follow_once(&config, &ready, &shutdown).await {
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
        config: &KafkaConfig,
        ready: &watch::Sender<bool>,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let reader = Arc::new(consumer::reader(config, "herald-view")?);
        let targets = high_watermarks(&reader, &self.topic).await?;
        let mut assignment = TopicPartitionList::new();
        for partition in targets.keys() {
            assignment
                .add_partition_offset(&self.topic, *partition, Offset::Beginning)
                .map_err(Error::from_kafka)?;
        }
        reader.assign(&assignment).map_err(Error::from_kafka)?;
        // Partitions still to reach the high watermark seen at start.
        let mut behind: HashMap<i32, i64> = targets.into_iter().filter(|(_, hw)| *hw > 0).collect();
        if behind.is_empty() {
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
            if !behind.is_empty() {
                let partition = message.partition();
                if behind
                    .get(&partition)
                    .is_some_and(|hw| message.offset() + 1 >= *hw)
                {
                    behind.remove(&partition);
                }
                if behind.is_empty() {
                    tracing::info!(topic = %self.topic, "View caught up.");
                    ready.send_replace(true);
                }
            }
        }
    }
}

/// The high watermark of every partition of `topic` (blocking calls, off the runtime).
pub async fn high_watermarks<C>(consumer: &Arc<C>, topic: &str) -> Result<HashMap<i32, i64>>
where
    C: Consumer + Send + Sync + 'static,
{
    let consumer = consumer.clone();
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let timeout = Duration::from_secs(5);
        let metadata = consumer
            .fetch_metadata(Some(&topic), timeout)
            .map_err(Error::from_kafka)?;
        let partitions: Vec<i32> = metadata
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if partitions.is_empty() {
            return Err(Error::Unavailable(format!(
                "topic {topic} has no partitions (not provisioned?)"
            )));
        }
        partitions
            .into_iter()
            .map(|p| {
                let (_low, high) = consumer
                    .fetch_watermarks(&topic, p, timeout)
                    .map_err(Error::from_kafka)?;
                Ok((p, high))
            })
            .collect()
    })
    .await
    .map_err(|e| Error::Unavailable(e.to_string()))?
}
