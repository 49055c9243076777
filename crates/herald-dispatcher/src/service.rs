//! The dispatcher service: both consumers, the sender and a graceful drain.

use crate::config::DispatcherConfig;
use crate::deliver::{Deliverer, Parts};
use crate::delivered::Delivered;
use crate::health::HealthBook;
use crate::route::OutcomeWriter;
use crate::sink::{HttpSettings, HttpTransport};
use crate::slots::EndpointLimits;
use crate::ssrf::Network;
use crate::transport::{Deadline, Outbound, RequestSettings};
use crate::{consumer, retry, standby, Error, Result};
use herald_core::clock::SharedClock;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::lease::{Claimant, Leases};
use herald_kafka::membership::{Assignment, Membership};
use herald_kafka::{KafkaConfig, Producer};
use rdkafka::consumer::{CommitMode, Consumer};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Delivered ids remembered from the attempts log (about 27 bytes each: `dedupe`).
const DELIVERED_CAPACITY: usize = 500_000;
/// How long past `attempt_timeout` the transport deadline fires.
const DEADLINE_GRACE: Duration = Duration::from_secs(5);
/// An endpoint none of whose slots freed up for this long (all taken) is not waited for:
/// it is hanging or far slower than a webhook receiver should be (see `slots`).
const STALLED_AFTER: Duration = Duration::from_secs(1);

/// What the dispatcher shares with other services in the same process.
pub struct DispatcherDeps {
    pub kafka: KafkaConfig,
    pub producer: Producer,
    pub endpoints: EndpointsView,
    /// Where "now" comes from.
    pub clock: SharedClock,
}

/// Where deliveries go out, from config: the SSRF-guarded HTTP transport behind the
/// deadline, dressed as configured. Test deliveries use the same.
pub fn outbound(config: &DispatcherConfig) -> Result<Outbound> {
    let allowed = config
        .allowed_networks
        .iter()
        .map(|n| {
            Network::parse(n)
                .map_err(|e| Error::Config(format!("dispatcher.allowed_networks: {e}")))
        })
        .collect::<Result<Vec<_>>>()?;
    let http = HttpTransport::new(HttpSettings {
        allowed,
        attempt_timeout: config.attempt_timeout,
        connect_timeout: config.connect_timeout,
        excerpt_bytes: config.response_excerpt_bytes,
        dns_servers: config.dns_servers.clone(),
        // Every attempt both consumers can run at once may keep its connection.
        max_idle_per_host: 2 * config.max_in_flight,
    })
    .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
    // The HTTP client's own timeout ends an attempt at `attempt_timeout`; the deadline is the
    // backstop past it (DNS, a stuck body read), so no attempt can hold its slot for ever.
    Ok(Outbound {
        transport: Arc::new(Deadline::new(http, config.attempt_timeout + DEADLINE_GRACE)),
        settings: RequestSettings::new(&config.user_agent, config.svix_headers)
            .map_err(|e| Error::Config(format!("dispatcher.user_agent: {e}")))?,
    })
}

/// Runs the dispatcher until `shutdown`, then drains: in-flight deliveries finish and their
/// outcomes are written, offsets are committed; after `drain_deadline` remaining work is
/// abandoned uncommitted (it will be redelivered, with the same `webhook-id`).
pub async fn run(
    config: DispatcherConfig,
    deps: DispatcherDeps,
    shutdown: CancellationToken,
    drain_deadline: Duration,
) -> Result<()> {
    config.validate().map_err(Error::Config)?;
    let policy = config.retry_policy().map_err(Error::Config)?;
    let outbound = outbound(&config)?;
    let abort = CancellationToken::new();
    let writer = OutcomeWriter {
        producer: deps.producer.clone(),
        topics: deps.kafka.topics(),
        abort: abort.clone(),
        clock: deps.clock.clone(),
    };
    let tail = TaskTracker::new();
    let tail_stop = CancellationToken::new();
    let delivered = Delivered::spawn(
        &deps.kafka,
        config.dedupe_window,
        DELIVERED_CAPACITY,
        &tail,
        tail_stop.clone(),
    );
    let deliverer = Arc::new(Deliverer::new(Parts {
        writer,
        endpoints: deps.endpoints.clone(),
        outbound,
        policy,
        per_endpoint: EndpointLimits {
            concurrency: config.per_endpoint_concurrency,
            permit_wait: config.attempt_timeout,
            stalled_after: config.attempt_timeout.min(STALLED_AFTER),
        },
        delivered: delivered.clone(),
        health: HealthBook::new(config.health_policy(), config.endpoint_metrics_limit),
        clock: deps.clock.clone(),
    }));
    deps.endpoints
        .view()
        .wait_ready(Duration::from_secs(120))
        .await
        .map_err(Error::Kafka)?;
    let assignment = config.assignment.resolve(&deps.kafka).await;
    let membership = Membership {
        group: config.group.clone(),
        instance: config.static_instance(),
        assignment,
    };
    if !delivered.wait_ready(Duration::from_secs(60)).await {
        tracing::warn!("Attempts log not read within 60s; starting without it (more duplicates after a crash).");
    }
    let holder = match assignment {
        Assignment::All => {
            let holder = holder(&config, &deps, &tail, tail_stop.clone());
            holder
                .leases
                .wait_ready(Duration::from_secs(120))
                .await
                .map_err(Error::Kafka)?;
            if !holder.acquire(&shutdown).await.map_err(Error::Kafka)? {
                stop_tail(&tail, &tail_stop).await;
                tracing::info!("Dispatcher stopped while standing by.");
                return Ok(());
            }
            Some(Arc::new(holder))
        }
        _ => {
            metrics::gauge!("herald_dispatcher_active").set(1.0);
            None
        }
    };
    // Consuming stops at shutdown, or when another dispatcher took the lease.
    let consume = shutdown.child_token();
    let lost = CancellationToken::new();
    let keep_stop = CancellationToken::new();
    if let Some(holder) = holder.clone() {
        let (lost, keep_stop, consume) = (lost.clone(), keep_stop.clone(), consume.clone());
        tokio::spawn(async move {
            holder.keep(lost.clone(), keep_stop).await;
            if lost.is_cancelled() {
                consume.cancel();
            }
        });
    }
    let tasks = TaskTracker::new();
    tracing::info!(group = %config.group, "Dispatcher consuming.");
    // A delivery in flight may wait for its endpoint's slot, then attempt, then write its
    // outcome: what a revocation waits for at most.
    let drain_on_revoke = config.attempt_timeout * 2 + Duration::from_secs(5);
    let (events, retries) = tokio::join!(
        consumer::run(
            &deps.kafka,
            &membership,
            config.max_in_flight,
            drain_on_revoke,
            deliverer.clone(),
            &tasks,
            consume.clone()
        ),
        retry::run(
            &deps.kafka,
            &membership,
            config.max_in_flight,
            drain_on_revoke,
            deliverer,
            &tasks,
            consume.clone()
        ),
    );
    let (events, retries) = (
        events.map_err(Error::Kafka)?,
        retries.map_err(Error::Kafka)?,
    );
    let fatal = [&events, &retries]
        .iter()
        .find_map(|consumer| consumer.client().fatal_error())
        .map(|(code, reason)| format!("{code}: {reason}"));
    tracing::info!(in_flight = tasks.len(), "Dispatcher draining.");
    tasks.close();
    if tokio::time::timeout(drain_deadline, tasks.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            abandoned = tasks.len(),
            "Drain deadline passed; abandoning in-flight work uncommitted."
        );
        abort.cancel();
        tasks.wait().await;
    }
    for consumer in [events, retries] {
        // Off the async workers: the commit, and closing the consumer when this is the last
        // reference, wait for the broker, which `herald dev` runs on these same workers.
        let committed = tokio::task::spawn_blocking(move || {
            let committed = consumer.commit_consumer_state(CommitMode::Sync);
            // What is still in flight now was abandoned at the drain deadline: the revocation
            // that closing runs must not wait for it (see `TrackingContext::drain`).
            consumer.context().forget_in_flight();
            drop(consumer);
            committed
        })
        .await;
        if let Ok(Err(err)) = committed {
            tracing::debug!(error = %err, "Final commit had nothing to commit or failed.");
        }
    }
    keep_stop.cancel();
    if let Some(fatal) = fatal {
        if let Some(holder) = holder {
            holder.release().await;
        }
        stop_tail(&tail, &tail_stop).await;
        return Err(Error::ConsumerFatal(fatal));
    }
    if lost.is_cancelled() {
        stop_tail(&tail, &tail_stop).await;
        return Err(Error::LeaseLost);
    }
    if let Some(holder) = holder {
        // After the final commit: the standby starts where this one stopped.
        holder.release().await;
    }
    stop_tail(&tail, &tail_stop).await;
    tracing::info!("Dispatcher stopped.");
    Ok(())
}

/// This process's claim on the group's active-dispatcher lease (`assignment = "all"`).
fn holder(
    config: &DispatcherConfig,
    deps: &DispatcherDeps,
    tail: &TaskTracker,
    tail_stop: CancellationToken,
) -> standby::Holder {
    let pid = std::process::id();
    let run = format!("{pid}-{:016x}", rand::random::<u64>());
    // Without an instance id (`none`) every run is its own owner: no instant takeover.
    let instance = config.group_instance();
    let owner = instance
        .clone()
        .unwrap_or_else(|| format!("{}/{run}", config.group));
    let holder = format!(
        "{} (pid {pid})",
        instance.unwrap_or_else(|| config.group.clone())
    );
    standby::Holder {
        leases: Leases::spawn(&deps.kafka, deps.producer.clone(), tail, tail_stop),
        role: standby::role(&config.group),
        who: Claimant { owner, run, holder },
        term: config.lease,
    }
}

async fn stop_tail(tail: &TaskTracker, tail_stop: &CancellationToken) {
    tail_stop.cancel();
    tail.close();
    tail.wait().await;
}
