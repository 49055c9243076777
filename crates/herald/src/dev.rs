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
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Reads `file`, or writes `make()` to it first. The file holds a secret: it is created
/// readable by its owner only (0600), and an existing one that others could read is made so.
fn load_or_create(file: &Path, make: impl FnOnce() -> String) -> Result<String> {
    use std::io::Write as _;
    use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
    if let Ok(text) = std::fs::read_to_string(file) {
        let mode = std::fs::metadata(file)?.permissions().mode();
        if mode & 0o077 != 0 {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                .with_context(|| format!("restricting {} to its owner", file.display()))?;
            tracing::warn!(file = %file.display(), mode = format!("{:o}", mode & 0o777), "Secret file was readable by others; now 0600.");
        }
        return Ok(text.trim().to_owned());
    }
    let value = make();
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("creating {}", file.display()))?;
    out.write_all(format!("{value}\n").as_bytes())
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
            shorten_fetch_wait(&mut config.kafka);
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

/// The embedded broker's events fetch wait, unless the config sets one.
const EMBEDDED_FETCH_WAIT: Duration = Duration::from_millis(10);

/// tansu 0.6 answers a Fetch only once the consumer's whole `fetch.wait.max.ms` has passed,
/// even when it found records at once (its fetch loop sleeps out the rest of the wait after
/// every pass). So on the embedded broker that wait is the latency floor of every hop: at
/// Herald's usual 100 ms, an event waited 100-200 ms for the dispatcher's next fetch. Only
/// the dispatcher's events consumer gets the shorter wait: tansu pays for every fetch, and
/// shortening it for every reader (views, retry tiers) cost a third of the throughput.
/// Apache Kafka answers as soon as records arrive and needs none of this.
fn shorten_fetch_wait(kafka: &mut herald_kafka::config::KafkaConfig) {
    kafka.events_fetch_wait.get_or_insert(EMBEDDED_FETCH_WAIT);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_fetch_wait_gives_way_to_the_users() {
        let mut kafka = herald_kafka::config::KafkaConfig::with_brokers("127.0.0.1:9092");
        shorten_fetch_wait(&mut kafka);
        assert_eq!(kafka.events_fetch_wait_ms(), 10);
        let mut kafka = herald_kafka::config::KafkaConfig::with_brokers("127.0.0.1:9092");
        kafka.events_fetch_wait = Some(Duration::from_millis(250));
        shorten_fetch_wait(&mut kafka);
        assert_eq!(kafka.events_fetch_wait_ms(), 250);
    }
    use std::os::unix::fs::PermissionsExt as _;

    #[test]
    fn secret_files_are_readable_by_their_owner_only() {
        let dir = std::env::temp_dir().join(format!("herald-dev-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("master.key");
        let _ = std::fs::remove_file(&file);
        assert_eq!(load_or_create(&file, || "s3cret".into()).unwrap(), "s3cret");
        let mode = |f: &Path| std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&file), 0o600);
        // One written world-readable by an older version is tightened, and still read.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(load_or_create(&file, || unreachable!()).unwrap(), "s3cret");
        assert_eq!(mode(&file), 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
