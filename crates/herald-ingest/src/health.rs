//! `/healthz` (the process answers) and `/readyz` (the broker answers a metadata request
//! for the events topic and the endpoints and keys views caught up with their topics).

use crate::state::IngestState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Json;
use axum::Router;
use herald_kafka::health::{broker_check, Check, Report};
use serde_json::{json, Value};

/// `GET /healthz`, `GET /readyz`.
pub fn routes() -> Router<IngestState> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
}

/// `GET /healthz`: 200 while the process serves requests.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// Checks readiness now and sets `herald_ready{service="ingest"}`.
pub async fn readiness(state: &IngestState) -> Report {
    let broker = broker_check(&state.producer, state.topics.events()).await;
    Report::new(
        "ingest",
        vec![
            broker,
            Check::view("endpoints_view", state.endpoints.view().is_ready()),
            Check::endpoints_readable(&state.endpoints),
            Check::view("keys_view", state.keys.view().is_ready()),
        ],
    )
}

/// `GET /readyz`: 200 when ready, 503 otherwise; the body lists every check.
pub async fn readyz(State(state): State<IngestState>) -> (StatusCode, Json<Report>) {
    let report = readiness(&state).await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(report))
}
