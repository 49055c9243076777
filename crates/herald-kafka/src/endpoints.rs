//! The endpoints view: `endpoints.v1` folded into a map of endpoint id → endpoint.

use crate::view::{Apply, View};
use crate::KafkaConfig;
use herald_core::endpoint::Endpoint;
use herald_core::ids::EndpointId;
use herald_core::sealing::MasterKey;
use herald_core::UnixMillis;
use herald_proto::{convert, v1};
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One endpoint with the version of its latest state record.
#[derive(Debug, Clone)]
pub struct Entry {
    pub endpoint: Arc<Endpoint>,
    pub version: u64,
}

/// Every endpoint, by id.
#[derive(Debug, Default)]
pub struct EndpointsState {
    pub by_id: HashMap<EndpointId, Entry>,
    /// Records that could not be decoded or opened (wrong master key?): logged and counted.
    pub unreadable: u64,
}

/// The live endpoints view.
#[derive(Clone)]
pub struct EndpointsView {
    view: View<EndpointsState>,
    key: MasterKey,
}

fn fold(key: MasterKey) -> Apply<EndpointsState> {
    Arc::new(
        move |state: &mut EndpointsState, record_key: &[u8], value: Option<&[u8]>| {
            let value = value.filter(|v| !v.is_empty());
            let Some(value) = value else {
                if let Ok(id) = EndpointId::parse(&String::from_utf8_lossy(record_key)) {
                    state.by_id.remove(&id);
                }
                return;
            };
            let decoded =
                herald_proto::decode::<v1::EndpointState>("endpoint", value).and_then(|record| {
                    Ok((convert::endpoint_from_state(&record, &key)?, record.version))
                });
            match decoded {
                Ok((endpoint, version)) => {
                    let current = state.by_id.get(&endpoint.id).map(|e| e.version);
                    if current.is_none_or(|v| version >= v) {
                        state.by_id.insert(
                            endpoint.id.clone(),
                            Entry {
                                endpoint: Arc::new(endpoint),
                                version,
                            },
                        );
                    }
                }
                Err(err) => {
                    state.unreadable += 1;
                    tracing::error!(error = %err, "Unreadable endpoint record; check the master key.");
                }
            }
        },
    )
}

impl EndpointsView {
    /// Starts following the endpoints topic.
    pub fn spawn(
        config: &KafkaConfig,
        key: MasterKey,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let view = View::spawn(
            config,
            config.topics().endpoints(),
            fold(key.clone()),
            tasks,
            shutdown,
        );
        Self { view, key }
    }

    /// The underlying view (readiness, local apply).
    pub fn view(&self) -> &View<EndpointsState> {
        &self.view
    }

    /// The master key the view opens secrets with.
    pub fn master_key(&self) -> &MasterKey {
        &self.key
    }

    /// One endpoint with its version.
    pub fn get(&self, id: &EndpointId) -> Option<Entry> {
        self.view.read(|s| s.by_id.get(id).cloned())
    }

    /// Every endpoint, oldest first.
    pub fn list(&self) -> Vec<Arc<Endpoint>> {
        let mut all: Vec<_> = self
            .view
            .read(|s| s.by_id.values().map(|e| e.endpoint.clone()).collect());
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Endpoints that were subscribed to this event when it was accepted (enabled or not:
    /// the dispatcher parks deliveries to disabled endpoints in the dead-letter topic).
    pub fn subscribers(
        &self,
        event_type: &str,
        tenant: &str,
        accepted_at: UnixMillis,
    ) -> Vec<Arc<Endpoint>> {
        let mut found: Vec<_> = self.view.read(|s| {
            s.by_id
                .values()
                .filter(|e| e.endpoint.created_at <= accepted_at)
                .filter(|e| e.endpoint.subscribes_to(event_type, tenant))
                .map(|e| e.endpoint.clone())
                .collect()
        });
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }

    /// Applies a state record this service wrote (read-your-writes for the admin API).
    pub fn apply_local(&self, id: &EndpointId, record: Option<&v1::EndpointState>) {
        let bytes = record.map(prost::Message::encode_to_vec);
        self.view
            .apply_local(id.as_str().as_bytes(), bytes.as_deref());
    }
}
