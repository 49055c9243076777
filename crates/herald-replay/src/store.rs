//! Writes to `replays.v1` (run records, markers, the lock) and to the audit trail, each
//! applied to the local view where the view is the writer's own state.

use crate::lock;
use crate::state::{marker_key, run_key, RunsView};
use crate::{Error, Result};
use herald_core::clock::SharedClock;
use herald_core::topics::Topics;
use herald_kafka::audit::Actor;
use herald_kafka::Producer;
use herald_proto::{v1, Message};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Writes run records, markers and audit records, and applies them to the local view.
#[derive(Clone)]
pub struct Store {
    pub producer: Producer,
    pub topics: Topics,
    pub runs: RunsView,
    /// Run and marker times. The lock's times are the system clock's: they must agree
    /// across processes.
    pub clock: SharedClock,
}

impl Store {
    /// Writes the current state of a run.
    pub async fn put_run(&self, run: &v1::ReplayProgress) -> Result<()> {
        let key = run_key(&run.id);
        let value = run.encode_to_vec();
        self.producer
            .send(&self.topics.replays(), key.as_bytes(), &value)
            .await?;
        self.runs.apply_local(&key, &value);
        Ok(())
    }

    /// Marks a dead letter as re-driven by `marker.replay_id`.
    pub async fn put_marker(
        &self,
        partition: i32,
        offset: i64,
        marker: &v1::RedriveMarker,
    ) -> Result<()> {
        let key = marker_key(partition, offset);
        let value = marker.encode_to_vec();
        self.producer
            .send(&self.topics.replays(), key.as_bytes(), &value)
            .await?;
        self.runs.apply_local(&key, &value);
        Ok(())
    }

    /// Appends to the audit trail; an error means the record is missing (the writer logged
    /// and counted it), and the caller must not act without it.
    pub async fn audit(
        &self,
        actor: &Actor,
        tenant: &str,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        herald_kafka::audit::AuditLog::new(self.producer.clone(), &self.topics, self.clock.clone())
            .record(actor, tenant, action, target, detail)
            .await?;
        Ok(())
    }

    /// Takes (or renews) the lock for `owner`; `Error::Busy` when another run holds it.
    pub async fn lock(&self, owner: &str) -> Result<()> {
        let now = herald_kafka::now_ms();
        if let Some(other) = lock::held_by_other(self.runs.lock().as_ref(), owner, now) {
            return Err(lock::busy(other));
        }
        self.write_lock(owner, now + lock::LEASE.as_millis() as i64)
            .await?;
        let deadline = tokio::time::Instant::now() + lock::CLAIM_WAIT;
        loop {
            let lock = self.runs.lock();
            if lock
                .as_ref()
                .is_some_and(|l| l.owner == owner && l.claimed_at_ms >= now)
            {
                return Ok(());
            }
            if let Some(other) = lock::held_by_other(lock.as_ref(), owner, herald_kafka::now_ms()) {
                return Err(lock::busy(other));
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
                    _ = tokio::time::sleep(lock::RENEW_EVERY) => {}
                }
                let expires = herald_kafka::now_ms() + lock::LEASE.as_millis() as i64;
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
                lock::LOCK_KEY.as_bytes(),
                &record.encode_to_vec(),
            )
            .await?;
        Ok(())
    }
}
