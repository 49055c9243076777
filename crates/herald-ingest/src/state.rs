//! What every ingest and admin route needs.

use crate::IngestConfig;
use axum::extract::FromRef;
use herald_core::clock::SharedClock;
use herald_core::topics::Topics;
use herald_kafka::audit::{Actor, AuditLog};
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::keys::KeysView;
use herald_kafka::Producer;

/// The shared state of the ingest and admin routes. axum clones it for every request (more
/// than once), so it is one `Arc`: cloned field by field it was a handful of allocations per
/// request (the config's and topic names' strings; benches/README.md, session 15).
#[derive(Clone)]
pub struct IngestState(std::sync::Arc<IngestParts>);

/// What [`IngestState`] holds.
#[derive(Clone)]
pub struct IngestParts {
    pub config: IngestConfig,
    pub producer: Producer,
    pub topics: Topics,
    pub endpoints: EndpointsView,
    pub keys: KeysView,
    /// Where "now" comes from (key expiry, secret overlaps, event and record times).
    pub clock: SharedClock,
    /// Per-key ingest rate limits.
    pub limits: std::sync::Arc<crate::throttle::KeyLimits>,
}

impl IngestState {
    /// The state made of `parts`.
    pub fn new(parts: IngestParts) -> Self {
        Self(std::sync::Arc::new(parts))
    }

    /// The parts, to change in a test (copied first if shared).
    #[cfg(test)]
    pub(crate) fn edit(&mut self) -> &mut IngestParts {
        std::sync::Arc::make_mut(&mut self.0)
    }
}

impl std::ops::Deref for IngestState {
    type Target = IngestParts;

    fn deref(&self) -> &IngestParts {
        &self.0
    }
}

impl FromRef<IngestState> for KeysView {
    fn from_ref(state: &IngestState) -> Self {
        state.keys.clone()
    }
}

impl FromRef<IngestState> for SharedClock {
    fn from_ref(state: &IngestState) -> Self {
        state.clock.clone()
    }
}

impl IngestState {
    /// Appends to the audit trail what `actor` did to `target` of `tenant`. The change is
    /// already durable when this runs, so a failed write (logged and counted by
    /// [`AuditLog`]) does not fail the request.
    pub async fn audit(
        &self,
        actor: &Actor,
        tenant: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let log = AuditLog::new(self.producer.clone(), &self.topics, self.clock.clone());
        let _ = log.record(actor, tenant, action, target, detail).await;
    }
}
