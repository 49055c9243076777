//! The API keys view: `keys.v1` folded into keys by id and by token hash, and authentication.

use crate::key_usage;
use crate::view::{Apply, View};
use crate::{KafkaConfig, Producer};
use herald_core::apikey::{hash_token, ApiKeyToken, Scope};
use herald_core::ids::KeyId;
use herald_core::UnixMillis;
use herald_proto::v1;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Every key record, by id, and an index from token hash to id.
#[derive(Debug, Default)]
pub struct KeysState {
    pub by_id: HashMap<KeyId, v1::KeyRecord>,
    by_hash: HashMap<String, KeyId>,
    /// When and from where each key was used lately (`usage/<key id>` records).
    pub usage: HashMap<KeyId, v1::KeyUsage>,
}

/// A successfully authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: KeyId,
    pub scopes: Vec<Scope>,
    /// The tenant the key is limited to (empty: any).
    pub tenant: String,
    /// Events a second the key may send; `None`: the configured default, `Some(0)`: unlimited.
    pub rate_per_sec: Option<u32>,
}

impl Principal {
    /// Whether the key carries `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }
}

/// Why authentication failed (the label of `herald_auth_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing API key: send `Authorization: Bearer hk_…`")]
    Missing,
    #[error("malformed API key")]
    Malformed,
    #[error("unknown API key")]
    Unknown,
    #[error("API key revoked")]
    Revoked,
    #[error("API key expired")]
    Expired,
}

impl AuthError {
    /// Low-cardinality reason label.
    pub fn reason(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

fn fold() -> Apply<KeysState> {
    Arc::new(|state: &mut KeysState, key: &[u8], value: Option<&[u8]>| {
        let key = String::from_utf8_lossy(key);
        if let Some(id) = key.strip_prefix(key_usage::USAGE_PREFIX) {
            return key_usage::fold(&mut state.usage, id, value);
        }
        let Ok(id) = KeyId::parse(&key) else {
            return;
        };
        let old = state.by_id.remove(&id);
        if let Some(old) = &old {
            state.by_hash.remove(&old.token_sha256);
        }
        let Some(value) = value.filter(|v| !v.is_empty()) else {
            return;
        };
        match herald_proto::decode::<v1::KeyRecord>("key", value) {
            Ok(mut record) => {
                // Revocation is for good: a later write made from a copy read before the
                // revocation (a roll racing it) cannot bring the key back.
                if let Some(revoked) = old.map(|o| o.revoked_at_ms).filter(|at| *at != 0) {
                    if record.revoked_at_ms == 0 || record.revoked_at_ms > revoked {
                        record.revoked_at_ms = revoked;
                    }
                }
                state
                    .by_hash
                    .insert(record.token_sha256.clone(), id.clone());
                state.by_id.insert(id, record);
            }
            Err(err) => {
                metrics::counter!("herald_unreadable_records_total", "topic" => "keys")
                    .increment(1);
                tracing::error!(key_id = %id, error = %err, "Unreadable key record; the key is left out.");
            }
        }
    })
}

/// The live keys view.
#[derive(Clone)]
pub struct KeysView {
    view: View<KeysState>,
    /// The keys topic (usage records are written there too).
    topic: String,
    /// Uses noted since the last usage flush (see [`crate::key_usage`]).
    pending: Arc<std::sync::Mutex<key_usage::Pending>>,
}

impl KeysView {
    /// Starts following the keys topic.
    pub fn spawn(config: &KafkaConfig, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let topic = config.topics().keys();
        Self {
            view: View::spawn(config, topic.clone(), fold(), tasks, shutdown),
            topic,
            pending: Arc::default(),
        }
    }

    /// The underlying view.
    pub fn view(&self) -> &View<KeysState> {
        &self.view
    }

    /// One key record.
    pub fn get(&self, id: &KeyId) -> Option<v1::KeyRecord> {
        self.view.read(|s| s.by_id.get(id).cloned())
    }

    /// Every key record, oldest first.
    pub fn list(&self) -> Vec<v1::KeyRecord> {
        let mut all: Vec<_> = self.view.read(|s| s.by_id.values().cloned().collect());
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// Applies a record this service wrote.
    pub fn apply_local(&self, record: &v1::KeyRecord) {
        self.view.apply_local(
            record.id.as_bytes(),
            Some(&prost::Message::encode_to_vec(record)),
        );
    }

    /// Checks a presented token at `now`.
    pub fn authenticate(
        &self,
        token: Option<&str>,
        now: UnixMillis,
    ) -> Result<Principal, AuthError> {
        let token = token.ok_or(AuthError::Missing)?;
        ApiKeyToken::parse(token).map_err(|_| AuthError::Malformed)?;
        let hash = hash_token(token);
        self.view.read(|s| {
            let id = s.by_hash.get(&hash).ok_or(AuthError::Unknown)?;
            let record = s.by_id.get(id).ok_or(AuthError::Unknown)?;
            if record.revoked_at_ms != 0 && record.revoked_at_ms <= now {
                return Err(AuthError::Revoked);
            }
            if record.expires_at_ms != 0 && record.expires_at_ms <= now {
                return Err(AuthError::Expired);
            }
            Ok(Principal {
                key_id: id.clone(),
                scopes: record
                    .scopes
                    .iter()
                    .filter_map(|s| Scope::parse(s).ok())
                    .collect(),
                tenant: record.tenant.clone(),
                rate_per_sec: record.rate_per_sec,
            })
        })
    }

    /// Live keys (not revoked, not expired) older than `period_ms` at `now`.
    pub fn rotation_due(&self, now: UnixMillis, period_ms: i64) -> usize {
        self.view.read(|s| {
            s.by_id
                .values()
                .filter(|r| {
                    r.revoked_at_ms == 0
                        && (r.expires_at_ms == 0 || r.expires_at_ms > now)
                        && now - r.created_at_ms >= period_ms
                })
                .count()
        })
    }

    /// Keys that expire within `window` of `now` (for the expiry gauge).
    pub fn expiring_within(&self, now: UnixMillis, window_ms: i64) -> usize {
        self.view.read(|s| {
            s.by_id
                .values()
                .filter(|r| {
                    r.revoked_at_ms == 0
                        && r.expires_at_ms > now
                        && r.expires_at_ms <= now + window_ms
                })
                .count()
        })
    }
}

impl KeysView {
    /// Notes that `id` authenticated a request from `address` at `at` (memory only).
    pub fn note_use(&self, id: &KeyId, address: &str, at: UnixMillis) {
        let mut pending = self.pending.lock().expect("key usage lock");
        key_usage::note(pending.entry(id.clone()).or_default(), address, at);
    }

    /// How `id` was used lately, as the topic and this process know it.
    pub fn usage(&self, id: &KeyId) -> Option<v1::KeyUsage> {
        let mut known = self.view().read(|s| s.usage.get(id).cloned());
        if let Some(mine) = self.pending.lock().expect("key usage lock").get(id) {
            key_usage::merge(known.get_or_insert_with(Default::default), mine);
        }
        known
    }

    /// Writes one usage record per key used since the last flush. Records that could not
    /// be written are kept for the next flush. Returns how many were written.
    pub async fn flush_usage(&self, producer: &Producer) -> usize {
        let pending = std::mem::take(&mut *self.pending.lock().expect("key usage lock"));
        let mut written = 0;
        for (id, mine) in pending {
            let mut record = self
                .view()
                .read(|s| s.usage.get(&id).cloned())
                .unwrap_or_default();
            key_usage::merge(&mut record, &mine);
            record.key_id = id.to_string();
            let key = format!("{}{id}", key_usage::USAGE_PREFIX);
            let bytes = prost::Message::encode_to_vec(&record);
            match producer.send(&self.topic, key.as_bytes(), &bytes).await {
                Ok(_) => {
                    self.view().apply_local(key.as_bytes(), Some(&bytes));
                    written += 1;
                }
                Err(err) => {
                    tracing::warn!(key_id = %id, error = %err, "Key usage not written; kept for the next flush.");
                    let mut pending = self.pending.lock().expect("key usage lock");
                    key_usage::merge(pending.entry(id).or_default(), &mine);
                }
            }
        }
        written
    }

    /// Flushes key usage every `every` until `shutdown`, then once more.
    pub async fn flush_usage_every(
        &self,
        producer: Producer,
        every: Duration,
        shutdown: CancellationToken,
    ) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticks.tick() => {}
            }
            self.flush_usage(&producer).await;
        }
        self.flush_usage(&producer).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn record(revoked_at_ms: i64, expires_at_ms: i64) -> v1::KeyRecord {
        v1::KeyRecord {
            id: "key_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B".into(),
            token_sha256: "ab".into(),
            revoked_at_ms,
            expires_at_ms,
            ..Default::default()
        }
    }

    #[test]
    fn a_revocation_stands_against_a_stale_write_racing_it() {
        let apply = fold();
        let mut state = KeysState::default();
        let id = KeyId::parse("key_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B").unwrap();
        let write = |state: &mut KeysState, r: v1::KeyRecord| {
            apply(state, r.id.clone().as_bytes(), Some(&r.encode_to_vec()));
        };
        write(&mut state, record(0, 0));
        write(&mut state, record(1_000, 0)); // revoke
        write(&mut state, record(0, 5_000)); // a roll that read the key before the revocation
        assert_eq!(state.by_id[&id].revoked_at_ms, 1_000);
        assert_eq!(
            state.by_id[&id].expires_at_ms, 5_000,
            "the rest of the write applies"
        );
        write(&mut state, record(3_000, 5_000)); // a later revocation: the first one stands
        assert_eq!(state.by_id[&id].revoked_at_ms, 1_000);
    }
}
