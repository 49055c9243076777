//! Endpoint management: create (the secret is shown once), list, get, update, rotate the
//! secret with overlap, delete. Each change is a full state record in `endpoints.v1`.

use crate::auth;
use crate::body;
use crate::error::ApiError;
use crate::service::{audit, IngestState};
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use herald_core::apikey::Scope;
use herald_core::endpoint::{validate_filters, validate_url, Endpoint, SigningKey};
use herald_core::ids::EndpointId;
use herald_core::signing::Secret;
use herald_proto::{convert, Message};
use serde::Deserialize;
use serde_json::{json, Value};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateIn {
    url: String,
    #[serde(default)]
    event_types: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    tenant: String,
    secret: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchIn {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateIn {
    overlap_seconds: Option<u64>,
}

/// The public view of an endpoint (never its secrets).
pub fn to_json(endpoint: &Endpoint, now: i64) -> Value {
    json!({
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "tenant": endpoint.tenant,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since_ms": endpoint.failing_since,
        "secrets_active": endpoint.active_secrets(now).len(),
        "created_at_ms": endpoint.created_at,
        "updated_at_ms": endpoint.updated_at,
    })
}

fn parse_id(id: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))
}

fn check(url: &str, filters: &[String]) -> Result<(), ApiError> {
    validate_url(url).map_err(|e| ApiError::invalid(format!("url: {e}")))?;
    validate_filters(filters).map_err(|e| ApiError::invalid(format!("event_types: {e}")))
}

/// Writes a full state and applies it to the local view.
async fn store(state: &IngestState, endpoint: &Endpoint, version: u64) -> Result<(), ApiError> {
    let record = convert::endpoint_to_state(endpoint, version, state.endpoints.master_key());
    state
        .producer
        .send(
            &state.topics.endpoints(),
            endpoint.id.as_str().as_bytes(),
            &record.encode_to_vec(),
        )
        .await?;
    state.endpoints.apply_local(&endpoint.id, Some(&record));
    Ok(())
}

/// `POST /v1/endpoints`.
pub async fn create(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = auth::require(&state, &headers, Scope::EndpointsWrite)?;
    let input: CreateIn = body::json(&headers, body, state.config.max_body_bytes).await?;
    check(&input.url, &input.event_types)?;
    let secret = match &input.secret {
        Some(text) => Secret::parse(text).map_err(|e| ApiError::invalid(format!("secret: {e}")))?,
        None => Secret::generate(),
    };
    let now = herald_kafka::now_ms();
    let endpoint = Endpoint {
        id: EndpointId::generate(now),
        url: input.url,
        description: input.description,
        event_types: input.event_types,
        tenant: if principal.tenant.is_empty() {
            input.tenant
        } else {
            principal.tenant.clone()
        },
        enabled: true,
        disabled_reason: String::new(),
        failing_since: None,
        signing_keys: vec![SigningKey {
            secret: secret.clone(),
            expires_at: None,
        }],
        created_at: now,
        updated_at: now,
    };
    store(&state, &endpoint, 1).await?;
    audit(
        &state,
        &principal,
        "endpoint.created",
        endpoint.id.as_str(),
        json!({"url": endpoint.url}),
    )
    .await;
    let mut out = to_json(&endpoint, now);
    out["secret"] = json!(secret.expose());
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /v1/endpoints`.
pub async fn list(
    State(state): State<IngestState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::require(&state, &headers, Scope::EndpointsRead)?;
    let now = herald_kafka::now_ms();
    let data: Vec<Value> = state
        .endpoints
        .list()
        .iter()
        .map(|e| to_json(e, now))
        .collect();
    Ok(Json(json!({"data": data})))
}

/// `GET /v1/endpoints/{id}`.
pub async fn get(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth::require(&state, &headers, Scope::EndpointsRead)?;
    let id = parse_id(&id)?;
    let entry = state
        .endpoints
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id}")))?;
    Ok(Json(to_json(&entry.endpoint, herald_kafka::now_ms())))
}

/// `PATCH /v1/endpoints/{id}`.
pub async fn update(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let principal = auth::require(&state, &headers, Scope::EndpointsWrite)?;
    let id = parse_id(&id)?;
    let input: PatchIn = body::json(&headers, body, state.config.max_body_bytes).await?;
    let entry = state
        .endpoints
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id}")))?;
    let mut endpoint = (*entry.endpoint).clone();
    endpoint.url = input.url.unwrap_or(endpoint.url);
    endpoint.event_types = input.event_types.unwrap_or(endpoint.event_types);
    endpoint.description = input.description.unwrap_or(endpoint.description);
    if let Some(enabled) = input.enabled {
        if enabled && !endpoint.enabled {
            // Re-enabled by an operator: the failure period starts over.
            endpoint.failing_since = None;
        }
        endpoint.enabled = enabled;
        endpoint.disabled_reason = if enabled {
            String::new()
        } else {
            "manual".into()
        };
    }
    check(&endpoint.url, &endpoint.event_types)?;
    endpoint.updated_at = herald_kafka::now_ms();
    store(&state, &endpoint, entry.version + 1).await?;
    audit(
        &state,
        &principal,
        "endpoint.updated",
        id.as_str(),
        json!({"enabled": endpoint.enabled}),
    )
    .await;
    Ok(Json(to_json(&endpoint, endpoint.updated_at)))
}

/// `POST /v1/endpoints/{id}/secret/rotate`: the new secret signs at once; the old one keeps
/// signing too (a second signature) until the overlap ends.
pub async fn rotate(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let principal = auth::require(&state, &headers, Scope::EndpointsWrite)?;
    let id = parse_id(&id)?;
    let input: RotateIn = body::optional_json(&headers, body, state.config.max_body_bytes).await?;
    let overlap_ms = input.overlap_seconds.unwrap_or(86_400).min(30 * 86_400) as i64 * 1_000;
    let entry = state
        .endpoints
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id}")))?;
    let now = herald_kafka::now_ms();
    let mut endpoint = (*entry.endpoint).clone();
    let previous_expires_at = now + overlap_ms;
    let mut keys: Vec<SigningKey> = endpoint
        .signing_keys
        .into_iter()
        .filter(|k| k.expires_at.is_none_or(|at| at > now))
        .map(|mut k| {
            k.expires_at = Some(
                k.expires_at
                    .map_or(previous_expires_at, |at| at.min(previous_expires_at)),
            );
            k
        })
        .collect();
    let secret = Secret::generate();
    keys.insert(
        0,
        SigningKey {
            secret: secret.clone(),
            expires_at: None,
        },
    );
    endpoint.signing_keys = keys;
    endpoint.updated_at = now;
    store(&state, &endpoint, entry.version + 1).await?;
    audit(
        &state,
        &principal,
        "endpoint.secret_rotated",
        id.as_str(),
        json!({"overlap_ms": overlap_ms}),
    )
    .await;
    Ok(Json(
        json!({"secret": secret.expose(), "previous_expires_at_ms": previous_expires_at}),
    ))
}

/// `DELETE /v1/endpoints/{id}`.
pub async fn delete(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let principal = auth::require(&state, &headers, Scope::EndpointsWrite)?;
    let id = parse_id(&id)?;
    if state.endpoints.get(&id).is_none() {
        return Err(ApiError::not_found(format!("no endpoint {id}")));
    }
    // The health records first: if the second write fails, nothing is deleted yet.
    let health_key = herald_kafka::endpoints::health_key(&id);
    state
        .producer
        .send_tombstone(&state.topics.endpoints(), health_key.as_bytes())
        .await?;
    state
        .producer
        .send_tombstone(&state.topics.endpoints(), id.as_str().as_bytes())
        .await?;
    state.endpoints.apply_local(&id, None);
    audit(
        &state,
        &principal,
        "endpoint.deleted",
        id.as_str(),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
