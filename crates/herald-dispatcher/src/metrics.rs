//! The metrics this crate emits: descriptions (Prometheus `HELP`) and counters started at 0
//! for every value of a fixed label set, so that `increase()` sees the first event after a
//! restart. The binary installs the recorder and calls these at start.

use herald_core::outcome::{AttemptOutcome, DeadReason};

/// Describes every metric of this crate.
pub fn describe() {
    metrics::describe_counter!(
        "herald_events_undecodable_total",
        "Records of the events topic that could not be decoded (skipped)."
    );
    metrics::describe_counter!(
        "herald_deliveries_total",
        "Delivery attempts by outcome (delivered, retry, dead)."
    );
    metrics::describe_counter!("herald_deliveries_deferred_total", "Deliveries moved to the first retry tier because their endpoint was at its concurrency limit (no attempt spent).");
    metrics::describe_counter!(
        "herald_deliveries_throttled_total",
        "Deliveries held back by their endpoint's rate limit (waited for their turn; never a failure), by endpoint."
    );
    metrics::describe_counter!(
        "herald_outcome_records_dropped_total",
        "Outcome records (attempts, health, audit, operational events, slim dead letters) the broker refused for good; logged and dropped instead of retried forever."
    );
    metrics::describe_counter!(
        "herald_operational_events_total",
        "Operational events (endpoint.failing, endpoint.recovered, endpoint.disabled, delivery.dead_lettered) written to the events topic for a tenant's operational endpoint, by type."
    );
    metrics::describe_counter!(
        "herald_receiver_throttled_total",
        "Attempts the receiver answered 429 Too Many Requests (retried after Retry-After), by endpoint."
    );
    metrics::describe_counter!(
        "herald_deliveries_deduplicated_total",
        "Deliveries skipped because they were already started or delivered, by source."
    );
    metrics::describe_counter!(
        "herald_fanout_deliveries_total",
        "Deliveries created by fan-out of events to subscribed endpoints."
    );
    metrics::describe_gauge!(
        "herald_deliveries_in_flight",
        "HTTP delivery attempts running now."
    );
    metrics::describe_histogram!(
        "herald_delivery_attempt_seconds",
        "Duration of one HTTP delivery attempt."
    );
    metrics::describe_histogram!(
        "herald_delivery_e2e_seconds",
        "Time from event accepted to delivered (2xx), across retries."
    );
    metrics::describe_counter!(
        "herald_dlq_writes_total",
        "Deliveries parked in the dead-letter topic, by reason."
    );
    metrics::describe_gauge!("herald_dispatcher_active", "1 when this dispatcher consumes; 0 while it stands by for the group's lease (assignment = all).");
    metrics::describe_counter!(
        "herald_endpoints_view_stale_total",
        "Fan-outs that went ahead after 30 s without confirming the endpoints view was current."
    );
    metrics::describe_gauge!(
        "herald_retry_held_tasks",
        "Retry tasks held in memory until due (paused retry tier partitions)."
    );
    metrics::describe_gauge!(
        "herald_endpoint_consecutive_failures",
        "Failed attempts in a row per endpoint."
    );
    metrics::describe_gauge!(
        "herald_endpoint_healthy",
        "1 when the endpoint's last attempt succeeded (or none failed), else 0."
    );
    metrics::describe_counter!(
        "herald_endpoint_failed_attempts_total",
        "Failed attempts per endpoint and result class."
    );
    metrics::describe_gauge!("herald_endpoints", "Endpoints by state.");
    metrics::describe_counter!(
        "herald_endpoint_transitions_total",
        "Endpoint health transitions (failing, recovered, disabled), by kind."
    );
    metrics::describe_counter!(
        "herald_endpoint_disabled_total",
        "Endpoints disabled by Herald, by reason."
    );
}

/// The handles of the metrics every delivery touches, looked up once. Each
/// `metrics::counter!` finds its key in the registry and allocates a new handle, and these
/// ran about six times per delivery (benches/README.md, session 15). Built after the
/// recorder is installed (a handle made before it goes nowhere).
pub(crate) struct Hot {
    pub in_flight: metrics::Gauge,
    pub attempt_seconds: metrics::Histogram,
    pub e2e_seconds: metrics::Histogram,
    pub delivered: metrics::Counter,
    pub retried: metrics::Counter,
    pub dead: metrics::Counter,
}

impl Hot {
    /// The handles, from the installed recorder.
    pub fn register() -> Self {
        let outcome =
            |name: &'static str| metrics::counter!("herald_deliveries_total", "outcome" => name);
        Self {
            in_flight: metrics::gauge!("herald_deliveries_in_flight"),
            attempt_seconds: metrics::histogram!("herald_delivery_attempt_seconds"),
            e2e_seconds: metrics::histogram!("herald_delivery_e2e_seconds"),
            delivered: outcome("delivered"),
            retried: outcome("retry"),
            dead: outcome("dead"),
        }
    }
}

/// Starts the counters with fixed label sets at 0.
pub fn zero() {
    for outcome in AttemptOutcome::ALL.map(AttemptOutcome::as_str) {
        metrics::counter!("herald_deliveries_total", "outcome" => outcome).absolute(0);
    }
    for reason in DeadReason::ALL {
        metrics::counter!("herald_dlq_writes_total", "reason" => reason.as_str()).absolute(0);
    }
    metrics::counter!("herald_endpoint_disabled_total", "reason" => "gone").absolute(0);
    metrics::counter!("herald_fanout_deliveries_total").absolute(0);
    metrics::counter!("herald_deliveries_deferred_total").absolute(0);
    metrics::counter!("herald_events_undecodable_total").absolute(0);
    // From 0, so that the first stale fan-out shows in increase() (HeraldEndpointsViewStale).
    metrics::counter!("herald_endpoints_view_stale_total").absolute(0);
    metrics::gauge!("herald_deliveries_in_flight").increment(0.0);
}
