//! Endpoint management: create (the secret is shown once), list, get, update, rotate the
//! secret with overlap, delete. Each change is a full state record in `endpoints.v1`.
//!
//! Changes are optimistic: each record carries the next version of the endpoint. A request
//! may name the version it read (`If-Match: "<version>"`, as `ETag` and `version` show it)
//! and gets 412 when the endpoint moved on. After writing, the handler reads the topic up to
//! its own record: when another change of the same version landed after it (another admin,
//! another ingest instance), its own change is no longer in effect and it answers 409
//! instead of a success that silently did not stick (say, a rotated secret overwritten by a
//! concurrent edit made from the old state).

use crate::state::IngestState;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::header::IF_MATCH;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{self, post};
use axum::Json;
use axum::Router;
use herald_core::endpoint::{
    validate_filters, validate_url, Endpoint, PayloadFormat, MAX_DESCRIPTION_CHARS,
};
use herald_core::ids::EndpointId;
use herald_core::signing::Secret;
use herald_http::{body, scope, ApiError, Authorized, Caller};
use herald_kafka::endpoints::Entry;
use herald_proto::{convert, Message};
use serde::Deserialize;
use serde_json::{json, Value};

/// `/v1/endpoints` and `/v1/endpoints/{id}` (get, patch, delete, secret rotation).
pub fn routes() -> Router<IngestState> {
    Router::new()
        .route("/v1/endpoints", post(create).get(list))
        .route(
            "/v1/endpoints/{id}",
            routing::get(get).patch(update).delete(delete),
        )
        .route("/v1/endpoints/{id}/secret/rotate", post(rotate))
}

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
    /// `raw` (default) or `standard`.
    payload_format: Option<String>,
    /// Most delivery requests a second (absent or 0: no limit).
    rate_limit: Option<u32>,
    /// The tenant's operational endpoint (at most one per tenant): Herald's own events
    /// about the tenant's endpoints and deliveries, nothing else.
    #[serde(default)]
    operational: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PatchIn {
    url: Option<String>,
    event_types: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>,
    payload_format: Option<String>,
    /// 0 lifts the limit.
    rate_limit: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateIn {
    overlap_seconds: Option<u64>,
}

/// How long a write waits to see itself in the endpoints topic.
const CONFIRM_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The public view of an endpoint (never its secrets).
pub fn to_json(endpoint: &Endpoint, version: u64, now: i64) -> Value {
    json!({
        "id": endpoint.id,
        "version": version,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": endpoint.event_types,
        "tenant": endpoint.tenant,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "failing_since_ms": endpoint.failing_since,
        "payload_format": endpoint.payload_format.as_str(),
        "rate_limit": endpoint.rate_limit,
        "operational": endpoint.operational,
        "secrets_active": endpoint.active_secrets(now).len(),
        "created_at_ms": endpoint.created_at,
        "updated_at_ms": endpoint.updated_at,
    })
}

/// A requested delivery rate limit: 0 is none.
fn rate_limit(per_sec: u32) -> Result<Option<u32>, ApiError> {
    if per_sec == 0 {
        return Ok(None);
    }
    herald_core::throttle::validate_rate(per_sec)
        .map(Some)
        .map_err(|e| ApiError::invalid(format!("rate_limit: {e} (0: no limit)")))
}

fn payload_format(text: Option<&str>) -> Result<PayloadFormat, ApiError> {
    match text {
        None => Ok(PayloadFormat::Raw),
        Some("") => Err(ApiError::invalid("payload_format: `raw` or `standard`")),
        Some(t) => PayloadFormat::parse(t).map_err(|e| ApiError::invalid(e.to_string())),
    }
}

fn parse_id(id: &str) -> Result<EndpointId, ApiError> {
    EndpointId::parse(id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))
}

fn check(url: &str, filters: &[String], description: &str) -> Result<(), ApiError> {
    validate_url(url).map_err(|e| ApiError::invalid(format!("url: {e}")))?;
    validate_filters(filters).map_err(|e| ApiError::invalid(format!("event_types: {e}")))?;
    let chars = description.chars().count();
    if chars > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::invalid(format!(
            "description: at most {MAX_DESCRIPTION_CHARS} characters, got {chars}"
        )));
    }
    Ok(())
}

/// The endpoint as `caller` may see it: 404 when unknown or another tenant's (a key limited
/// to a tenant sees only that tenant's endpoints).
fn visible(state: &IngestState, caller: &Caller, id: &EndpointId) -> Result<Entry, ApiError> {
    state
        .endpoints
        .get(id)
        .filter(|e| caller.tenant.is_empty() || e.endpoint.tenant == caller.tenant)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id}")))
}

/// The endpoint and its version; 404 when unknown (or another tenant's), 412 when `If-Match`
/// names another version.
fn current(
    state: &IngestState,
    caller: &Caller,
    headers: &HeaderMap,
    id: &EndpointId,
) -> Result<Entry, ApiError> {
    let entry = visible(state, caller, id)?;
    let Some(expected) = headers.get(IF_MATCH) else {
        return Ok(entry);
    };
    let expected = expected.to_str().unwrap_or_default().trim();
    if expected == "*" {
        return Ok(entry);
    }
    let version: u64 = expected
        .trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map_err(|_| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_if_match",
                format!("If-Match: expected an endpoint version such as \"3\", got `{expected}`"),
            )
        })?;
    if version != entry.version {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "version_mismatch",
            format!(
                "endpoint {id} is at version {}, not {version}: read it again",
                entry.version
            ),
        ));
    }
    Ok(entry)
}

/// Writes a full state, then reads the topic up to it: 409 when a concurrent change built on
/// the same version landed before it (the first one in the log stands, in every view).
/// Nothing is applied to the view by hand: it shows what the log says, in log order.
pub(crate) async fn store(
    state: &IngestState,
    endpoint: &Endpoint,
    version: u64,
) -> Result<(), ApiError> {
    let record = convert::endpoint_to_state(endpoint, version, state.endpoints.master_key());
    state
        .producer
        .send(
            &state.topics.endpoints(),
            endpoint.id.as_str().as_bytes(),
            &record.encode_to_vec(),
        )
        .await?;
    let view = state.endpoints.view();
    if !view.wait_synced(herald_kafka::now_ms(), CONFIRM_WAIT).await {
        // Acknowledged but not read back in time: it stands unless a conflict shows up later.
        tracing::warn!(endpoint_id = %endpoint.id, "Endpoint change written but not confirmed.");
        return Ok(());
    }
    match state.endpoints.get(&endpoint.id) {
        Some(now) if now.version > version => Ok(()),
        Some(now) if now.version == version && same_config(&now.endpoint, endpoint) => Ok(()),
        now => Err(ApiError::new(
            StatusCode::CONFLICT,
            "concurrent_change",
            format!(
                "endpoint {} was changed by another request at the same time (now {}); this change is not in effect: read it again and retry",
                endpoint.id,
                now.map_or("deleted".to_owned(), |e| format!("version {}", e.version)),
            ),
        )),
    }
}

/// Whether two states carry the same configuration (health fields aside).
fn same_config(a: &Endpoint, b: &Endpoint) -> bool {
    a.url == b.url
        && a.event_types == b.event_types
        && a.description == b.description
        && a.enabled == b.enabled
        && a.payload_format == b.payload_format
        && a.rate_limit == b.rate_limit
        && a.operational == b.operational
        && a.signing_keys == b.signing_keys
        && a.updated_at == b.updated_at
}

/// The `ETag` of an endpoint version.
fn etag(version: u64) -> [(axum::http::HeaderName, String); 1] {
    [(axum::http::header::ETAG, format!("\"{version}\""))]
}

/// `POST /v1/endpoints`.
pub async fn create(
    Authorized(principal, _): Authorized<scope::EndpointsWrite>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, String); 1],
        Json<Value>,
    ),
    ApiError,
> {
    let input: CreateIn = body::json(&headers, body, state.config.max_body_bytes).await?;
    check(&input.url, &input.event_types, &input.description)?;
    let secret = match &input.secret {
        Some(text) => Secret::parse(text).map_err(|e| ApiError::invalid(format!("secret: {e}")))?,
        None => Secret::generate(),
    };
    let now = state.clock.now_ms();
    let tenant = if principal.tenant.is_empty() {
        input.tenant
    } else if input.tenant.is_empty() || input.tenant == principal.tenant {
        principal.tenant.clone()
    } else {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "tenant: this key is limited to tenant `{}`",
                principal.tenant
            ),
        ));
    };
    let limit = state.config.max_endpoints_per_tenant;
    let count = state
        .endpoints
        .list()
        .iter()
        .filter(|e| e.tenant == tenant)
        .count();
    if count >= limit {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "too_many_endpoints",
            format!(
                "tenant `{tenant}` has {count} endpoints, the most ingest.max_endpoints_per_tenant allows ({limit}); delete one first"
            ),
        ));
    }
    // An operational endpoint gets the Standard Webhooks payload unless told otherwise: its
    // events are Herald's, and the `type` in the body is how it tells them apart.
    let payload_format = match (input.operational, input.payload_format.as_deref()) {
        (true, None) => PayloadFormat::Standard,
        (_, text) => payload_format(text)?,
    };
    let rate_limit = rate_limit(input.rate_limit.unwrap_or(0))?;
    if input.operational {
        if let Some(existing) = state
            .endpoints
            .list()
            .iter()
            .find(|e| e.operational && e.tenant == tenant)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "operational_endpoint_exists",
                format!(
                    "tenant `{tenant}` has an operational endpoint already ({}); change or delete it",
                    existing.id
                ),
            ));
        }
        for filter in &input.event_types {
            let known = herald_core::event::OPERATIONAL_TYPES
                .iter()
                .any(|t| herald_core::event::filter_matches(filter, t));
            if !known {
                return Err(ApiError::invalid(format!(
                    "event_types: `{filter}` matches none of the operational events ({})",
                    herald_core::event::OPERATIONAL_TYPES.join(", ")
                )));
            }
        }
    }
    let endpoint = Endpoint {
        description: input.description,
        event_types: input.event_types,
        tenant,
        payload_format,
        rate_limit,
        operational: input.operational,
        ..Endpoint::new(EndpointId::generate(now), input.url, secret.clone(), now)
    };
    store(&state, &endpoint, 1).await?;
    state
        .audit(
            &principal.actor(),
            &endpoint.tenant,
            "endpoint.created",
            endpoint.id.as_str(),
            json!({"url": herald_core::endpoint::redacted_url(&endpoint.url), "rate_limit": endpoint.rate_limit, "operational": endpoint.operational}),
        )
        .await;
    let mut out = to_json(&endpoint, 1, now);
    out["secret"] = json!(secret.expose());
    Ok((StatusCode::CREATED, etag(1), Json(out)))
}

/// `GET /v1/endpoints`.
pub async fn list(
    Authorized(caller, _): Authorized<scope::EndpointsRead>,
    State(state): State<IngestState>,
) -> Result<Json<Value>, ApiError> {
    let now = state.clock.now_ms();
    let data: Vec<Value> = state
        .endpoints
        .list_entries()
        .iter()
        .filter(|e| caller.tenant.is_empty() || e.endpoint.tenant == caller.tenant)
        .map(|e| to_json(&e.endpoint, e.version, now))
        .collect();
    Ok(Json(json!({"data": data})))
}

/// `GET /v1/endpoints/{id}`.
pub async fn get(
    Authorized(caller, _): Authorized<scope::EndpointsRead>,
    State(state): State<IngestState>,
    Path(id): Path<String>,
) -> Result<([(axum::http::HeaderName, String); 1], Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let entry = visible(&state, &caller, &id)?;
    Ok((
        etag(entry.version),
        Json(to_json(
            &entry.endpoint,
            entry.version,
            state.clock.now_ms(),
        )),
    ))
}

/// `PATCH /v1/endpoints/{id}`.
pub async fn update(
    Authorized(principal, _): Authorized<scope::EndpointsWrite>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<([(axum::http::HeaderName, String); 1], Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let input: PatchIn = body::json(&headers, body, state.config.max_body_bytes).await?;
    let entry = current(&state, &principal, &headers, &id)?;
    let mut endpoint = (*entry.endpoint).clone();
    endpoint.url = input.url.unwrap_or(endpoint.url);
    endpoint.event_types = input.event_types.unwrap_or(endpoint.event_types);
    endpoint.description = input.description.unwrap_or(endpoint.description);
    if let Some(format) = input.payload_format.as_deref() {
        endpoint.payload_format = payload_format(Some(format))?;
    }
    if let Some(per_sec) = input.rate_limit {
        endpoint.rate_limit = rate_limit(per_sec)?;
    }
    let now = state.clock.now_ms();
    if let Some(enabled) = input.enabled {
        endpoint.set_enabled_by_operator(enabled, now);
    }
    check(&endpoint.url, &endpoint.event_types, &endpoint.description)?;
    endpoint.updated_at = now;
    store(&state, &endpoint, entry.version + 1).await?;
    state
        .audit(
            &principal.actor(),
            &endpoint.tenant,
            "endpoint.updated",
            id.as_str(),
            json!({"enabled": endpoint.enabled, "payload_format": endpoint.payload_format.as_str(), "rate_limit": endpoint.rate_limit}),
        )
        .await;
    let version = entry.version + 1;
    Ok((
        etag(version),
        Json(to_json(&endpoint, version, endpoint.updated_at)),
    ))
}

/// `POST /v1/endpoints/{id}/secret/rotate`: the new secret signs at once; the old one keeps
/// signing too (a second signature) until the overlap ends.
pub async fn rotate(
    Authorized(principal, _): Authorized<scope::EndpointsWrite>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<([(axum::http::HeaderName, String); 1], Json<Value>), ApiError> {
    let id = parse_id(&id)?;
    let input: RotateIn = body::optional_json(&headers, body, state.config.max_body_bytes).await?;
    let overlap_ms = input.overlap_seconds.unwrap_or(86_400).min(30 * 86_400) as i64 * 1_000;
    let entry = current(&state, &principal, &headers, &id)?;
    let now = state.clock.now_ms();
    let mut endpoint = (*entry.endpoint).clone();
    let previous_expires_at = now + overlap_ms;
    let secret = Secret::generate();
    endpoint.rotate_secret(secret.clone(), now, overlap_ms);
    store(&state, &endpoint, entry.version + 1).await?;
    state
        .audit(
            &principal.actor(),
            &endpoint.tenant,
            "endpoint.secret_rotated",
            id.as_str(),
            json!({"overlap_ms": overlap_ms}),
        )
        .await;
    let version = entry.version + 1;
    Ok((
        etag(version),
        Json(json!({
            "secret": secret.expose(),
            "previous_expires_at_ms": previous_expires_at,
            "version": version,
        })),
    ))
}

/// `DELETE /v1/endpoints/{id}`.
pub async fn delete(
    Authorized(principal, _): Authorized<scope::EndpointsWrite>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    let entry = current(&state, &principal, &headers, &id)?;
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
    // Read-your-writes: the view has read the tombstone before the answer goes out.
    if !state
        .endpoints
        .view()
        .wait_synced(herald_kafka::now_ms(), CONFIRM_WAIT)
        .await
    {
        tracing::warn!(endpoint_id = %id, "Endpoint deletion written but not yet read back.");
    }
    state
        .audit(
            &principal.actor(),
            &entry.endpoint.tenant,
            "endpoint.deleted",
            id.as_str(),
            json!({}),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}
