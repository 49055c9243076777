//! The router, the bootstrap admin key, the audit trail writer and serving.

use crate::error::{ApiError, Error};
use crate::{endpoints, events, health, keys, IngestConfig};
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use herald_core::apikey::{ApiKeyToken, Scope};
use herald_core::topics::Topics;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::keys::{KeysView, Principal};
use herald_kafka::Producer;
use herald_proto::{v1, Message};
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// What every route needs.
#[derive(Clone)]
pub struct IngestState {
    pub config: IngestConfig,
    pub producer: Producer,
    pub topics: Topics,
    pub endpoints: EndpointsView,
    pub keys: KeysView,
    /// Replay and dead-letter routes (`None`: they answer 503 `replays_not_configured`).
    pub replays: Option<std::sync::Arc<crate::replays::ReplayContext>>,
}

/// Every route of the ingest and admin API.
pub fn router(state: IngestState) -> Router {
    Router::new()
        .route("/v1/events", post(events::create))
        .route("/v1/events/batch", post(events::batch))
        .route(
            "/v1/endpoints",
            post(endpoints::create).get(endpoints::list),
        )
        .route(
            "/v1/endpoints/{id}",
            get(endpoints::get)
                .patch(endpoints::update)
                .delete(endpoints::delete),
        )
        .route("/v1/endpoints/{id}/secret/rotate", post(endpoints::rotate))
        .route("/v1/keys", post(keys::create).get(keys::list))
        .route("/v1/keys/{id}", axum::routing::delete(keys::revoke))
        .route("/v1/keys/{id}/roll", post(keys::roll))
        .merge(crate::replays::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn(track))
        .with_state(state)
}

/// Request count and duration by route template and status class.
async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let class = crate::body::status_class(response.status());
    metrics::counter!("herald_ingest_requests_total", "route" => route.clone(), "status_class" => class).increment(1);
    metrics::histogram!("herald_ingest_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Appends to the audit trail. A failure is logged, not returned: the change it records
/// already happened.
pub async fn audit(
    state: &IngestState,
    actor: &Principal,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) {
    let record = v1::AuditRecord {
        actor: actor.key_id.to_string(),
        action: action.to_owned(),
        target: target.to_owned(),
        at_ms: herald_kafka::now_ms(),
        detail_json: detail.to_string(),
    };
    if let Err(err) = state
        .producer
        .send(
            &state.topics.audit(),
            record.actor.as_bytes(),
            &record.encode_to_vec(),
        )
        .await
    {
        tracing::error!(%action, %target, error = %err, "Audit record not written.");
    }
}

/// Registers the configured bootstrap key (every scope) if the keys view lacks it.
/// Call once the views caught up.
pub async fn ensure_bootstrap_key(state: &IngestState) -> Result<(), Error> {
    let Some(text) = &state.config.bootstrap_key else {
        return Ok(());
    };
    let token = ApiKeyToken::parse(text)
        .map_err(|_| Error::Bootstrap("not a hk_<id>_<secret> token".into()))?;
    if state.keys.get(&token.id).is_some() {
        return Ok(());
    }
    let record = v1::KeyRecord {
        id: token.id.to_string(),
        name: "bootstrap".into(),
        token_sha256: token.hash(),
        scopes: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        created_at_ms: herald_kafka::now_ms(),
        expires_at_ms: 0,
        revoked_at_ms: 0,
        tenant: String::new(),
    };
    keys::store(state, &record)
        .await
        .map_err(|e| Error::Bootstrap(e.message))?;
    let system = Principal {
        key_id: token.id.clone(),
        scopes: vec![],
        tenant: String::new(),
    };
    audit(
        state,
        &system,
        "key.bootstrapped",
        &record.id,
        serde_json::json!({}),
    )
    .await;
    tracing::info!(key_id = %record.id, "Bootstrap admin key registered.");
    Ok(())
}

/// Serves `router(state)` merged with `extra` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: IngestState,
    extra: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(state).merge(extra);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
