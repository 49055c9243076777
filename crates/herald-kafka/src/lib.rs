//! # herald-kafka
//!
//! Everything Herald does with Kafka, shared by ingest, dispatcher and replay.
//!
//! ```text
//! producer ──▶ topics (provisioned here) ──▶ consumers (at-least-once, ordered offsets)
//!                         └── compacted topics ──▶ views (endpoints, keys) in every service
//! ```
//!
//! Modules:
//! - [`config`]: broker address, topic prefix and layout, client overrides.
//! - [`producer`]: idempotent `acks=all` producer with explicit backpressure.
//! - [`consumer`]: consumer construction for the at-least-once recipe.
//! - [`membership`]: who a consumer is; group protocol or every partition by hand.
//! - [`assign`]: starting a consumer on its topics as its membership says.
//! - [`tracker`]: ordered offset tracking per partition for concurrent processing.
//! - [`provision`]: idempotent topic creation with cleanup policy and retention.
//! - [`view`]: a compacted topic folded into memory, caught up at start and followed live;
//!   [`fresh`] tells when it holds everything acknowledged before a given moment.
//! - [`endpoints`], [`keys`]: the two views every service holds; [`key_usage`]: when and
//!   from where each key was used lately, written coarsely.
//! - [`page`]: cursor pages over a scan with bounded memory.
//! - [`scan`]: bounded reads of a topic (watermarks, offsets by time, a scanner that ends).
//! - [`lease`]: a role one process holds at a time, decided in log order.
//! - [`audit`]: the one audit trail writer.
//! - [`stats`], [`health`]: client metrics (lag, queue depth, errors), group memberships and
//!   the broker reachability check behind `/readyz`.
//! - [`metrics`]: the metrics this crate emits, described, and counters started at 0.

pub mod assign;
pub mod audit;
pub mod config;
pub mod consumer;
pub mod endpoints;
pub mod error;
pub mod fresh;
pub mod health;
pub mod key_usage;
pub mod keys;
pub mod lease;
pub mod membership;
pub mod metrics;
pub mod page;
pub mod producer;
pub mod provision;
pub mod scan;
pub mod stats;
pub mod tracker;
pub mod view;

pub use config::KafkaConfig;
pub use error::{Error, Result};
pub use producer::Producer;

/// Milliseconds since the Unix epoch, from the system clock: for time that must agree with
/// the broker and other processes. Services read the time they decide by through their
/// injected [`herald_core::clock::SharedClock`].
pub fn now_ms() -> i64 {
    herald_core::clock::Clock::now_ms(&herald_core::clock::SystemClock)
}
