//! The dispatcher's route in the admin API:
//!
//! - `POST /v1/endpoints/{id}/test` (`endpoints:write`): a signed `herald.test` delivery to
//!   the endpoint, now, through the same transport, SSRF guard and signing as real ones; the
//!   answer says what the receiver answered (status, latency, an excerpt) and the attempt is
//!   in the delivery log and the audit trail. A disabled endpoint can be tested (before
//!   re-enabling it); another tenant's endpoint is 404 to a tenant-limited key.

use crate::probe::Prober;
use axum::extract::{FromRef, Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use herald_core::clock::SharedClock;
use herald_core::ids::EndpointId;
use herald_http::{scope, ApiError, Authorized};
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::keys::KeysView;
use serde_json::Value;

/// What the route needs.
#[derive(Clone)]
pub struct ProbeState {
    pub prober: Prober,
    pub endpoints: EndpointsView,
    pub keys: KeysView,
}

impl FromRef<ProbeState> for KeysView {
    fn from_ref(state: &ProbeState) -> Self {
        state.keys.clone()
    }
}

impl FromRef<ProbeState> for SharedClock {
    fn from_ref(state: &ProbeState) -> Self {
        state.prober.clock.clone()
    }
}

/// The route, ready to merge with the other crates' and finish with [`herald_http::app`].
pub fn router(state: ProbeState) -> Router {
    Router::new()
        .route("/v1/endpoints/{id}/test", post(test))
        .with_state(state)
}

/// `POST /v1/endpoints/{id}/test`.
async fn test(
    Authorized(caller, _): Authorized<scope::EndpointsWrite>,
    State(state): State<ProbeState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = EndpointId::parse(&id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))?;
    let entry = state
        .endpoints
        .get(&id)
        .filter(|e| caller.tenant.is_empty() || e.endpoint.tenant == caller.tenant)
        .ok_or_else(|| ApiError::not_found(format!("no endpoint {id}")))?;
    let result = state
        .prober
        .probe(&entry.endpoint, &caller.actor())
        .await
        .map_err(|err| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!("the test delivery was sent, but its records were not written: {err}"),
            )
        })?;
    Ok(Json(result))
}
