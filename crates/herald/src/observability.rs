//! Logs and metrics set-up shared by every command; `/metrics`, `/healthz`, `/readyz` for the
//! dispatcher's `metrics_listen`; gauges refreshed in the background (readiness, keys expiring).
//!
//! Every crate describes its own metrics (the contract is in `deploy/README.md`) and starts
//! its fixed-label counters at 0; this module installs the recorder and calls them.

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::health::{broker_check, groups_check, Check, Report};
use herald_kafka::Producer;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use std::io::IsTerminal;

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
    spawn_upkeep(handle.clone());
    describe();
    herald_kafka::metrics::zero();
    Ok(handle)
}

/// How often histogram samples are folded into their buckets between scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The recorder keeps every histogram sample (attempt, produce and end-to-end latency, a few
/// per delivery) in a buffer until something folds them into the buckets, and without an
/// HTTP exporter of its own only a scrape did: a dispatcher nobody scraped grew by about
/// 17 MB per 300,000 deliveries (heaptrack, benches/README.md). A thread does it on a fixed
/// period instead, outside the async runtime, for as long as the process lives.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_EVERY);
            handle.run_upkeep();
        });
    if let Err(err) = spawned {
        tracing::warn!(error = %err, "Cannot start the metrics upkeep thread; histograms are folded only when scraped.");
    }
}

fn describe() {
    herald_kafka::metrics::describe();
    herald_http::metrics::describe();
    herald_ingest::metrics::describe();
    herald_dispatcher::metrics::describe();
    herald_replay::metrics::describe();
}

/// Starts the ingest counters at 0.
pub fn zero_ingest() {
    herald_http::metrics::zero();
    herald_ingest::metrics::zero();
}

/// Starts the dispatcher counters at 0.
pub fn zero_dispatcher() {
    herald_dispatcher::metrics::zero();
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
                Check::endpoints_readable(&self.endpoints),
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
