//! The Herald under load: `herald broker` plus `herald dev --kafka` (or `herald ingest` +
//! `herald dispatch`) as child processes in a temporary directory, and what `/proc` says
//! about their memory and CPU.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One child process; killed on drop if still running.
pub struct Proc {
    pub name: String,
    pub child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    pub log: PathBuf,
    /// How it was started, to start it again (`respawn`).
    recipe: (PathBuf, Vec<String>, Vec<(String, String)>, PathBuf),
}

impl Proc {
    pub fn spawn(
        bin: &Path,
        name: &str,
        args: &[&str],
        env: &[(String, String)],
        dir: &Path,
    ) -> Result<Self> {
        let log = dir.join(format!("{name}.log"));
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .context("log file")?;
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("spawning {} {name}", bin.display()))?;
        let lines: Arc<Mutex<Vec<String>>> = Arc::default();
        let stdout = child.stdout.take().context("child stdout")?;
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines lock").push(line);
            }
        });
        Ok(Self {
            name: name.to_owned(),
            child,
            lines,
            log,
            recipe: (
                bin.to_owned(),
                args.iter().map(|a| (*a).to_owned()).collect(),
                env.to_vec(),
                dir.to_owned(),
            ),
        })
    }

    /// Starts the same command again (after `stop`); its log continues in the same file.
    pub fn respawn(&mut self) -> Result<()> {
        let (bin, args, env, dir) = self.recipe.clone();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        *self = Self::spawn(&bin, &self.name, &args, &env, &dir)?;
        Ok(())
    }

    /// Waits until its log holds `needle` (for programs that announce readiness on stderr).
    pub async fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if std::fs::read_to_string(&self.log)
                .unwrap_or_default()
                .contains(needle)
            {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before logging `{needle}`; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not log `{needle}` within {timeout:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest of it.
    async fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let found = self
                .lines
                .lock()
                .expect("lines lock")
                .iter()
                .find_map(|l| l.strip_prefix(prefix).map(|rest| rest.trim().to_owned()));
            if let Some(rest) = found {
                return Ok(rest);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "{} exited ({status}) before printing `{prefix}`; see {}",
                    self.name,
                    self.log.display()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not print `{prefix}` within {timeout:?}; see {}",
                    self.name,
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then up to `grace` for a clean exit, then SIGKILL. Returns how it ended.
    pub async fn stop(&mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited: {status}");
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.to_string();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("did not stop within {grace:?} of SIGTERM; killed")
    }

    /// Lines of its log that mention a panic.
    pub fn panics(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("panicked"))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// How Herald is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    /// `herald broker` + `herald dev --kafka` (ingest and dispatcher in one process).
    Dev,
    /// `herald broker` + `herald ingest` + `herald dispatch`.
    Split,
}

/// What the spawned processes are told.
pub struct Settings {
    pub layout: Layout,
    pub broker: Broker,
    pub partitions: u32,
    pub retry_schedule: String,
    pub attempt_timeout: String,
    pub max_batch: usize,
    pub log_filter: String,
}

/// Which broker Herald runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Broker {
    /// `herald broker`: the embedded broker `herald dev` runs (tansu, sqlite storage).
    Embedded,
    /// Apache Kafka, one KRaft node (`kafka.rs`).
    Kafka,
}

/// The running Herald.
pub struct Spawned {
    pub procs: Vec<Proc>,
    pub base: String,
    pub admin_key: String,
    /// `/metrics` of a separate dispatcher (split layout).
    pub dispatcher_metrics: Option<String>,
}

/// A free loopback port, never one this process handed out before: the kernel may offer a
/// port again as soon as the probing listener closes, so a Kafka node's client and
/// controller listeners could otherwise get the same one.
pub fn free_port() -> Result<SocketAddr> {
    static HANDED_OUT: Mutex<std::collections::BTreeSet<u16>> =
        Mutex::new(std::collections::BTreeSet::new());
    loop {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(addr.port()) {
            return Ok(addr);
        }
    }
}

/// Starts Herald under `dir` on the running `broker` (its process and address); returns once
/// ingest listens.
pub async fn start(
    bin: &Path,
    dir: &Path,
    settings: &Settings,
    (broker, broker_addr): (Proc, String),
) -> Result<Spawned> {
    let admin_key = herald_core::apikey::ApiKeyToken::generate(herald_core::ids::KeyId::generate(
        herald_now_ms(),
    ))
    .expose();
    let master_key = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    };
    let mut env: Vec<(String, String)> = [
        ("HERALD_LOG", settings.log_filter.clone()),
        ("HERALD_KAFKA__BROKERS", broker_addr.clone()),
        ("HERALD_INGEST__BOOTSTRAP_KEY", admin_key.clone()),
        // The load measures Herald's pipeline, not the per-key ingest throttle.
        ("HERALD_INGEST__KEY_RATE_PER_SEC", "0".to_owned()),
        ("HERALD_MASTER_KEY", master_key),
        ("HERALD_KAFKA__PARTITIONS", settings.partitions.to_string()),
        (
            "HERALD_DISPATCHER__ALLOWED_NETWORKS",
            "[\"127.0.0.0/8\"]".to_owned(),
        ),
        (
            "HERALD_DISPATCHER__RETRY_SCHEDULE",
            settings.retry_schedule.clone(),
        ),
        ("HERALD_DISPATCHER__THROTTLE_FLOOR", "300ms".to_owned()),
        (
            "HERALD_DISPATCHER__ATTEMPT_TIMEOUT",
            settings.attempt_timeout.clone(),
        ),
        ("HERALD_SHUTDOWN_DEADLINE", "10s".to_owned()),
        ("HERALD_INGEST__MAX_BATCH", settings.max_batch.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    if settings.broker == Broker::Embedded {
        // What `herald dev` sets on its own embedded broker (dev.rs, `shorten_fetch_wait`):
        // here Herald is told the broker's address with `--kafka`, so it cannot know.
        env.push((
            "HERALD_KAFKA__EVENTS_FETCH_WAIT".to_owned(),
            "10ms".to_owned(),
        ));
    }
    let mut procs = vec![broker];
    let mut dispatcher_metrics = None;
    let ingest = match settings.layout {
        Layout::Dev => {
            let dev_dir = dir.join("dev");
            let args = [
                "dev",
                "--kafka",
                &broker_addr,
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                path_str(&dev_dir)?,
            ];
            Proc::spawn(bin, "dev", &args, &env, dir)?
        }
        Layout::Split => {
            env.push(("HERALD_INGEST__LISTEN".to_owned(), "127.0.0.1:0".to_owned()));
            let ingest = Proc::spawn(bin, "ingest", &["ingest"], &env, dir)?;
            let metrics = free_port()?;
            dispatcher_metrics = Some(format!("http://{metrics}/metrics"));
            env.push(("HERALD_METRICS_LISTEN".to_owned(), metrics.to_string()));
            procs.push(Proc::spawn(bin, "dispatch", &["dispatch"], &env, dir)?);
            ingest
        }
    };
    procs.push(ingest);
    let base = procs
        .last_mut()
        .expect("ingest process")
        .wait_line("herald: ingest listening on", Duration::from_secs(120))
        .await?;
    Ok(Spawned {
        procs,
        base,
        admin_key,
        dispatcher_metrics,
    })
}

pub fn path_str(path: &Path) -> Result<&str> {
    path.to_str()
        .context("temporary directory path is not UTF-8")
}

/// `herald broker` on a free loopback port, its data under `dir/broker`.
pub async fn embedded_broker(
    bin: &Path,
    dir: &Path,
    settings: &Settings,
) -> Result<(Proc, String)> {
    let addr = free_port()?.to_string();
    let data = dir.join("broker");
    let log = ("HERALD_LOG".to_owned(), settings.log_filter.clone());
    let mut broker = Proc::spawn(
        bin,
        "broker",
        &["broker", "--data-dir", path_str(&data)?, "--listen", &addr],
        std::slice::from_ref(&log),
        dir,
    )?;
    broker
        .wait_line("herald: broker listening on", Duration::from_secs(60))
        .await?;
    Ok((broker, addr))
}

fn herald_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Memory and CPU of one process, from `/proc/<pid>/status` and `/proc/<pid>/stat`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Usage {
    /// VmHWM: the kernel's peak resident set size, KiB.
    pub hwm_kib: u64,
    /// VmRSS now, KiB.
    pub rss_kib: u64,
    /// utime + stime, clock ticks.
    pub cpu_ticks: u64,
}

/// Reads `/proc/<pid>`; `None` once the process is gone.
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(Usage {
        hwm_kib: field("VmHWM:"),
        rss_kib: field("VmRSS:"),
        cpu_ticks: ticks(11) + ticks(12),
    })
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when unknown).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_never_handed_out_twice() {
        // 500 draws from the ~28,000 ephemeral ports repeat a few times on average when
        // each probe's listener is closed before the next, which is what a broker's two
        // listeners did in CI.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..500 {
            let addr = free_port().unwrap();
            assert!(addr.ip().is_loopback());
            assert!(
                seen.insert(addr.port()),
                "port {} handed out twice",
                addr.port()
            );
        }
    }
}
