//! A watchdog for group members that stay without partitions.
//!
//! On a healthy Kafka group a member without partitions is a spare (more members than
//! partitions) and rejoining changes nothing. The embedded tansu broker's coordinator can
//! however leave a member unassigned for good after another member was killed (for example a
//! static member that rejoined while the group was half-way through a rebalance). A member
//! that stays unassigned longer than `patience` therefore re-subscribes, which sends a fresh
//! JoinGroup; the patience doubles each time (up to 16×) so a real spare rejoins rarely.

use crate::consumer::TrackedConsumer;
use rdkafka::consumer::Consumer;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the assignment is looked at.
const TICK: Duration = Duration::from_secs(5);

/// Starts the watchdog; it ends with `shutdown`.
pub fn spawn_assignment_watch(
    consumer: Arc<TrackedConsumer>,
    group: String,
    topics: Vec<String>,
    patience: Duration,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        let mut unassigned_since: Option<Instant> = None;
        let mut factor = 1u32;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(TICK) => {}
            }
            let assigned = consumer.assignment().map(|a| a.count()).unwrap_or(0);
            if assigned > 0 {
                unassigned_since = None;
                factor = 1;
                continue;
            }
            let since = *unassigned_since.get_or_insert_with(Instant::now);
            if since.elapsed() < patience * factor {
                continue;
            }
            tracing::warn!(%group, waited_s = since.elapsed().as_secs(), "No partitions assigned for too long; rejoining the group.");
            metrics::counter!("herald_kafka_group_rejoins_total", "group" => group.clone())
                .increment(1);
            consumer.unsubscribe();
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(err) = consumer.subscribe(&names) {
                tracing::error!(%group, error = %err, "Re-subscribing failed.");
            }
            unassigned_since = None;
            factor = (factor * 2).min(16);
        }
    });
}
