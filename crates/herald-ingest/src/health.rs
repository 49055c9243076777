//! `/healthz` (the process answers) and `/readyz` (views caught up with their topics).

use crate::service::IngestState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde_json::{json, Value};

/// `GET /healthz`.
pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when ready, 503 with the failing checks otherwise.
pub async fn readyz(State(state): State<IngestState>) -> (StatusCode, Json<Value>) {
    let endpoints = state.endpoints.view().is_ready();
    let keys = state.keys.view().is_ready();
    let ready = endpoints && keys;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"ready": ready, "checks": {"endpoints_view": endpoints, "keys_view": keys}})),
    )
}
