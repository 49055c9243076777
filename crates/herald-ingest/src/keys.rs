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
use herald_http::{body, scope, ApiError, Authorized, Caller};
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
    /// Default: `ingest.key_ttl` (90 days).
    expires_in_seconds: Option<u64>,
    /// A key that never expires, only when asked for (and flagged in every listing).
    #[serde(default)]
    never_expires: bool,
    #[serde(default)]
    tenant: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollIn {
    overlap_seconds: Option<u64>,
}

fn to_json(record: &v1::KeyRecord, state: &IngestState) -> Value {
    let now = state.clock.now_ms();
    let live =
        record.revoked_at_ms == 0 && (record.expires_at_ms == 0 || record.expires_at_ms > now);
    let age_ms = (now - record.created_at_ms).max(0);
    let rotation_ms = state.config.key_rotation_period.as_millis() as i64;
    json!({
        "id": record.id,
        "name": record.name,
        "scopes": record.scopes,
        "tenant": record.tenant,
        "created_at_ms": record.created_at_ms,
        "expires_at_ms": (record.expires_at_ms != 0).then_some(record.expires_at_ms),
        "revoked_at_ms": (record.revoked_at_ms != 0).then_some(record.revoked_at_ms),
        "never_expires": record.expires_at_ms == 0,
        "state": if record.revoked_at_ms != 0 { "revoked" } else if live { "active" } else { "expired" },
        "age_days": age_ms / 86_400_000,
        "rotation_due": live && age_ms >= rotation_ms,
    })
}

/// 404 for a key a tenant-limited caller may not see (another tenant's, or an untenanted
/// one).
fn visible(record: v1::KeyRecord, caller: &Caller) -> Result<v1::KeyRecord, ApiError> {
    if caller.tenant.is_empty() || record.tenant == caller.tenant {
        Ok(record)
    } else {
        Err(ApiError::not_found(format!("no key {}", record.id)))
    }
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
        let scope = Scope::parse(scope).map_err(|e| ApiError::invalid(format!("scopes: {e}")))?;
        if !principal.has(scope) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("scopes: a key cannot grant `{scope}`, which it lacks itself"),
            ));
        }
    }
    let mut tenant = input.tenant;
    if !principal.tenant.is_empty() {
        if tenant.is_empty() {
            tenant = principal.tenant.clone();
        } else if tenant != principal.tenant {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "tenant: a key limited to a tenant creates keys for that tenant only",
            ));
        }
    }
    if input.never_expires && input.expires_in_seconds.is_some() {
        return Err(ApiError::invalid(
            "never_expires: cannot be combined with expires_in_seconds",
        ));
    }
    let now = state.clock.now_ms();
    let ttl_s = state.config.key_ttl.as_secs();
    let expires = match (input.never_expires, input.expires_in_seconds) {
        (true, _) => 0,
        (false, seconds) => {
            now + seconds.unwrap_or(ttl_s).clamp(1, 10 * 365 * 86_400) as i64 * 1_000
        }
    };
    let (record, token) = mint(input.name, input.scopes, tenant, expires, now);
    store(&state, &record).await?;
    state
        .audit(
            &principal,
            &record.tenant,
            "key.created",
            &record.id,
            json!({"scopes": record.scopes, "never_expires": expires == 0, "expires_at_ms": expires}),
        )
        .await;
    let mut out = to_json(&record, &state);
    out["token"] = json!(token.expose());
    Ok((StatusCode::CREATED, Json(out)))
}

/// `GET /v1/keys`: every key the caller may see, with age, expiry and whether rotation is
/// due.
pub async fn list(
    Authorized(caller, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
) -> Result<Json<Value>, ApiError> {
    let data: Vec<Value> = state
        .keys
        .list()
        .into_iter()
        .filter(|r| caller.tenant.is_empty() || r.tenant == caller.tenant)
        .map(|r| to_json(&r, &state))
        .collect();
    Ok(Json(json!({"data": data})))
}

/// `DELETE /v1/keys/{id}`: revocation, effective as soon as every view sees it.
pub async fn revoke(
    Authorized(principal, _): Authorized<scope::KeysAdmin>,
    State(state): State<IngestState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let mut record = visible(find(&state, &id)?, &principal)?;
    if record.revoked_at_ms != 0 {
        return Ok(StatusCode::NO_CONTENT); // already revoked: the first revocation stands
    }
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
    let mut old = visible(find(&state, &id)?, &principal)?;
    let now = state.clock.now_ms();
    if old.revoked_at_ms != 0 {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_revoked",
            format!(
                "key {} is revoked; create a new key instead of rolling it",
                old.id
            ),
        ));
    }
    if old.expires_at_ms != 0 && old.expires_at_ms <= now {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "key_expired",
            format!(
                "key {} has expired; create a new key instead of rolling it",
                old.id
            ),
        ));
    }
    let overlap_end = now + input.overlap_seconds.unwrap_or(3_600).min(30 * 86_400) as i64 * 1_000;
    // The new key starts a fresh lifetime; a key that never expired keeps not expiring.
    let expires = if old.expires_at_ms == 0 {
        0
    } else {
        now + state.config.key_ttl.as_millis() as i64
    };
    let (record, token) = mint(
        old.name.clone(),
        old.scopes.clone(),
        old.tenant.clone(),
        expires,
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
    let mut out = to_json(&record, &state);
    out["token"] = json!(token.expose());
    out["previous_expires_at_ms"] = json!(old.expires_at_ms);
    Ok((StatusCode::CREATED, Json(out)))
}
