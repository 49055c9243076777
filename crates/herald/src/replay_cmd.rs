//! `herald replay dlq|events|resume|status|list`: re-drive dead letters or a time range of the
//! events topic, safely: a plan first (`--dry-run` stops there), a confirmation unless
//! `--yes`, a rate limit, progress (a bar on a terminal, log lines otherwise), a summary.

use crate::config::HeraldConfig;
use crate::services;
use anyhow::{anyhow, bail, Context, Result};
use clap::Subcommand;
use herald_core::run::RunState;
use herald_proto::v1;
use herald_replay::filter::parse_replay_id;
use herald_replay::rate::parse_rate;
use herald_replay::request::{run_json, DlqQuery, ReplayRequest};
use herald_replay::{run, DlqFilter, Plan, ReplaySpec, Replayer, RunsView};
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

#[derive(Debug, Subcommand)]
pub enum ReplayAction {
    /// Re-drive dead letters into delivery with a fresh attempt budget (same webhook-id).
    Dlq(DlqArgs),
    /// Deliver the events of a time range again, to one endpoint or every subscribed one.
    Events(EventsArgs),
    /// Resume an interrupted run where it stopped (nothing is re-driven twice).
    Resume(ResumeArgs),
    /// Show the progress of a run.
    Status {
        /// The run id, `rpl_…`.
        id: String,
        /// Print the run record as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List replay runs, newest first.
    List,
}

/// Filters shared by `herald replay dlq` and `herald dlq list|stats`.
#[derive(Debug, Clone, clap::Args)]
pub struct DlqFilterArgs {
    /// Only dead letters of this endpoint (`ep_…`).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Only this event type, or a prefix filter such as `stock.*`.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only this reason: exhausted, endpoint_gone, endpoint_disabled, endpoint_deleted,
    /// payload_rejected, destination_forbidden.
    #[arg(long)]
    pub reason: Option<String>,
    /// Parked at or after: RFC 3339 (`2026-03-01T09:00:00Z`) or a duration ago (`2h`).
    #[arg(long)]
    pub since: Option<String>,
    /// Parked before: RFC 3339 or a duration ago.
    #[arg(long)]
    pub until: Option<String>,
}

impl DlqFilterArgs {
    /// The flags as the shared query.
    pub fn query(&self) -> DlqQuery {
        DlqQuery {
            endpoint: self.endpoint.clone(),
            event_type: self.event_type.clone(),
            tenant: self.tenant.clone(),
            reason: self.reason.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }

    /// The validated filter.
    pub fn filter(&self) -> herald_replay::Result<DlqFilter> {
        self.query().filter(herald_kafka::now_ms())
    }
}

/// How a run is carried out.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Print what would be re-driven (counts by endpoint and type, a sample); change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// At most this many re-drives per second (`50/s`, `600/m`).
    #[arg(long)]
    pub rate: Option<String>,
    /// Stop after this many re-drives.
    #[arg(long)]
    pub max: Option<u64>,
    /// Id of the new run (`rpl_…`); default: generated.
    #[arg(long)]
    pub id: Option<String>,
}

#[derive(Debug, clap::Args)]
pub struct DlqArgs {
    #[command(flatten)]
    pub filter: DlqFilterArgs,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// Events accepted at or after: RFC 3339 or a duration ago (`2h`). Required.
    #[arg(long)]
    pub since: String,
    /// Events accepted before: RFC 3339 or a duration ago. Default: now.
    #[arg(long)]
    pub until: Option<String>,
    /// Only to this endpoint (`ep_…`); default: every endpoint subscribed to each event.
    #[arg(long)]
    pub endpoint: Option<String>,
    /// Only this event type, or a prefix filter such as `stock.*`.
    #[arg(long)]
    pub event_type: Option<String>,
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Only deliveries that did not succeed (per the attempts topic).
    #[arg(long)]
    pub only_failed: bool,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, clap::Args)]
pub struct ResumeArgs {
    /// The run id, `rpl_…`.
    pub id: String,
    /// Do not ask for confirmation.
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Override the run's rate (`50/s`).
    #[arg(long)]
    pub rate: Option<String>,
}

fn bad(err: herald_replay::Error) -> anyhow::Error {
    anyhow!("{err}; nothing was re-driven")
}

impl RunArgs {
    /// `request` with this run's options.
    fn apply(&self, request: ReplayRequest) -> ReplayRequest {
        ReplayRequest {
            rate: self.rate.clone(),
            max_count: self.max,
            dry_run: self.dry_run,
            id: self.id.clone(),
            ..request
        }
    }
}

impl DlqArgs {
    fn request(&self) -> ReplayRequest {
        let q = self.filter.query();
        self.run.apply(ReplayRequest {
            kind: "dlq".into(),
            endpoint: q.endpoint,
            event_type: q.event_type,
            tenant: q.tenant,
            reason: q.reason,
            since: q.since,
            until: q.until,
            ..Default::default()
        })
    }
}

impl EventsArgs {
    fn request(&self) -> ReplayRequest {
        self.run.apply(ReplayRequest {
            kind: "events".into(),
            endpoint: self.endpoint.clone(),
            event_type: self.event_type.clone(),
            tenant: self.tenant.clone(),
            since: Some(self.since.clone()),
            until: self.until.clone(),
            only_failed: self.only_failed,
            ..Default::default()
        })
    }
}

/// Runs `herald replay …`.
pub async fn run(config: HeraldConfig, action: ReplayAction) -> Result<()> {
    // Parse and validate everything before touching Kafka.
    let request = match &action {
        ReplayAction::Dlq(args) => Some((args.request(), args.run.clone())),
        ReplayAction::Events(args) => Some((args.request(), args.run.clone())),
        _ => None,
    };
    let parsed = match &request {
        Some((request, run)) => Some((
            request.spec(herald_kafka::now_ms()).map_err(bad)?,
            request.run_id().map_err(bad)?,
            run.clone(),
        )),
        None => None,
    };
    let shutdown = CancellationToken::new();
    services::cancel_on_signal(shutdown.clone(), config.shutdown_deadline);
    let (replayer, shared) = open(&config, &shutdown).await?;
    let result = match action {
        ReplayAction::Dlq(_) | ReplayAction::Events(_) => {
            let (spec, id, args) = parsed.expect("parsed above");
            start(&replayer, spec, &args, id, &shutdown).await
        }
        ReplayAction::Resume(args) => resume(&replayer, args, &shutdown).await,
        ReplayAction::Status { id, json } => status(replayer.runs(), &id, json),
        ReplayAction::List => {
            for run in replayer.runs().list() {
                println!("{}", run::describe(&run));
            }
            Ok(())
        }
    };
    shutdown.cancel();
    services::finish(shared, config.shutdown_deadline).await;
    result
}

/// Producer, endpoints view and replays view, caught up.
async fn open(
    config: &HeraldConfig,
    shutdown: &CancellationToken,
) -> Result<(Replayer, services::Shared)> {
    let tier = config.layout()?.shortest_tier();
    let shared = services::shared(config, services::master_key(config)?, shutdown).await?;
    let runs = RunsView::spawn(&config.kafka, &shared.views, shutdown.clone());
    runs.wait_ready(Duration::from_secs(60))
        .await
        .with_context(|| format!("reading {}", config.kafka.topics().replays()))?;
    let replayer = Replayer::new(
        config.kafka.clone(),
        shared.producer.clone(),
        shared.endpoints.clone(),
        runs,
        tier,
        herald_core::clock::SharedClock::system(),
    );
    Ok((replayer, shared))
}

fn actor() -> herald_kafka::audit::Actor {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    herald_kafka::audit::Actor::named(format!("cli:{user}"))
}

fn print_plan(plan: &Plan) {
    println!(
        "herald: plan: {} to re-drive, {} already re-driven or delivered (skipped), {} records of {} scanned",
        plan.to_redrive, plan.skipped, plan.scanned, plan.source_topic
    );
    for (endpoint, n) in &plan.by_endpoint {
        println!("herald: plan: endpoint {endpoint}: {n}");
    }
    for (kind, n) in &plan.by_event_type {
        println!("herald: plan: event type {kind}: {n}");
    }
    for item in &plan.sample {
        println!(
            "herald: plan: sample {} event {} ({}) to {}{}",
            item.delivery_id,
            item.event_id,
            item.event_type,
            item.endpoint_id,
            if item.reason.is_empty() {
                String::new()
            } else {
                format!(", parked: {}", item.reason)
            }
        );
    }
}

fn confirm(yes: bool, what: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to {what} without confirmation: standard input is not a terminal; pass --yes (nothing was re-driven)");
    }
    eprint!("{what}? Type `yes` to continue: ");
    std::io::stderr().flush().ok();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !matches!(answer.trim(), "yes" | "y") {
        bail!("aborted; nothing was re-driven");
    }
    Ok(())
}

async fn start(
    replayer: &Replayer,
    spec: ReplaySpec,
    args: &RunArgs,
    id: Option<herald_core::ids::ReplayId>,
    shutdown: &CancellationToken,
) -> Result<()> {
    let plan =
        replayer.plan(&spec).await.map_err(
            |e| {
                if e.is_bad_input() {
                    bad(e)
                } else {
                    anyhow!(e)
                }
            },
        )?;
    print_plan(&plan);
    if args.dry_run {
        println!("herald: dry run: nothing was re-driven");
        return Ok(());
    }
    let unfinished: Vec<String> = replayer
        .runs()
        .list()
        .into_iter()
        .filter(|r| r.run_state() == Some(RunState::Running) && r.kind == spec.kind())
        .map(|r| r.id)
        .collect();
    if !unfinished.is_empty() {
        eprintln!(
            "herald: warning: unfinished runs {}: resume them with `herald replay resume <id>` rather than starting over",
            unfinished.join(", ")
        );
    }
    if plan.to_redrive > 0 {
        confirm(
            args.yes,
            &format!("re-drive {} deliveries", plan.to_redrive),
        )?;
    }
    let run = replayer.create(&spec, &plan, &actor(), id).await?;
    println!("herald: replay {} started", run.id);
    execute(replayer, run, shutdown).await
}

async fn resume(replayer: &Replayer, args: ResumeArgs, shutdown: &CancellationToken) -> Result<()> {
    let id = parse_replay_id(&args.id).map_err(bad)?;
    let rate = args
        .rate
        .as_deref()
        .map(parse_rate)
        .transpose()
        .map_err(bad)?;
    let run = replayer.resumable(id.as_str()).map_err(bad)?;
    println!("herald: resuming {}", run::describe(&run));
    confirm(args.yes, &format!("resume replay {}", run.id))?;
    let run = replayer.resume(&id, &actor(), rate).await.map_err(|e| {
        if e.is_bad_input() {
            bad(e)
        } else {
            anyhow!(e)
        }
    })?;
    println!("herald: replay {} resumed", run.id);
    execute(replayer, run, shutdown).await
}

async fn execute(
    replayer: &Replayer,
    run: v1::ReplayProgress,
    shutdown: &CancellationToken,
) -> Result<()> {
    let id = run.id.clone();
    let started = Instant::now();
    let ui = Mutex::new(Progress::new(&run));
    let report = |run: &v1::ReplayProgress| ui.lock().expect("progress lock").update(run);
    let outcome = replayer.execute(run, &report, shutdown).await;
    ui.lock().expect("progress lock").finish();
    match outcome {
        Ok(done) => {
            println!(
                "herald: replay {id} finished: {} re-driven, {} skipped, {} records scanned in {:.1}s",
                done.redriven,
                done.skipped,
                done.scanned,
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Err(herald_replay::Error::Interrupted) => {
            bail!("replay {id} interrupted; resume it with `herald replay resume {id}`")
        }
        Err(err) => Err(anyhow!(
            "replay {id} stopped: {err}; resume it with `herald replay resume {id}`"
        )),
    }
}

fn status(runs: &RunsView, id: &str, json: bool) -> Result<()> {
    let id = parse_replay_id(id).map_err(|e| anyhow!(e))?;
    let run = runs
        .get(id.as_str())
        .ok_or_else(|| anyhow!("no replay run {id}"))?;
    if json {
        println!("{}", run_json(&run));
    } else {
        println!("{}", run::describe(&run));
        println!(
            "scan progress: {:.0}% of {}",
            run::scan_ratio(&run) * 100.0,
            run.source_topic
        );
    }
    Ok(())
}

/// A progress bar on a terminal, a log line a second otherwise.
enum Progress {
    Bar(indicatif::ProgressBar),
    Lines {
        last: Instant,
        started: Instant,
        base: u64,
    },
}

impl Progress {
    fn new(run: &v1::ReplayProgress) -> Self {
        let total = run.planned.max(run.redriven);
        if std::io::stderr().is_terminal() {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {elapsed_precise} [{wide_bar}] {pos}/{len} re-driven, {per_sec}, eta {eta} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar.set_position(run.redriven);
            Progress::Bar(bar)
        } else {
            Progress::Lines {
                last: Instant::now(),
                started: Instant::now(),
                base: run.redriven,
            }
        }
    }

    fn update(&mut self, run: &v1::ReplayProgress) {
        match self {
            Progress::Bar(bar) => {
                if run.redriven > bar.length().unwrap_or(0) {
                    bar.set_length(run.redriven);
                }
                bar.set_position(run.redriven);
                bar.set_message(format!("({} skipped)", run.skipped));
            }
            Progress::Lines {
                last,
                started,
                base,
            } => {
                if last.elapsed() < Duration::from_secs(1)
                    && run.run_state() == Some(RunState::Running)
                {
                    return;
                }
                *last = Instant::now();
                let rate =
                    (run.redriven - *base) as f64 / started.elapsed().as_secs_f64().max(0.001);
                let left = run.planned.saturating_sub(run.redriven);
                let eta = if rate > 0.0 {
                    format!("{:.0}s", left as f64 / rate)
                } else {
                    "?".into()
                };
                println!(
                    "herald: replay {} progress: {}/{} re-driven, {} skipped, {:.1}/s, eta {eta}",
                    run.id, run.redriven, run.planned, run.skipped, rate
                );
            }
        }
    }

    fn finish(&self) {
        if let Progress::Bar(bar) = self {
            bar.finish();
        }
    }
}
