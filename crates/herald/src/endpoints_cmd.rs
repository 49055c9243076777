//! `herald endpoints test ep_…`: the same test delivery as `POST /v1/endpoints/{id}/test`,
//! from the CLI; exits 0 when the receiver answered 2xx, non-zero when it did not.
//! `herald endpoints reseal`: after a master-key rotation, writes every endpoint still sealed
//! under a previous key again under the current one.

use crate::config::HeraldConfig;
use crate::services;
use anyhow::{anyhow, bail, Result};
use clap::Subcommand;
use herald_core::ids::EndpointId;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum EndpointsAction {
    /// Send a signed `herald.test` delivery now and print what the receiver answered.
    Test {
        /// The endpoint, `ep_…`.
        id: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-seal every endpoint's secrets under the current master key (after a rotation;
    /// the previous key can be dropped once this reports none left).
    Reseal,
}

/// Runs `herald endpoints …`.
pub async fn run(config: HeraldConfig, action: EndpointsAction) -> Result<()> {
    let (id, json) = match action {
        EndpointsAction::Test { id, json } => (id, json),
        EndpointsAction::Reseal => return reseal(config).await,
    };
    let id = EndpointId::parse(&id).map_err(|e| anyhow!("endpoint id: {e}"))?;
    let shutdown = CancellationToken::new();
    let shared = services::shared(&config, services::master_key(&config)?, &shutdown).await?;
    let result = async {
        let entry = shared
            .endpoints
            .get(&id)
            .ok_or_else(|| anyhow!("no endpoint {id}"))?;
        let prober = services::prober(&config, &shared)?;
        let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
        let actor = herald_kafka::audit::Actor::named(format!("cli:{user}"));
        prober.probe(&entry.endpoint, &actor).await.map_err(|e| {
            anyhow!("the test delivery was sent, but its records were not written: {e}")
        })
    }
    .await;
    shutdown.cancel();
    services::finish(shared, config.shutdown_deadline).await;
    let result = result?;
    if json {
        println!("{result}");
    } else {
        println!(
            "herald: test delivery {} to {}: {} in {} ms{}",
            result["event_id"].as_str().unwrap_or(""),
            id,
            result["status"].as_u64().map_or_else(
                || result["class"].as_str().unwrap_or("").to_owned(),
                |s| s.to_string()
            ),
            result["latency_ms"],
            result["error"]
                .as_str()
                .map(|e| format!(" ({e})"))
                .unwrap_or_default(),
        );
    }
    if result["success"] != true {
        bail!("the receiver did not accept the test delivery");
    }
    Ok(())
}

async fn reseal(config: HeraldConfig) -> Result<()> {
    let shutdown = CancellationToken::new();
    let shared = services::shared(&config, services::master_key(&config)?, &shutdown).await?;
    let state = services::operator_state(&config, &shared);
    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let actor = herald_kafka::audit::Actor::named(format!("cli:{user}"));
    let done = herald_ingest::reseal::reseal_all(&state, &actor).await;
    let report = match &done {
        Ok(done) => done.to_json(&state),
        Err(_) => serde_json::Value::Null,
    };
    shutdown.cancel();
    services::finish(shared, config.shutdown_deadline).await;
    let done = done.map_err(|e| anyhow!(e))?;
    println!("{report}");
    if !done.failed.is_empty() {
        bail!(
            "{} endpoint(s) not re-sealed; run it again",
            done.failed.len()
        );
    }
    Ok(())
}
