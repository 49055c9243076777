//! Endpoint health transitions made durable: the endpoint's state (`failing_since`,
//! `enabled`), an audit record, a log line and metrics.
//!
//! Only health fields are written (`health_only` records): a dispatcher never writes back
//! URL, filters or secrets it read before an admin changed them, and a health record
//! written on top of a version that is no longer the latest is dropped by every view.
//!
//! Writes happen one at a time, and each one reconciles the endpoint's persisted state with
//! what the health book says *now* rather than replaying the transition that triggered it:
//! attempts finish concurrently, so a "started failing" may arrive after a later success
//! already recovered the endpoint. Reading the view under the lock also means each write
//! builds on the previous one (version + 1 of the latest state, never two writes of the same
//! version from this process).

use crate::health::HealthBook;
use crate::operational::{Operational, Report};
use crate::route::{Abandoned, OutcomeWriter};
use herald_core::clock::SharedClock;
use herald_core::endpoint::Endpoint;
use herald_core::health::Transition;
use herald_core::ids::EndpointId;
use herald_kafka::endpoints::EndpointsView;

/// Endpoint health, in memory and made durable: the health book of this process and the
/// writes that carry its transitions to the endpoint's persisted state.
pub struct EndpointStates {
    /// What this process saw of each endpoint's attempts.
    pub health: HealthBook,
    writer: OutcomeWriter,
    endpoints: EndpointsView,
    clock: SharedClock,
    /// One endpoint-state write at a time.
    turn: tokio::sync::Mutex<()>,
    /// Operational events to the tenant's admin endpoint.
    pub ops: Operational,
}

impl EndpointStates {
    /// `health` made durable through `writer`, read back through `endpoints`.
    pub fn new(
        health: HealthBook,
        writer: OutcomeWriter,
        endpoints: EndpointsView,
        clock: SharedClock,
    ) -> Self {
        Self {
            ops: Operational::new(writer.clone(), endpoints.clone()),
            health,
            writer,
            endpoints,
            clock,
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Acts on a transition reported by the health book for `id`.
    pub(crate) async fn on_transition(
        &self,
        id: &EndpointId,
        transition: Transition,
        error: &str,
    ) -> Result<(), Abandoned> {
        match transition {
            Transition::None => Ok(()),
            Transition::Disable => {
                self.disable(
                    id,
                    "failing",
                    "failing continuously for longer than dispatcher.disable_after",
                )
                .await
            }
            Transition::StartedFailing | Transition::Recovered => {
                self.persist_failing_since(id, error).await
            }
        }
    }

    /// Writes the health book's current `failing_since` of `id` when the persisted state
    /// disagrees about whether the endpoint is failing.
    async fn persist_failing_since(&self, id: &EndpointId, error: &str) -> Result<(), Abandoned> {
        let _turn = self.turn.lock().await;
        let Some(entry) = self.endpoints.get(id) else {
            return Ok(());
        };
        let Some(health) = self.health.get(id) else {
            return Ok(());
        };
        let mut endpoint = (*entry.endpoint).clone();
        let failing = health.failing_since.is_some();
        let was_failing_since = endpoint.failing_since;
        if !endpoint.set_failing_since(health.failing_since, self.clock.now_ms()) {
            return Ok(()); // already recorded (by a concurrent attempt, another dispatcher, or before a restart)
        }
        self.write_health(&endpoint, entry.version + 1).await?;
        let action = if failing {
            tracing::warn!(endpoint_id = %id, %error, consecutive_failures = health.consecutive_failures, "Endpoint started failing.");
            "endpoint.failing"
        } else {
            tracing::info!(endpoint_id = %id, "Endpoint recovered.");
            "endpoint.recovered"
        };
        let detail = if failing {
            serde_json::json!({
                "error": health.last_error,
                "consecutive_failures": health.consecutive_failures,
                "failing_since_ms": health.failing_since,
            })
        } else {
            serde_json::json!({})
        };
        self.writer
            .audit(&endpoint.tenant, action, id.as_str(), detail.clone())
            .await;
        let (since, mut data) = if failing {
            (health.failing_since, detail)
        } else {
            (
                was_failing_since,
                serde_json::json!({
                    "failing_since_ms": was_failing_since,
                    "recovered_at_ms": self.clock.now_ms(),
                }),
            )
        };
        data["endpoint_id"] = id.as_str().into();
        data["url"] = herald_core::endpoint::redacted_url(&endpoint.url).into();
        data["tenant"] = endpoint.tenant.clone().into();
        self.ops
            .emit(Report {
                kind: action,
                tenant: &endpoint.tenant,
                about: id.as_str(),
                key: format!("{id}:{}", since.unwrap_or_default()),
                data,
            })
            .await
    }

    /// Writes the health fields of `endpoint` as `version`, reads the view up to it and, when
    /// the record stood (no admin change came first), tells the health book it was this
    /// process.
    async fn write_health(&self, endpoint: &Endpoint, version: u64) -> Result<(), Abandoned> {
        self.writer.endpoint_health(endpoint, version).await?;
        let view = self.endpoints.view();
        if !view
            .wait_synced(herald_kafka::now_ms(), std::time::Duration::from_secs(10))
            .await
        {
            tracing::warn!(endpoint_id = %endpoint.id, "Endpoint health written but not yet read back.");
        }
        if let Some(entry) = self.endpoints.get(&endpoint.id) {
            if entry.version == version && entry.endpoint.updated_at == endpoint.updated_at {
                self.health.wrote(&entry);
            }
        }
        Ok(())
    }

    /// Disables `id` (durable state, audit record, metric) unless it already is.
    pub(crate) async fn disable(
        &self,
        id: &EndpointId,
        reason: &str,
        why: &str,
    ) -> Result<(), Abandoned> {
        let _turn = self.turn.lock().await;
        let Some(entry) = self.endpoints.get(id) else {
            return Ok(());
        };
        if reason == "failing" && self.health.adopt_if_changed(&entry) {
            // Changed by someone else since the attempt that decided this (an admin
            // re-enabled it, which starts the failure period over): decide again on the next
            // attempt instead of disabling on a stale run.
            return Ok(());
        }
        let mut endpoint = (*entry.endpoint).clone();
        if !endpoint.disable_automatically(reason, self.clock.now_ms()) {
            return Ok(());
        }
        tracing::error!(endpoint_id = %endpoint.id, %reason, "Endpoint disabled.");
        self.write_health(&endpoint, entry.version + 1).await?;
        metrics::counter!("herald_endpoint_disabled_total", "reason" => reason.to_owned())
            .increment(1);
        self.writer
            .audit(
                &endpoint.tenant,
                "endpoint.disabled",
                id.as_str(),
                serde_json::json!({"reason": reason, "why": why}),
            )
            .await;
        self.ops
            .emit(Report {
                kind: "endpoint.disabled",
                tenant: &endpoint.tenant,
                about: id.as_str(),
                key: format!("{id}:{}", endpoint.updated_at),
                data: serde_json::json!({
                    "endpoint_id": id.as_str(),
                    "url": herald_core::endpoint::redacted_url(&endpoint.url),
                    "tenant": endpoint.tenant,
                    "reason": reason,
                    "why": why,
                    "disabled_at_ms": endpoint.updated_at,
                }),
            })
            .await
    }
}
