//! The metrics this crate emits: descriptions (Prometheus `HELP`) and counters started at 0
//! for every value of a fixed label set, so that `increase()` sees the first event after a
//! restart. The binary installs the recorder and calls these at start.

/// Describes every metric of this crate.
pub fn describe() {
    metrics::describe_counter!(
        "herald_events_accepted_total",
        "Events acknowledged by the broker and answered 2xx."
    );
    metrics::describe_counter!(
        "herald_events_rejected_total",
        "Events refused with a 4xx/5xx, by error code."
    );
    metrics::describe_counter!(
        "herald_ingest_throttled_total",
        "Ingest requests refused with 429 because their API key was over its rate, by key."
    );
    metrics::describe_counter!(
        "herald_ingest_throttled_events_total",
        "Events in ingest requests refused with 429 (over the key's rate), by key."
    );
}

/// Starts the throttle counters of every key known at start at 0 (a key's series appears
/// with its first 429 otherwise, and `increase()` would miss that one).
pub fn zero_keys(keys: &[herald_proto::v1::KeyRecord]) {
    for key in keys.iter().filter(|k| k.revoked_at_ms == 0) {
        for name in [
            "herald_ingest_throttled_total",
            "herald_ingest_throttled_events_total",
        ] {
            metrics::counter!(name, "key_id" => key.id.clone()).absolute(0);
        }
    }
}

/// Starts the counters with fixed label sets at 0.
pub fn zero() {
    metrics::counter!("herald_events_accepted_total").absolute(0);
    for route in ["/v1/events", "/v1/events/batch"] {
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            metrics::counter!("herald_ingest_requests_total", "route" => route, "status_class" => class)
                .absolute(0);
        }
    }
}
