//! # herald
//!
//! The one binary's library: configuration, assembly of the services from one config, and
//! every command (`herald dev`, `ingest`, `dispatch`, `broker`, `status`, `replay`, `dlq`,
//! `topics`). `main` parses the command line and calls [`run`]; tests use the same pieces.
//!
//! Modules:
//! - [`cli`]: the command line.
//! - [`config`]: `HeraldConfig`, defaults → file → `HERALD_*` environment.
//! - [`services`]: topics, producer and views, ingest and dispatcher from one config.
//! - [`observability`]: logs, the metrics recorder, `/metrics`, `/healthz`, `/readyz`.
//! - [`broker`]: the embedded broker (tansu) behind `herald dev` and `herald broker`.
//! - [`dev`], [`replay_cmd`], [`dlq_cmd`], [`endpoints_cmd`], [`evidence_cmd`], [`reconcile_cmd`], [`keys_cmd`], [`status_cmd`]: the commands.
//! - [`prometheus`]: the Prometheus text format, read.
//! - [`openapi`]: the OpenAPI 3.1 document of the HTTP API, served at `/openapi.json`.

pub mod broker;
pub mod cli;
pub mod config;
pub mod dev;
pub mod dlq_cmd;
pub mod endpoints_cmd;
pub mod evidence_cmd;
pub mod keys_cmd;
pub mod observability;
pub mod openapi;
pub mod prometheus;
pub mod reconcile_cmd;
pub mod replay_cmd;
pub mod services;
pub mod status_cmd;

use anyhow::{Context, Result};
use cli::{Cli, Command, TopicsAction};
use config::HeraldConfig;
use tokio_util::sync::CancellationToken;

/// Runs the command `cli` names.
pub async fn run(cli: Cli) -> Result<()> {
    let config = HeraldConfig::load(cli.config.as_deref(), std::env::vars())?;
    match cli.command {
        Command::Dev(args) => dev::run(config, args, observability::init_metrics()?).await,
        Command::Broker(args) => run_broker(config, args).await,
        Command::Ingest => run_ingest(config).await,
        Command::Dispatch => run_dispatch(config).await,
        Command::Status(args) => status_cmd::run(config, args).await,
        Command::Replay { action } => replay_cmd::run(config, action).await,
        Command::Dlq { action } => dlq_cmd::run(config, action).await,
        Command::Keys { action } => keys_cmd::run(config, action).await,
        Command::Endpoints { action } => endpoints_cmd::run(config, action).await,
        Command::Deliveries(args) => evidence_cmd::deliveries(config, args).await,
        Command::Audit(args) => evidence_cmd::audit(config, args).await,
        Command::Reconcile(args) => reconcile_cmd::run(config, args).await,
        Command::Topics { action } => topics(config, action).await,
    }
}

async fn run_broker(config: HeraldConfig, args: cli::BrokerArgs) -> Result<()> {
    let dir = args.data_dir.unwrap_or(config.data_dir);
    let dir = broker::enter_data_dir(&dir)?;
    let mut broker = broker::start(args.listen, args.memory).await?;
    println!(
        "herald: broker listening on {} (data in {})",
        broker.addr,
        dir.display()
    );
    let shutdown = CancellationToken::new();
    services::cancel_on_signal(shutdown.clone(), config.shutdown_deadline);
    tokio::select! {
        _ = shutdown.cancelled() => { broker.stop(); Ok(()) }
        result = broker.wait() => result.and_then(|_| anyhow::bail!("broker stopped unexpectedly")),
    }
}

async fn run_ingest(config: HeraldConfig) -> Result<()> {
    let metrics = observability::init_metrics()?;
    let shutdown = CancellationToken::new();
    services::cancel_on_signal(shutdown.clone(), config.shutdown_deadline);
    services::provision(&config, &shutdown).await?;
    let shared = services::shared(&config, services::master_key(&config)?, &shutdown).await?;
    let ingest = services::start_ingest(&config, &shared, metrics, shutdown.clone()).await?;
    let served = ingest.await.context("ingest task")?;
    services::finish(shared, config.shutdown_deadline).await;
    served.context("serving ingest")
}

async fn run_dispatch(config: HeraldConfig) -> Result<()> {
    let metrics = observability::init_metrics()?;
    let shutdown = CancellationToken::new();
    services::cancel_on_signal(shutdown.clone(), config.shutdown_deadline);
    services::provision(&config, &shutdown).await?;
    let shared = services::shared(&config, services::master_key(&config)?, &shutdown).await?;
    let listener = tokio::net::TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("metrics_listen: cannot bind {}", config.metrics_listen))?;
    let app =
        observability::dispatcher_router(metrics, services::dispatcher_probe(&config, &shared));
    println!(
        "herald: dispatcher metrics, /healthz, /readyz on http://{}",
        listener.local_addr()?
    );
    let stop = shutdown.clone();
    let server = tokio::spawn(herald_http::serve(listener, app, stop));
    let result = services::run_dispatcher(&config, &shared, shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    services::finish(shared, config.shutdown_deadline).await;
    result
}

async fn topics(config: HeraldConfig, action: TopicsAction) -> Result<()> {
    let specs = herald_kafka::provision::topic_specs(&config.kafka, config.layout()?.tiers());
    match action {
        TopicsAction::Plan => {
            for spec in specs {
                println!(
                    "{}\tpartitions={}\t{:?}",
                    spec.name, spec.partitions, spec.cleanup
                );
            }
            Ok(())
        }
        TopicsAction::Create => {
            let shutdown = CancellationToken::new();
            let created = herald_kafka::provision::ensure_topics(
                &config.kafka,
                &specs,
                std::time::Duration::from_secs(30),
                &shutdown,
            )
            .await?;
            for (name, new) in created {
                println!("{name}\t{}", if new { "created" } else { "exists" });
            }
            Ok(())
        }
    }
}

/// Whether `err` only says a signal arrived while the service was still starting.
pub fn stopped_while_starting(err: &anyhow::Error) -> bool {
    use herald_kafka::Error::ShuttingDown;
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<herald_kafka::Error>(),
            Some(ShuttingDown)
        ) || matches!(
            cause.downcast_ref::<herald_dispatcher::Error>(),
            Some(herald_dispatcher::Error::Kafka(ShuttingDown))
        )
    })
}
