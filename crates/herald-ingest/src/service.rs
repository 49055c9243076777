//! The ingest and admin routes, merged from their modules, and the bootstrap admin key.

use crate::error::Error;
use crate::state::IngestState;
use crate::{endpoints, events, health, keys};
use axum::Router;
use herald_core::apikey::{ApiKeyToken, Scope};
use herald_kafka::keys::Principal;
use herald_proto::v1;

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
    if state.keys.get(&token.id).is_some() {
        return Ok(());
    }
    let record = v1::KeyRecord {
        id: token.id.to_string(),
        name: "bootstrap".into(),
        token_sha256: token.hash(),
        scopes: Scope::ALL.iter().map(|s| s.as_str().to_owned()).collect(),
        created_at_ms: state.clock.now_ms(),
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
    state
        .audit(
            &system,
            "key.bootstrapped",
            &record.id,
            serde_json::json!({}),
        )
        .await;
    tracing::info!(key_id = %record.id, "Bootstrap admin key registered.");
    Ok(())
}
