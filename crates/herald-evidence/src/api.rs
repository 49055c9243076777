//! Routes of the delivery log and the audit trail:
//!
//! - `GET /v1/events/{id}/deliveries` (`deliveries:read`): for each endpoint the event went
//!   to, where the delivery stands (`delivered`, `pending`, `dead`), when, and every attempt
//!   with its status, latency and response excerpt.
//! - `GET /v1/endpoints/{id}/attempts` (`deliveries:read`): the endpoint's attempts, oldest
//!   first; `status` (class: `2xx`, `4xx`, `5xx`, `timeout`, …), `since`, `until`, `limit`,
//!   `cursor`.
//! - `GET /v1/audit` (`audit:read`): audit records; `actor`, `action` (or `endpoint.*`),
//!   `target`, `since`, `until`, `limit`, `cursor`.
//! - `GET /v1/reconciliation` (`deliveries:read`): per endpoint, the events accepted for it
//!   in `since`..`until` and how many were delivered, dead-lettered or are pending, with a
//!   verdict; `endpoint`, `tenant`.
//!
//! A key limited to a tenant sees only that tenant's attempts and records; another tenant's
//! endpoint is 404 to it.

use crate::attempts::{self, AttemptQuery};
use crate::audit::{self, AuditQuery};
use crate::reconcile;
use crate::window::Window;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRef, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use herald_core::clock::SharedClock;
use herald_core::ids::{EndpointId, EventId};
use herald_http::{scope, ApiError, Authorized, Caller};
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::keys::KeysView;
use herald_kafka::KafkaConfig;
use serde::Deserialize;
use serde_json::{json, Value};

/// What the routes need.
#[derive(Clone)]
pub struct EvidenceState {
    pub kafka: KafkaConfig,
    pub keys: KeysView,
    pub endpoints: EndpointsView,
    pub clock: SharedClock,
}

impl FromRef<EvidenceState> for KeysView {
    fn from_ref(state: &EvidenceState) -> Self {
        state.keys.clone()
    }
}

impl FromRef<EvidenceState> for SharedClock {
    fn from_ref(state: &EvidenceState) -> Self {
        state.clock.clone()
    }
}

/// The routes, ready to merge with the other crates' and finish with [`herald_http::app`].
pub fn router(state: EvidenceState) -> Router {
    Router::new()
        .route("/v1/events/{id}/deliveries", get(event_deliveries))
        .route("/v1/endpoints/{id}/attempts", get(endpoint_attempts))
        .route("/v1/audit", get(audit_records))
        .route("/v1/reconciliation", get(reconciliation))
        .with_state(state)
}

/// The API answer for an evidence error.
pub fn api_error(err: crate::Error) -> ApiError {
    match err {
        crate::Error::Invalid(message) => ApiError::invalid(message),
        crate::Error::Kafka(inner) => inner.into(),
    }
}

fn bad_id(err: impl std::fmt::Display) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", err.to_string())
}

/// The tenant a caller is limited to, if any.
fn tenant_of(caller: &Caller) -> Option<String> {
    (!caller.tenant.is_empty()).then(|| caller.tenant.clone())
}

/// `GET /v1/events/{id}/deliveries`.
async fn event_deliveries(
    Authorized(caller, _): Authorized<scope::DeliveriesRead>,
    State(state): State<EvidenceState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = EventId::parse(&id).map_err(bad_id)?;
    let query = AttemptQuery {
        event_id: Some(id.to_string()),
        tenant: tenant_of(&caller),
        ..AttemptQuery::default()
    };
    let data = attempts::deliveries_of_event(&state.kafka, &query)
        .await
        .map_err(api_error)?;
    Ok(Json(json!({"event_id": id.to_string(), "data": data})))
}

/// Query of `GET /v1/endpoints/{id}/attempts`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AttemptsQuery {
    status: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/endpoints/{id}/attempts`.
async fn endpoint_attempts(
    Authorized(caller, _): Authorized<scope::DeliveriesRead>,
    State(state): State<EvidenceState>,
    Path(id): Path<String>,
    query: Result<Query<AttemptsQuery>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = EndpointId::parse(&id).map_err(bad_id)?;
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let tenant = tenant_of(&caller);
    if let (Some(limit), Some(entry)) = (&tenant, state.endpoints.get(&id)) {
        if entry.endpoint.tenant != *limit {
            return Err(ApiError::not_found(format!("no endpoint {id}")));
        }
    }
    let window = Window::parse(q.since.as_deref(), q.until.as_deref(), state.clock.now_ms())
        .map_err(api_error)?;
    let query = AttemptQuery {
        endpoint_id: Some(id.to_string()),
        tenant,
        class: q.status,
        window,
        ..AttemptQuery::default()
    };
    let page = attempts::list(
        &state.kafka,
        &query,
        q.limit.unwrap_or(50),
        q.cursor.as_deref(),
    )
    .await
    .map_err(api_error)?;
    let data: Vec<Value> = page.entries.iter().map(|a| a.to_json()).collect();
    Ok(Json(json!({
        "data": data,
        "next_cursor": page.next_cursor,
        "total": page.total,
    })))
}

/// Query of `GET /v1/reconciliation`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReconcileParams {
    since: Option<String>,
    until: Option<String>,
    endpoint: Option<String>,
    tenant: Option<String>,
}

/// `GET /v1/reconciliation`.
async fn reconciliation(
    Authorized(caller, _): Authorized<scope::DeliveriesRead>,
    State(state): State<EvidenceState>,
    query: Result<Query<ReconcileParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let now = state.clock.now_ms();
    let window = Window::parse(q.since.as_deref(), q.until.as_deref(), now).map_err(api_error)?;
    let tenant = match (tenant_of(&caller), q.tenant) {
        (Some(limit), Some(asked)) if asked != limit => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this API key may only read tenant `{limit}`"),
            ))
        }
        (Some(limit), _) => Some(limit),
        (None, asked) => asked,
    };
    if let Some(id) = &q.endpoint {
        let id = EndpointId::parse(id).map_err(bad_id)?;
        let visible = state
            .endpoints
            .get(&id)
            .is_some_and(|e| tenant.as_ref().is_none_or(|t| *t == e.endpoint.tenant));
        if !visible {
            return Err(ApiError::not_found(format!("no endpoint {id}")));
        }
    }
    let query = reconcile::ReconcileQuery {
        window,
        endpoint_id: q.endpoint,
        tenant,
    };
    let reconciler = reconcile::reconcile(&state.kafka, &state.endpoints, &query)
        .await
        .map_err(api_error)?;
    Ok(Json(reconcile::report_json(&reconciler, &query, now)))
}

/// Query of `GET /v1/audit`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    actor: Option<String>,
    action: Option<String>,
    target: Option<String>,
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/audit`.
async fn audit_records(
    Authorized(caller, _): Authorized<scope::AuditRead>,
    State(state): State<EvidenceState>,
    query: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let window = Window::parse(q.since.as_deref(), q.until.as_deref(), state.clock.now_ms())
        .map_err(api_error)?;
    let query = AuditQuery {
        actor: q.actor,
        action: q.action,
        target: q.target,
        tenant: tenant_of(&caller),
        window,
    };
    let page = audit::list(
        &state.kafka,
        &query,
        q.limit.unwrap_or(100),
        q.cursor.as_deref(),
    )
    .await
    .map_err(api_error)?;
    let data: Vec<Value> = page.entries.iter().map(|e| e.to_json()).collect();
    Ok(Json(json!({
        "data": data,
        "next_cursor": page.next_cursor,
        "total": page.total,
    })))
}
