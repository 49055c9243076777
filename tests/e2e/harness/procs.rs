//! Processes the tests start and stop: the `herald` binary (or any program) as a child
//! killed on drop, temporary directories, free loopback ports, and bounded polling.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_herald");

/// A fresh temporary directory under the target dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "herald-e2e-{name}-{}-{}",
            std::process::id(),
            rand_suffix()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: logs kept in {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

/// A free loopback port, never one this process handed out before. The kernel may offer a
/// port again as soon as the probing listener closes, so two calls in a row (a Kafka node's
/// client and controller listeners) could otherwise return the same port (CI saw it).
pub fn free_port() -> SocketAddr {
    static HANDED_OUT: Mutex<std::collections::BTreeSet<u16>> =
        Mutex::new(std::collections::BTreeSet::new());
    loop {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let mut handed_out = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if handed_out.insert(addr.port()) {
            return addr;
        }
    }
}

/// A child process killed on drop, with its stdout lines collected.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub name: String,
}

impl Proc {
    /// Starts the `herald` binary; its stderr goes to `cwd/<name>.log`.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, String)], cwd: &Path) -> Self {
        Self::spawn_program(BIN, name, args, env, cwd)
    }

    /// Starts `program`; its stderr is appended to `cwd/<name>.log` (a restart keeps the
    /// earlier run's lines).
    pub fn spawn_program(
        program: &str,
        name: &str,
        args: &[&str],
        env: &[(&str, String)],
        cwd: &Path,
    ) -> Self {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(cwd.join(format!("{name}.log")))
            .unwrap();
        let mut cmd = Command::new(program);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log));
        // E2E_LOG replaces the default filter, e.g. to debug the broker's coordinator.
        let filter = std::env::var("E2E_LOG").unwrap_or_else(|_| {
            "info,tansu_broker=warn,tansu_storage=warn,tansu_sans_io=warn,libsql=warn".to_owned()
        });
        cmd.env("HERALD_LOG", filter);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn herald");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self {
            child,
            lines,
            name: name.to_owned(),
        }
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.starts_with(prefix))
            {
                return line[prefix.len()..].trim().to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} before printing `{prefix}`",
                    self.name
                );
            }
            assert!(
                Instant::now() < deadline,
                "{} did not print `{prefix}` within {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for exit, at most `timeout`; returns the exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Settings every test's herald process gets: short schedule, loopback allowed.
pub fn herald_env(admin_token: &str, master_key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HERALD_INGEST__BOOTSTRAP_KEY", admin_token.to_owned()),
        // Tests send as fast as they can; the throttling test makes keys of its own rate.
        ("HERALD_INGEST__KEY_RATE_PER_SEC", "0".to_owned()),
        ("HERALD_INGEST__KEY_USAGE_FLUSH", "1s".to_owned()),
        ("HERALD_MASTER_KEY", master_key.to_owned()),
        ("HERALD_KAFKA__PARTITIONS", "3".to_owned()),
        (
            "HERALD_DISPATCHER__ALLOWED_NETWORKS",
            "[\"127.0.0.0/8\"]".to_owned(),
        ),
        (
            "HERALD_DISPATCHER__RETRY_SCHEDULE",
            "200ms,400ms,800ms".to_owned(),
        ),
        ("HERALD_DISPATCHER__THROTTLE_FLOOR", "300ms".to_owned()),
        ("HERALD_DISPATCHER__ATTEMPT_TIMEOUT", "2s".to_owned()),
        ("HERALD_SHUTDOWN_DEADLINE", "10s".to_owned()),
    ]
}

pub fn admin_token() -> String {
    herald_core::apikey::ApiKeyToken::generate(herald_core::ids::KeyId::generate(1)).expose()
}

pub fn master_key() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode([42u8; 32])
}

/// Runs `herald <args>` to completion (at most `timeout`); returns exit code, stdout lines
/// and stderr text.
pub fn run_cli(
    name: &str,
    args: &[&str],
    env: &[(&str, String)],
    cwd: &Path,
    timeout: Duration,
) -> (Option<i32>, Vec<String>, String) {
    let _ = std::fs::remove_file(cwd.join(format!("{name}.log")));
    let mut proc = Proc::spawn(name, args, env, cwd);
    let code = proc.wait_exit(timeout);
    // The reader thread may still be draining the pipe.
    std::thread::sleep(Duration::from_millis(100));
    let lines = proc.lines.lock().unwrap().clone();
    let stderr = std::fs::read_to_string(cwd.join(format!("{name}.log"))).unwrap_or_default();
    (code, lines, stderr)
}

/// Polls `done` every 100 ms until it holds, at most `timeout` (then panics with `what`).
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sets its flag when dropped: a test's background loop told to stop even when the test
/// panics (a scoped thread that never stops would hang the test instead of failing it).
pub struct StopOnDrop<'a>(pub &'a std::sync::atomic::AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}
