//! `herald-load`: the end-to-end load harness.
//!
//! First measures the machine's loopback ceiling (the same signed deliveries posted straight
//! to the receiver; `--no-ceiling` skips it). Then starts a broker (`herald broker`, or Apache
//! Kafka with `--broker kafka`) and Herald (`herald dev --kafka`, or `herald ingest` +
//! `herald dispatch`) in a temporary directory, or connects to a running one (`--target`),
//! runs a receiver on 127.0.0.1 that verifies every signature (and misbehaves on purpose for
//! the failure scenarios), creates `N` endpoints, posts `E` events with `C` concurrent
//! clients at a target rate, waits (bounded) for every delivery and reports ingest
//! throughput and latency, delivery throughput, end-to-end latency, duplicates, missing
//! deliveries, the memory and CPU of every process, and deliveries/s as a share of the
//! ceiling; `--chart` draws the run into a PNG. `--suite DIR` runs every scenario on both
//! brokers and writes the table (`suite.rs`).
//! Exits 1 when any delivery is missing (or a signature fails), 2 when it cannot run.

#[path = "herald-load/args.rs"]
mod args;
#[path = "herald-load/ceiling.rs"]
mod ceiling;
#[path = "herald-load/chart.rs"]
mod chart;
#[path = "herald-load/kafka.rs"]
mod kafka;
#[path = "herald-load/load.rs"]
mod load;
#[path = "herald-load/plot.rs"]
mod plot;
#[path = "herald-load/procs.rs"]
mod procs;
#[path = "herald-load/receiver.rs"]
mod receiver;
#[path = "herald-load/report.rs"]
mod report;
#[path = "herald-load/suite.rs"]
mod suite;
#[path = "herald-load/suite_table.rs"]
mod suite_table;
#[path = "herald-load/tally.rs"]
mod tally;
#[path = "herald-load/watchdog.rs"]
mod watchdog;

use anyhow::{bail, Context, Result};
use args::Args;
use clap::Parser;
use procs::{Proc, Settings};
use report::Report;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Herald under load.
pub struct Herald {
    base: String,
    /// Every `/metrics` of the Herald under load.
    metrics: Vec<String>,
    admin_key: String,
    procs: Vec<Proc>,
    /// (name, pid) of every process whose memory and CPU are measured.
    pub watched: Vec<(String, u32)>,
}

impl Herald {
    /// The watchdog's view of the measured processes.
    fn watch_list(&self) -> Vec<watchdog::Watched> {
        self.watched
            .iter()
            .map(|(name, pid)| watchdog::Watched {
                name: name.clone(),
                pid: *pid,
                log: self
                    .procs
                    .iter()
                    .find(|p| p.pid() == *pid)
                    .map(|p| p.log.clone()),
            })
            .collect()
    }

    /// Stops the separate dispatcher (split layout); `resume_dispatcher` starts it again.
    async fn stop_dispatcher(&mut self) -> Result<()> {
        let proc = self
            .procs
            .iter_mut()
            .find(|p| p.name == "dispatch")
            .context("--backlog needs the split layout's separate dispatcher")?;
        let how = proc.stop(Duration::from_secs(30)).await;
        eprintln!("herald-load: dispatcher stopped ({how})");
        Ok(())
    }

    async fn resume_dispatcher(&mut self) -> Result<()> {
        let proc = self
            .procs
            .iter_mut()
            .find(|p| p.name == "dispatch")
            .context("no dispatcher")?;
        let old = proc.pid();
        proc.respawn()?;
        let new = proc.pid();
        for (_, pid) in self.watched.iter_mut().filter(|(_, pid)| *pid == old) {
            *pid = new;
        }
        eprintln!("herald-load: dispatcher started again (pid {new})");
        Ok(())
    }
}

async fn herald(args: &Args, dir: &std::path::Path) -> Result<Herald> {
    if let (Some(target), Some(key)) = (&args.target, &args.admin_key) {
        let watched = args
            .pid
            .iter()
            .map(|pid| (format!("pid {pid}"), *pid))
            .collect();
        return Ok(Herald {
            base: target.trim_end_matches('/').to_owned(),
            metrics: vec![format!("{}/metrics", target.trim_end_matches('/'))],
            admin_key: key.clone(),
            procs: Vec::new(),
            watched,
        });
    }
    let bin = args.herald_bin();
    if !bin.is_file() {
        bail!(
            "no herald binary at {}: build it (`cargo build -p herald`, add --release for a release build) or pass --herald-bin",
            bin.display()
        );
    }
    let settings = Settings {
        layout: args.layout,
        broker: args.broker,
        partitions: args.partitions,
        retry_schedule: args.retry_schedule.clone(),
        attempt_timeout: args.attempt_timeout.clone(),
        max_batch: args.batch.max(100),
        log_filter: args.herald_log.clone(),
    };
    let broker = match args.broker {
        procs::Broker::Embedded => procs::embedded_broker(&bin, dir, &settings).await?,
        procs::Broker::Kafka => kafka::start(dir).await?,
    };
    let spawned = procs::start(&bin, dir, &settings, broker).await?;
    let watched = spawned
        .procs
        .iter()
        .map(|p| (p.name.clone(), p.pid()))
        .collect();
    Ok(Herald {
        metrics: std::iter::once(format!("{}/metrics", spawned.base))
            .chain(spawned.dispatcher_metrics)
            .collect(),
        base: spawned.base,
        admin_key: spawned.admin_key,
        procs: spawned.procs,
        watched,
    })
}

/// Samples VmRSS of `pids` every 100 ms until `stop`; returns the largest seen per pid.
fn sample_rss(pids: Vec<u32>, stop: Arc<tokio::sync::Notify>) -> tokio::task::JoinHandle<Vec<u64>> {
    tokio::spawn(async move {
        let mut max = vec![0u64; pids.len()];
        loop {
            for (slot, pid) in max.iter_mut().zip(&pids) {
                if let Some(usage) = procs::usage(*pid) {
                    *slot = (*slot).max(usage.rss_kib);
                }
            }
            tokio::select! {
                _ = stop.notified() => return max,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
}

/// Herald's own counters and summaries (`herald_*`, no histogram buckets) from `/metrics`.
async fn scrape_metrics(urls: &[String]) -> std::collections::BTreeMap<String, String> {
    let mut found = std::collections::BTreeMap::new();
    let client = reqwest::Client::new();
    for url in urls {
        let Ok(response) = client.get(url).timeout(Duration::from_secs(5)).send().await else {
            continue;
        };
        let text = response.text().await.unwrap_or_default();
        for line in text.lines() {
            if !line.starts_with("herald_") || line.contains("_bucket") {
                continue;
            }
            if let Some((name, value)) = line.rsplit_once(' ') {
                found.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    found
}

/// Prints progress to stderr every 5 s until aborted.
fn report_progress(
    sent: Arc<load::Sent>,
    arrivals: Arc<receiver::Arrivals>,
    endpoints: usize,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let began = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let accepted = sent.accepted_count();
            eprintln!(
                "herald-load: {:>4} s: {accepted} of {} events accepted, {} of {} deliveries received",
                began.elapsed().as_secs(),
                sent.accepted_at.len(),
                arrivals.unique.load(Ordering::Relaxed),
                accepted * endpoints,
            );
        }
    })
}

async fn wait_until(
    timeout: Duration,
    dog: &watchdog::Watchdog,
    mut done: impl FnMut() -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline || dog.tripped() {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

/// Watches the Herald processes and the run's progress (see `watchdog.rs`).
fn watch(
    dog: &Arc<watchdog::Watchdog>,
    herald: &Herald,
    sent: &Arc<load::Sent>,
    arrivals: &Arc<receiver::Arrivals>,
    stall: Duration,
) -> tokio::task::JoinHandle<()> {
    let (s, a) = (sent.clone(), arrivals.clone());
    let (s2, a2) = (sent.clone(), arrivals.clone());
    let healthy = arrivals.healthy().len();
    watchdog::spawn(
        dog.clone(),
        herald.watch_list(),
        stall,
        move || {
            (
                s.accepted_count(),
                a.unique.load(Ordering::Relaxed) + a.warmed_count(),
            )
        },
        move || {
            s2.sending_done_at.load(Ordering::Relaxed) > 0
                && a2.unique.load(Ordering::Relaxed) >= s2.accepted_count() * healthy
        },
    )
}

async fn run(args: Args) -> Result<Report> {
    args.validate()?;
    let dir = match &args.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!(
            "herald-load-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    if args.target.is_none() {
        eprintln!("herald-load: work directory (data, logs) {}", dir.display());
    }
    let ceiling = if args.no_ceiling {
        None
    } else {
        let c = ceiling::measure(
            args.events,
            args.endpoints,
            args.concurrency,
            args.payload_bytes,
        )
        .await?;
        eprintln!(
            "herald-load: loopback ceiling {:.0} deliveries/s",
            c.deliveries_per_s
        );
        Some(c)
    };
    let start = Instant::now();
    let behaviour = receiver::Behaviour {
        hanging: args.hanging,
        fail_share: args.fail_share,
        slow: args.slow,
        slow_ms: args.slow_ms,
    };
    let arrivals = Arc::new(
        receiver::Arrivals::new(start, args.events, args.endpoints).with_behaviour(behaviour),
    );
    let receiver_addr = receiver::start(arrivals.clone()).await?;
    let mut herald = herald(&args, &dir).await?;
    let api = load::Api::new(
        herald.base.clone(),
        herald.admin_key.clone(),
        args.concurrency,
    )?;

    // Endpoints, then one warm-up event that must reach all of them.
    let sent = Arc::new(load::Sent::new(start, args.events));
    let stall = Duration::from_secs(args.stall_timeout);
    let mut dog = Arc::new(watchdog::Watchdog::default());
    let mut watching = watch(&dog, &herald, &sent, &arrivals, stall);
    let warmup_began = Instant::now();
    for k in 0..args.endpoints {
        let (_id, secret) = api
            .create_endpoint(&format!("http://{receiver_addr}/ep/{k}"))
            .await?;
        arrivals
            .add_secret(herald_core::signing::Secret::parse(&secret).context("endpoint secret")?);
    }
    api.warmup().await?;
    if !wait_until(Duration::from_secs(120), &dog, || arrivals.warmed_up()).await {
        bail!(
            "the warm-up event did not reach every endpoint within 120 s{}; logs in {}",
            dog.reason().map(|r| format!(" ({r})")).unwrap_or_default(),
            dir.display()
        );
    }
    let warmup_seconds = warmup_began.elapsed().as_secs_f64();
    if args.backlog {
        // The dispatcher is down while every event is accepted (its exit is expected).
        watching.abort();
        herald.stop_dispatcher().await?;
        dog = Arc::new(watchdog::Watchdog::default());
    }

    let usage_now = |herald: &Herald| -> Vec<procs::Usage> {
        herald
            .watched
            .iter()
            .map(|(_, p)| procs::usage(*p).unwrap_or_default())
            .collect()
    };
    let own = || {
        procs::usage(std::process::id())
            .unwrap_or_default()
            .cpu_ticks
    };
    let mut idle = usage_now(&herald);
    let mut own_idle = own();
    let stop_sampling = Arc::new(tokio::sync::Notify::new());
    let mut pids: Vec<u32> = herald.watched.iter().map(|(_, pid)| *pid).collect();
    let mut sampler = sample_rss(pids.clone(), stop_sampling.clone());

    let plan = load::Plan {
        events: args.events,
        concurrency: args.concurrency,
        rate: (args.rate > 0.0).then_some(args.rate),
        batch: args.batch,
        payload_bytes: args.payload_bytes,
        deadline: Duration::from_secs(args.timeout),
        stop: dog.clone(),
        run_id: format!("load-{}-{}", std::process::id(), rand::random::<u32>()),
    };
    let load_began = start.elapsed().as_nanos() as u64;
    let progress = report_progress(sent.clone(), arrivals.clone(), arrivals.healthy().len());
    load::run(api, plan, sent.clone()).await;
    let accepted = (0..args.events)
        .filter(|s| sent.accepted(*s).is_some())
        .count();
    let mut drain_began = None;
    if args.backlog {
        // The drain is what is measured: the processes' usage and RSS from the restart on.
        herald.resume_dispatcher().await?;
        drain_began = Some(start.elapsed().as_nanos() as u64);
        stop_sampling.notify_one();
        let _ = sampler.await;
        idle = usage_now(&herald);
        own_idle = own();
        pids = herald.watched.iter().map(|(_, pid)| *pid).collect();
        sampler = sample_rss(pids.clone(), stop_sampling.clone());
        watching = watch(&dog, &herald, &sent, &arrivals, stall);
    }
    let expected = accepted * arrivals.healthy().len();
    let all_arrived = wait_until(Duration::from_secs(args.timeout), &dog, || {
        arrivals.unique.load(Ordering::Relaxed) >= expected
    })
    .await;
    // A short grace period so duplicates that trail the last first-arrival are counted.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let herald_metrics = scrape_metrics(&herald.metrics).await;
    let end = usage_now(&herald);
    let harness_cpu_seconds = own().saturating_sub(own_idle) as f64 / procs::clock_ticks() as f64;
    stop_sampling.notify_one();
    progress.abort();
    watching.abort();
    let sampled = sampler.await.unwrap_or_default();
    let mut exits = Vec::new();
    for proc in herald.procs.iter_mut().rev() {
        exits.push((
            proc.pid(),
            proc.stop(Duration::from_secs(20)).await,
            proc.panics(),
        ));
    }

    let mut report = tally::build_report(
        &args,
        &herald,
        tally::Measured {
            arrivals: &arrivals,
            sent: &sent,
            load_began,
            drain_began,
            warmup_seconds,
            all_arrived,
            stopped_early: dog.reason(),
            herald_metrics,
            idle: &idle,
            end: &end,
            sampled: &sampled,
            harness_cpu_seconds,
            exits: &exits,
        },
    );
    report.share_of_ceiling = ceiling
        .as_ref()
        .map(|c| report.delivery.delivered_per_s / c.deliveries_per_s);
    report.ceiling = ceiling;
    if report.ok && !args.keep && args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else if !herald.procs.is_empty() {
        eprintln!("herald-load: logs and data kept in {}", dir.display());
    }
    herald.procs.clear();
    Ok(report)
}

/// The revision of the checkout `herald-load` runs from (`git describe`), for titles.
pub fn revision() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown revision".to_owned())
}

fn main() -> std::process::ExitCode {
    let mut args = Args::parse();
    args.apply_smoke();
    let json = args.json;
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("herald-load: cannot start the runtime: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(dir) = args.suite.clone() {
        if let Err(err) = args.validate() {
            eprintln!("herald-load: {err:#}");
            return std::process::ExitCode::from(2);
        }
        return match runtime.block_on(suite::run(args, &dir)) {
            Ok(true) => std::process::ExitCode::SUCCESS,
            Ok(false) => std::process::ExitCode::from(1),
            Err(err) => {
                eprintln!("herald-load: {err:#}");
                std::process::ExitCode::from(2)
            }
        };
    }
    let chart = args.chart.clone();
    match runtime.block_on(run(args)) {
        Ok(report) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            } else {
                print!("{}", report.text());
            }
            let mut drawn = true;
            if let Some(path) = &chart {
                let picture = plot::chart_of(&report, "single run", report.ceiling.as_ref());
                match chart::render_png(&picture, path) {
                    Ok(()) => eprintln!("herald-load: chart written to {}", path.display()),
                    Err(err) => {
                        eprintln!("herald-load: could not draw {}: {err:#}", path.display());
                        drawn = false;
                    }
                }
            }
            if report.ok && drawn {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::from(1)
            }
        }
        Err(err) => {
            eprintln!("herald-load: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}
