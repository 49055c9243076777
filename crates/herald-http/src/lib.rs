//! # herald-http
//!
//! The HTTP plumbing every API crate shares, so each use case's routes (ingest and admin in
//! herald-ingest, replay and dead letters in herald-replay) look and fail the same way:
//!
//! ```text
//! request ─▶ app (metrics, JSON fallbacks) ─▶ a crate's routes ─▶ Authorized<scope> ─▶ body::json ─▶ handler
//!                                                            └──────── ApiError (JSON) ◀──────────┘
//! ```
//!
//! Modules:
//! - [`error`]: the JSON error body every 4xx/5xx carries.
//! - [`auth`]: bearer API keys as an extractor naming its scope.
//! - [`body`]: content-type, size and JSON checks shared by every write route.
//! - [`app`]: merged routes finished with fallbacks and request metrics.
//! - [`serve`]: the server loop: peer addresses, a header-read timeout, a graceful stop.
//! - [`metrics`]: the metrics this crate emits, described, and counters started at 0.

pub mod app;
pub mod auth;
pub mod body;
pub mod error;
pub mod metrics;
pub mod serve;

pub use app::app;
pub use auth::{scope, Authorized, Caller};
pub use error::ApiError;
pub use serve::{serve, serve_with, HEADER_READ_TIMEOUT};
