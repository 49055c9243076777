//! `/v1/keys`: thin HTTP faces over [`crate::key_admin`] (create, list, revoke, roll).

use crate::key_admin::{self, key_json, Manager, NewKey};
use crate::state::IngestState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::{Json, Router};
use herald_http::{body, scope, ApiError, Authorized};
use serde::Deserialize;
use serde_json::{json, Value};

/// `/v1/keys` (create, list), revoke and roll.
pub fn routes() -> Router<IngestState> {
    Router::new()
        .route("/v1/keys", post(create).get(list))
        .route("/v1/keys/{id}", delete(revoke))
        .route("/v1/keys/{id}/roll", post(roll))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollIn {
    overlap_seconds: Option<u64>,
}

/// `POST /v1/keys`.
pub async fn create(
    Authorized(caller, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: NewKey = body::json(&headers, body, state.config.max_body_bytes).await?;
    let (record, token) = key_admin::create_key(&state, Manager::Caller(&caller), input).await?;
    let mut out = key_json(&record, &state);
    out["token"] = json!(token.expose());
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /v1/keys`: every key the caller may see, with age, expiry and whether rotation is
/// due.
pub async fn list(
    Authorized(caller, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
) -> Result<Json<Value>, ApiError> {
    let data: Vec<Value> = key_admin::list_keys(&state, Manager::Caller(&caller))
        .iter()
        .map(|r| key_json(r, &state))
        .collect();
    Ok(Json(json!({"data": data})))
}

/// `DELETE /v1/keys/{id}`: revocation, effective as soon as every view sees it.
pub async fn revoke(
    Authorized(caller, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    key_admin::revoke_key(&state, Manager::Caller(&caller), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/keys/{id}/roll`: a new key with the same scopes; the old one expires after the
/// overlap.
pub async fn roll(
    Authorized(caller, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: RollIn = body::optional_json(&headers, body, state.config.max_body_bytes).await?;
    let (record, token, old) =
        key_admin::roll_key(&state, Manager::Caller(&caller), &id, input.overlap_seconds).await?;
    let mut out = key_json(&record, &state);
    out["token"] = json!(token.expose());
    out["previous_expires_at_ms"] = json!(old.expires_at_ms);
    Ok((StatusCode::CREATED, Json(out)))
}
