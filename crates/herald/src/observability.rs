//! Logs and metrics set-up shared by every command; `/metrics`, `/healthz`, `/readyz` for the
//! dispatcher's `metrics_listen`; gauges refreshed in the background (readiness, keys expiring).
//!
//! Every metric of the contract in `deploy/README.md` is described here (Prometheus `HELP`),
//! and counters whose labels take a fixed set of values start at 0 for every value, so that
//! `increase()` sees the first event after a restart.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_core::outcome::AttemptOutcome;
use herald_core::outcome::DeadReason;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::health::{broker_check, groups_check, Check, Report};
use herald_kafka::keys::KeysView;
use herald_kafka::Producer;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use std::future::Future;
use std::io::IsTerminal;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often readiness and the keys-expiring gauge are refreshed without a request.
const REFRESH: Duration = Duration::from_secs(5);
/// The window of `herald_api_keys_expiring{within="7d"}`.
const KEY_EXPIRY_WINDOW_MS: i64 = 7 * 86_400 * 1_000;

/// Logs: `HERALD_LOG` filter (default `info`), JSON when stderr is not a terminal.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,tansu_broker=warn,tansu_storage=warn,tansu_sans_io=warn,libsql=warn",
        )
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::io::stderr().is_terminal() {
        builder.init();
    } else {
        builder.json().init();
    }
}

/// Default buckets (seconds): attempts, requests, produce latency.
const SECONDS: [f64; 14] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// End-to-end latency spans the retry schedule (about 32 h by default): up to 1.5 days.
const E2E_SECONDS: [f64; 20] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1_800.0, 3_600.0, 7_200.0,
    14_400.0, 28_800.0, 43_200.0, 86_400.0, 129_600.0,
];

/// Installs the Prometheus recorder, describes every metric, returns a handle to render it.
pub fn init_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&SECONDS)?
        .set_buckets_for_metric(
            Matcher::Full("herald_delivery_e2e_seconds".into()),
            &E2E_SECONDS,
        )?
        .install_recorder()?;
    describe();
    zero_kafka();
    Ok(handle)
}

fn describe() {
    use metrics::{describe_counter as c, describe_gauge as g, describe_histogram as h};
    c!(
        "herald_events_accepted_total",
        "Events acknowledged by the broker and answered 2xx."
    );
    c!(
        "herald_events_rejected_total",
        "Events refused with a 4xx/5xx, by error code."
    );
    c!(
        "herald_events_undecodable_total",
        "Records of the events topic that could not be decoded (skipped)."
    );
    c!(
        "herald_ingest_requests_total",
        "HTTP requests to ingest and the admin API, by route template and status class."
    );
    h!(
        "herald_ingest_request_duration_seconds",
        "HTTP request duration by route template."
    );
    c!(
        "herald_deliveries_total",
        "Delivery attempts by outcome (delivered, retry, dead)."
    );
    c!("herald_deliveries_deferred_total", "Deliveries moved to the first retry tier because their endpoint was at its concurrency limit (no attempt spent).");
    c!(
        "herald_deliveries_deduplicated_total",
        "Deliveries skipped because they were already started or delivered, by source."
    );
    c!(
        "herald_fanout_deliveries_total",
        "Deliveries created by fan-out of events to subscribed endpoints."
    );
    g!(
        "herald_deliveries_in_flight",
        "HTTP delivery attempts running now."
    );
    h!(
        "herald_delivery_attempt_seconds",
        "Duration of one HTTP delivery attempt."
    );
    h!(
        "herald_delivery_e2e_seconds",
        "Time from event accepted to delivered (2xx), across retries."
    );
    c!(
        "herald_dlq_writes_total",
        "Deliveries parked in the dead-letter topic, by reason."
    );
    g!(
        "herald_dispatcher_active",
        "1 when this dispatcher consumes; 0 while it stands by for the group's lease (assignment = all)."
    );
    c!(
        "herald_view_syncs_total",
        "Checks that a view holds everything its topic acknowledged up to a moment, by topic."
    );
    c!(
        "herald_endpoints_view_stale_total",
        "Fan-outs that went ahead after 30 s without confirming the endpoints view was current."
    );
    g!(
        "herald_retry_held_tasks",
        "Retry tasks held in memory until due (paused retry tier partitions)."
    );
    g!(
        "herald_kafka_consumer_lag",
        "Records between the committed offset and the high watermark, per owned partition."
    );
    g!(
        "herald_kafka_producer_queue_depth",
        "Records in the producer's queues, waiting or in flight to the broker."
    );
    h!(
        "herald_kafka_produce_seconds",
        "Time from produce to broker acknowledgement (or failure)."
    );
    c!(
        "herald_kafka_produce_errors_total",
        "Produce requests that failed, by kind (unavailable, rejected)."
    );
    c!(
        "herald_kafka_broker_errors_total",
        "Kafka client-level errors (broker down, transport, auth…), by kind."
    );
    g!(
        "herald_endpoint_consecutive_failures",
        "Failed attempts in a row per endpoint."
    );
    g!(
        "herald_endpoint_healthy",
        "1 when the endpoint's last attempt succeeded (or none failed), else 0."
    );
    c!(
        "herald_endpoint_failed_attempts_total",
        "Failed attempts per endpoint and result class."
    );
    g!("herald_endpoints", "Endpoints by state.");
    c!(
        "herald_endpoint_transitions_total",
        "Endpoint health transitions (failing, recovered, disabled), by kind."
    );
    c!(
        "herald_kafka_group_rejoins_total",
        "Times a consumer left without partitions for too long rejoined its group, by group."
    );
    c!(
        "herald_endpoint_disabled_total",
        "Endpoints disabled by Herald, by reason."
    );
    c!(
        "herald_auth_failures_total",
        "Rejected API keys, by reason."
    );
    g!(
        "herald_api_keys_expiring",
        "API keys (not revoked, not expired) expiring within the window."
    );
    g!("herald_ready", "1 when the service is ready (broker reachable, views caught up, consumers joined), else 0.");
    c!(
        "herald_replay_redriven_total",
        "Records re-driven by replays."
    );
    g!(
        "herald_replay_progress_ratio",
        "Progress of a replay run, 0 to 1."
    );
}

fn zero_kafka() {
    for kind in herald_kafka::stats::ERROR_KINDS {
        metrics::counter!("herald_kafka_broker_errors_total", "kind" => kind).absolute(0);
    }
    for kind in ["unavailable", "rejected"] {
        metrics::counter!("herald_kafka_produce_errors_total", "kind" => kind).absolute(0);
    }
}

/// Starts the ingest counters at 0.
pub fn zero_ingest() {
    metrics::counter!("herald_events_accepted_total").absolute(0);
    for route in ["/v1/events", "/v1/events/batch"] {
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            metrics::counter!("herald_ingest_requests_total", "route" => route, "status_class" => class)
                .absolute(0);
        }
    }
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

/// Starts the dispatcher counters at 0.
pub fn zero_dispatcher() {
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

/// `GET /metrics` in the Prometheus text format.
pub fn metrics_router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move {
                (
                    [("content-type", "text/plain; version=0.0.4")],
                    handle.render(),
                )
            }
        }),
    )
}

/// What the dispatcher's readiness looks at.
#[derive(Clone)]
pub struct DispatcherProbe {
    pub producer: Producer,
    pub events_topic: String,
    pub endpoints: EndpointsView,
}

impl DispatcherProbe {
    /// Checks readiness now and sets `herald_ready{service="dispatcher"}`.
    pub async fn readiness(&self) -> Report {
        let broker = broker_check(&self.producer, &self.events_topic).await;
        Report::new(
            "dispatcher",
            vec![
                broker,
                Check::view("endpoints_view", self.endpoints.view().is_ready()),
                groups_check(),
            ],
        )
    }
}

/// The dispatcher's `metrics_listen` server: `/metrics`, `/healthz`, `/readyz`.
pub fn dispatcher_router(handle: PrometheusHandle, probe: DispatcherProbe) -> Router {
    metrics_router(handle)
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route(
            "/readyz",
            get(move || {
                let probe = probe.clone();
                async move {
                    let report = probe.readiness().await;
                    let status = if report.ready {
                        StatusCode::OK
                    } else {
                        StatusCode::SERVICE_UNAVAILABLE
                    };
                    (status, Json(report))
                }
            }),
        )
}

/// Refreshes `herald_ready` (through `check`) and `herald_api_keys_expiring` every few
/// seconds until `shutdown`, so they are current without anyone calling `/readyz`.
pub fn spawn_refresh<F, Fut>(keys: KeysView, check: F, shutdown: CancellationToken)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Report> + Send,
{
    tokio::spawn(async move {
        let mut was_ready = None;
        loop {
            let expiring = keys.expiring_within(herald_kafka::now_ms(), KEY_EXPIRY_WINDOW_MS);
            metrics::gauge!("herald_api_keys_expiring", "within" => "7d").set(expiring as f64);
            let report = check().await;
            if was_ready.replace(report.ready) == Some(true) && !report.ready {
                let failing: Vec<String> = report
                    .checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect();
                tracing::warn!(service = report.service, failing = %failing.join("; "), "Not ready.");
            } else if was_ready == Some(true) && report.ready {
                tracing::debug!(service = report.service, "Ready.");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    });
}
