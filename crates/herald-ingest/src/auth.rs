//! Bearer API keys: `Authorization: Bearer hk_…`, checked against the live keys view.

use crate::error::ApiError;
use crate::service::IngestState;
use axum::http::{HeaderMap, StatusCode};
use herald_core::apikey::Scope;
use herald_kafka::keys::Principal;

/// Authenticates the caller and checks it holds `scope`.
pub fn require(
    state: &IngestState,
    headers: &HeaderMap,
    scope: Scope,
) -> Result<Principal, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    let principal = state
        .keys
        .authenticate(token, herald_kafka::now_ms())
        .map_err(|err| {
            metrics::counter!("herald_auth_failures_total", "reason" => err.reason()).increment(1);
            ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
        })?;
    if !principal.has(scope) {
        metrics::counter!("herald_auth_failures_total", "reason" => "scope").increment(1);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key lacks the `{scope}` scope"),
        ));
    }
    Ok(principal)
}
