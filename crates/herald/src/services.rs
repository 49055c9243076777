//! Assembly of the services from one config: topics, producer, views, ingest, dispatcher.

use crate::config::HeraldConfig;
use crate::observability::DispatcherProbe;
use anyhow::{anyhow, Context, Result};
use herald_core::clock::SharedClock;
use herald_core::sealing::MasterKey;
use herald_dispatcher::api::ProbeState;
use herald_dispatcher::probe::Prober;
use herald_evidence::api::EvidenceState;
use herald_ingest::IngestDeps;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::keys::KeysView;
use herald_kafka::provision::{ensure_topics, topic_specs};
use herald_kafka::Producer;
use herald_replay::api::ReplayState;
use herald_replay::service::Replays;
use metrics_exporter_prometheus::PrometheusHandle;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What every service in a process shares.
pub struct Shared {
    pub producer: Producer,
    pub endpoints: EndpointsView,
    pub keys: KeysView,
    pub views: TaskTracker,
}

/// Creates the topics this config needs (idempotent), waiting up to a minute for the broker.
pub async fn provision(config: &HeraldConfig, shutdown: &CancellationToken) -> Result<()> {
    let specs = topic_specs(&config.kafka, config.layout()?.tiers());
    ensure_topics(&config.kafka, &specs, Duration::from_secs(60), shutdown)
        .await
        .context("provisioning topics")?;
    Ok(())
}

/// The master key from config; errors name the key.
pub fn master_key(config: &HeraldConfig) -> Result<MasterKey> {
    if config.master_key.is_empty() {
        anyhow::bail!("master_key: required (base64 of 32 bytes; HERALD_MASTER_KEY)");
    }
    let current = MasterKey::parse_base64(&config.master_key)
        .ok_or_else(|| anyhow!("master_key: must be base64 of exactly 32 bytes"))?;
    let previous = config
        .previous_master_keys
        .iter()
        .enumerate()
        .map(|(i, text)| {
            MasterKey::parse_base64(text).ok_or_else(|| {
                anyhow!("previous_master_keys[{i}]: must be base64 of exactly 32 bytes")
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let key = current.with_previous(previous);
    tracing::info!(master_key = %key.id(), previous = ?key.previous_ids(), "Master keys loaded.");
    Ok(key)
}

/// What an operator's CLI command works with: the ingest use cases over the shared
/// producer and views, on the system clock, unthrottled.
pub fn operator_state(config: &HeraldConfig, shared: &Shared) -> herald_ingest::IngestState {
    herald_ingest::IngestState::new(herald_ingest::IngestParts {
        config: config.ingest.clone(),
        producer: shared.producer.clone(),
        topics: config.kafka.topics(),
        endpoints: shared.endpoints.clone(),
        keys: shared.keys.clone(),
        clock: herald_core::clock::SharedClock::system(),
        limits: std::sync::Arc::new(herald_ingest::throttle::KeyLimits::new(0)),
    })
}

/// Producer and views, started and caught up.
pub async fn shared(
    config: &HeraldConfig,
    key: MasterKey,
    shutdown: &CancellationToken,
) -> Result<Shared> {
    let producer = Producer::new(&config.kafka, "herald")?;
    let views = TaskTracker::new();
    let endpoints = EndpointsView::spawn(&config.kafka, key, &views, shutdown.clone());
    let keys = KeysView::spawn(&config.kafka, &views, shutdown.clone());
    let wait = Duration::from_secs(120);
    endpoints.view().wait_ready(wait).await?;
    keys.view().wait_ready(wait).await?;
    Ok(Shared {
        producer,
        endpoints,
        keys,
        views,
    })
}

/// Binds and serves ingest + admin API + replay routes + `/metrics` until `shutdown`.
/// Prints the bound address once the bootstrap key is registered.
pub async fn start_ingest(
    config: &HeraldConfig,
    shared: &Shared,
    metrics: PrometheusHandle,
    shutdown: CancellationToken,
) -> Result<tokio::task::JoinHandle<Result<(), herald_ingest::Error>>> {
    let replays = ReplayState {
        replays: Replays::new(
            config.kafka.clone(),
            shared.producer.clone(),
            shared.endpoints.clone(),
            config.layout()?.shortest_tier(),
            SharedClock::system(),
            shutdown.clone(),
        ),
        keys: shared.keys.clone(),
        max_body_bytes: config.ingest.max_body_bytes,
    };
    let evidence = EvidenceState {
        kafka: config.kafka.clone(),
        keys: shared.keys.clone(),
        endpoints: shared.endpoints.clone(),
        clock: SharedClock::system(),
    };
    let probe = ProbeState {
        prober: prober(config, shared)?,
        endpoints: shared.endpoints.clone(),
        keys: shared.keys.clone(),
    };
    let listener = tokio::net::TcpListener::bind(config.ingest.listen)
        .await
        .with_context(|| format!("ingest.listen: cannot bind {}", config.ingest.listen))?;
    let (started, listening) = tokio::sync::oneshot::channel();
    let deps = IngestDeps {
        producer: shared.producer.clone(),
        topics: config.kafka.topics(),
        endpoints: shared.endpoints.clone(),
        keys: shared.keys.clone(),
        clock: SharedClock::system(),
        routes: herald_replay::api::router(replays)
            .merge(herald_evidence::api::router(evidence))
            .merge(herald_dispatcher::api::router(probe))
            .merge(crate::openapi::router()),
        unmetered: crate::observability::metrics_router(metrics),
        listening: Box::new(move |addr| {
            let _ = started.send(addr);
        }),
    };
    let serving = tokio::spawn(herald_ingest::run(
        config.ingest.clone(),
        deps,
        listener,
        shutdown,
    ));
    if let Ok(addr) = listening.await {
        println!("herald: ingest listening on http://{addr}");
        return Ok(serving);
    }
    // Start-up failed (the bootstrap key could not be registered): say why.
    serving
        .await
        .context("ingest task")?
        .context("starting ingest")?;
    anyhow::bail!("ingest stopped before serving")
}

/// Test deliveries through the dispatcher's transport, as configured.
pub fn prober(config: &HeraldConfig, shared: &Shared) -> Result<Prober> {
    Ok(Prober {
        outbound: herald_dispatcher::outbound(&config.dispatcher)?,
        producer: shared.producer.clone(),
        topics: config.kafka.topics(),
        clock: SharedClock::system(),
    })
}

/// Runs the dispatcher until `shutdown`, draining within the configured deadline.
pub async fn run_dispatcher(
    config: &HeraldConfig,
    shared: &Shared,
    shutdown: CancellationToken,
) -> Result<()> {
    crate::observability::zero_dispatcher();
    let probe = dispatcher_probe(config, shared);
    herald_kafka::health::spawn_refresh(
        shared.keys.clone(),
        config.ingest.key_rotation_period,
        move || {
            let probe = probe.clone();
            async move { probe.readiness().await }
        },
        shutdown.clone(),
    );
    let deps = herald_dispatcher::DispatcherDeps {
        kafka: config.kafka.clone(),
        producer: shared.producer.clone(),
        endpoints: shared.endpoints.clone(),
        clock: SharedClock::system(),
    };
    herald_dispatcher::run(
        config.dispatcher.clone(),
        deps,
        shutdown,
        config.shutdown_deadline,
    )
    .await?;
    Ok(())
}

/// What the dispatcher's `/readyz` and `herald_ready` look at.
pub fn dispatcher_probe(config: &HeraldConfig, shared: &Shared) -> DispatcherProbe {
    DispatcherProbe {
        producer: shared.producer.clone(),
        events_topic: config.kafka.topics().events().to_owned(),
        endpoints: shared.endpoints.clone(),
    }
}

/// Flushes the producer and stops the views.
pub async fn finish(shared: Shared, deadline: Duration) {
    if let Err(err) = shared.producer.flush(deadline).await {
        tracing::warn!(error = %err, "Producer flush incomplete at exit.");
    }
    shared.views.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), shared.views.wait()).await;
}

/// How long a stop may run past `shutdown_deadline` (abandoning work, final commits, the
/// producer flush) before the process exits anyway.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Cancels `token` on SIGINT or SIGTERM. If the process is still stopping `deadline` +
/// [`STOP_GRACE`] after the signal (something hangs: a saturated broker, a client call that
/// does not return), it exits with status 1. That is what an orchestrator's SIGKILL would
/// do a little later, and like it, it loses nothing: work whose outcome was not written is
/// not committed and is done again by the next start.
pub fn cancel_on_signal(token: CancellationToken, deadline: Duration) {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("Cannot install signal handlers.");
            return;
        };
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM: draining."),
            _ = int.recv() => tracing::info!("SIGINT: draining."),
        }
        token.cancel();
        // A plain thread: it must fire even if every async worker is stuck.
        std::thread::spawn(move || {
            std::thread::sleep(deadline + STOP_GRACE);
            tracing::error!(
                waited_s = (deadline + STOP_GRACE).as_secs(),
                "Still stopping past shutdown_deadline; exiting now (uncommitted work is redone at the next start)."
            );
            eprintln!("herald: still stopping past shutdown_deadline; exiting");
            std::process::exit(1);
        });
    });
}
