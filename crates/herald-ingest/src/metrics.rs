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
