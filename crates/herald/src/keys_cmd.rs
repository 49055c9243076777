//! `herald keys create|list|roll|revoke`: the same key management as `/v1/keys`, for an
//! operator holding the deployment's configuration (every scope, every tenant); each change
//! is in the audit trail as `cli:<user>`.

use crate::config::HeraldConfig;
use crate::services;
use anyhow::{anyhow, Result};
use clap::Subcommand;
use herald_ingest::key_admin::{self, key_json, Manager, NewKey};
use herald_ingest::IngestState;
use herald_kafka::audit::Actor;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum KeysAction {
    /// Create a key; its token is printed once.
    Create {
        /// A label (1-128 characters).
        #[arg(long)]
        name: String,
        /// A scope the key holds (repeat for more): events:write, endpoints:read,
        /// endpoints:write, keys:admin, replay:run, deliveries:read, audit:read.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
        /// Limit the key to this tenant.
        #[arg(long, default_value = "")]
        tenant: String,
        /// Valid for this long (`30d`); default `ingest.key_ttl` (90 days).
        #[arg(long, value_parser = parse_duration, conflicts_with = "never_expires")]
        expires_in: Option<std::time::Duration>,
        /// A key that never expires (flagged in every listing).
        #[arg(long)]
        never_expires: bool,
        /// Events a second the key may send (default `ingest.key_rate_per_sec`; 0: unlimited).
        #[arg(long)]
        rate_per_sec: Option<u32>,
    },
    /// List keys with state, age and whether rotation is due.
    List {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Roll a key: a new token with the same scopes; the old one works for the overlap.
    Roll {
        /// The key, `key_…`.
        id: String,
        /// How long the old token keeps working (`1h` default, at most `30d`).
        #[arg(long, value_parser = parse_duration)]
        overlap: Option<std::time::Duration>,
    },
    /// Revoke a key, for good, at once in every process.
    Revoke {
        /// The key, `key_…`.
        id: String,
    },
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    herald_core::duration::parse(text).map_err(|e| e.to_string())
}

/// Runs `herald keys …`.
pub async fn run(config: HeraldConfig, action: KeysAction) -> Result<()> {
    let shutdown = CancellationToken::new();
    let shared = services::shared(&config, services::master_key(&config)?, &shutdown).await?;
    let state = services::operator_state(&config, &shared);
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let actor = Actor::named(format!("cli:{user}"));
    let result = act(&state, Manager::Operator(&actor), action).await;
    shutdown.cancel();
    services::finish(shared, config.shutdown_deadline).await;
    result
}

async fn act(state: &IngestState, manager: Manager<'_>, action: KeysAction) -> Result<()> {
    let api = |e: herald_http::ApiError| anyhow!("{}", e.message);
    match action {
        KeysAction::Create {
            name,
            scopes,
            tenant,
            expires_in,
            never_expires,
            rate_per_sec,
        } => {
            let input = NewKey {
                name,
                scopes,
                expires_in_seconds: expires_in.map(|d| d.as_secs().max(1)),
                never_expires,
                tenant,
                rate_per_sec,
            };
            let (record, token) = key_admin::create_key(state, manager, input)
                .await
                .map_err(api)?;
            println!("herald: key {} created; its token (shown once):", record.id);
            println!("{}", token.expose());
        }
        KeysAction::List { json } => {
            for record in key_admin::list_keys(state, manager) {
                let k = key_json(&record, state);
                if json {
                    println!("{k}");
                    continue;
                }
                println!("{}", table_line(&record, &k));
            }
        }
        KeysAction::Roll { id, overlap } => {
            let (record, token, old) =
                key_admin::roll_key(state, manager, &id, overlap.map(|d| d.as_secs()))
                    .await
                    .map_err(api)?;
            println!(
                "herald: key {} rolled into {}; the old token works until {}; the new token (shown once):",
                old.id,
                record.id,
                herald_evidence::window::format_instant(old.expires_at_ms)
            );
            println!("{}", token.expose());
        }
        KeysAction::Revoke { id } => {
            let record = key_admin::revoke_key(state, manager, &id)
                .await
                .map_err(api)?;
            println!("herald: key {} revoked", record.id);
        }
    }
    Ok(())
}

/// One key as `herald keys list` prints it.
fn table_line(record: &herald_proto::v1::KeyRecord, k: &serde_json::Value) -> String {
    let flag = |field: &str, text: &'static str| if k[field] == true { text } else { "" };
    let used = match k["last_used_at_ms"].as_i64() {
        None => "never used".to_owned(),
        Some(at) => {
            let from: Vec<&str> = k["last_addresses"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|a| a["address"].as_str())
                .collect();
            format!(
                "last used {} from {}",
                herald_evidence::window::format_instant(at),
                if from.is_empty() {
                    "-".to_owned()
                } else {
                    from.join(",")
                }
            )
        }
    };
    format!(
        "{}  {:<8}  {:>4}d  {}{}{}{}  {}  {}  {}",
        record.id,
        k["state"].as_str().unwrap_or(""),
        k["age_days"],
        flag("rotation_due", "ROTATION DUE  "),
        flag("never_expires", "NEVER EXPIRES  "),
        flag("unlimited_rate", "UNLIMITED RATE  "),
        if record.tenant.is_empty() {
            "-".to_owned()
        } else {
            format!("tenant {}", record.tenant)
        },
        record.name,
        record.scopes.join(","),
        used,
    )
}
