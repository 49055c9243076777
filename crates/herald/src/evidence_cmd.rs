//! `herald deliveries` and `herald audit`: the delivery log and the audit trail, read from
//! the topics with the same queries as `GET /v1/events/{id}/deliveries`,
//! `GET /v1/endpoints/{id}/attempts` and `GET /v1/audit`.

use crate::config::HeraldConfig;
use anyhow::{anyhow, bail, Result};
use herald_core::ids::{EndpointId, EventId};
use herald_evidence::attempts::{self, AttemptQuery};
use herald_evidence::audit::{self, AuditQuery, CSV_HEADER};
use herald_evidence::window::Window;

#[derive(Debug, clap::Args)]
pub struct DeliveriesArgs {
    /// Where each delivery of this event (`evt_…`) stands, with every attempt.
    #[arg(
        long,
        conflicts_with = "endpoint",
        required_unless_present = "endpoint"
    )]
    pub event: Option<String>,
    /// The attempts to this endpoint (`ep_…`), oldest first.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Only this status class: 2xx, 3xx, 4xx, 5xx, timeout, connection, forbidden, other.
    #[arg(long)]
    pub status: Option<String>,
    /// At or after: RFC 3339 or a duration ago (`2h`).
    #[arg(long)]
    pub since: Option<String>,
    /// Before: RFC 3339 or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// Attempts per page (`--endpoint`).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The `next cursor` a previous page printed.
    #[arg(long)]
    pub cursor: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

/// How `herald audit` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Jsonl,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    /// Only this actor (key id, `system:dispatcher`, `cli:<user>`).
    #[arg(long)]
    pub actor: Option<String>,
    /// Only this action (`key.revoked`) or prefix (`endpoint.*`).
    #[arg(long)]
    pub action: Option<String>,
    /// Only this target (endpoint, key or replay id).
    #[arg(long)]
    pub target: Option<String>,
    /// Only this tenant's records.
    #[arg(long)]
    pub tenant: Option<String>,
    /// At or after: RFC 3339 or a duration ago (`90d`).
    #[arg(long)]
    pub since: Option<String>,
    /// Before: RFC 3339 or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
    /// `table` (default), `jsonl` or `csv`: an export prints every matching record.
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

fn window(since: Option<&str>, until: Option<&str>) -> Result<Window> {
    Window::parse(since, until, herald_kafka::now_ms()).map_err(|e| anyhow!(e))
}

/// Runs `herald deliveries`.
pub async fn deliveries(config: HeraldConfig, args: DeliveriesArgs) -> Result<()> {
    let mut query = AttemptQuery {
        class: args.status.clone(),
        window: window(args.since.as_deref(), args.until.as_deref())?,
        ..AttemptQuery::default()
    };
    query.validate().map_err(|e| anyhow!(e))?;
    if let Some(event) = &args.event {
        query.event_id = Some(
            EventId::parse(event)
                .map_err(|e| anyhow!("--event: {e}"))?
                .to_string(),
        );
        let deliveries = attempts::deliveries_of_event(&config.kafka, &query).await?;
        if deliveries.is_empty() {
            println!(
                "herald: no attempt of {event} recorded (not delivered yet, or no subscriber)"
            );
        }
        for d in deliveries {
            if args.json {
                println!("{d}");
                continue;
            }
            let last = &d["last_attempt"];
            println!(
                "{}  {}  {}  {} attempt(s), last {} {} {}ms{}",
                d["endpoint_id"].as_str().unwrap_or(""),
                d["delivery_id"].as_str().unwrap_or(""),
                d["state"].as_str().unwrap_or(""),
                d["attempts"],
                last["at"].as_str().unwrap_or(""),
                last["status"].as_u64().map_or_else(
                    || last["class"].as_str().unwrap_or("").to_owned(),
                    |s| s.to_string()
                ),
                last["latency_ms"],
                last["error"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
            );
        }
        return Ok(());
    }
    let Some(endpoint) = &args.endpoint else {
        bail!("pass --event evt_… or --endpoint ep_…");
    };
    query.endpoint_id = Some(
        EndpointId::parse(endpoint)
            .map_err(|e| anyhow!("--endpoint: {e}"))?
            .to_string(),
    );
    let page = attempts::list(&config.kafka, &query, args.limit, args.cursor.as_deref()).await?;
    for a in &page.entries {
        let j = a.to_json();
        if args.json {
            println!("{j}");
        } else {
            println!(
                "{}  {}  {} #{}  {}  {}ms  {}{}",
                j["at"].as_str().unwrap_or(""),
                j["event_id"].as_str().unwrap_or(""),
                j["delivery_id"].as_str().unwrap_or(""),
                j["attempt"],
                j["status"].as_u64().map_or_else(
                    || j["class"].as_str().unwrap_or("").to_owned(),
                    |s| s.to_string()
                ),
                j["latency_ms"],
                j["outcome"].as_str().unwrap_or(""),
                j["error"]
                    .as_str()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default(),
            );
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

/// Runs `herald audit`.
pub async fn audit(config: HeraldConfig, args: AuditArgs) -> Result<()> {
    let query = AuditQuery {
        actor: args.actor,
        action: args.action,
        target: args.target,
        tenant: args.tenant,
        window: window(args.since.as_deref(), args.until.as_deref())?,
    };
    if args.format == Format::Csv {
        println!("{CSV_HEADER}");
    }
    let mut count = 0usize;
    audit::scan_each(&config.kafka, &query, |entry| {
        count += 1;
        match args.format {
            Format::Jsonl => println!("{}", entry.to_json()),
            Format::Csv => println!("{}", entry.to_csv()),
            Format::Table => {
                let r = &entry.record;
                println!(
                    "{}  {}  {}  {}  {}{}",
                    herald_evidence::window::format_instant(r.at_ms),
                    r.actor,
                    r.action,
                    r.target,
                    if r.source_ip.is_empty() {
                        "-"
                    } else {
                        &r.source_ip
                    },
                    if r.tenant.is_empty() {
                        String::new()
                    } else {
                        format!("  tenant {}", r.tenant)
                    },
                );
            }
        }
    })
    .await?;
    if args.format == Format::Table {
        println!("herald: {count} audit records");
    }
    Ok(())
}
