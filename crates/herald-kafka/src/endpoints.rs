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
    /// The record keys whose latest record is unreadable, with why: the endpoint is missing
    /// from the view until a readable record replaces it (readiness fails meanwhile).
    pub unreadable_now: std::collections::BTreeMap<String, String>,
    /// Endpoints with secrets sealed under a previous master key (re-seal before dropping it).
    pub stale_seals: std::collections::HashSet<EndpointId>,
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
                let record_key = String::from_utf8_lossy(record_key);
                state.unreadable_now.remove(record_key.as_ref());
                if let Ok(id) = EndpointId::parse(&record_key) {
                    state.stale_seals.remove(&id);
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
                let stale = convert::sealed_with_previous_key(&record, &key);
                Ok((
                    convert::endpoint_from_state(&record, &key)?,
                    record.version,
                    stale,
                ))
            });
            let record_key = String::from_utf8_lossy(record_key).into_owned();
            match decoded {
                Ok((endpoint, version, stale)) => {
                    state.unreadable_now.remove(&record_key);
                    // First writer wins: a change is written as the version it was built
                    // on + 1, so of two changes built on the same version, the one the log
                    // holds first stands in every view, and its writer can tell at once.
                    let current = state.by_id.get(&endpoint.id).map(|e| e.version);
                    if current.is_none_or(|v| version > v) {
                        if stale {
                            state.stale_seals.insert(endpoint.id.clone());
                        } else {
                            state.stale_seals.remove(&endpoint.id);
                        }
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
                    metrics::counter!("herald_unreadable_records_total", "topic" => "endpoints")
                        .increment(1);
                    tracing::error!(record_key = %record_key, error = %err, "Unreadable endpoint record; the endpoint is left out of the view. Check master_key and previous_master_keys.");
                    state.unreadable_now.insert(record_key, err.to_string());
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

    /// Record keys whose latest record is unreadable, with why (oldest key first).
    pub fn unreadable(&self) -> Vec<(String, String)> {
        self.view.read(|s| {
            s.unreadable_now
                .iter()
                .map(|(k, why)| (k.clone(), why.clone()))
                .collect()
        })
    }

    /// Endpoints whose secrets are (partly) sealed under a previous master key.
    pub fn sealed_with_previous_key(&self) -> Vec<EndpointId> {
        let mut ids: Vec<_> = self.view.read(|s| s.stale_seals.iter().cloned().collect());
        ids.sort();
        ids
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
    fn unreadable_records_are_tracked_until_replaced_and_old_seals_are_listed() {
        let old = MasterKey::from_bytes([1; 32]);
        let stranger = MasterKey::from_bytes([9; 32]);
        let key = MasterKey::from_bytes([2; 32]).with_previous([old.clone()]);
        let mut state = EndpointsState::default();
        let a = endpoint("https://a.example/hook");
        // Sealed under a key this view does not have: left out, tracked with the reason.
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&a, 1, &stranger),
        );
        assert!(state.by_id.is_empty());
        let why = &state.unreadable_now[a.id.as_str()];
        assert!(why.contains(&stranger.id()), "{why}");
        // Sealed under the previous key: readable, listed for re-sealing.
        apply(&mut state, &key, &convert::endpoint_to_state(&a, 2, &old));
        assert!(state.unreadable_now.is_empty());
        assert!(state.stale_seals.contains(&a.id));
        // Re-sealed under the current key.
        apply(&mut state, &key, &convert::endpoint_to_state(&a, 3, &key));
        assert!(state.stale_seals.is_empty());
        assert_eq!(state.by_id[&a.id].version, 3);
        assert_eq!(state.unreadable, 1, "the count of unreadable records stays");
        // A tombstone clears everything about the key.
        apply(
            &mut state,
            &key,
            &convert::endpoint_to_state(&a, 4, &stranger),
        );
        fold(key.clone())(&mut state, a.id.as_str().as_bytes(), None);
        assert!(state.unreadable_now.is_empty() && state.by_id.is_empty());
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
