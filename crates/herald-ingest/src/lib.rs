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
//! Modules:
//! - [`config`]: the `IngestConfig` struct.
//! - [`error`]: the JSON error body every 4xx/5xx carries.
//! - [`auth`]: bearer API keys and scopes.
//! - [`body`]: content-type, size and JSON checks shared by every write route.
//! - [`events`], [`endpoints`], [`keys`], [`health`]: the routes.
//! - [`replays`]: replay runs and dead-letter browsing (herald-replay).
//! - [`service`]: router, bootstrap key, serving with graceful shutdown.

pub mod auth;
pub mod body;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod events;
pub mod health;
pub mod keys;
pub mod replays;
pub mod service;

#[cfg(test)]
mod tests;

pub use config::IngestConfig;
pub use error::{ApiError, Error};
pub use service::{ensure_bootstrap_key, router, serve, IngestState};
