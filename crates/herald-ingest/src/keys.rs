//! API key management: create (the token is shown once), list, revoke, roll with overlap.

use crate::state::IngestState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{delete, post};
use axum::Json;
use axum::Router;
use herald_core::apikey::{ApiKeyToken, Scope};
use herald_core::ids::KeyId;
use herald_http::{body, scope, ApiError, Authorized};
use herald_proto::{v1, Message};
use serde::Deserialize;
use serde_json::{json, Value};

/// `/v1/keys` (create, list), revoke and roll.
pub fn routes() -> Router<IngestState> {
    Router::new()
        .route("/v1/keys", post(create).get(list))
        .route("/v1/keys/{id}", delete(revoke))
        .route("/v1/keys/{id}/roll", post(roll))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    name: String,
    scopes: Vec<String>,
    expires_in_seconds: Option<u64>,
    #[serde(default)]
    tenant: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollIn {
    overlap_seconds: Option<u64>,
}

fn to_json(record: &v1::KeyRecord) -> Value {
    json!({
        "id": record.id,
        "name": record.name,
        "scopes": record.scopes,
        "tenant": record.tenant,
        "created_at_ms": record.created_at_ms,
        "expires_at_ms": (record.expires_at_ms != 0).then_some(record.expires_at_ms),
        "revoked_at_ms": (record.revoked_at_ms != 0).then_some(record.revoked_at_ms),
    })
}

/// Writes a key record and applies it locally.
pub async fn store(state: &IngestState, record: &v1::KeyRecord) -> Result<(), ApiError> {
    state
        .producer
        .send(
            &state.topics.keys(),
            record.id.as_bytes(),
            &record.encode_to_vec(),
        )
        .await?;
    state.keys.apply_local(record);
    Ok(())
}

/// Mints a key record and its token.
pub fn mint(
    name: String,
    scopes: Vec<String>,
    tenant: String,
    expires_at_ms: i64,
    now: i64,
) -> (v1::KeyRecord, ApiKeyToken) {
    let token = ApiKeyToken::generate(KeyId::generate(now));
    let record = v1::KeyRecord {
        id: token.id.to_string(),
        name,
        token_sha256: token.hash(),
        scopes,
        created_at_ms: now,
        expires_at_ms,
        revoked_at_ms: 0,
        tenant,
    };
    (record, token)
}

fn find(state: &IngestState, id: &str) -> Result<v1::KeyRecord, ApiError> {
    let id = KeyId::parse(id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))?;
    state
        .keys
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no key {id}")))
}

/// `POST /v1/keys`.
pub async fn create(
    Authorized(principal, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: CreateIn = body::json(&headers, body, state.config.max_body_bytes).await?;
    if input.name.trim().is_empty() || input.name.len() > 128 {
        return Err(ApiError::invalid("name: 1-128 characters"));
    }
    if input.scopes.is_empty() {
        return Err(ApiError::invalid("scopes: name at least one scope"));
    }
    for scope in &input.scopes {
        Scope::parse(scope).map_err(|e| ApiError::invalid(format!("scopes: {e}")))?;
    }
    let now = state.clock.now_ms();
    let expires = input
        .expires_in_seconds
        .map_or(0, |s| now + s.min(10 * 365 * 86_400) as i64 * 1_000);
    let (record, token) = mint(input.name, input.scopes, input.tenant, expires, now);
    store(&state, &record).await?;
    state
        .audit(
            &principal,
            &record.tenant,
            "key.created",
            &record.id,
            json!({"scopes": record.scopes}),
        )
        .await;
    let mut out = to_json(&record);
    out["token"] = json!(token.expose());
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /v1/keys`.
pub async fn list(
    _: Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
) -> Result<Json<Value>, ApiError> {
    let data: Vec<Value> = state.keys.list().iter().map(to_json).collect();
    Ok(Json(json!({"data": data})))
}

/// `DELETE /v1/keys/{id}`: revocation, effective as soon as every view sees it.
pub async fn revoke(
    Authorized(principal, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut record = find(&state, &id)?;
    record.revoked_at_ms = state.clock.now_ms();
    store(&state, &record).await?;
    state
        .audit(
            &principal,
            &record.tenant,
            "key.revoked",
            &record.id,
            json!({}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v1/keys/{id}/roll`: a new key with the same scopes; the old one expires after the
/// overlap.
pub async fn roll(
    Authorized(principal, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let input: RollIn = body::optional_json(&headers, body, state.config.max_body_bytes).await?;
    let mut old = find(&state, &id)?;
    let now = state.clock.now_ms();
    let overlap_end = now + input.overlap_seconds.unwrap_or(3_600).min(30 * 86_400) as i64 * 1_000;
    let (record, token) = mint(
        old.name.clone(),
        old.scopes.clone(),
        old.tenant.clone(),
        old.expires_at_ms,
        now,
    );
    store(&state, &record).await?;
    old.expires_at_ms = if old.expires_at_ms == 0 {
        overlap_end
    } else {
        old.expires_at_ms.min(overlap_end)
    };
    store(&state, &old).await?;
    state
        .audit(
            &principal,
            &old.tenant,
            "key.rolled",
            &old.id,
            json!({"new_key": record.id}),
        )
        .await;
    let mut out = to_json(&record);
    out["token"] = json!(token.expose());
    out["previous_expires_at_ms"] = json!(old.expires_at_ms);
    Ok((StatusCode::CREATED, Json(out)))
}
