//! The replay lock: one run re-drives at a time across every process, so two runs (say, the
//! CLI and the API, or two operators) never re-drive the same dead letter twice.
//!
//! A run claims `lock` in `replays.v1` before it starts or resumes, renews the claim while
//! it runs, and releases it at the end. Claims are never applied locally: a process learns
//! whether it won by reading its own claim back through the view, in log order, like every
//! other process (the first claim on a free or expired lock wins). A run killed mid-way
//! releases it by expiry; resuming that same run may take it back at once.

use crate::state::{RunsState, Store};
use crate::{Error, Result};
use herald_kafka::lease;
use herald_proto::{v1, Message};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Key of the lock record.
pub const LOCK_KEY: &str = "lock";
/// How long a claim holds without renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often a running replay renews its claim.
const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How long to wait for a claim to come back through the view.
const CLAIM_WAIT: Duration = Duration::from_secs(30);

/// Folds one lock record into `state`: the rule of [`herald_kafka::lease::fold`] (the first
/// claim on a free or expired lock wins; its run renews or releases it), with the run id as
/// both owner and run.
pub fn fold(state: &mut RunsState, record: &v1::ReplayLock) {
    let current = state.lock.as_ref().map(as_lease);
    state.lock = lease::fold(current.as_ref(), &as_lease(record)).map(|l| v1::ReplayLock {
        owner: l.owner,
        claimed_at_ms: l.claimed_at_ms,
        expires_at_ms: l.expires_at_ms,
    });
}

fn as_lease(lock: &v1::ReplayLock) -> v1::Lease {
    v1::Lease {
        owner: lock.owner.clone(),
        run: lock.owner.clone(),
        claimed_at_ms: lock.claimed_at_ms,
        expires_at_ms: lock.expires_at_ms,
        holder: String::new(),
        renewal: false,
    }
}

/// Whether `lock` is held by someone other than `owner` at `now`.
fn held_by_other(lock: Option<&v1::ReplayLock>, owner: &str, now: i64) -> Option<v1::ReplayLock> {
    let held = lease::held_by_other(lock.map(as_lease).as_ref(), owner, now);
    held.and(lock.cloned())
}

impl Store {
    /// Takes (or renews) the lock for `owner`; `Error::Busy` when another run holds it.
    pub async fn lock(&self, owner: &str) -> Result<()> {
        let now = herald_kafka::now_ms();
        if let Some(other) = held_by_other(self.runs.lock().as_ref(), owner, now) {
            return Err(busy(other));
        }
        self.write_lock(owner, now + LEASE.as_millis() as i64)
            .await?;
        let deadline = tokio::time::Instant::now() + CLAIM_WAIT;
        loop {
            let lock = self.runs.lock();
            if lock
                .as_ref()
                .is_some_and(|l| l.owner == owner && l.claimed_at_ms >= now)
            {
                return Ok(());
            }
            if let Some(other) = held_by_other(lock.as_ref(), owner, herald_kafka::now_ms()) {
                return Err(busy(other));
            }
            if tokio::time::Instant::now() > deadline {
                return Err(Error::Kafka(herald_kafka::Error::Unavailable(
                    "the replay lock claim did not come back within 30s".into(),
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Releases the lock if `owner` holds it.
    pub async fn unlock(&self, owner: &str) -> Result<()> {
        self.write_lock(owner, 0).await
    }

    /// Renews `owner`'s claim every 20 s until `stop`.
    pub fn keep_lock(&self, owner: &str, stop: CancellationToken) {
        let (store, owner) = (self.clone(), owner.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
                let expires = herald_kafka::now_ms() + LEASE.as_millis() as i64;
                if let Err(err) = store.write_lock(&owner, expires).await {
                    tracing::warn!(replay_id = %owner, error = %err, "Replay lock not renewed; retrying.");
                }
            }
        });
    }

    async fn write_lock(&self, owner: &str, expires_at_ms: i64) -> Result<()> {
        let record = v1::ReplayLock {
            owner: owner.to_owned(),
            claimed_at_ms: herald_kafka::now_ms(),
            expires_at_ms,
        };
        self.producer
            .send(
                &self.topics.replays(),
                LOCK_KEY.as_bytes(),
                &record.encode_to_vec(),
            )
            .await?;
        Ok(())
    }
}

fn busy(lock: v1::ReplayLock) -> Error {
    Error::Busy {
        owner: lock.owner,
        until_ms: lock.expires_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(owner: &str, at: i64, expires: i64) -> v1::ReplayLock {
        v1::ReplayLock {
            owner: owner.into(),
            claimed_at_ms: at,
            expires_at_ms: expires,
        }
    }

    #[test]
    fn the_first_claim_on_a_free_lock_wins_in_log_order() {
        let mut state = RunsState::default();
        fold(&mut state, &claim("rpl_a", 10, 70));
        fold(&mut state, &claim("rpl_b", 11, 71));
        assert_eq!(state.lock.as_ref().unwrap().owner, "rpl_a");
        // A renewal by the holder extends it; a release by someone else does nothing.
        fold(&mut state, &claim("rpl_a", 30, 90));
        fold(&mut state, &claim("rpl_b", 31, 0));
        assert_eq!(state.lock.as_ref().unwrap().expires_at_ms, 90);
        // Released by the holder: the next claim wins.
        fold(&mut state, &claim("rpl_a", 40, 0));
        assert!(state.lock.is_none());
        fold(&mut state, &claim("rpl_b", 41, 101));
        assert_eq!(state.lock.as_ref().unwrap().owner, "rpl_b");
    }

    #[test]
    fn an_expired_claim_can_be_taken_over_and_its_owner_sees_it() {
        let mut state = RunsState::default();
        fold(&mut state, &claim("rpl_dead", 0, 60));
        fold(&mut state, &claim("rpl_new", 61, 121));
        assert_eq!(state.lock.as_ref().unwrap().owner, "rpl_new");
        assert!(held_by_other(state.lock.as_ref(), "rpl_dead", 100).is_some());
        assert!(held_by_other(state.lock.as_ref(), "rpl_new", 100).is_none());
        assert!(
            held_by_other(state.lock.as_ref(), "rpl_dead", 121).is_none(),
            "expired"
        );
    }
}
