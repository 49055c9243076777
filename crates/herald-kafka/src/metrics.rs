//! The metrics this crate emits: descriptions (Prometheus `HELP`) and counters started at 0
//! for every value of a fixed label set, so that `increase()` sees the first event after a
//! restart. The binary installs the recorder and calls these at start.

/// Describes every metric of this crate.
pub fn describe() {
    metrics::describe_counter!(
        "herald_unreadable_records_total",
        "Records of a view's topic that could not be decoded or opened (a master key missing?), by topic."
    );
    metrics::describe_gauge!(
        "herald_unreadable_records",
        "Endpoints whose latest record does not open, left out of the view (readiness fails while > 0)."
    );
    metrics::describe_gauge!(
        "herald_endpoints_sealed_with_previous_key",
        "Endpoints with secrets sealed under a previous master key: re-seal them before dropping that key."
    );
    metrics::describe_gauge!(
        "herald_api_keys_rotation_due",
        "Live API keys older than ingest.key_rotation_period (rotate them)."
    );
    metrics::describe_counter!(
        "herald_view_syncs_total",
        "Checks that a view holds everything its topic acknowledged up to a moment, by topic."
    );
    metrics::describe_gauge!(
        "herald_kafka_consumer_lag",
        "Records between the committed offset and the high watermark, per owned partition."
    );
    metrics::describe_gauge!(
        "herald_kafka_producer_queue_depth",
        "Records in the producer's queues, waiting or in flight to the broker."
    );
    metrics::describe_histogram!(
        "herald_kafka_produce_seconds",
        "Time from produce to broker acknowledgement (or failure)."
    );
    metrics::describe_counter!(
        "herald_kafka_produce_errors_total",
        "Produce requests that failed, by kind (unavailable, rejected)."
    );
    metrics::describe_counter!(
        "herald_kafka_broker_errors_total",
        "Kafka client-level errors (broker down, transport, auth…), by kind."
    );
    metrics::describe_counter!(
        "herald_kafka_group_rejoins_total",
        "Times a consumer left without partitions for too long rejoined its group, by group."
    );
    metrics::describe_gauge!(
        "herald_api_keys_expiring",
        "API keys (not revoked, not expired) expiring within the window."
    );
    metrics::describe_gauge!("herald_ready", "1 when the service is ready (broker reachable, views caught up, consumers joined), else 0.");
    metrics::describe_counter!(
        "herald_audit_write_failures_total",
        "Audit records that could not be written (evidence missing: act on it)."
    );
}

/// Starts the counters with fixed label sets at 0.
pub fn zero() {
    for topic in ["endpoints", "keys"] {
        metrics::counter!("herald_unreadable_records_total", "topic" => topic).absolute(0);
    }
    for kind in crate::stats::ERROR_KINDS {
        metrics::counter!("herald_kafka_broker_errors_total", "kind" => kind).absolute(0);
    }
    for kind in ["unavailable", "rejected"] {
        metrics::counter!("herald_kafka_produce_errors_total", "kind" => kind).absolute(0);
    }
    metrics::counter!("herald_audit_write_failures_total").absolute(0);
}
