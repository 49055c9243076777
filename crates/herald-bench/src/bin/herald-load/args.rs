//! The command line of `herald-load`, with its bounds.

use crate::procs::{Broker, Layout};
use anyhow::{bail, Context, Result};
use clap::Parser;
use std::path::PathBuf;

/// End-to-end load harness for Herald (loopback only, bounded in count and time).
#[derive(Debug, Clone, Parser)]
#[command(name = "herald-load")]
pub struct Args {
    /// Events to send (1 to 1,000,000).
    #[arg(long, default_value_t = 20_000)]
    pub events: usize,
    /// Endpoints, each subscribed to every event (1 to 64): deliveries = events x endpoints.
    #[arg(long, default_value_t = 4)]
    pub endpoints: usize,
    /// Concurrent HTTP clients (1 to 1,024).
    #[arg(long, short = 'c', default_value_t = 16)]
    pub concurrency: usize,
    /// Target rate in events per second over all clients; 0 = as fast as possible.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Send batches of this many events to /v1/events/batch; 0 = single /v1/events requests.
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
    /// Approximate payload size in bytes.
    #[arg(long, default_value_t = 256)]
    pub payload_bytes: usize,
    /// Bound for sending, and again for waiting for the deliveries, in seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout: u64,
    /// Stop early when neither acceptances nor deliveries progressed for this many seconds.
    #[arg(long, default_value_t = 60)]
    pub stall_timeout: u64,
    /// `dev`: broker + `herald dev --kafka`; `split`: broker + `herald ingest` + `herald dispatch`.
    #[arg(long, value_enum, default_value_t = Layout::Dev)]
    pub layout: Layout,
    /// The broker Herald runs on: `embedded` (`herald broker`, what `herald dev` runs) or
    /// `kafka` (Apache Kafka, one KRaft node, jars fetched by `tests/kafka/fetch.sh`).
    #[arg(long, value_enum, default_value_t = Broker::Embedded)]
    pub broker: Broker,
    /// Endpoints (the first N) that accept the connection and never answer; their deliveries
    /// are not expected, the others' are.
    #[arg(long, default_value_t = 0)]
    pub hanging: usize,
    /// Endpoints (the N after the hanging ones) that answer every delivery only
    /// `--slow-ms` after it arrived: how much a slow receiver holds the others back.
    #[arg(long, default_value_t = 0)]
    pub slow: usize,
    /// How late the `--slow` endpoints answer, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub slow_ms: u64,
    /// Share (0 to 1) of deliveries the receiver answers 500 on their first attempt.
    #[arg(long, default_value_t = 0.0)]
    pub fail_share: f64,
    /// Backlog drain: after the warm-up the dispatcher is stopped, every event is accepted,
    /// then the dispatcher starts again and the harness times the drain (split layout).
    #[arg(long)]
    pub backlog: bool,
    /// Also draw the run (throughput over time, latency distribution) into this PNG.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// Topic partitions for the spawned Herald.
    #[arg(long, default_value_t = 3)]
    pub partitions: u32,
    /// Retry schedule for the spawned Herald (the end-to-end tests' schedule by default).
    #[arg(long, default_value = "200ms,400ms,800ms")]
    pub retry_schedule: String,
    /// Per-attempt timeout for the spawned Herald.
    #[arg(long, default_value = "5s")]
    pub attempt_timeout: String,
    /// `HERALD_LOG` for the spawned processes.
    #[arg(
        long,
        default_value = "info,tansu_broker=warn,tansu_storage=warn,tansu_sans_io=warn,libsql=warn"
    )]
    pub herald_log: String,
    /// The herald binary; default `$CARGO_TARGET_DIR/<profile>/herald`.
    #[arg(long)]
    pub herald_bin: Option<PathBuf>,
    /// Which build to look for when `--herald-bin` is not given.
    #[arg(long, value_parser = ["debug", "release"], default_value = "debug")]
    pub profile: String,
    /// Use a running Herald at this base URL instead of spawning one (loopback only).
    #[arg(long, requires = "admin_key")]
    pub target: Option<String>,
    /// Admin API key for `--target` (scopes endpoints:write and events:write).
    #[arg(long)]
    pub admin_key: Option<String>,
    /// Processes of the `--target` Herald to watch for memory and CPU.
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Where the spawned processes keep data and logs (default: a fresh temporary directory).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// Keep the work directory (it is always kept when the run fails).
    #[arg(long)]
    pub keep: bool,
    /// Skip the loopback ceiling measured before Herald starts (the same signed deliveries
    /// posted straight to the receiver).
    #[arg(long)]
    pub no_ceiling: bool,
    /// Run the whole suite (every scenario on every `--suite-brokers` broker, each in turn)
    /// and write its JSON reports, PNG charts, `suite.json` and `table.md` into this directory.
    #[arg(long)]
    pub suite: Option<PathBuf>,
    /// The brokers of `--suite`.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Broker::Kafka, Broker::Embedded])]
    pub suite_brokers: Vec<Broker>,
    /// Scales the suite's event counts (1 = the published table; 0.05 to try the suite out).
    #[arg(long, default_value_t = 1.0)]
    pub suite_scale: f64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// A small run that proves the harness works end to end (what CI runs; never a
    /// measure of speed): 300 events, 2 endpoints, 4 clients, bounded to 120 s.
    #[arg(long)]
    pub smoke: bool,
}

impl Args {
    /// `--smoke` replaces the size of the run; `--backlog` needs a separate dispatcher.
    pub fn apply_smoke(&mut self) {
        if self.backlog {
            self.layout = Layout::Split;
        }
        if self.smoke {
            self.events = 300;
            self.endpoints = 2;
            self.concurrency = 4;
            self.timeout = 120;
            self.stall_timeout = 60;
        }
    }

    pub fn validate(&self) -> Result<()> {
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
            self.suite_scale > 0.0 && self.suite_scale <= 1.0,
            "--suite-scale: above 0, at most 1",
        )?;
        check(
            self.hanging < self.endpoints,
            "--hanging: fewer than --endpoints (at least one endpoint must answer)",
        )?;
        check(
            self.hanging + self.slow < self.endpoints,
            "--slow: with --hanging, fewer than --endpoints (at least one endpoint must answer at once)",
        )?;
        check(
            (1..=60_000).contains(&self.slow_ms),
            "--slow-ms: 1 to 60,000",
        )?;
        check(
            (0.0..=1.0).contains(&self.fail_share),
            "--fail-share: 0 to 1",
        )?;
        check(
            !(self.backlog && self.target.is_some()),
            "--backlog: needs a spawned Herald (not --target)",
        )?;
        check(
            self.payload_bytes <= 512 << 10,
            "--payload-bytes: at most 512 KiB",
        )?;
        check(
            (1..=3_600).contains(&self.timeout),
            "--timeout: 1 to 3,600 s",
        )?;
        check(
            (5..=3_600).contains(&self.stall_timeout),
            "--stall-timeout: 5 to 3,600 s",
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

    /// The herald binary, as an absolute path (the processes run in the work directory).
    pub fn herald_bin(&self) -> PathBuf {
        if let Some(bin) = &self.herald_bin {
            return std::fs::canonicalize(bin).unwrap_or_else(|_| bin.clone());
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../target")));
        target.join(&self.profile).join("herald")
    }
}
