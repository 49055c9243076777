//! # herald-dispatcher
//!
//! Consumes accepted events and turns each into signed deliveries, one per subscribed
//! endpoint, with every outcome made durable before the offset moves.
//!
//! ```text
//! events.v1 ─▶ consumer ─▶ deliver (sink: signed POST) ─▶ route ─┬▶ attempts.v1
//!                 ▲                                               ├▶ deliveries.retry.<tier> ─▶ retry ─┘
//!                 └── ordered offsets per partition               └▶ deliveries.dlq.v1
//! ```
//!
//! Modules:
//! - [`config`]: `DispatcherConfig`, validated at start.
//! - [`consumer`]: the events consumer and fan-out.
//! - [`inbound`]: records of the events topic checked (producers may write to Kafka directly).
//! - [`retry`]: the retry-tier consumer that pauses partitions until their head is due.
//! - [`health`]: per-endpoint health as this process saw it (the health book).
//! - [`transitions`]: `EndpointStates`, the health book and its transitions made durable
//!   and audited.
//! - [`hold`]: tasks held in memory while their partition is paused.
//! - [`dedupe`]: bounded memory of started deliveries (duplicate events deliver once).
//! - [`delivered`]: deliveries the attempts log shows succeeded (no re-send after a crash).
//! - [`deliver`]: one delivery step shared by both consumers.
//! - [`transport`]: the seam deliveries leave through: signed requests, the `Transport`
//!   trait, the deadline layer.
//! - [`dns`]: delivery host lookups through configured DNS servers (`dispatcher.dns_servers`).
//! - [`slots`]: per-endpoint concurrency, waited for or deferred by health.
//! - [`operational`]: Herald's own events (endpoint failing/recovered/disabled, delivery
//!   dead-lettered) to each tenant's operational endpoint, through the normal pipeline.
//! - [`pacing`]: per-endpoint rate limits: deliveries spaced out, waiting for their turn.
//! - [`sink`]: the HTTP transport (timeouts, no redirects, SSRF-guarded DNS).
//! - [`route`]: durable writes of attempt records, retry tasks, dead letters.
//! - [`ssrf`]: destination address policy.
//! - [`standby`]: one active dispatcher per group under `assignment = "all"` (a lease).
//! - [`service`]: `run(config, deps, shutdown, drain_deadline)`.
//! - [`metrics`]: the metrics this crate emits, described, and counters started at 0.
//! - [`probe`], [`api`]: test deliveries (`POST /v1/endpoints/{id}/test`).
//! - [`payload`]: a delivery's body by the endpoint's payload format (raw or Standard Webhooks).

pub mod api;
pub mod config;
pub mod consumer;
pub mod dedupe;
pub mod deliver;
pub mod delivered;
pub mod dns;
pub mod error;
pub mod health;
pub mod hold;
pub mod inbound;
pub mod metrics;
pub mod operational;
pub mod pacing;
pub mod payload;
pub mod probe;
pub mod retry;
pub mod route;
pub mod service;
pub mod sink;
pub mod slots;
pub mod ssrf;
pub mod standby;
pub mod transitions;
pub mod transport;

#[cfg(test)]
mod tests;

pub use config::DispatcherConfig;
pub use error::{Error, Result};
pub use service::{outbound, run, DispatcherDeps};
