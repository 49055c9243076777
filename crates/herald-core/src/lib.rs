//! # herald-core
//!
//! The domain of Herald, free of I/O: no tokio, no rdkafka, no HTTP client. Every other crate
//! builds on these types, and everything here is a pure function that unit tests can pin down.
//!
//! Where it sits in the data flow:
//!
//! ```text
//! ingest ─▶ events ─▶ dispatcher ─▶ attempts / retry tiers / dead letters ─▶ replay
//!   │ ids, Event      │ Endpoint, signing, outcome classification, retry schedule
//! ```
//!
//! Modules:
//! - [`ids`]: typed, prefixed identifiers (`evt_…`, `ep_…`, `dlv_…`, `key_…`, `rpl_…`).
//! - [`event`]: the event a producer hands Herald.
//! - [`endpoint`]: subscribed endpoints, their event-type filters and secrets.
//! - [`signing`]: Standard Webhooks signatures and the receiver-side verifier.
//! - [`apikey`]: API key format (`hk_<id>_<secret>`), hashing and scopes.
//! - [`retry`]: the retry schedule with jitter, throttling floors and `Retry-After`.
//! - [`outcome`]: classification of one HTTP attempt into `Delivered | Retry | Dead`.
//! - [`run`]: the states of a replay run.
//! - [`sealing`]: AEAD sealing of endpoint secrets at rest under a master key.
//! - [`throttle`]: rate limits: token buckets (API keys) and spaced turns (endpoints).
//! - [`time`]: instants as typed (RFC 3339, `2h` ago, `now`, epoch ms) and RFC 3339 back.
//! - [`topics`]: Kafka topic names under a configurable prefix.
//! - [`clock`]: time as a dependency (system or manual).
//! - [`duration`]: human durations (`5s`, `30m`, `10h`) used in config and the CLI.

pub mod apikey;
pub mod clock;
pub mod duration;
pub mod endpoint;
pub mod error;
pub mod event;
pub mod health;
pub mod ids;
pub mod outcome;
pub mod retry;
pub mod run;
pub mod sealing;
pub mod signing;
pub mod throttle;
pub mod time;
pub mod topics;

pub use error::{Error, Result};

/// Milliseconds since the Unix epoch: the one time representation of the domain.
pub type UnixMillis = i64;
