//! The metrics this crate emits: descriptions (Prometheus `HELP`) and counters started at 0
//! for every value of a fixed label set, so that `increase()` sees the first event after a
//! restart. The binary installs the recorder and calls these at start.

/// Describes every metric of this crate.
pub fn describe() {
    metrics::describe_counter!(
        "herald_replay_redriven_total",
        "Records re-driven by replays."
    );
    metrics::describe_gauge!(
        "herald_replay_progress_ratio",
        "Progress of a replay run, 0 to 1."
    );
}
