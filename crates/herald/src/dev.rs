//! `herald dev`: the whole pipeline in one process, on an embedded broker unless `--kafka`.
//! Generates (once) a master key and an admin API key in the data directory.

use crate::cli::DevArgs;
use crate::config::HeraldConfig;
use crate::{broker, services};
use anyhow::{Context, Result};
use herald_core::apikey::ApiKeyToken;
use herald_core::ids::KeyId;
use metrics_exporter_prometheus::PrometheusHandle;
use std::path::Path;
use tokio_util::sync::CancellationToken;

/// Reads `file`, or writes `make()` to it first.
fn load_or_create(file: &Path, make: impl FnOnce() -> String) -> Result<String> {
    if let Ok(text) = std::fs::read_to_string(file) {
        return Ok(text.trim().to_owned());
    }
    let value = make();
    std::fs::write(file, format!("{value}\n"))
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(value)
}

/// Runs `herald dev`.
pub async fn run(mut config: HeraldConfig, args: DevArgs, metrics: PrometheusHandle) -> Result<()> {
    let shutdown = CancellationToken::new();
    services::cancel_on_signal(shutdown.clone(), config.shutdown_deadline);
    if let Some(dir) = args.data_dir {
        config.data_dir = dir;
    }
    if let Some(listen) = args.listen {
        config.ingest.listen = listen;
    }
    // Paths are resolved before the embedded broker makes the data directory the cwd.
    let data_dir = broker::enter_data_dir(&config.data_dir)?;
    if config.master_key.is_empty() {
        config.master_key = load_or_create(&data_dir.join("master.key"), || {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
        })?;
    }
    if config.ingest.bootstrap_key.is_none() {
        let token = load_or_create(&data_dir.join("admin.key"), || {
            ApiKeyToken::generate(KeyId::generate(herald_kafka::now_ms())).expose()
        })?;
        config.ingest.bootstrap_key = Some(token);
    }
    if config.dispatcher.allowed_networks.is_empty() {
        // Local development delivers to local receivers.
        config.dispatcher.allowed_networks = vec!["127.0.0.0/8".into(), "::1/128".into()];
    }
    let embedded = match args.kafka {
        Some(kafka) => {
            config.kafka.brokers = kafka;
            None
        }
        None => {
            let broker = broker::start(args.broker_listen, false).await?;
            config.kafka.brokers = broker.addr.to_string();
            Some(broker)
        }
    };
    tracing::info!(data_dir = %data_dir.display(), brokers = %config.kafka.brokers, "Starting herald dev.");
    services::provision(&config, &shutdown).await?;
    let key = services::master_key(&config)?;
    let shared = services::shared(&config, key, &shutdown).await?;
    let ingest = services::start_ingest(&config, &shared, metrics, shutdown.clone()).await?;
    if let Some(token) = &config.ingest.bootstrap_key {
        println!("herald: admin API key (keys:admin and every other scope): {token}");
        println!("herald: data directory {}", data_dir.display());
    }
    let dispatched = services::run_dispatcher(&config, &shared, shutdown.clone()).await;
    shutdown.cancel();
    let _ = ingest.await;
    tracing::info!("Ingest stopped.");
    services::finish(shared, config.shutdown_deadline).await;
    if let Some(broker) = embedded {
        broker.stop();
    }
    tracing::info!("herald dev stopped.");
    dispatched?;
    println!("herald: stopped");
    Ok(())
}
