//! `herald dlq list|show|stats`: see what is parked in the dead-letter topic and why, and
//! whether a replay re-drove it, before re-driving anything.

use crate::config::HeraldConfig;
use crate::replay_cmd::DlqFilterArgs;
use anyhow::{anyhow, Result};
use clap::Subcommand;
use herald_replay::browse::{self, Entry, Status};
use herald_replay::filter::format_instant;
use herald_replay::{DlqFilter, RunsView};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Debug, Subcommand)]
pub enum DlqAction {
    /// List dead letters, oldest first.
    List {
        #[command(flatten)]
        filter: DlqFilterArgs,
        /// `pending` (not re-driven yet), `redriven` or `all`.
        #[arg(long, default_value = "pending")]
        status: String,
        /// Entries per page.
        #[arg(long, default_value_t = 50)]
        limit: usize,
        /// The `next cursor` a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Every dead letter of one delivery (`dlv_…`), with its attempts and payload.
    Show {
        delivery_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Counts of parked deliveries by endpoint, event type and reason.
    Stats {
        #[command(flatten)]
        filter: DlqFilterArgs,
        #[arg(long)]
        json: bool,
    },
}

/// Runs `herald dlq …`.
pub async fn run(config: HeraldConfig, action: DlqAction) -> Result<()> {
    let filter = match &action {
        DlqAction::List { filter, .. } | DlqAction::Stats { filter, .. } => {
            filter.filter().map_err(|e| anyhow!(e))?
        }
        DlqAction::Show { delivery_id, .. } => {
            herald_core::ids::DeliveryId::parse(delivery_id).map_err(|e| anyhow!(e))?;
            DlqFilter::default()
        }
    };
    let status = match &action {
        DlqAction::List { status, .. } => Status::parse(status).map_err(|e| anyhow!(e))?,
        _ => Status::All,
    };
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();
    let runs = RunsView::spawn(&config.kafka, &tasks, shutdown.clone());
    let result = async {
        runs.wait_ready(Duration::from_secs(60)).await?;
        match action {
            DlqAction::List {
                limit,
                cursor,
                json,
                ..
            } => {
                let (page, _) = browse::list(
                    &config.kafka,
                    &runs,
                    &filter,
                    status,
                    limit,
                    cursor.as_deref(),
                )
                .await?;
                for entry in &page.entries {
                    if json {
                        println!("{}", entry.to_json(false));
                    } else {
                        println!("{}", line(entry));
                    }
                }
                println!(
                    "herald: {} shown of {} matching",
                    page.entries.len(),
                    page.total
                );
                if let Some(next) = page.next_cursor {
                    println!("herald: next cursor {next}");
                }
                Ok(())
            }
            DlqAction::Show { delivery_id, json } => {
                let found = browse::find(&config.kafka, &runs, &delivery_id).await?;
                if found.is_empty() {
                    return Err(herald_replay::Error::Invalid(format!(
                        "no dead letter of delivery {delivery_id}"
                    )));
                }
                for entry in found {
                    let value = entry.to_json(true);
                    if json {
                        println!("{value}");
                    } else {
                        println!(
                            "{}",
                            serde_json::to_string_pretty(&value).unwrap_or_default()
                        );
                    }
                }
                Ok(())
            }
            DlqAction::Stats { json, .. } => {
                let mut stats = browse::Stats::default();
                browse::scan_each(&config.kafka, &runs, &filter, |e| stats.add(&e)).await?;
                let stats = stats.finish();
                if json {
                    println!("{}", serde_json::to_string(&stats).unwrap_or_default());
                } else {
                    println!(
                        "dead letters: {} total, {} pending, {} re-driven",
                        stats.total, stats.pending, stats.redriven
                    );
                    if let (Some(oldest), Some(newest)) =
                        (&stats.oldest_pending, &stats.newest_pending)
                    {
                        println!("pending parked between {oldest} and {newest}");
                    }
                    for (title, counts) in [
                        ("endpoint", &stats.by_endpoint),
                        ("event type", &stats.by_event_type),
                        ("reason", &stats.by_reason),
                    ] {
                        for (key, n) in counts {
                            println!("pending by {title}: {key}: {n}");
                        }
                    }
                }
                Ok(())
            }
        }
    }
    .await;
    shutdown.cancel();
    tasks.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tasks.wait()).await;
    result.map_err(|e| anyhow!(e))
}

fn line(entry: &Entry) -> String {
    let task = entry.letter.task.clone().unwrap_or_default();
    let event = task.event.clone().unwrap_or_default();
    let last = task
        .last_failure
        .as_ref()
        .map(|f| f.error.clone())
        .unwrap_or_default();
    format!(
        "{}  {}  {}  {}  {}  {}  {}{}",
        format_instant(entry.letter.dead_at_ms),
        task.delivery_id,
        task.endpoint_id,
        event.event_type,
        event.id,
        entry.letter.reason,
        last,
        entry
            .redriven
            .as_ref()
            .map(|m| format!("  (re-driven by {})", m.replay_id))
            .unwrap_or_default()
    )
}
