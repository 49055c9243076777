//! Command-line interface.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Herald: event-sourced webhook delivery on Kafka.
#[derive(Debug, Parser)]
#[command(name = "herald", version, about)]
pub struct Cli {
    /// Config file (TOML). Also `HERALD_CONFIG`.
    #[arg(long, global = true, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ingest, admin API and dispatcher in one process, on an embedded broker by default.
    Dev(DevArgs),
    /// Run the embedded Kafka-compatible broker on its own.
    Broker(BrokerArgs),
    /// Run the HTTP ingest and admin API against a Kafka cluster.
    Ingest,
    /// Run the dispatcher against a Kafka cluster.
    Dispatch,
    /// Summary of the running services (readiness, throughput, DLQ, lag, failing endpoints).
    Status(StatusArgs),
    /// Re-drive dead letters or a time range of events (dry run, resume, status).
    Replay {
        #[command(subcommand)]
        action: crate::replay_cmd::ReplayAction,
    },
    /// Browse the dead-letter topic: what is parked and why.
    Dlq {
        #[command(subcommand)]
        action: crate::dlq_cmd::DlqAction,
    },
    /// API keys: create, list (age, rotation due), roll, revoke.
    Keys {
        #[command(subcommand)]
        action: crate::keys_cmd::KeysAction,
    },
    /// Endpoints: send a signed test delivery and see what the receiver answered.
    Endpoints {
        #[command(subcommand)]
        action: crate::endpoints_cmd::EndpointsAction,
    },
    /// The delivery log: did an event reach its endpoints, and an endpoint's attempts.
    Deliveries(crate::evidence_cmd::DeliveriesArgs),
    /// The audit trail: who did what, when, from where; export as JSON lines or CSV.
    Audit(crate::evidence_cmd::AuditArgs),
    /// Reconciliation: per endpoint, events accepted = delivered + dead-lettered + pending.
    Reconcile(crate::reconcile_cmd::ReconcileArgs),
    /// Manage Herald's topics.
    Topics {
        #[command(subcommand)]
        action: TopicsAction,
    },
}

#[derive(Debug, clap::Args)]
pub struct DevArgs {
    /// Use this Kafka (`host:port`) instead of the embedded broker.
    #[arg(long)]
    pub kafka: Option<String>,
    /// Data directory (broker storage, generated master key and admin key).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Where the ingest/admin API listens (overrides `ingest.listen`).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Where the embedded broker listens.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub broker_listen: SocketAddr,
}

#[derive(Debug, clap::Args)]
pub struct BrokerArgs {
    /// Data directory (`tansu.db` lives here).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listen address, also advertised to clients.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,
    /// Keep data in memory only (lost at exit).
    #[arg(long)]
    pub memory: bool,
}

#[derive(Debug, Subcommand)]
pub enum TopicsAction {
    /// Create every topic Herald needs (idempotent).
    Create,
    /// Print the topics Herald would create, with partitions and cleanup policy.
    Plan,
}

#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// Base URL of ingest (default: http:// + `ingest.listen`).
    #[arg(long)]
    pub ingest: Option<String>,
    /// Base URL of the dispatcher's metrics server (default: http:// + `metrics_listen`).
    #[arg(long)]
    pub dispatcher: Option<String>,
    /// Time between the two scrapes that give the rates (e.g. `1s`, `500ms`).
    #[arg(long, default_value = "1s", value_parser = parse_interval)]
    pub interval: std::time::Duration,
}

fn parse_interval(text: &str) -> Result<std::time::Duration, String> {
    herald_core::duration::parse(text).map_err(|e| e.to_string())
}
