//! The embedded Kafka-compatible broker (tansu), for `herald dev` and `herald broker`.
//!
//! tansu resolves `sqlite://` storage paths against the process's working directory, so the
//! caller changes into the data directory before starting it (see [`enter_data_dir`]). Data
//! lives in `<data dir>/tansu.db` and survives restarts and SIGKILL.

use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::task::JoinHandle;
use url::Url;

/// A running embedded broker.
pub struct EmbeddedBroker {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl EmbeddedBroker {
    /// Stops serving (after Herald's own producers flushed).
    pub fn stop(self) {
        self.task.abort();
    }

    /// Waits until the broker task ends (it only ends on a fatal error).
    pub async fn wait(&mut self) -> Result<()> {
        (&mut self.task).await.context("embedded broker task")
    }
}

/// Creates `dir` if needed, makes it the working directory and returns its absolute path.
pub fn enter_data_dir(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("creating data directory {}", dir.display()))?;
    let absolute = dir
        .canonicalize()
        .with_context(|| format!("resolving data directory {}", dir.display()))?;
    std::env::set_current_dir(&absolute)
        .with_context(|| format!("entering data directory {}", absolute.display()))?;
    Ok(absolute)
}

/// Starts tansu on `addr` with sqlite storage in the current directory (`tansu.db`),
/// or in memory when `memory` is set.
pub async fn start(addr: SocketAddr, memory: bool) -> Result<EmbeddedBroker> {
    let storage = if memory {
        Url::parse("memory://tansu/")?
    } else {
        Url::parse("sqlite://tansu.db")?
    };
    let listener = Url::parse(&format!("tcp://{addr}"))?;
    let broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
        .node_id(111)
        .cluster_id(herald_kafka::membership::EMBEDDED_CLUSTER_ID)
        .incarnation_id(uuid::Uuid::new_v4())
        .advertised_listener(listener.clone())
        .listener(listener)
        .storage(storage)
        .silent(true)
        .build()
        .await
        .map_err(|e| anyhow::anyhow!("starting the embedded broker: {e:?}"))?;
    if !memory {
        index_headers(Path::new("tansu.db")).await?;
    }
    let mut broker = broker;
    let task = tokio::spawn(async move {
        if let Err(err) = broker.serve(tokio::time::Instant::now()).await {
            tracing::error!(error = ?err, "Embedded broker stopped.");
        }
    });
    wait_listening(addr).await?;
    tracing::info!(%addr, "Embedded broker listening.");
    Ok(EmbeddedBroker { addr, task })
}

/// Adds the index tansu 0.6's schema lacks for its per-record header lookup (`header_fetch`
/// joins `header` on `(topition, offset_id)`): without it every record served scans the whole
/// `header` table, so fetches slow down with everything ever written with headers (Herald
/// writes none; other producers may). Idempotent; run once the broker created its tables.
async fn index_headers(db: &Path) -> Result<()> {
    let db = libsql::Builder::new_local(db)
        .build()
        .await
        .context("opening the embedded broker's database")?;
    let connection = db
        .connect()
        .context("connecting to the embedded broker's database")?;
    connection
        .execute(
            "create index if not exists herald_header_by_record on header (topition, offset_id)",
            (),
        )
        .await
        .context("indexing the embedded broker's header table")?;
    Ok(())
}

async fn wait_listening(addr: SocketAddr) -> Result<()> {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    anyhow::bail!("embedded broker did not start listening on {addr}")
}
