//! Readiness checks shared by every service's `/readyz`: the broker answers a metadata
//! request, views are caught up, consumers are in their groups. Each check says what failed.

use crate::keys::KeysView;
use crate::stats::{self, ProducerStats};
use rdkafka::producer::{FutureProducer, Producer as _};
use serde::Serialize;
use std::future::Future;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often readiness and the keys-expiring gauge are refreshed without a request.
const REFRESH: Duration = Duration::from_secs(5);
/// The window of `herald_api_keys_expiring{within="7d"}`.
const KEY_EXPIRY_WINDOW_MS: i64 = 7 * 86_400 * 1_000;

/// How long `/readyz` waits for the broker's metadata answer.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// One readiness check and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    /// A check from a result: `Ok` carries the detail, `Err` the reason.
    pub fn from_result(name: &'static str, result: Result<String, String>) -> Self {
        match result {
            Ok(detail) => Self {
                name,
                ok: true,
                detail,
            },
            Err(detail) => Self {
                name,
                ok: false,
                detail,
            },
        }
    }

    /// A view's caught-up state.
    /// The endpoints view can read every endpoint: fails while some endpoint's latest record
    /// does not open (a master key missing from the configuration), naming them. Also sets
    /// `herald_unreadable_records` and `herald_endpoints_sealed_with_previous_key`.
    pub fn endpoints_readable(view: &crate::endpoints::EndpointsView) -> Self {
        let unreadable = view.unreadable();
        let stale = view.sealed_with_previous_key().len();
        metrics::gauge!("herald_unreadable_records", "view" => "endpoints")
            .set(unreadable.len() as f64);
        metrics::gauge!("herald_endpoints_sealed_with_previous_key").set(stale as f64);
        let detail = match unreadable.as_slice() {
            [] if stale > 0 => format!(
                "every record opens; {stale} endpoint(s) still sealed under a previous master key (run `herald endpoints reseal`)"
            ),
            [] => "every record opens".to_owned(),
            [(key, why), ..] => format!(
                "{} endpoint record(s) do not open and are left out, first {key}: {why}",
                unreadable.len()
            ),
        };
        Self {
            name: "endpoints_readable",
            ok: unreadable.is_empty(),
            detail,
        }
    }

    pub fn view(name: &'static str, ready: bool) -> Self {
        Self {
            name,
            ok: ready,
            detail: if ready { "caught up" } else { "catching up" }.to_owned(),
        }
    }
}

/// A service's readiness: ready when every check passed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub service: &'static str,
    pub ready: bool,
    pub checks: Vec<Check>,
}

impl Report {
    /// Builds the report and sets `herald_ready{service}` to 1 or 0.
    pub fn new(service: &'static str, checks: Vec<Check>) -> Self {
        let ready = checks.iter().all(|c| c.ok);
        metrics::gauge!("herald_ready", "service" => service).set(if ready { 1.0 } else { 0.0 });
        Self {
            service,
            ready,
            checks,
        }
    }
}

/// Asks a broker for the metadata of `topic` (a cheap request), off the async runtime.
/// Ok when a broker answered within `timeout` and knows the topic.
pub async fn broker_reachable(
    client: FutureProducer<ProducerStats>,
    topic: &str,
    timeout: Duration,
) -> Result<(), String> {
    let topic = topic.to_owned();
    tokio::task::spawn_blocking(move || {
        let metadata = client
            .client()
            .fetch_metadata(Some(&topic), timeout)
            .map_err(|e| format!("no metadata from the broker within {timeout:?}: {e}"))?;
        if metadata.brokers().is_empty() {
            return Err("the cluster reported no brokers".to_owned());
        }
        match metadata.topics().iter().find(|t| t.name() == topic) {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => Ok(()),
            Some(t) => Err(format!("topic {topic}: {:?}", t.error())),
            None => Err(format!("topic {topic} unknown to the broker")),
        }
    })
    .await
    .map_err(|e| format!("probe task: {e}"))?
}

/// The broker check of a report.
pub async fn broker_check(producer: &crate::Producer, topic: &str) -> Check {
    let result = producer.probe(topic, PROBE_TIMEOUT).await;
    Check::from_result("broker", result.map(|()| "reachable".to_owned()))
}

/// Whether every consumer group this process belongs to has its assignment: at least one
/// group registered, every one joined. The detail lists partitions owned per group.
pub fn groups_check() -> Check {
    let groups = stats::memberships();
    let detail = groups
        .iter()
        .map(|(group, m)| {
            let state = if m.joined { "joined" } else { "joining" };
            format!("{group}: {state}, {} partitions", m.owned.len())
        })
        .collect::<Vec<_>>()
        .join("; ");
    let ok = !groups.is_empty() && groups.values().all(|m| m.joined);
    Check {
        name: "consumer_groups",
        ok,
        detail: if groups.is_empty() {
            "no consumer started yet".to_owned()
        } else {
            detail
        },
    }
}

/// Refreshes `herald_ready` (through `check`), `herald_api_keys_expiring` and
/// `herald_api_keys_rotation_due` (live keys older than `rotation_period`) every few
/// seconds until `shutdown`, so they are current without anyone calling `/readyz`.
pub fn spawn_refresh<F, Fut>(
    keys: KeysView,
    rotation_period: Duration,
    check: F,
    shutdown: CancellationToken,
) where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Report> + Send,
{
    tokio::spawn(async move {
        let mut was_ready = None;
        loop {
            let expiring = keys.expiring_within(crate::now_ms(), KEY_EXPIRY_WINDOW_MS);
            metrics::gauge!("herald_api_keys_expiring", "within" => "7d").set(expiring as f64);
            let due = keys.rotation_due(crate::now_ms(), rotation_period.as_millis() as i64);
            metrics::gauge!("herald_api_keys_rotation_due").set(due as f64);
            let report = check().await;
            if was_ready.replace(report.ready) == Some(true) && !report.ready {
                let failing: Vec<String> = report
                    .checks
                    .iter()
                    .filter(|c| !c.ok)
                    .map(|c| format!("{}: {}", c.name, c.detail))
                    .collect();
                tracing::warn!(service = report.service, failing = %failing.join("; "), "Not ready.");
            } else if was_ready == Some(true) && report.ready {
                tracing::debug!(service = report.service, "Ready.");
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
    });
}
