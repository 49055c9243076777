//! # herald-bench
//!
//! Measurements, not features. Nothing in the product depends on this crate.
//!
//! - The criterion benchmarks live at the top of the repository, in `benches/` (signing, ids,
//!   retry policy, offset tracker, wire format, retry-tier holding), and are wired up as this
//!   package's `[[bench]]` targets.
//! - `herald-load` (`src/bin/herald-load.rs`) is the end-to-end load harness: it starts a
//!   broker and Herald (or connects to one), sends events over HTTP, receives and verifies the
//!   signed deliveries on loopback, and reports throughput, latency and memory.
//!
//! `benches/README.md` says how to run them and what was measured.
