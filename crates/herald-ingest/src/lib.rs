//! # herald-ingest
//!
//! The front door: producers `POST /v1/events`, operators manage endpoints and API keys.
//! An event is acknowledged (202) only after the broker acknowledged its write to
//! `events.v1`; endpoint and key changes are written to their compacted topics and read back
//! through the live views every service holds.
//!
//! ```text
//! producer ─HTTP─▶ events ─▶ events.v1 ─▶ dispatcher
//! operator ─HTTP─▶ endpoints / keys ─▶ endpoints.v1 / keys.v1 (+ audit.v1) ─▶ views
//! ```
//!
//! Errors, the API-key extractor and body checks are herald-http's; replay and dead-letter
//! routes are herald-replay's. The binary merges the routers.
//!
//! Modules:
//! - [`config`]: the `IngestConfig` struct.
//! - [`state`]: what every route needs, and the audit helper.
//! - [`events`], [`endpoints`], [`keys`], [`health`]: the routes, each module with its own
//!   `routes()`.
//! - [`key_admin`]: API key management, shared by `/v1/keys` and `herald keys`.
//! - [`throttle`]: per-key ingest rate limits (token buckets, 429 with `Retry-After`).
//! - [`reseal`]: re-sealing endpoint secrets under the current master key after a rotation.
//! - [`service`]: [`run`], the merged router and the bootstrap key.
//! - [`error`]: errors of start-up.
//! - [`metrics`]: the metrics this crate emits, described, and counters started at 0.

pub mod config;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod health;
pub mod key_admin;
pub mod keys;
pub mod metrics;
pub mod reseal;
pub mod service;
pub mod state;
pub mod throttle;

#[cfg(test)]
mod tests;

pub use config::IngestConfig;
pub use error::Error;
pub use service::{ensure_bootstrap_key, router, run, IngestDeps};
pub use state::{IngestParts, IngestState};
