//! The ingest service: its routes merged from their modules, the bootstrap admin key, and
//! [`run`], which serves them (with other crates' routes) until shutdown.

use crate::error::Error;
use crate::state::IngestState;
use crate::{endpoints, events, health, keys};
use axum::Router;
use herald_core::apikey::{ApiKeyToken, Scope};
use herald_proto::v1;

/// What ingest shares with the rest of its process.
pub struct IngestDeps {
    pub producer: herald_kafka::Producer,
    pub topics: herald_core::topics::Topics,
    pub endpoints: herald_kafka::endpoints::EndpointsView,
    pub keys: herald_kafka::keys::KeysView,
    pub clock: herald_core::clock::SharedClock,
    /// Other crates' routes served on the same listener, with the same fallbacks and
    /// request metrics (replay and dead letters).
    pub routes: Router,
    /// Routes served outside the request metrics (`/metrics`).
    pub unmetered: Router,
    /// Called once the bootstrap key is registered and requests are about to be served.
    pub listening: Box<dyn FnOnce(std::net::SocketAddr) + Send>,
}

/// Runs ingest on `listener` until `shutdown`: registers the bootstrap key, starts its
/// counters at 0, keeps `herald_ready{service="ingest"}` current, serves.
pub async fn run(
    config: crate::IngestConfig,
    deps: IngestDeps,
    listener: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), Error> {
    let state = IngestState::new(crate::IngestParts {
        limits: std::sync::Arc::new(crate::throttle::KeyLimits::new(config.key_rate_per_sec)),
        config,
        topics: deps.topics,
        producer: deps.producer,
        endpoints: deps.endpoints,
        keys: deps.keys,
        clock: deps.clock,
    });
    ensure_bootstrap_key(&state).await?;
    crate::metrics::zero();
    crate::metrics::zero_keys(&state.keys.list());
    herald_http::metrics::zero();
    let probe = state.clone();
    herald_kafka::health::spawn_refresh(
        state.keys.clone(),
        state.config.key_rotation_period,
        move || {
            let state = probe.clone();
            async move { crate::health::readiness(&state).await }
        },
        shutdown.clone(),
    );
    let usage = {
        let (keys, producer) = (state.keys.clone(), state.producer.clone());
        let (every, shutdown) = (state.config.key_usage_flush, shutdown.clone());
        tokio::spawn(async move { keys.flush_usage_every(producer, every, shutdown).await })
    };
    let addr = listener.local_addr().map_err(Error::Serve)?;
    let app = herald_http::app(router(state).merge(deps.routes)).merge(deps.unmetered);
    tracing::info!(%addr, "Ingest and admin API listening.");
    (deps.listening)(addr);
    let stopping = shutdown.clone();
    let served = herald_http::serve(listener, app, shutdown)
        .await
        .map_err(Error::Serve);
    if stopping.is_cancelled() {
        // The last uses noted before the stop are written before the process goes.
        let _ = usage.await;
    } else {
        usage.abort();
    }
    served
}

/// Every route of the ingest and admin API, ready to merge with the other crates' routes
/// and to finish with [`herald_http::app`].
pub fn router(state: IngestState) -> Router {
    Router::new()
        .merge(events::routes())
        .merge(endpoints::routes())
        .merge(keys::routes())
        .merge(health::routes())
        .with_state(state)
}

/// Registers the configured bootstrap key (every scope) if the keys view lacks it.
/// Call once the views caught up.
pub async fn ensure_bootstrap_key(state: &IngestState) -> Result<(), Error> {
    let Some(text) = &state.config.bootstrap_key else {
        return Ok(());
    };
    let token = ApiKeyToken::parse(text)
        .map_err(|_| Error::Bootstrap("not a hk_<id>_<secret> token".into()))?;
    let all: Vec<String> = Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect();
    if let Some(existing) = state.keys.get(&token.id) {
        // The bootstrap key holds every scope, also those a newer version added.
        if existing.scopes == all || existing.revoked_at_ms != 0 {
            return Ok(());
        }
        let mut record = existing;
        record.scopes = all;
        crate::key_admin::store(state, &record)
            .await
            .map_err(|e| Error::Bootstrap(e.message))?;
        tracing::info!(key_id = %record.id, "Bootstrap admin key given the scopes added since it was registered.");
        return Ok(());
    }
    let record = v1::KeyRecord {
        id: token.id.to_string(),
        name: "bootstrap".into(),
        token_sha256: token.hash(),
        scopes: all,
        created_at_ms: state.clock.now_ms(),
        expires_at_ms: 0,
        revoked_at_ms: 0,
        tenant: String::new(),
        rate_per_sec: None,
    };
    crate::key_admin::store(state, &record)
        .await
        .map_err(|e| Error::Bootstrap(e.message))?;
    let system = herald_kafka::audit::Actor::named(token.id.to_string());
    state
        .audit(
            &system,
            "",
            "key.bootstrapped",
            &record.id,
            serde_json::json!({}),
        )
        .await;
    tracing::info!(key_id = %record.id, "Bootstrap admin key registered.");
    Ok(())
}
