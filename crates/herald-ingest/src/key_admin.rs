//! API key management, the use cases behind `/v1/keys` and `herald keys`: create (the token
//! is shown once), list, revoke, roll with overlap. An API caller manages keys within its own
//! scopes and tenant; the CLI is an operator holding the deployment's configuration, with
//! every scope and every tenant.

use crate::state::IngestState;
use axum::http::StatusCode;
use herald_core::apikey::{ApiKeyToken, Scope};
use herald_core::ids::KeyId;
use herald_http::{ApiError, Caller};
use herald_kafka::audit::Actor;
use herald_proto::{v1, Message};
use serde::Deserialize;
use serde_json::{json, Value};

/// Who manages keys.
#[derive(Debug, Clone, Copy)]
pub enum Manager<'a> {
    /// A caller of the API, limited by its key's scopes and tenant.
    Caller(&'a Caller),
    /// An operator on the CLI: every scope, every tenant.
    Operator(&'a Actor),
}

impl Manager<'_> {
    fn tenant(&self) -> &str {
        match self {
            Self::Caller(c) => &c.tenant,
            Self::Operator(_) => "",
        }
    }

    fn has(&self, scope: Scope) -> bool {
        match self {
            Self::Caller(c) => c.has(scope),
            Self::Operator(_) => true,
        }
    }

    fn actor(&self) -> Actor {
        match self {
            Self::Caller(c) => c.actor(),
            Self::Operator(a) => (*a).clone(),
        }
    }

    /// The key if this manager may see it: 404 for another tenant's (or an untenanted one)
    /// when limited to a tenant.
    fn sees(&self, record: v1::KeyRecord) -> Result<v1::KeyRecord, ApiError> {
        if self.tenant().is_empty() || record.tenant == self.tenant() {
            Ok(record)
        } else {
            Err(ApiError::not_found(format!("no key {}", record.id)))
        }
    }
}

/// What a new key is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    pub name: String,
    pub scopes: Vec<String>,
    /// Default: `ingest.key_ttl` (90 days).
    pub expires_in_seconds: Option<u64>,
    /// A key that never expires, only when asked for (and flagged in every listing).
    #[serde(default)]
    pub never_expires: bool,
    #[serde(default)]
    pub tenant: String,
    /// Events a second the key may send (default `ingest.key_rate_per_sec`; 0: unlimited,
    /// flagged in every listing).
    pub rate_per_sec: Option<u32>,
}

/// A key record as the API and `herald keys list --json` show it (never the token).
pub fn key_json(record: &v1::KeyRecord, state: &IngestState) -> Value {
    let now = state.clock.now_ms();
    let live =
        record.revoked_at_ms == 0 && (record.expires_at_ms == 0 || record.expires_at_ms > now);
    let age_ms = (now - record.created_at_ms).max(0);
    let rotation_ms = state.config.key_rotation_period.as_millis() as i64;
    let usage = KeyId::parse(&record.id)
        .ok()
        .and_then(|id| state.keys.usage(&id));
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
        "rate_per_sec": record.rate_per_sec,
        "rate_limit_per_sec": effective_rate(record, state),
        "unlimited_rate": effective_rate(record, state).is_none(),
        "last_used_at_ms": usage.as_ref().map(|u| u.last_used_at_ms).filter(|at| *at != 0),
        "last_addresses": usage.map(|u| u.addresses).unwrap_or_default().iter().map(|a| json!({
            "address": a.address,
            "last_seen_at_ms": a.last_seen_at_ms,
        })).collect::<Vec<_>>(),
    })
}

/// The events a second a key may send (`None`: unlimited).
fn effective_rate(record: &v1::KeyRecord, state: &IngestState) -> Option<u32> {
    Some(record.rate_per_sec.unwrap_or(state.config.key_rate_per_sec)).filter(|r| *r > 0)
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
        rate_per_sec: None,
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

fn forbidden(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message)
}

/// Creates a key for `manager`; the token is in the answer only.
pub async fn create_key(
    state: &IngestState,
    manager: Manager<'_>,
    input: NewKey,
) -> Result<(v1::KeyRecord, ApiKeyToken), ApiError> {
    if input.name.trim().is_empty() || input.name.len() > 128 {
        return Err(ApiError::invalid("name: 1-128 characters"));
    }
    if input.scopes.is_empty() {
        return Err(ApiError::invalid("scopes: name at least one scope"));
    }
    for scope in &input.scopes {
        let scope = Scope::parse(scope).map_err(|e| ApiError::invalid(format!("scopes: {e}")))?;
        if !manager.has(scope) {
            return Err(forbidden(format!(
                "scopes: a key cannot grant `{scope}`, which it lacks itself"
            )));
        }
    }
    let mut tenant = input.tenant;
    if !manager.tenant().is_empty() {
        if tenant.is_empty() {
            tenant = manager.tenant().to_owned();
        } else if tenant != manager.tenant() {
            return Err(forbidden(
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
    if let Some(rate) = input.rate_per_sec.filter(|r| *r != 0) {
        herald_core::throttle::validate_rate(rate)
            .map_err(|e| ApiError::invalid(format!("rate_per_sec: {e} (0: unlimited)")))?;
    }
    let (mut record, token) = mint(input.name, input.scopes, tenant, expires, now);
    record.rate_per_sec = input.rate_per_sec;
    store(state, &record).await?;
    state
        .audit(
            &manager.actor(),
            &record.tenant,
            "key.created",
            &record.id,
            json!({"scopes": record.scopes, "never_expires": expires == 0, "expires_at_ms": expires, "rate_per_sec": record.rate_per_sec}),
        )
        .await;
    Ok((record, token))
}

/// Every key `manager` may see, oldest first.
pub fn list_keys(state: &IngestState, manager: Manager<'_>) -> Vec<v1::KeyRecord> {
    state
        .keys
        .list()
        .into_iter()
        .filter(|r| manager.tenant().is_empty() || r.tenant == manager.tenant())
        .collect()
}

/// Revokes key `id`, for good; revoking a revoked key changes nothing.
pub async fn revoke_key(
    state: &IngestState,
    manager: Manager<'_>,
    id: &str,
) -> Result<v1::KeyRecord, ApiError> {
    let mut record = manager.sees(find(state, id)?)?;
    if record.revoked_at_ms != 0 {
        return Ok(record); // already revoked: the first revocation stands
    }
    record.revoked_at_ms = state.clock.now_ms();
    store(state, &record).await?;
    state
        .audit(
            &manager.actor(),
            &record.tenant,
            "key.revoked",
            &record.id,
            json!({}),
        )
        .await;
    Ok(record)
}

/// Rolls key `id`: a new key with the same scopes and a fresh lifetime; the old one keeps
/// working for `overlap_seconds` (default 1 h, at most 30 days). Returns the new record, its
/// token and the old record.
pub async fn roll_key(
    state: &IngestState,
    manager: Manager<'_>,
    id: &str,
    overlap_seconds: Option<u64>,
) -> Result<(v1::KeyRecord, ApiKeyToken, v1::KeyRecord), ApiError> {
    let mut old = manager.sees(find(state, id)?)?;
    let now = state.clock.now_ms();
    let refuse = |code, why: &str| {
        ApiError::new(
            StatusCode::CONFLICT,
            code,
            format!(
                "key {} {why}; create a new key instead of rolling it",
                old.id
            ),
        )
    };
    if old.revoked_at_ms != 0 {
        return Err(refuse("key_revoked", "is revoked"));
    }
    if old.expires_at_ms != 0 && old.expires_at_ms <= now {
        return Err(refuse("key_expired", "has expired"));
    }
    let overlap_end = now + overlap_seconds.unwrap_or(3_600).min(30 * 86_400) as i64 * 1_000;
    // The new key starts a fresh lifetime; a key that never expired keeps not expiring.
    let expires = if old.expires_at_ms == 0 {
        0
    } else {
        now + state.config.key_ttl.as_millis() as i64
    };
    let (mut record, token) = mint(
        old.name.clone(),
        old.scopes.clone(),
        old.tenant.clone(),
        expires,
        now,
    );
    record.rate_per_sec = old.rate_per_sec;
    store(state, &record).await?;
    old.expires_at_ms = if old.expires_at_ms == 0 {
        overlap_end
    } else {
        old.expires_at_ms.min(overlap_end)
    };
    store(state, &old).await?;
    state
        .audit(
            &manager.actor(),
            &old.tenant,
            "key.rolled",
            &old.id,
            json!({"new_key": record.id}),
        )
        .await;
    Ok((record, token, old))
}
