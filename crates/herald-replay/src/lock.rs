//! The replay lock: one run re-drives at a time across every process, so two runs (say, the
//! CLI and the API, or two operators) never re-drive the same dead letter twice.
//!
//! This module is the rule, as pure functions; [`crate::store`] takes, renews and releases
//! the lock. A run claims `lock` in `replays.v1` before it starts or resumes, renews the claim while
//! it runs, and releases it at the end. Claims are never applied locally: a process learns
//! whether it won by reading its own claim back through the view, in log order, like every
//! other process (the first claim on a free or expired lock wins). A run killed mid-way
//! releases it by expiry; resuming that same run may take it back at once.

use crate::Error;
use herald_kafka::lease;
use herald_proto::v1;
use std::time::Duration;

/// Key of the lock record.
pub const LOCK_KEY: &str = "lock";
/// How long a claim holds without renewal.
pub const LEASE: Duration = Duration::from_secs(60);
/// How often a running replay renews its claim.
pub const RENEW_EVERY: Duration = Duration::from_secs(20);
/// How long to wait for a claim to come back through the view.
pub const CLAIM_WAIT: Duration = Duration::from_secs(30);

/// The lock after one more record: the rule of [`herald_kafka::lease::fold`] (the first
/// claim on a free or expired lock wins; its run renews or releases it), with the run id as
/// both owner and run.
pub fn fold(current: Option<&v1::ReplayLock>, record: &v1::ReplayLock) -> Option<v1::ReplayLock> {
    let current = current.map(as_lease);
    lease::fold(current.as_ref(), &as_lease(record)).map(|l| v1::ReplayLock {
        owner: l.owner,
        claimed_at_ms: l.claimed_at_ms,
        expires_at_ms: l.expires_at_ms,
    })
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
pub fn held_by_other(
    lock: Option<&v1::ReplayLock>,
    owner: &str,
    now: i64,
) -> Option<v1::ReplayLock> {
    let held = lease::held_by_other(lock.map(as_lease).as_ref(), owner, now);
    held.and(lock.cloned())
}

pub fn busy(lock: v1::ReplayLock) -> Error {
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
        let mut lock: Option<v1::ReplayLock> = None;
        lock = fold(lock.as_ref(), &claim("rpl_a", 10, 70));
        lock = fold(lock.as_ref(), &claim("rpl_b", 11, 71));
        assert_eq!(lock.as_ref().unwrap().owner, "rpl_a");
        // A renewal by the holder extends it; a release by someone else does nothing.
        lock = fold(lock.as_ref(), &claim("rpl_a", 30, 90));
        lock = fold(lock.as_ref(), &claim("rpl_b", 31, 0));
        assert_eq!(lock.as_ref().unwrap().expires_at_ms, 90);
        // Released by the holder: the next claim wins.
        lock = fold(lock.as_ref(), &claim("rpl_a", 40, 0));
        assert!(lock.is_none());
        lock = fold(lock.as_ref(), &claim("rpl_b", 41, 101));
        assert_eq!(lock.as_ref().unwrap().owner, "rpl_b");
    }

    #[test]
    fn an_expired_claim_can_be_taken_over_and_its_owner_sees_it() {
        let mut lock: Option<v1::ReplayLock> = None;
        lock = fold(lock.as_ref(), &claim("rpl_dead", 0, 60));
        lock = fold(lock.as_ref(), &claim("rpl_new", 61, 121));
        assert_eq!(lock.as_ref().unwrap().owner, "rpl_new");
        assert!(held_by_other(lock.as_ref(), "rpl_dead", 100).is_some());
        assert!(held_by_other(lock.as_ref(), "rpl_new", 100).is_none());
        assert!(
            held_by_other(lock.as_ref(), "rpl_dead", 121).is_none(),
            "expired"
        );
    }
}
