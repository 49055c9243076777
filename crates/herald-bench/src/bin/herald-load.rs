//! `herald-load`: the end-to-end load harness.
//!
//! First measures the machine's loopback ceiling (the same signed deliveries posted straight
//! to the receiver; `--no-ceiling` skips it). Then starts `herald broker` and Herald (`herald dev --kafka`, or `herald ingest` + `herald
//! dispatch`) in a temporary directory, or connects to a running one (`--target`), runs a
//! receiver on 127.0.0.1 that verifies every signature, creates `N` endpoints, posts `E`
//! events with `C` concurrent clients at a target rate, waits (bounded) for every delivery
//! and reports ingest throughput and latency, delivery throughput, end-to-end latency,
//! duplicates, missing deliveries and the memory and CPU of the Herald processes, and
//! deliveries/s as a share of the ceiling.
//! Exits 1 when any delivery is missing (or a signature fails), 2 when it cannot run.

#[path = "herald-load/args.rs"]
mod args;
#[path = "herald-load/ceiling.rs"]
mod ceiling;
#[path = "herald-load/load.rs"]
mod load;
#[path = "herald-load/procs.rs"]
mod procs;
#[path = "herald-load/receiver.rs"]
mod receiver;
#[path = "herald-load/report.rs"]
mod report;
#[path = "herald-load/watchdog.rs"]
mod watchdog;

use anyhow::{bail, Context, Result};
use args::Args;
use clap::Parser;
use procs::{Proc, Settings};
use report::{Delivery, Distribution, Ingest, Parameters, Process, Report};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The Herald under load.
struct Herald {
    base: String,
    /// Every `/metrics` of the Herald under load.
    metrics: Vec<String>,
    admin_key: String,
    procs: Vec<Proc>,
    watched: Vec<(String, u32)>,
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
        partitions: args.partitions,
        retry_schedule: args.retry_schedule.clone(),
        attempt_timeout: args.attempt_timeout.clone(),
        max_batch: args.batch.max(100),
        log_filter: args.herald_log.clone(),
    };
    let spawned = procs::start(&bin, dir, &settings).await?;
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
    let arrivals = Arc::new(receiver::Arrivals::new(start, args.events, args.endpoints));
    let receiver_addr = receiver::start(arrivals.clone()).await?;
    let mut herald = herald(&args, &dir).await?;
    let api = load::Api::new(
        herald.base.clone(),
        herald.admin_key.clone(),
        args.concurrency,
    )?;

    // Endpoints, then one warm-up event that must reach all of them.
    let sent = Arc::new(load::Sent::new(start, args.events));
    let dog = Arc::new(watchdog::Watchdog::default());
    let watched = herald
        .watched
        .iter()
        .map(|(name, pid)| watchdog::Watched {
            name: name.clone(),
            pid: *pid,
            log: herald
                .procs
                .iter()
                .find(|p| p.pid() == *pid)
                .map(|p| p.log.clone()),
        })
        .collect();
    let (s, a, endpoints) = (sent.clone(), arrivals.clone(), args.endpoints);
    let (s2, a2) = (sent.clone(), arrivals.clone());
    let watching = watchdog::spawn(
        dog.clone(),
        watched,
        Duration::from_secs(args.stall_timeout),
        move || {
            (
                s.accepted_count(),
                a.unique.load(Ordering::Relaxed) + a.warmed_count(),
            )
        },
        move || {
            s2.sending_done_at.load(Ordering::Relaxed) > 0
                && a2.unique.load(Ordering::Relaxed) >= s2.accepted_count() * endpoints
        },
    );
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

    let pids: Vec<u32> = herald.watched.iter().map(|(_, pid)| *pid).collect();
    let idle: Vec<procs::Usage> = pids
        .iter()
        .map(|p| procs::usage(*p).unwrap_or_default())
        .collect();
    let stop_sampling = Arc::new(tokio::sync::Notify::new());
    let sampler = sample_rss(pids.clone(), stop_sampling.clone());

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
    let progress = report_progress(sent.clone(), arrivals.clone(), args.endpoints);
    load::run(api, plan, sent.clone()).await;
    let accepted = (0..args.events)
        .filter(|s| sent.accepted(*s).is_some())
        .count();
    let expected = accepted * args.endpoints;
    let all_arrived = wait_until(Duration::from_secs(args.timeout), &dog, || {
        arrivals.unique.load(Ordering::Relaxed) >= expected
    })
    .await;
    // A short grace period so duplicates that trail the last first-arrival are counted.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let herald_metrics = scrape_metrics(&herald.metrics).await;
    let end: Vec<procs::Usage> = pids
        .iter()
        .map(|p| procs::usage(*p).unwrap_or_default())
        .collect();
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

    let mut report = build_report(
        &args,
        &herald,
        Measured {
            arrivals: &arrivals,
            sent: &sent,
            load_began,
            warmup_seconds,
            all_arrived,
            stopped_early: dog.reason(),
            herald_metrics,
            idle: &idle,
            end: &end,
            sampled: &sampled,
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

struct Measured<'a> {
    arrivals: &'a receiver::Arrivals,
    sent: &'a load::Sent,
    load_began: u64,
    warmup_seconds: f64,
    all_arrived: bool,
    stopped_early: Option<String>,
    herald_metrics: std::collections::BTreeMap<String, String>,
    idle: &'a [procs::Usage],
    end: &'a [procs::Usage],
    sampled: &'a [u64],
    exits: &'a [(u32, String, Vec<String>)],
}

fn build_report(args: &Args, herald: &Herald, m: Measured<'_>) -> Report {
    let (events, endpoints) = (args.events, args.endpoints);
    let accepted: Vec<usize> = (0..events)
        .filter(|s| m.sent.accepted(*s).is_some())
        .collect();
    let last_accept = accepted
        .iter()
        .filter_map(|s| m.sent.accepted(*s))
        .max()
        .unwrap_or(m.load_began);
    let mut e2e = Vec::with_capacity(accepted.len() * endpoints);
    let mut arrivals = Vec::with_capacity(accepted.len() * endpoints);
    let (mut early, mut mismatches, mut last_arrival) = (0, 0, m.load_began);
    for &seq in &accepted {
        let accepted_at = m.sent.accepted(seq).unwrap_or_default();
        for k in 0..endpoints {
            let Some(arrived) = m.arrivals.arrival(seq, k) else {
                continue;
            };
            last_arrival = last_arrival.max(arrived);
            arrivals.push(arrived);
            if arrived < accepted_at {
                early += 1;
            }
            e2e.push(arrived.saturating_sub(accepted_at) / 1_000);
            let sent_id = m.sent.event_ids[seq].get().map(String::as_str);
            if sent_id.is_some() && m.arrivals.webhook_id(seq, k) != sent_id {
                mismatches += 1;
            }
        }
    }
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
    let sending_done = m
        .sent
        .sending_done_at
        .load(Ordering::Acquire)
        .saturating_sub(1);
    let ingest_seconds = secs(m.load_began, sending_done);
    let received = e2e.len();
    let expected = accepted.len() * endpoints;
    let delivery_seconds = secs(m.load_began, last_arrival);
    let ticks = procs::clock_ticks() as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let processes = herald
        .watched
        .iter()
        .enumerate()
        .map(|(i, (name, pid))| {
            let exit = m.exits.iter().find(|(p, _, _)| p == pid);
            let cpu_seconds = m.end[i].cpu_ticks.saturating_sub(m.idle[i].cpu_ticks) as f64 / ticks;
            Process {
                name: name.clone(),
                pid: *pid,
                peak_rss_mib: mib(m.end[i]
                    .hwm_kib
                    .max(m.sampled.get(i).copied().unwrap_or_default())),
                max_sampled_rss_mib: mib(m.sampled.get(i).copied().unwrap_or_default()),
                idle_rss_mib: mib(m.idle[i].rss_kib),
                cpu_seconds,
                cpu_ms_per_1000_deliveries: (received > 0)
                    .then(|| cpu_seconds * 1_000_000.0 / received as f64),
                exit: exit.map_or_else(
                    || "left running (--target)".to_owned(),
                    |(_, e, _)| e.clone(),
                ),
                panics: exit.map(|(_, _, p)| p.clone()).unwrap_or_default(),
            }
        })
        .collect::<Vec<_>>();
    let bad_signatures = m.arrivals.bad_signatures.load(Ordering::Relaxed);
    let rejected = m.sent.rejected.load(Ordering::Relaxed);
    let not_sent = m.sent.not_sent.load(Ordering::Relaxed);
    let mut problems = Vec::new();
    if received < expected {
        problems.push(format!(
            "{} of {expected} deliveries missing{}",
            expected - received,
            if m.all_arrived || m.stopped_early.is_some() {
                ""
            } else {
                " after the timeout"
            }
        ));
    }
    if let Some(reason) = &m.stopped_early {
        problems.push(format!("stopped early: {reason}"));
    }
    if accepted.len() < events {
        problems.push(format!(
            "{} of {events} events not accepted ({rejected} rejected, {not_sent} not sent)",
            events - accepted.len()
        ));
    }
    if bad_signatures > 0 {
        problems.push(format!(
            "{bad_signatures} deliveries failed signature verification"
        ));
    }
    if mismatches > 0 {
        problems.push(format!(
            "{mismatches} deliveries carried a webhook-id other than the accepted event id"
        ));
    }
    for proc in &processes {
        if !proc.panics.is_empty() {
            problems.push(format!("{} panicked", proc.name));
        }
    }
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    Report {
        parameters: Parameters {
            command,
            herald: match &args.target {
                Some(target) => target.clone(),
                None => args.herald_bin().display().to_string(),
            },
            layout: if args.target.is_some() {
                "target".into()
            } else {
                format!("{:?}", args.layout).to_lowercase()
            },
            events,
            endpoints,
            concurrency: args.concurrency,
            rate_per_s: (args.rate > 0.0).then_some(args.rate),
            batch: args.batch,
            payload_bytes: args.payload_bytes,
            partitions: args.target.is_none().then_some(args.partitions),
            retry_schedule: args.target.is_none().then(|| args.retry_schedule.clone()),
            attempt_timeout: args.target.is_none().then(|| args.attempt_timeout.clone()),
            timeout_s: args.timeout,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
        },
        warmup_seconds: m.warmup_seconds,
        ingest: Ingest {
            accepted: accepted.len(),
            rejected,
            not_sent,
            requests: m.sent.requests.load(Ordering::Relaxed),
            retried_requests: m.sent.retries.load(Ordering::Relaxed),
            failures: m.sent.failures.lock().expect("failures lock").clone(),
            seconds: ingest_seconds,
            accepted_per_s: accepted.len() as f64 / ingest_seconds.max(1e-9),
            accepted_per_s_by_tenth: report::rate_by_tenth(
                accepted.iter().filter_map(|s| m.sent.accepted(*s)),
                m.load_began,
                sending_done,
            ),
            request_latency_ms: Distribution::of(
                std::mem::take(&mut *m.sent.request_micros.lock().expect("latency lock")),
                0.001,
            ),
        },
        delivery: Delivery {
            expected,
            received,
            missing: expected - received,
            duplicates: m.arrivals.duplicates.load(Ordering::Relaxed),
            bad_signatures,
            webhook_id_mismatches: mismatches,
            unrecognised: m.arrivals.unrecognised.load(Ordering::Relaxed),
            seconds: delivery_seconds,
            delivered_per_s: received as f64 / delivery_seconds.max(1e-9),
            delivered_per_s_by_tenth: report::rate_by_tenth(
                arrivals.into_iter(),
                m.load_began,
                last_arrival,
            ),
            drain_seconds: secs(last_accept, last_arrival),
            end_to_end_ms: Distribution::of(e2e, 0.001),
            arrived_before_accept: early,
        },
        processes,
        herald_metrics: m.herald_metrics,
        ceiling: None,
        share_of_ceiling: None,
        ok: problems.is_empty(),
        problems,
    }
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
            if report.ok {
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
