//! Consumers for the at-least-once recipe: offsets are stored by hand only after an outcome is
//! durable, auto-commit commits what was stored, and a rebalance resets the offset tracker.

use crate::config::DEFAULT_FETCH_WAIT_MS;
use crate::membership::Membership;
use crate::stats;
use crate::tracker::OffsetTracker;
use crate::{Error, KafkaConfig, Result};
use rdkafka::consumer::{
    BaseConsumer, Consumer as _, ConsumerContext, Rebalance, RebalanceProtocol, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::statistics::Statistics;
use rdkafka::{ClientContext, TopicPartitionList};
use std::sync::{Arc, Mutex};

/// A consumer context that resets the shared offset tracker on every rebalance, so work
/// finishing for a partition this member no longer owns never stores an offset.
///
/// It also feeds [`stats`]: consumer lag per owned partition of `group`, client errors, and
/// the group membership that `/readyz` reports.
#[derive(Clone, Default)]
pub struct TrackingContext {
    pub tracker: Arc<Mutex<OffsetTracker>>,
    /// The consumer group (label of `herald_kafka_consumer_lag`).
    pub group: String,
    /// What a revocation waits for on the revoked partitions before they move.
    pub drain: Drain,
}

/// What a revocation waits for before the revoked partitions move to another member: the
/// work in flight on them to finish (its outcomes written, its offsets stored), then a
/// commit of what was stored.
#[derive(Debug, Clone, Copy, Default)]
pub struct Drain {
    /// At most this long; zero: no wait and no commit.
    pub wait: std::time::Duration,
    /// Wait only for records marked started ([`OffsetTracker::start`]): the retry consumer
    /// begins records it merely holds until they are due, minutes later, and waiting for
    /// those would stall the group. Otherwise every begun record counts.
    pub started_only: bool,
}

impl Drain {
    /// Every begun record, at most `wait`.
    pub fn in_flight(wait: std::time::Duration) -> Self {
        Self {
            wait,
            started_only: false,
        }
    }

    /// Started records only, at most `wait`.
    pub fn started(wait: std::time::Duration) -> Self {
        Self {
            wait,
            started_only: true,
        }
    }
}

impl ClientContext for TrackingContext {
    fn stats(&self, statistics: Statistics) {
        stats::record_consumer(&self.group, &statistics);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        stats::record_error("consumer", &error, reason);
    }
}

impl ConsumerContext for TrackingContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) | Rebalance::Assign(list) = rebalance {
            tracing::info!(partitions = list.count(), kind = ?rebalance_kind(rebalance), "Rebalance.");
        }
        match rebalance {
            Rebalance::Revoke(list) => {
                let all = !matches!(
                    consumer.rebalance_protocol(),
                    RebalanceProtocol::Cooperative
                );
                self.drain(consumer, list);
                stats::revoked(&self.group, Some(list), all);
            }
            Rebalance::Error(_) => stats::revoked(&self.group, None, true),
            Rebalance::Assign(_) => {}
        }
        self.forget_in_flight();
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(list) = rebalance {
            stats::assigned(&self.group, list);
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(err) = result {
            tracing::debug!(error = %err, "Offset commit did not succeed; it will be retried.");
        }
    }
}

impl TrackingContext {
    /// Forgets every record in flight: their completions will store nothing (after a
    /// rebalance, a manual assignment, or work abandoned at shutdown).
    pub fn forget_in_flight(&self) {
        self.tracker.lock().expect("tracker lock").reset();
    }

    /// Before partitions move to another member: lets the work in flight on them finish
    /// (its outcomes written, its offsets stored), at most the drain's wait, then commits
    /// what was stored. Without this, the new owner re-reads from the last commit and
    /// delivers everything in flight here, and whatever finished since the last auto-commit,
    /// a second time: a join or a clean leave would cause duplicates that only a crash
    /// should. Runs on the thread polling the consumer, so no new record is begun meanwhile;
    /// on a multi-thread runtime that thread's other tasks move to another worker while it
    /// waits (two consumers draining at once must not hold both workers of a 2-core machine
    /// while the work they wait for needs one).
    fn drain(&self, consumer: &BaseConsumer<Self>, revoked: &TopicPartitionList) {
        if self.drain.wait.is_zero() {
            return;
        }
        let revoked: Vec<(String, i32)> = revoked
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .collect();
        let pending = || {
            let tracker = self.tracker.lock().expect("tracker lock");
            let wanted = |t: &str, p: i32| revoked.iter().any(|(rt, rp)| rt == t && *rp == p);
            if self.drain.started_only {
                tracker.started_where(wanted)
            } else {
                tracker.in_flight_where(wanted)
            }
        };
        let started = std::time::Instant::now();
        off_the_workers(|| {
            while pending() > 0 && started.elapsed() < self.drain.wait {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        });
        let left = pending();
        if left > 0 {
            tracing::warn!(group = %self.group, in_flight = left, "Partitions revoked with work still in flight; it will be delivered again by their next owner.");
        }
        if let Err(err) = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            tracing::debug!(group = %self.group, error = %err, "Commit before revocation had nothing to commit or failed.");
        }
        tracing::info!(group = %self.group, waited_ms = started.elapsed().as_millis() as u64, "Drained revoked partitions.");
    }
}

/// Runs the blocking `wait` so that, on a multi-thread runtime, the tasks queued on this
/// worker go on elsewhere meanwhile; elsewhere (a current-thread runtime, a plain thread)
/// it simply runs.
fn off_the_workers(wait: impl FnOnce()) {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

fn rebalance_kind(rebalance: &Rebalance<'_>) -> &'static str {
    match rebalance {
        Rebalance::Assign(_) => "assign",
        Rebalance::Revoke(_) => "revoke",
        Rebalance::Error(_) => "error",
    }
}

/// A group member for at-least-once processing.
pub type TrackedConsumer = StreamConsumer<TrackingContext>;

/// How much librdkafka prefetches ahead of what the consumer took. Its defaults (100,000
/// records per partition, up to 64 MiB) held hundreds of MiB in a backlog drain.
#[derive(Debug, Clone, Copy)]
pub struct Prefetch {
    /// Records per partition librdkafka tries to keep queued (`queued.min.messages`).
    pub records: u32,
    /// The most the consumer's queue holds, all partitions together
    /// (`queued.max.messages.kbytes`; it wins over `records`).
    pub kbytes: u32,
    /// The most one fetch brings per partition (compressed); what a fetch brings is kept
    /// decompressed until its last record is consumed, so it overshoots the bounds above.
    pub partition_fetch_bytes: u32,
    /// `fetch.wait.max.ms` when set, over `kafka.client`'s (unset: 100 ms, or `kafka.client`'s).
    pub fetch_wait_ms: Option<u32>,
}

impl Prefetch {
    /// For a topic read as fast as it is written (the events topic). What a fetch brings is
    /// held decompressed (about four times its compressed size), so the fetch size is most of
    /// the dispatcher's memory beyond its in-flight work. Backlog drains on Apache Kafka
    /// (100,000 events x 4 endpoints, alternated, benches/README.md session 17): 4 MiB and
    /// 256 KiB per partition drained 10,396 / 12,035 deliveries/s at 117 / 118 MiB peak RSS,
    /// 8 MiB and 512 KiB 10,382 / 12,883 at 134 / 130 MiB; with one endpoint down, 123 / 132
    /// against 142 / 143 MiB. Larger still (5,000 records / 16 MiB / 1 MiB) cost 32 MiB more
    /// for 4 % more drain speed (12,532 against 12,102 deliveries/s, single runs, earlier).
    pub const STREAM: Prefetch = Prefetch {
        records: 2_000,
        kbytes: 4_096,
        partition_fetch_bytes: 256 << 10,
        fetch_wait_ms: None,
    };
    /// For topics whose partitions spend most of their time paused (the retry tiers: the
    /// head is not due), where whatever was fetched before the pause waits in memory. A heap
    /// profile of a backlog drain with one endpoint never answering (its deliveries deferred
    /// through the tiers) found 91 MB of decompressed fetches held by librdkafka with 1 MiB
    /// per partition fetch over the tiers' 15 partitions.
    pub const PAUSED: Prefetch = Prefetch {
        records: 500,
        kbytes: 2_048,
        partition_fetch_bytes: 128 << 10,
        fetch_wait_ms: None,
    };
}

/// Builds a group consumer: `enable.auto.offset.store=false`, auto-commit of stored offsets,
/// `auto.offset.reset=earliest` (a new group starts from the beginning: nothing is skipped).
/// These are what at-least-once rests on, so they win over `kafka.client`; the timing
/// defaults below (session timeout 10 s, heartbeat 1 s, commit every 500 ms) give way to it.
pub fn tracked_consumer(
    config: &KafkaConfig,
    membership: &Membership,
    client_id: &str,
    drain: Drain,
    prefetch: Prefetch,
) -> Result<(TrackedConsumer, Arc<Mutex<OffsetTracker>>)> {
    let context = TrackingContext {
        tracker: Arc::default(),
        group: membership.group.clone(),
        drain,
    };
    let tracker = context.tracker.clone();
    let mut client = config.client_config(client_id);
    stats::enable_statistics(&mut client);
    stats::register_group(&membership.group);
    if let Some(instance) = &membership.instance {
        client.set("group.instance.id", instance);
    }
    client
        .set("group.id", &membership.group)
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    // Tunable defaults: `kafka.client` may set these (e.g. a longer session timeout).
    config.set_defaults(
        &mut client,
        &[
            ("auto.commit.interval.ms", "500".to_owned()),
            ("session.timeout.ms", "10000".to_owned()),
            ("heartbeat.interval.ms", "1000".to_owned()),
            ("fetch.wait.max.ms", DEFAULT_FETCH_WAIT_MS.to_string()),
            ("queued.min.messages", prefetch.records.to_string()),
            ("queued.max.messages.kbytes", prefetch.kbytes.to_string()),
            (
                "max.partition.fetch.bytes",
                prefetch.partition_fetch_bytes.to_string(),
            ),
        ],
    );
    if let Some(ms) = prefetch.fetch_wait_ms {
        client.set("fetch.wait.max.ms", ms.to_string());
    }
    let consumer = client
        .create_with_context(context)
        .map_err(Error::from_kafka)?;
    Ok((consumer, tracker))
}

/// A shared client that is dropped off the async workers when its last handle goes; derefs
/// to the `Arc` it holds. Closing a consumer waits for the broker, which `herald dev` serves
/// on these same workers: two closes at once on a 2-worker runtime could starve the broker
/// until their timeouts.
pub struct Closing<C: Send + Sync + 'static>(Option<Arc<C>>);

impl<C: Send + Sync + 'static> Closing<C> {
    /// Wraps `client`.
    pub fn new(client: C) -> Self {
        Self(Some(Arc::new(client)))
    }
}

impl<C: Send + Sync + 'static> std::ops::Deref for Closing<C> {
    type Target = Arc<C>;
    fn deref(&self) -> &Arc<C> {
        self.0.as_ref().expect("client present until drop")
    }
}

impl<C: Send + Sync + 'static> Drop for Closing<C> {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(move || drop(client))),
            Err(_) => drop(client),
        }
    }
}

/// A group-less consumer for reading topics by assignment (views, replay, browsing).
pub fn reader(config: &KafkaConfig, client_id: &str) -> Result<StreamConsumer> {
    reader_config(config, client_id)
        .create()
        .map_err(Error::from_kafka)
}

/// A [`reader`] for following a busy topic where a few hundred milliseconds of lag do not
/// matter (the dispatcher's tail of the attempts topic): the broker answers a fetch once
/// 256 KiB are there or 500 ms passed, instead of as soon as one record is. At thousands of
/// records a second an eager follower costs the broker a fetch request every few records.
/// Its prefetch is bounded like the dispatcher's ([`Prefetch::STREAM`]): when the follower
/// falls behind (the cores busy delivering a backlog) librdkafka's defaults would buffer up
/// to 100,000 records per partition.
pub fn lagging_reader(config: &KafkaConfig, client_id: &str) -> Result<StreamConsumer> {
    reader_config(config, client_id)
        .set("fetch.min.bytes", "262144")
        .set("fetch.wait.max.ms", "500")
        .set("queued.min.messages", Prefetch::STREAM.records.to_string())
        .set("queued.max.messages.kbytes", "4096")
        .create()
        .map_err(Error::from_kafka)
}

fn reader_config(config: &KafkaConfig, client_id: &str) -> rdkafka::ClientConfig {
    let mut client = config.client_config(client_id);
    client
        .set("group.id", format!("{client_id}-reader"))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    // A tuning default, so `kafka.client` may shorten or lengthen it.
    config.set_defaults(
        &mut client,
        &[("fetch.wait.max.ms", DEFAULT_FETCH_WAIT_MS.to_string())],
    );
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_readers_fetch_wait_gives_way_to_kafka_client() {
        let mut config = KafkaConfig::with_brokers("127.0.0.1:9092");
        assert_eq!(
            reader_config(&config, "t").get("fetch.wait.max.ms"),
            Some("100")
        );
        config
            .client
            .insert("fetch.wait.max.ms".into(), "10".into());
        assert_eq!(
            reader_config(&config, "t").get("fetch.wait.max.ms"),
            Some("10")
        );
    }
}
