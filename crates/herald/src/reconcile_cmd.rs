//! `herald reconcile`: the reconciliation report of `GET /v1/reconciliation`, read from the
//! topics: per endpoint, events accepted for it over the window, delivered, dead-lettered,
//! still pending, and whether the numbers add up. Exits 2 on a mismatch, so a daily job
//! that closes the books fails loudly.

use crate::config::HeraldConfig;
use crate::services;
use anyhow::{anyhow, bail, Result};
use herald_evidence::reconcile::{self, ReconcileQuery};
use herald_evidence::window::Window;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// Events accepted at or after: RFC 3339 or a duration ago (`24h`).
    #[arg(long, default_value = "24h")]
    pub since: String,
    /// Accepted before: RFC 3339 or a duration ago (default: now).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this endpoint (`ep_…`).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Only this tenant's events.
    #[arg(long)]
    pub tenant: Option<String>,
    /// The report as one JSON object (the API's shape).
    #[arg(long)]
    pub json: bool,
}

/// Runs `herald reconcile`.
pub async fn run(config: HeraldConfig, args: ReconcileArgs) -> Result<()> {
    let now = herald_kafka::now_ms();
    let window =
        Window::parse(Some(&args.since), args.until.as_deref(), now).map_err(|e| anyhow!(e))?;
    if let Some(id) = &args.endpoint {
        herald_core::ids::EndpointId::parse(id).map_err(|e| anyhow!("--endpoint: {e}"))?;
    }
    let query = ReconcileQuery {
        window,
        endpoint_id: args.endpoint,
        tenant: args.tenant,
    };
    let shutdown = CancellationToken::new();
    let shared = services::shared(&config, services::master_key(&config)?, &shutdown).await?;
    let result = reconcile::reconcile(&config.kafka, &shared.endpoints, &query).await;
    shutdown.cancel();
    services::finish(shared, config.shutdown_deadline).await;
    let report = reconcile::report_json(&result.map_err(|e| anyhow!(e))?, &query, now);
    if args.json {
        println!("{report}");
    } else {
        print_table(&report);
    }
    if report["verdict"] == "mismatch" {
        bail!("the numbers do not add up (see `unexpected` and the per-endpoint verdicts)");
    }
    Ok(())
}

fn print_table(report: &Value) {
    println!(
        "events accepted {} .. {}",
        report["since"].as_str().unwrap_or("-"),
        report["until"].as_str().unwrap_or("-")
    );
    println!(
        "{:<30} {:>9} {:>9} {:>9} {:>9} {:>10}  verdict",
        "endpoint", "accepted", "delivered", "dead", "pending", "unexpected"
    );
    let row = |name: &str, c: &Value| {
        println!(
            "{:<30} {:>9} {:>9} {:>9} {:>9} {:>10}  {}",
            name,
            c["accepted"],
            c["delivered"],
            c["dead_lettered"],
            c["pending"],
            c["unexpected"],
            c["verdict"].as_str().unwrap_or("")
        );
    };
    for endpoint in report["endpoints"].as_array().into_iter().flatten() {
        row(endpoint["endpoint_id"].as_str().unwrap_or(""), endpoint);
    }
    row("total", &report["totals"]);
    println!("verdict: {}", report["verdict"].as_str().unwrap_or(""));
}
