//! # herald-replay
//!
//! The last step of the data flow: what the dispatcher parked, or what an endpoint missed,
//! goes back into delivery on an SRE's request.
//!
//! ```text
//! deliveries.dlq.v1 ─┐                                   ┌▶ replays.v1 (run progress, markers)
//!                    ├▶ plan/select ─▶ rate limit ─▶ re-drive ─▶ deliveries.retry.<shortest> ─▶ dispatcher
//! events.v1 ─────────┘  (offsets by time)                └▶ audit.v1
//! ```
//!
//! A re-driven delivery is a `DeliveryTask` with a fresh attempt budget, the same delivery id
//! and event (so the same `webhook-id`), due at once, in the shortest retry tier, where the
//! dispatcher's retry consumer delivers it. A run records itself (`run/<id>`) with a cursor
//! per partition; each re-driven dead letter gets a marker (`dlq/<partition>/<offset>`), so no
//! dead letter is ever re-driven twice, and an interrupted run resumes where it stopped.
//!
//! Modules:
//! - [`filter`]: time bounds (`2h`, RFC 3339), DLQ and events filters, the replay spec.
//! - [`rate`]: `--rate N/s` and the limiter.
//! - [`select`]: the per-record decision shared by dry run and run.
//! - [`state`]: the replays topic folded into the live view of runs, markers and the lock.
//! - [`lock`]: the one-run-at-a-time rule, as a pure fold.
//! - [`store`]: writes of runs, markers, the lock and audit records.
//! - [`run`]: plan (dry run), create, resume.
//! - [`execute`]: carrying a run out (rate, checkpoints, markers, reconciliation).
//! - [`browse`]: listing, showing and counting dead letters.
//! - [`request`]: a request as the CLI and the API spell it, parsed; a run as JSON.
//! - [`service`]: replay runs inside an API process (background runs, one at a time).
//! - [`api`]: the replay and dead-letter routes over [`service`].
//! - [`metrics`]: the metrics this crate emits, described, and counters started at 0.

pub mod api;
pub mod browse;
pub mod error;
pub mod execute;
pub mod filter;
pub mod lock;
pub mod metrics;
pub mod rate;
pub mod request;
pub mod run;
pub mod select;
pub mod service;
pub mod state;
pub mod store;

pub use error::{Error, Result};
pub use filter::{DlqFilter, EventsFilter, ReplaySpec, Selection, TimeRange};
pub use run::{Plan, Replayer};
pub use state::RunsView;
