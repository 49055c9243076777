//! The endpoints view: `endpoints.v1` folded into a map of endpoint id → endpoint.

use crate::view::{Apply, View};
use crate::KafkaConfig;
use herald_core::endpoint::Endpoint;
use herald_core::ids::EndpointId;
use herald_core::sealing::MasterKey;
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
                // A tombstone of the endpoint (a health key's tombstone names no endpoint id).
                if let Ok(id) = EndpointId::parse(&String::from_utf8_lossy(record_key)) {
                    state.by_id.remove(&id);
                }
                return;
            };
            let decoded = herald_proto::decode::<v1::EndpointState>("endpoint", value);
            if let Ok(record) = decoded.as_ref() {
                if record.health_only {
                    apply_health(state, record);
                    return;
                }
            }
            let decoded = decoded.and_then(|record| {
                Ok((convert::endpoint_from_state(&record, &key)?, record.version))
            });
            match decoded {
                Ok((endpoint, version)) => {
                    // First writer wins: a change is written as the version it was built
                    // on + 1, so of two changes built on the same version, the one the log
                    // holds first stands in every view, and its writer can tell at once.
                    let current = state.by_id.get(&endpoint.id).map(|e| e.version);
                    if current.is_none_or(|v| version > v) {
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

/// The record key of an endpoint's health records. Not the endpoint id: compaction keeps
/// the latest record per key, and a health record must never replace the configuration. The
/// topic has one partition, so health and configuration records keep their relative order.
pub fn health_key(id: &EndpointId) -> String {
    format!("{id}/health")
}

/// A dispatcher's health record: merged into the current endpoint when it is newer than the
/// current version (it was written on top of it); dropped otherwise (an admin change came in
/// between, or the endpoint is gone). Every view folds the same log in the same order, so
/// every view drops or merges the same records. "Newer", not "exactly the next": once
/// compaction removed the health records in between, the latest one still applies.
fn apply_health(state: &mut EndpointsState, record: &v1::EndpointState) {
    let Ok(id) = EndpointId::parse(&record.id) else {
        state.unreadable += 1;
        return;
    };
    let Some(current) = state.by_id.get(&id) else {
        return;
    };
    if record.version <= current.version {
        tracing::debug!(endpoint_id = %id, version = record.version, current = current.version, "Stale endpoint health record dropped.");
        return;
    }
    let endpoint = convert::endpoint_with_health(&current.endpoint, record);
    state.by_id.insert(
        id,
        Entry {
            endpoint: Arc::new(endpoint),
            version: record.version,
        },
    );
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
        // The dispatcher asks before every fan-out.
        view.keep_syncs_warm(std::time::Duration::from_secs(1));
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

    /// Every endpoint with its version, oldest first.
    pub fn list_entries(&self) -> Vec<Entry> {
        let mut all: Vec<Entry> = self.view.read(|s| s.by_id.values().cloned().collect());
        all.sort_by(|a, b| a.endpoint.id.cmp(&b.endpoint.id));
        all
    }

    /// Every endpoint, oldest first.
    pub fn list(&self) -> Vec<Arc<Endpoint>> {
        let mut all: Vec<_> = self
            .view
            .read(|s| s.by_id.values().map(|e| e.endpoint.clone()).collect());
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Whether `tenant`'s operational events have an endpoint to go to (the tenant's
    /// operational endpoint, or an untenanted one).
    pub fn has_operational(&self, tenant: &str) -> bool {
        self.view.read(|s| {
            s.by_id.values().any(|e| {
                e.endpoint.operational
                    && (e.endpoint.tenant.is_empty() || e.endpoint.tenant == tenant)
            })
        })
    }

    /// Endpoints that were subscribed to this event when it was accepted (enabled or not:
    /// the dispatcher parks deliveries to disabled endpoints in the dead-letter topic).
    pub fn subscribers(&self, event: &v1::EventEnvelope) -> Vec<Arc<Endpoint>> {
        let operational = event.source == herald_core::event::OPERATIONAL_SOURCE;
        let mut found: Vec<_> = self.view.read(|s| {
            s.by_id
                .values()
                .filter(|e| e.endpoint.created_at <= event.accepted_at_ms)
                .filter(|e| {
                    e.endpoint
                        .subscribes_to(&event.event_type, &event.tenant, operational)
                })
                .map(|e| e.endpoint.clone())
                .collect()
        });
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::signing::Secret;
    use prost::Message as _;

    fn endpoint(url: &str) -> Endpoint {
        Endpoint {
            event_types: vec!["stock.*".into()],
            ..Endpoint::new(EndpointId::generate(7), url.into(), Secret::generate(), 1)
        }
    }

    fn apply(state: &mut EndpointsState, key: &MasterKey, record: &v1::EndpointState) {
        let bytes = record.encode_to_vec();
        fold(key.clone())(state, record.id.as_bytes(), Some(&bytes));
    }

    #[test]
    fn a_health_record_changes_health_and_nothing_else() {
        let key = MasterKey::from_bytes([1; 32]);
        let mut state = EndpointsState::default();
        let config = endpoint("https://a.example/hook");
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&config, 1, &key),
        );
        let mut health = config.clone();
        health.url = "https://stale.example/ignored".into();
        health.failing_since = Some(50);
        health.updated_at = 60;
        apply(
            &mut state,
            &key,
            &convert::endpoint_health_to_state(&health, 2),
        );
        let entry = state.by_id[&config.id].clone();
        assert_eq!(entry.version, 2);
        assert_eq!(entry.endpoint.failing_since, Some(50));
        assert_eq!(
            entry.endpoint.url, "https://a.example/hook",
            "config untouched"
        );
        assert_eq!(entry.endpoint.signing_keys, config.signing_keys);
    }

    #[test]
    fn a_health_record_written_over_an_older_version_is_dropped() {
        let key = MasterKey::from_bytes([1; 32]);
        let mut state = EndpointsState::default();
        let v1_config = endpoint("https://a.example/hook");
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&v1_config, 1, &key),
        );
        // An admin re-enables / edits (version 2) while the dispatcher computed version 2 too.
        let mut edited = v1_config.clone();
        edited.url = "https://b.example/hook".into();
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&edited, 2, &key),
        );
        let mut disabled = v1_config.clone();
        disabled.enabled = false;
        disabled.disabled_reason = "failing".into();
        apply(
            &mut state,
            &key,
            &convert::endpoint_health_to_state(&disabled, 2),
        );
        let entry = state.by_id[&v1_config.id].clone();
        assert!(
            entry.endpoint.enabled,
            "the stale disable lost to the admin's change"
        );
        assert_eq!(entry.endpoint.url, "https://b.example/hook");
        // And a health record for an endpoint that is gone changes nothing.
        let gone = endpoint("https://c.example/hook");
        apply(
            &mut state,
            &key,
            &convert::endpoint_health_to_state(&gone, 1),
        );
        assert!(!state.by_id.contains_key(&gone.id));
    }

    #[test]
    fn of_two_changes_built_on_one_version_the_first_in_the_log_stands() {
        let key = MasterKey::from_bytes([1; 32]);
        let mut state = EndpointsState::default();
        let base = endpoint("https://a.example/hook");
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&base, 1, &key),
        );
        let (mut first, mut second) = (base.clone(), base.clone());
        first.description = "first".into();
        second.description = "second".into();
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&first, 2, &key),
        );
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&second, 2, &key),
        );
        assert_eq!(state.by_id[&base.id].endpoint.description, "first");
        // A change built on the winner applies.
        second.description = "third".into();
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&second, 3, &key),
        );
        assert_eq!(state.by_id[&base.id].version, 3);
    }

    #[test]
    fn after_compaction_the_latest_health_record_still_applies() {
        // Compaction kept configuration 1 and health 3 (health 2 is gone).
        let key = MasterKey::from_bytes([1; 32]);
        let mut state = EndpointsState::default();
        let config = endpoint("https://a.example/hook");
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&config, 1, &key),
        );
        let mut health = config.clone();
        health.failing_since = Some(99);
        apply(
            &mut state,
            &key,
            &convert::endpoint_health_to_state(&health, 3),
        );
        let entry = &state.by_id[&config.id];
        assert_eq!((entry.version, entry.endpoint.failing_since), (3, Some(99)));
    }
}
