//! The metrics this crate emits: descriptions (Prometheus `HELP`) and counters started at 0
//! for every value of a fixed label set, so that `increase()` sees the first event after a
//! restart. The binary installs the recorder and calls these at start.

/// Describes every metric of this crate.
pub fn describe() {
    metrics::describe_counter!(
        "herald_ingest_requests_total",
        "HTTP requests to ingest and the admin API, by route template and status class."
    );
    metrics::describe_histogram!(
        "herald_ingest_request_duration_seconds",
        "HTTP request duration by route template."
    );
    metrics::describe_counter!(
        "herald_auth_failures_total",
        "Rejected API keys, by reason."
    );
}

/// Starts the counters with fixed label sets at 0.
pub fn zero() {
    for reason in [
        "missing",
        "malformed",
        "unknown",
        "revoked",
        "expired",
        "scope",
    ] {
        metrics::counter!("herald_auth_failures_total", "reason" => reason).absolute(0);
    }
}
