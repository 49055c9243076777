//! `herald-load`: the end-to-end load harness.
//!
//! Starts `herald broker` and Herald (`herald dev --kafka`, or `herald ingest` + `herald
//! dispatch`) in a temporary directory, or connects to a running one (`--target`), runs a
//! receiver on 127.0.0.1 that verifies every signature, creates `N` endpoints, posts `E`
//! events with `C` concurrent clients at a target rate, waits (bounded) for every delivery
//! and reports ingest throughput and latency, delivery throughput, end-to-end latency,
//! duplicates, missing deliveries and the memory and CPU of the Herald processes.
//! Exits 1 when any delivery is missing (or a signature fails), 2 when it cannot run.

#[path = "herald-load/load.rs"]
mod load;
#[path = "herald-load/procs.rs"]
mod procs;
#[path = "herald-load/receiver.rs"]
mod receiver;
#[path = "herald-load/report.rs"]
mod report;

use anyhow::{bail, Context, Result};
use clap::Parser;
use procs::{Layout, Proc, Settings};
use report::{Delivery, Distribution, Ingest, Parameters, Process, Report};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// End-to-end load harness for Herald (loopback only, bounded in count and time).
#[derive(Debug, Parser)]
#[command(name = "herald-load")]
struct Args {
    /// Events to send (1 to 1,000,000).
    #[arg(long, default_value_t = 20_000)]
    events: usize,
    /// Endpoints, each subscribed to every event (1 to 64): deliveries = events x endpoints.
    #[arg(long, default_value_t = 4)]
    endpoints: usize,
    /// Concurrent HTTP clients (1 to 1,024).
    #[arg(long, short = 'c', default_value_t = 16)]
    concurrency: usize,
    /// Target rate in events per second over all clients; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Send batches of this many events to /v1/events/batch; 0 = single /v1/events requests.
    #[arg(long, default_value_t = 0)]
    batch: usize,
    /// Approximate payload size in bytes.
    #[arg(long, default_value_t = 256)]
    payload_bytes: usize,
    /// Bound for sending, and again for waiting for the deliveries, in seconds.
    #[arg(long, default_value_t = 300)]
    timeout: u64,
    /// `dev`: broker + `herald dev --kafka`; `split`: broker + `herald ingest` + `herald dispatch`.
    #[arg(long, value_enum, default_value_t = Layout::Dev)]
    layout: Layout,
    /// Topic partitions for the spawned Herald.
    #[arg(long, default_value_t = 3)]
    partitions: u32,
    /// Retry schedule for the spawned Herald (the end-to-end tests' schedule by default).
    #[arg(long, default_value = "200ms,400ms,800ms")]
    retry_schedule: String,
    /// Per-attempt timeout for the spawned Herald.
    #[arg(long, default_value = "5s")]
    attempt_timeout: String,
    /// `HERALD_LOG` for the spawned processes.
    #[arg(
        long,
        default_value = "info,tansu_broker=warn,tansu_storage=warn,tansu_sans_io=warn,libsql=warn"
    )]
    herald_log: String,
    /// The herald binary; default `$CARGO_TARGET_DIR/<profile>/herald`.
    #[arg(long)]
    herald_bin: Option<PathBuf>,
    /// Which build to look for when `--herald-bin` is not given.
    #[arg(long, value_parser = ["debug", "release"], default_value = "debug")]
    profile: String,
    /// Use a running Herald at this base URL instead of spawning one (loopback only).
    #[arg(long, requires = "admin_key")]
    target: Option<String>,
    /// Admin API key for `--target` (scopes endpoints:write and events:write).
    #[arg(long)]
    admin_key: Option<String>,
    /// Processes of the `--target` Herald to watch for memory and CPU.
    #[arg(long)]
    pid: Vec<u32>,
    /// Where the spawned processes keep data and logs (default: a fresh temporary directory).
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the work directory (it is always kept when the run fails).
    #[arg(long)]
    keep: bool,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

impl Args {
    fn validate(&self) -> Result<()> {
        let check = |ok: bool, what: &str| if ok { Ok(()) } else { bail!("{what}") };
        check(
            (1..=1_000_000).contains(&self.events),
            "--events: 1 to 1,000,000",
        )?;
        check((1..=64).contains(&self.endpoints), "--endpoints: 1 to 64")?;
        check(
            self.events * self.endpoints <= 4_000_000,
            "--events x --endpoints: at most 4,000,000 deliveries",
        )?;
        check(
            (1..=1_024).contains(&self.concurrency),
            "--concurrency: 1 to 1,024",
        )?;
        check(
            self.rate >= 0.0 && self.rate.is_finite(),
            "--rate: 0 or a positive number",
        )?;
        check(self.batch <= 1_000, "--batch: 0 to 1,000")?;
        check(
            self.payload_bytes <= 512 << 10,
            "--payload-bytes: at most 512 KiB",
        )?;
        check(
            (1..=3_600).contains(&self.timeout),
            "--timeout: 1 to 3,600 s",
        )?;
        if let Some(target) = &self.target {
            let url = reqwest::Url::parse(target).context("--target")?;
            let host = url.host_str().unwrap_or_default();
            check(
                matches!(host, "127.0.0.1" | "localhost" | "[::1]" | "::1"),
                "--target: loopback only (127.0.0.1, localhost, [::1])",
            )?;
        }
        Ok(())
    }

    fn herald_bin(&self) -> PathBuf {
        if let Some(bin) = &self.herald_bin {
            return bin.clone();
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
        target.join(&self.profile).join("herald")
    }
}

/// The Herald under load.
struct Herald {
    base: String,
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

async fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() > deadline {
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
    let warmup_began = Instant::now();
    for k in 0..args.endpoints {
        let (_id, secret) = api
            .create_endpoint(&format!("http://{receiver_addr}/ep/{k}"))
            .await?;
        arrivals
            .add_secret(herald_core::signing::Secret::parse(&secret).context("endpoint secret")?);
    }
    api.warmup().await?;
    if !wait_until(Duration::from_secs(120), || arrivals.warmed_up()).await {
        bail!(
            "the warm-up event did not reach every endpoint within 120 s; logs in {}",
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
        run_id: format!("load-{}-{}", std::process::id(), rand::random::<u32>()),
    };
    let sent = Arc::new(load::Sent::new(start, args.events));
    let load_began = start.elapsed().as_nanos() as u64;
    load::run(api, plan, sent.clone()).await;
    let accepted = (0..args.events)
        .filter(|s| sent.accepted(*s).is_some())
        .count();
    let expected = accepted * args.endpoints;
    let all_arrived = wait_until(Duration::from_secs(args.timeout), || {
        arrivals.unique.load(Ordering::Relaxed) >= expected
    })
    .await;
    // A short grace period so duplicates that trail the last first-arrival are counted.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let end: Vec<procs::Usage> = pids
        .iter()
        .map(|p| procs::usage(*p).unwrap_or_default())
        .collect();
    stop_sampling.notify_one();
    let sampled = sampler.await.unwrap_or_default();
    let mut exits = Vec::new();
    for proc in herald.procs.iter_mut().rev() {
        exits.push((
            proc.pid(),
            proc.stop(Duration::from_secs(20)).await,
            proc.panics(),
        ));
    }

    let report = build_report(
        &args,
        &herald,
        Measured {
            arrivals: &arrivals,
            sent: &sent,
            load_began,
            warmup_seconds,
            all_arrived,
            idle: &idle,
            end: &end,
            sampled: &sampled,
            exits: &exits,
        },
    );
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
    let (mut early, mut mismatches, mut last_arrival) = (0, 0, m.load_began);
    for &seq in &accepted {
        let accepted_at = m.sent.accepted(seq).unwrap_or_default();
        for k in 0..endpoints {
            let Some(arrived) = m.arrivals.arrival(seq, k) else {
                continue;
            };
            last_arrival = last_arrival.max(arrived);
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
            Process {
                name: name.clone(),
                pid: *pid,
                peak_rss_mib: mib(m.end[i].hwm_kib.max(m.sampled.get(i).copied().unwrap_or_default())),
                max_sampled_rss_mib: mib(m.sampled.get(i).copied().unwrap_or_default()),
                idle_rss_mib: mib(m.idle[i].rss_kib),
                cpu_seconds: m.end[i].cpu_ticks.saturating_sub(m.idle[i].cpu_ticks) as f64 / ticks,
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
            if m.all_arrived {
                ""
            } else {
                " after the timeout"
            }
        ));
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
            drain_seconds: secs(last_accept, last_arrival),
            end_to_end_ms: Distribution::of(e2e, 0.001),
            arrived_before_accept: early,
        },
        processes,
        ok: problems.is_empty(),
        problems,
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
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
