//! Freshness of a view: "has this view applied every record its topic acknowledged before
//! moment T?"
//!
//! A view follows its topic a little behind (a fetch round trip, more under load). Most
//! readers do not mind, but the dispatcher does: an event accepted just after an endpoint was
//! created must reach that endpoint, and a view that has not read the endpoint yet would fan
//! the event out without it, for good. [`Freshness::wait_synced`] closes that gap: a sync
//! notes the time, asks the broker for the log end of every partition, and waits until the
//! follower has applied up to it; the view is then complete for everything acknowledged
//! before the noted time. Syncs are coalesced (one at a time, every waiter whose moment it
//! covers is released by it) and spaced, so a stream of events costs at most one request per
//! round trip, not one per event. A view that is asked all the time (the dispatcher's
//! endpoints view, once per event) can keep syncs running ahead of its waiters for a while
//! after the last one ([`Freshness::keep_warm`]), so an event that took longer to reach the
//! dispatcher than a sync takes finds its moment covered already and does not wait.

use crate::Result;
use rdkafka::consumer::{Consumer, StreamConsumer};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// The shortest gap between two syncs.
const SPACING: Duration = Duration::from_millis(10);
/// How long a sync waits for the follower to reach the log end before it starts over.
const FOLLOW_PATIENCE: Duration = Duration::from_secs(10);
/// Timeout of one watermark request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// How far a view has read, and since when it is known to be complete.
pub struct Freshness {
    topic: String,
    /// Next offset to apply, per partition (from the follower).
    read: watch::Sender<HashMap<i32, i64>>,
    /// Every record acknowledged before this moment (ms since the epoch) is applied.
    synced: watch::Sender<i64>,
    /// The latest moment a waiter needs.
    wanted: AtomicI64,
    /// When a waiter last asked (ms since the epoch).
    asked: AtomicI64,
    /// How long syncs keep running after the last waiter asked (ms; 0: only on demand).
    warm_ms: AtomicI64,
    wake: Notify,
    /// Syncs stopped for good (the service is shutting down): nothing more can be confirmed.
    halted: watch::Sender<bool>,
    /// The client for watermark requests, beside the follower's (none while it restarts).
    reader: Mutex<Option<Arc<StreamConsumer>>>,
}

impl Freshness {
    /// Nothing read yet, never synced.
    pub fn new(topic: String) -> Arc<Self> {
        Arc::new(Self {
            topic,
            read: watch::channel(HashMap::new()).0,
            synced: watch::channel(i64::MIN).0,
            wanted: AtomicI64::new(i64::MIN),
            asked: AtomicI64::new(i64::MIN),
            warm_ms: AtomicI64::new(0),
            wake: Notify::new(),
            halted: watch::channel(false).0,
            reader: Mutex::new(None),
        })
    }

    /// Keeps syncs running for `period` after each waiter (for views asked all the time).
    pub fn keep_warm(&self, period: Duration) {
        self.warm_ms
            .store(period.as_millis() as i64, Ordering::SeqCst);
    }

    /// The follower (re)started, reading each partition from its `start`; syncs ask for
    /// watermarks through `reader`, a client that does not fetch (see `View::follow`).
    pub fn following(&self, reader: Arc<StreamConsumer>, start: HashMap<i32, i64>) {
        // Positions first: a sync that sees the reader must also see its partitions.
        self.read.send_replace(start);
        *self.reader.lock().expect("reader lock") = Some(reader);
    }

    /// The follower applied the record at `offset` of `partition`.
    pub fn applied(&self, partition: i32, offset: i64) {
        self.read.send_if_modified(|read| {
            let next = read.entry(partition).or_insert(0);
            let advanced = offset + 1 > *next;
            *next = (*next).max(offset + 1);
            advanced
        });
    }

    /// The follower stopped (its client is gone until it restarts).
    pub fn stopped(&self) {
        *self.reader.lock().expect("reader lock") = None;
    }

    /// Waits until every record acknowledged before `at_ms` is applied, at most `patience`.
    /// False when that did not happen in time (broker unreachable, follower stuck).
    /// Returns at once (false) once syncs have halted for shutdown.
    pub async fn wait_synced(&self, at_ms: i64, patience: Duration) -> bool {
        self.asked.fetch_max(crate::now_ms(), Ordering::SeqCst);
        if *self.synced.borrow() >= at_ms {
            return true;
        }
        self.wanted.fetch_max(at_ms, Ordering::SeqCst);
        self.wake.notify_one();
        let mut synced = self.synced.subscribe();
        let mut halted = self.halted.subscribe();
        tokio::select! {
            waited = tokio::time::timeout(patience, synced.wait_for(|s| *s >= at_ms)) => {
                waited.is_ok_and(|r| r.is_ok())
            }
            _ = halted.wait_for(|h| *h) => *self.synced.borrow() >= at_ms,
        }
    }

    /// Whether syncs stopped for good (shutdown): a failed [`Freshness::wait_synced`] then
    /// means "cannot know", not "the broker is slow".
    pub fn is_halted(&self) -> bool {
        *self.halted.borrow()
    }

    /// Whether a sync should run now: a waiter needs one, or waiters asked recently.
    fn sync_due(&self) -> bool {
        let wanted = self.wanted.load(Ordering::SeqCst) > *self.synced.borrow();
        let since_asked = crate::now_ms().saturating_sub(self.asked.load(Ordering::SeqCst));
        let warm = since_asked < self.warm_ms.load(Ordering::SeqCst);
        wanted || warm
    }

    /// Runs syncs while waiters want them, until `shutdown`; then halts (see
    /// [`Freshness::is_halted`]), releasing every waiter.
    pub async fn run_syncs(self: Arc<Self>, shutdown: CancellationToken) {
        self.sync_until(&shutdown).await;
        self.halted.send_replace(true);
    }

    async fn sync_until(&self, shutdown: &CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
            }
            while self.sync_due() {
                let started = crate::now_ms();
                let synced = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    synced = self.sync_once() => synced,
                };
                match synced {
                    Ok(true) => {
                        self.synced.send_if_modified(|s| {
                            let later = started > *s;
                            *s = (*s).max(started);
                            later
                        });
                        metrics::counter!("herald_view_syncs_total", "topic" => self.topic.clone())
                            .increment(1);
                        tokio::time::sleep(SPACING).await;
                    }
                    Ok(false) => {}
                    Err(err) => {
                        tracing::debug!(topic = %self.topic, error = %err, "View sync failed; retrying.");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }

    /// One sync: the log end of every partition now, then the follower reaching it. False
    /// when the follower did not get there within [`FOLLOW_PATIENCE`] (or is restarting).
    async fn sync_once(&self) -> Result<bool> {
        let reader = self.reader.lock().expect("reader lock").clone();
        let Some(reader) = reader else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(false);
        };
        let partitions: Vec<i32> = self.read.borrow().keys().copied().collect();
        if partitions.is_empty() {
            // Not following anything yet: nothing can be confirmed.
            tokio::time::sleep(Duration::from_millis(50)).await;
            return Ok(false);
        }
        let topic = self.topic.clone();
        let ends = tokio::task::spawn_blocking(move || {
            partitions
                .into_iter()
                .map(|p| {
                    let (_low, high) = reader
                        .fetch_watermarks(&topic, p, REQUEST_TIMEOUT)
                        .map_err(crate::Error::from_kafka)?;
                    Ok((p, high))
                })
                .collect::<Result<HashMap<i32, i64>>>()
        })
        .await
        .map_err(|e| crate::Error::Unavailable(format!("watermark task: {e}")))??;
        let mut read = self.read.subscribe();
        let reached =
            tokio::time::timeout(FOLLOW_PATIENCE, read.wait_for(|read| covers(read, &ends))).await;
        Ok(reached.is_ok_and(|r| r.is_ok()))
    }
}

/// Whether `read` (next offset per partition) has reached every partition's `ends`.
pub fn covers(read: &HashMap<i32, i64>, ends: &HashMap<i32, i64>) -> bool {
    ends.iter()
        .all(|(p, end)| read.get(p).is_some_and(|next| next >= end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn covers_needs_every_partition_at_its_end() {
        let ends = HashMap::from([(0, 5), (1, 0)]);
        assert!(!covers(&HashMap::from([(0, 4), (1, 0)]), &ends));
        assert!(
            !covers(&HashMap::from([(0, 5)]), &ends),
            "partition 1 unknown"
        );
        assert!(covers(&HashMap::from([(0, 5), (1, 0)]), &ends));
        assert!(covers(&HashMap::from([(0, 9), (1, 3)]), &ends));
    }

    #[test]
    fn applied_only_moves_forward() {
        let f = Freshness::new("t".into());
        f.read.send_replace(HashMap::from([(0, 3)]));
        f.applied(0, 1);
        assert_eq!(f.read.borrow()[&0], 3);
        f.applied(0, 6);
        assert_eq!(f.read.borrow()[&0], 7);
    }

    #[tokio::test]
    async fn syncs_run_ahead_only_on_views_kept_warm() {
        let f = Freshness::new("t".into());
        f.synced.send_replace(1_000);
        assert!(f.wait_synced(900, Duration::from_millis(1)).await);
        assert!(!f.sync_due(), "satisfied and not kept warm: no sync");
        f.keep_warm(Duration::from_secs(60));
        assert!(f.sync_due(), "asked a moment ago: keep syncing ahead");
    }

    #[tokio::test]
    async fn a_waiter_for_an_already_synced_moment_returns_at_once() {
        let f = Freshness::new("t".into());
        f.synced.send_replace(1_000);
        assert!(f.wait_synced(900, Duration::from_millis(1)).await);
        assert!(!f.wait_synced(1_001, Duration::from_millis(1)).await);
    }

    #[tokio::test]
    async fn a_shutdown_releases_waiters_at_once_and_says_it_halted() {
        let f = Freshness::new("t".into());
        let shutdown = CancellationToken::new();
        let runner = tokio::spawn(f.clone().run_syncs(shutdown.clone()));
        let waiter = {
            let f = f.clone();
            tokio::spawn(async move { f.wait_synced(1_000, Duration::from_secs(3_600)).await })
        };
        tokio::task::yield_now().await;
        assert!(!f.is_halted());
        shutdown.cancel();
        runner.await.unwrap();
        // Released by the halt, not by its hour of patience.
        let released = tokio::time::timeout(Duration::from_secs(60), waiter).await;
        assert!(
            !released.expect("released").unwrap(),
            "nothing was confirmed"
        );
        assert!(f.is_halted());
        assert!(!f.wait_synced(2_000, Duration::from_secs(3_600)).await);
    }
}
