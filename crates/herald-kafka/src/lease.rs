//! Leases: a role that one process holds at a time, decided through `leases.v1`.
//!
//! A process claims a role by writing a `Lease` record under the role's key, then reads the
//! topic up to its own claim (a view sync, see [`crate::fresh`]) to learn whether it won:
//! every reader folds the claims in the same log order, so every process reaches the same
//! answer without a coordinator. A claim takes a free or expired lease; a fresh claim by the
//! same owner (the same instance, restarted after a crash) takes it over at once, and the
//! old run, if it still lives, finds its renewals ignored and stops. The holder renews its
//! claim well before it expires and releases it when it stops; a holder that died and is
//! not restarted releases it by expiry.

use crate::view::{Apply, View};
use crate::{Error, KafkaConfig, Producer, Result};
use herald_proto::{v1, Message};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a claim may take to come back through the view.
const CLAIM_WAIT: Duration = Duration::from_secs(30);

/// The outcome of a claim.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The claimant holds the role until `expires_at_ms` unless it renews.
    Held { expires_at_ms: i64 },
    /// Someone else holds it (the current lease, if there is one).
    Busy(Option<v1::Lease>),
}

/// Who claims: a stable owner (instance id) and this process run of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimant {
    pub owner: String,
    pub run: String,
    /// For people: instance id, host, process id.
    pub holder: String,
}

/// Folds one claim, renewal or release into the current lease of its role. Pure: log order
/// decides.
pub fn fold(current: Option<&v1::Lease>, record: &v1::Lease) -> Option<v1::Lease> {
    let same_run = current.is_some_and(|l| l.owner == record.owner && l.run == record.run);
    if record.expires_at_ms == 0 {
        return if same_run { None } else { current.cloned() };
    }
    let free = current.is_none_or(|l| l.expires_at_ms <= record.claimed_at_ms);
    let restarted = current.is_some_and(|l| l.owner == record.owner) && !record.renewal;
    if free || same_run || restarted {
        Some(record.clone())
    } else {
        current.cloned()
    }
}

/// Whether `lease` is held by another owner than `owner` at `now_ms`.
pub fn held_by_other(lease: Option<&v1::Lease>, owner: &str, now_ms: i64) -> Option<v1::Lease> {
    lease
        .filter(|l| l.owner != owner && l.expires_at_ms > now_ms)
        .cloned()
}

/// Every role's current lease.
pub type LeasesState = HashMap<String, v1::Lease>;

fn apply() -> Apply<LeasesState> {
    Arc::new(
        |state: &mut LeasesState, key: &[u8], value: Option<&[u8]>| {
            let role = String::from_utf8_lossy(key).into_owned();
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                state.remove(&role);
                return;
            };
            match herald_proto::decode::<v1::Lease>("lease", value) {
                Ok(record) => match fold(state.get(&role), &record) {
                    Some(lease) => {
                        state.insert(role, lease);
                    }
                    None => {
                        state.remove(&role);
                    }
                },
                Err(err) => {
                    tracing::error!(%role, error = %err, "Unreadable lease record ignored.")
                }
            }
        },
    )
}

/// The live leases view, and claims through it.
#[derive(Clone)]
pub struct Leases {
    view: View<LeasesState>,
    producer: Producer,
    topic: String,
}

impl Leases {
    /// Starts following `leases.v1`.
    pub fn spawn(
        config: &KafkaConfig,
        producer: Producer,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let topic = config.topics().leases();
        Self {
            view: View::spawn(config, topic.clone(), apply(), tasks, shutdown),
            producer,
            topic,
        }
    }

    /// Waits until the view has read the topic once.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        self.view.wait_ready(timeout).await
    }

    /// The current lease of `role`.
    pub fn get(&self, role: &str) -> Option<v1::Lease> {
        self.view.read(|s| s.get(role).cloned())
    }

    /// Claims `role` for `who` for `term` (a fresh claim), or renews it (`renewal`: counts
    /// only while this very run holds it).
    pub async fn claim(
        &self,
        role: &str,
        who: &Claimant,
        term: Duration,
        renewal: bool,
    ) -> Result<Claim> {
        let now = crate::now_ms();
        if let Some(other) = held_by_other(self.get(role).as_ref(), &who.owner, now) {
            return Ok(Claim::Busy(Some(other)));
        }
        let record = v1::Lease {
            owner: who.owner.clone(),
            run: who.run.clone(),
            claimed_at_ms: now,
            expires_at_ms: now + term.as_millis() as i64,
            holder: who.holder.clone(),
            renewal,
        };
        self.producer
            .send(&self.topic, role.as_bytes(), &record.encode_to_vec())
            .await?;
        // Acknowledged: reading up to now includes the claim and every claim before it.
        if !self.view.wait_synced(crate::now_ms(), CLAIM_WAIT).await {
            return Err(Error::Unavailable(format!(
                "the claim on {role} did not come back within {}s",
                CLAIM_WAIT.as_secs()
            )));
        }
        let lease = self.get(role);
        Ok(match lease {
            Some(l) if l.owner == who.owner && l.run == who.run && l.claimed_at_ms >= now => {
                Claim::Held {
                    expires_at_ms: l.expires_at_ms,
                }
            }
            other => Claim::Busy(other),
        })
    }

    /// Releases `role` if this run of `who` holds it (best effort: otherwise it expires).
    pub async fn release(&self, role: &str, who: &Claimant) {
        let record = v1::Lease {
            owner: who.owner.clone(),
            run: who.run.clone(),
            claimed_at_ms: crate::now_ms(),
            expires_at_ms: 0,
            holder: who.holder.clone(),
            renewal: true,
        };
        if let Err(err) = self
            .producer
            .send(&self.topic, role.as_bytes(), &record.encode_to_vec())
            .await
        {
            tracing::warn!(%role, error = %err, "Lease not released; it expires by itself.");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lease(owner: &str, run: &str, claimed: i64, expires: i64, renewal: bool) -> v1::Lease {
        v1::Lease {
            owner: owner.into(),
            run: run.into(),
            claimed_at_ms: claimed,
            expires_at_ms: expires,
            holder: String::new(),
            renewal,
        }
    }

    #[test]
    fn first_claim_on_a_free_lease_wins_and_other_owners_are_ignored() {
        let a = fold(None, &lease("a", "1", 100, 200, false)).unwrap();
        assert_eq!(a.owner, "a");
        let still = fold(Some(&a), &lease("b", "1", 150, 250, false)).unwrap();
        assert_eq!(still.owner, "a", "b claimed while a held it");
        let renewed = fold(Some(&a), &lease("a", "1", 180, 280, true)).unwrap();
        assert_eq!(renewed.expires_at_ms, 280, "the holder renews");
    }

    #[test]
    fn an_expired_lease_goes_to_the_next_claim() {
        let a = lease("a", "1", 100, 200, false);
        let b = fold(Some(&a), &lease("b", "1", 200, 300, false)).unwrap();
        assert_eq!(b.owner, "b");
        let late = fold(Some(&b), &lease("a", "1", 210, 310, true)).unwrap();
        assert_eq!(late.owner, "b", "a renewed too late");
    }

    #[test]
    fn a_restarted_owner_takes_over_at_once_and_the_old_run_cannot_renew() {
        let old = lease("a", "1", 100, 200, false);
        let new = fold(Some(&old), &lease("a", "2", 150, 250, false)).unwrap();
        assert_eq!(new.run, "2", "a fresh claim by the same owner takes over");
        let stale = fold(Some(&new), &lease("a", "1", 160, 260, true)).unwrap();
        assert_eq!(stale.run, "2", "the old run's renewal is ignored");
    }

    #[test]
    fn only_the_holding_run_releases() {
        let a = lease("a", "1", 100, 200, false);
        assert_eq!(
            fold(Some(&a), &lease("b", "1", 120, 0, true))
                .unwrap()
                .owner,
            "a"
        );
        assert_eq!(
            fold(Some(&a), &lease("a", "0", 120, 0, true)).unwrap().run,
            "1"
        );
        assert!(fold(Some(&a), &lease("a", "1", 120, 0, true)).is_none());
        assert!(fold(None, &lease("a", "1", 120, 0, true)).is_none());
    }

    #[test]
    fn held_by_other_ignores_the_owner_and_expired_leases() {
        let a = lease("a", "1", 100, 200, false);
        assert!(held_by_other(Some(&a), "a", 150).is_none());
        assert_eq!(held_by_other(Some(&a), "b", 150).unwrap().owner, "a");
        assert!(held_by_other(Some(&a), "b", 200).is_none());
        assert!(held_by_other(None, "b", 0).is_none());
    }
}
