//! # herald-evidence
//!
//! What happened, read back from the topics for the people who answer for it: the delivery
//! log (every attempt the dispatcher wrote to `attempts.v1`) and the audit trail
//! (`audit.v1`). Reads are bounded scans of a time window; pages keep at most `limit + 1`
//! entries in memory, whatever the size of the topic.
//!
//! ```text
//! attempts.v1 ──▶ attempts (by event, endpoint, class, time) ──┐
//! audit.v1 ─────▶ audit (by actor, action, target, time) ──────┴▶ api (routes) / herald deliveries, herald audit
//! events.v1 + attempts.v1 + dlq ──▶ reconcile (owed vs. delivered, dead, pending) ──▶ herald reconcile
//! ```
//!
//! Modules:
//! - [`window`]: `since`/`until` and the offsets of a topic they cover.
//! - [`attempts`]: the delivery log; a delivery's state from its attempts.
//! - [`audit`]: the audit trail; JSON lines and CSV export.
//! - [`reconcile`]: the reconciliation report: per endpoint, accepted = delivered +
//!   dead-lettered + pending, with a verdict.
//! - [`api`]: the routes.
//! - [`error`]: what can go wrong.

pub mod api;
pub mod attempts;
pub mod audit;
pub mod error;
pub mod reconcile;
pub mod window;

pub use error::{Error, Result};
