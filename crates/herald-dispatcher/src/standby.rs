//! One active dispatcher per group when consumers assign every partition by hand
//! (`assignment = "all"`): the active one holds the lease `dispatcher/<group>` in
//! `leases.v1`; any other stands by until the lease is released (a clean stop) or expires (a
//! crash), then takes over. The same instance restarted takes it back at once. Without it,
//! two dispatchers would both deliver everything.
//!
//! An active dispatcher that finds another one holding the lease (it could not renew in
//! time: a long pause, a network split) stops consuming and exits with an error, so that a
//! supervisor restarts it as a standby; deliveries both had in flight may be made twice.

use herald_kafka::lease::{Claim, Claimant, Leases};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The role of `group`'s active dispatcher.
pub fn role(group: &str) -> String {
    format!("dispatcher/{group}")
}

/// This process's claim on its group's role.
pub struct Holder {
    pub leases: Leases,
    pub role: String,
    pub who: Claimant,
    pub term: Duration,
}

impl Holder {
    /// Takes the role, standing by while another dispatcher holds it. False when `shutdown`
    /// came first.
    pub async fn acquire(&self, shutdown: &CancellationToken) -> herald_kafka::Result<bool> {
        let mut announced = false;
        loop {
            if shutdown.is_cancelled() {
                return Ok(false);
            }
            let wait = match self
                .leases
                .claim(&self.role, &self.who, self.term, false)
                .await
            {
                Ok(Claim::Held { .. }) => {
                    metrics::gauge!("herald_dispatcher_active").set(1.0);
                    tracing::info!(role = %self.role, "Dispatcher lease taken; consuming.");
                    return Ok(true);
                }
                Ok(Claim::Busy(other)) => {
                    metrics::gauge!("herald_dispatcher_active").set(0.0);
                    let other = other.unwrap_or_default();
                    if !announced {
                        announced = true;
                        tracing::warn!(role = %self.role, holder = %other.holder, "Another dispatcher is active; standing by until it stops or its lease expires.");
                        println!(
                            "herald: dispatcher standing by ({} is active)",
                            other.holder
                        );
                    }
                    let left = other.expires_at_ms - herald_kafka::now_ms();
                    Duration::from_millis(left.clamp(100, 1_000) as u64)
                }
                Err(err) => {
                    tracing::warn!(role = %self.role, error = %err, "Dispatcher lease claim failed; retrying.");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(false),
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }

    /// Renews the role every third of its term until `stop`; cancels `lost` when another
    /// dispatcher holds it now. Failed renewals (broker out of reach) are retried: while the
    /// broker is down nobody else can claim it either, and the first claim after it returns
    /// decides.
    pub async fn keep(&self, lost: CancellationToken, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(self.term / 3) => {}
            }
            match self
                .leases
                .claim(&self.role, &self.who, self.term, true)
                .await
            {
                Ok(Claim::Held { .. }) => {}
                Ok(Claim::Busy(other)) => {
                    let holder = other.map(|l| l.holder).unwrap_or_default();
                    tracing::error!(role = %self.role, %holder, "Dispatcher lease lost to another dispatcher; stopping.");
                    lost.cancel();
                    return;
                }
                Err(err) => {
                    tracing::warn!(role = %self.role, error = %err, "Dispatcher lease renewal failed; retrying.");
                }
            }
        }
    }

    /// Gives the role up (a standby takes over at once).
    pub async fn release(&self) {
        metrics::gauge!("herald_dispatcher_active").set(0.0);
        self.leases.release(&self.role, &self.who).await;
    }
}
