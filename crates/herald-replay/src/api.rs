//! Replay and dead-letter routes of the admin API:
//!
//! - `POST /v1/replays` (`replay:run`): plan (`"dry_run": true`, 200 with counts and a sample)
//!   or start a run in the background (202 with its id). A repeated request with the same
//!   `"id"` returns the existing run instead of starting another.
//! - `GET /v1/replays`, `GET /v1/replays/{id}` (`replay:run`): runs and their progress.
//! - `POST /v1/replays/{id}/resume` (`replay:run`): resume an interrupted run.
//! - `GET /v1/dead-letters` (`deliveries:read`): filters, status, cursor pagination.
//! - `GET /v1/dead-letters/{delivery_id}` (`deliveries:read`): every dead letter of a delivery.

use crate::browse::{self, Status};
use crate::filter::parse_replay_id;
use crate::request::{run_json, DlqQuery, ReplayRequest};
use crate::service::{Replays, Started};
use axum::body::Body;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_core::clock::SharedClock;
use herald_http::{body, scope, ApiError, Authorized, Caller};
use herald_kafka::keys::KeysView;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;

/// What the routes need.
#[derive(Clone)]
pub struct ReplayState {
    pub replays: Arc<Replays>,
    pub keys: KeysView,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

impl FromRef<ReplayState> for KeysView {
    fn from_ref(state: &ReplayState) -> Self {
        state.keys.clone()
    }
}

impl FromRef<ReplayState> for SharedClock {
    fn from_ref(state: &ReplayState) -> Self {
        state.replays.clock().clone()
    }
}

/// The routes, ready to merge with the other crates' and finish with [`herald_http::app`].
pub fn router(state: ReplayState) -> Router {
    Router::new()
        .route("/v1/replays", post(create).get(list))
        .route("/v1/replays/{id}", get(show))
        .route("/v1/replays/{id}/resume", post(resume))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/dead-letters/{delivery_id}", get(dead_letter))
        .with_state(state)
}

/// The API answer for a replay error.
pub fn api_error(err: crate::Error) -> ApiError {
    use crate::Error as E;
    let message = err.to_string();
    let with = |status, code| ApiError::new(status, code, message.clone());
    match err {
        E::Invalid(message) => ApiError::invalid(message),
        E::UnknownEndpoint(_) => with(StatusCode::UNPROCESSABLE_ENTITY, "unknown_endpoint"),
        E::UnknownRun(_) => ApiError::not_found(message),
        E::IdTaken(_) => with(StatusCode::CONFLICT, "id_taken"),
        E::Busy { .. } => with(StatusCode::CONFLICT, "replay_running"),
        E::NotResumable { .. } => with(StatusCode::CONFLICT, "not_resumable"),
        E::Failed(_) => with(StatusCode::INTERNAL_SERVER_ERROR, "replay_failed"),
        E::Kafka(inner) => inner.into(),
        E::MissingTopic(_) | E::Stalled { .. } | E::Interrupted => {
            with(StatusCode::SERVICE_UNAVAILABLE, "broker_unavailable")
        }
    }
}

/// The tenant a request may name: the caller's own when it is limited to one (a request for
/// another is 403), anything otherwise.
fn tenant_for(caller: &Caller, asked: Option<String>) -> Result<Option<String>, ApiError> {
    if caller.tenant.is_empty() {
        return Ok(asked);
    }
    match asked {
        Some(t) if t != caller.tenant => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("tenant: this key is limited to tenant `{}`", caller.tenant),
        )),
        _ => Ok(Some(caller.tenant.clone())),
    }
}

/// Whether `caller` may see `run` (a tenant-limited key sees its tenant's runs only).
fn sees(caller: &Caller, run: &herald_proto::v1::ReplayProgress) -> bool {
    caller.tenant.is_empty() || crate::run::run_tenant(run) == caller.tenant
}

fn bad_id(err: crate::Error) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", err.to_string())
}

/// `POST /v1/replays`.
async fn create(
    Authorized(caller, _): Authorized<scope::ReplayRun>,
    State(state): State<ReplayState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut input: ReplayRequest = body::json(&headers, body, state.max_body_bytes).await?;
    input.tenant = tenant_for(&caller, input.tenant.take())?;
    let started = state
        .replays
        .start(&input, &caller.actor())
        .await
        .map_err(api_error)?;
    Ok(match started {
        Started::Planned(plan) => (StatusCode::OK, Json(json!({"dry_run": true, "plan": plan}))),
        Started::Existing(run) => (StatusCode::OK, Json(run_json(&run))),
        Started::Running(run) => (StatusCode::ACCEPTED, Json(run_json(&run))),
    })
}

/// `GET /v1/replays`.
async fn list(
    Authorized(caller, _): Authorized<scope::ReplayRun>,
    State(state): State<ReplayState>,
) -> Result<Json<Value>, ApiError> {
    let runs = state.replays.runs().await.map_err(api_error)?;
    let data: Vec<Value> = runs
        .list()
        .iter()
        .filter(|r| sees(&caller, r))
        .map(run_json)
        .collect();
    Ok(Json(json!({"data": data})))
}

/// `GET /v1/replays/{id}`.
async fn show(
    Authorized(caller, _): Authorized<scope::ReplayRun>,
    State(state): State<ReplayState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_replay_id(&id).map_err(bad_id)?;
    let runs = state.replays.runs().await.map_err(api_error)?;
    let run = runs
        .get(id.as_str())
        .filter(|r| sees(&caller, r))
        .ok_or_else(|| ApiError::not_found(format!("no replay run {id}")))?;
    Ok(Json(run_json(&run)))
}

/// `POST /v1/replays/{id}/resume`.
async fn resume(
    Authorized(caller, _): Authorized<scope::ReplayRun>,
    State(state): State<ReplayState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    parse_replay_id(&id).map_err(bad_id)?;
    let runs = state.replays.runs().await.map_err(api_error)?;
    if !runs.get(&id).is_some_and(|r| sees(&caller, &r)) {
        return Err(ApiError::not_found(format!("no replay run {id}")));
    }
    match state
        .replays
        .resume(&id, &caller.actor())
        .await
        .map_err(api_error)?
    {
        Some(run) => Ok((StatusCode::ACCEPTED, Json(run_json(&run)))),
        None => Err(ApiError::new(
            StatusCode::CONFLICT,
            "replay_in_progress",
            "a replay is running in this process; resume once it finished",
        )),
    }
}

/// Query of `GET /v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLettersQuery {
    endpoint: Option<String>,
    event_type: Option<String>,
    tenant: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// `pending` (default), `redriven`, `all`.
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/dead-letters`.
async fn dead_letters(
    Authorized(caller, _): Authorized<scope::DeliveriesRead>,
    State(state): State<ReplayState>,
    query: Result<Query<DeadLettersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let filter = DlqQuery {
        endpoint: query.endpoint,
        event_type: query.event_type,
        tenant: tenant_for(&caller, query.tenant)?,
        reason: query.reason,
        since: query.since,
        until: query.until,
    }
    .filter(state.replays.clock().now_ms())
    .map_err(api_error)?;
    let status = Status::parse(query.status.as_deref().unwrap_or("pending")).map_err(api_error)?;
    let runs = state.replays.runs().await.map_err(api_error)?;
    let (page, stats) = browse::list(
        state.replays.kafka(),
        &runs,
        &filter,
        status,
        query.limit.unwrap_or(50),
        query.cursor.as_deref(),
    )
    .await
    .map_err(api_error)?;
    let data: Vec<Value> = page.entries.iter().map(|e| e.to_json(false)).collect();
    Ok(Json(json!({
        "data": data,
        "next_cursor": page.next_cursor,
        "total": page.total,
        "stats": stats,
    })))
}

/// `GET /v1/dead-letters/{delivery_id}`.
async fn dead_letter(
    Authorized(caller, _): Authorized<scope::DeliveriesRead>,
    State(state): State<ReplayState>,
    Path(delivery_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    herald_core::ids::DeliveryId::parse(&delivery_id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))?;
    let runs = state.replays.runs().await.map_err(api_error)?;
    let found: Vec<Value> = browse::find(state.replays.kafka(), &runs, &delivery_id)
        .await
        .map_err(api_error)?
        .iter()
        .filter(|e| {
            let tenant = e
                .letter
                .task
                .as_ref()
                .and_then(|t| t.event.as_ref())
                .map(|ev| ev.tenant.as_str());
            caller.tenant.is_empty() || tenant == Some(caller.tenant.as_str())
        })
        .map(|e| e.to_json(true))
        .collect();
    if found.is_empty() {
        return Err(ApiError::not_found(format!(
            "no dead letter of delivery {delivery_id}"
        )));
    }
    Ok(Json(json!({"data": found})))
}
