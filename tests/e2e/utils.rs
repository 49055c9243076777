//! Test harness: real processes (the `herald` binary as broker and as service), a real HTTP
//! receiver on loopback, and an independent signature verifier (Python `standardwebhooks`).

use std::collections::HashMap;
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

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        % 1_000_000_007
}

/// A free loopback port.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A child process killed on drop, with its stdout lines collected.
pub struct Proc {
    pub child: Child,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub name: String,
}

impl Proc {
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, String)], cwd: &Path) -> Self {
        let mut cmd = Command::new(BIN);
        cmd.args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::File::create(cwd.join(format!("{name}.log"))).unwrap(),
            ));
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

/// Starts `herald broker` as its own process with sqlite storage under `dir`.
pub fn start_broker(dir: &Path) -> (Proc, SocketAddr) {
    let addr = free_port();
    (start_broker_at(dir, addr, "broker"), addr)
}

/// Settings every test's herald process gets: short schedule, loopback allowed.
pub fn herald_env(admin_token: &str, master_key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("HERALD_INGEST__BOOTSTRAP_KEY", admin_token.to_owned()),
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

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Received {
    /// Path, headers and body (up to 1 MiB) of a request a test receiver got.
    async fn read(req: axum::extract::Request) -> Self {
        let path = req.uri().path().to_owned();
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        let body = axum::body::to_bytes(req.into_body(), 1 << 20)
            .await
            .unwrap_or_default()
            .to_vec();
        Self {
            path,
            headers,
            body,
        }
    }
}

/// A loopback HTTP receiver that records everything and answers 200 (or what a test says).
pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Received>>>,
    _runtime: tokio::runtime::Runtime,
}

impl Receiver {
    pub fn start(addr: SocketAddr) -> Self {
        Self::answering(addr, |_| 200)
    }

    /// A receiver that answers `status(path)` to every request.
    pub fn answering(addr: SocketAddr, status: fn(&str) -> u16) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let got: Arc<Mutex<Vec<Received>>> = Arc::default();
        let sink = got.clone();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                let sink = sink.clone();
                async move {
                    let request = Received::read(req).await;
                    let code = axum::http::StatusCode::from_u16(status(&request.path)).unwrap();
                    sink.lock().unwrap().push(request);
                    (code, "ok")
                }
            });
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            got,
            _runtime: runtime,
        }
    }

    pub fn count(&self, path: &str) -> usize {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn on(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// The `webhook-id` of every request to `path`, in arrival order (repeats included).
    pub fn webhook_ids(&self, path: &str) -> Vec<String> {
        self.on(path)
            .iter()
            .map(|r| r.headers["webhook-id"].clone())
            .collect()
    }

    /// Waits until `path` got at least `n` requests, at most `timeout`.
    pub fn wait_for(&self, path: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.count(path) < n {
            assert!(
                Instant::now() < deadline,
                "{path}: got {} of {n} deliveries within {timeout:?}",
                self.count(path)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A blocking HTTP client for Herald's API.
pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::blocking::Client,
}

impl Api {
    pub fn new(base: String, token: String) -> Self {
        Self {
            base,
            token,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.post_with(path, body, &[])
    }

    pub fn post_with(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let req = self.client.post(format!("{}{path}", self.base)).json(body);
        self.send(with_headers(req, headers))
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    pub fn patch(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.patch_with(path, body, &[])
    }

    pub fn patch_with(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let req = self.client.patch(format!("{}{path}", self.base)).json(body);
        self.send(with_headers(req, headers))
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, serde_json::Value) {
        let resp = req.bearer_auth(&self.token).send().expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(serde_json::Value::Null))
    }

    /// Creates an endpoint; returns (id, secret).
    pub fn create_endpoint(&self, url: &str, types: &[&str]) -> (String, String) {
        let (status, body) = self.post(
            "/v1/endpoints",
            &serde_json::json!({"url": url, "event_types": types}),
        );
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }
}

fn with_headers(
    req: reqwest::blocking::RequestBuilder,
    headers: &[(&str, &str)],
) -> reqwest::blocking::RequestBuilder {
    headers.iter().fold(req, |req, (k, v)| req.header(*k, *v))
}

/// Verifies every delivery with the Python `standardwebhooks` package (an implementation
/// independent of Herald's). Returns how many verified.
pub fn verify_with_python(deliveries: &[Received], secret: &str) -> usize {
    let file = std::env::temp_dir().join(format!(
        "herald-verify-{}-{}.json",
        std::process::id(),
        rand_suffix()
    ));
    let items: Vec<serde_json::Value> = deliveries
        .iter()
        .map(
            |d| serde_json::json!({"headers": d.headers, "body": String::from_utf8_lossy(&d.body)}),
        )
        .collect();
    std::fs::write(&file, serde_json::to_vec(&items).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/verify_signatures.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(&file)
        .arg(secret)
        .output()
        .expect("python3");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "independent verifier failed (needs `pip install standardwebhooks`): {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("verified count")
}

/// A loopback HTTP receiver that answers `status(path)` and records everything.
pub fn start_answering_receiver(status: fn(&str) -> u16) -> Receiver {
    Receiver::answering("127.0.0.1:0".parse().unwrap(), status)
}

/// Starts `herald broker` on `addr` with its data under `dir/broker` (a restart keeps topics).
pub fn start_broker_at(dir: &Path, addr: SocketAddr, name: &str) -> Proc {
    let mut broker = Proc::spawn(
        name,
        &[
            "broker",
            "--data-dir",
            dir.join("broker").to_str().unwrap(),
            "--listen",
            &addr.to_string(),
        ],
        &[],
        dir,
    );
    broker.wait_line("herald: broker listening on", Duration::from_secs(60));
    broker
}

/// `GET url`: status and body text; `None` when nothing answers.
pub fn http_get(url: &str) -> Option<(u16, String)> {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let resp = client.get(url).send().ok()?;
    let status = resp.status().as_u16();
    Some((status, resp.text().unwrap_or_default()))
}

/// The sum of every sample of `name` whose labels include all of `labels`, from Prometheus
/// text; `None` when no sample matches.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = match line.rsplit_once(' ') {
            Some(pair) => pair,
            None => continue,
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let matches = labels.iter().all(|(k, v)| {
            series_labels
                .split(',')
                .any(|kv| kv == format!("{k}=\"{v}\""))
        });
        if matches {
            *found.get_or_insert(0.0) += value.parse::<f64>().expect("sample value");
        }
    }
    found
}

/// Runs `promtool check metrics` on `text`. `None` (after a loud message) when promtool is
/// not installed; CI installs it (`apt-get install prometheus`, see deploy/check.sh).
pub fn promtool_check_metrics(text: &str) -> Option<Result<(), String>> {
    use std::io::Write as _;
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) => {
            eprintln!(
                "\n!!!!! promtool not found ({err}): `promtool check metrics` SKIPPED. \
                 Install it with `apt-get install prometheus` (deploy/check.sh does). !!!!!\n"
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    })
}

/// One request a [`SwitchReceiver`] got, with the status it answered.
#[derive(Debug, Clone)]
pub struct Answered {
    pub request: Received,
    pub status: u16,
}

/// A loopback receiver that answers 500 while `failing` is set and 200 otherwise, and
/// records every request with its answer.
pub struct SwitchReceiver {
    pub addr: SocketAddr,
    pub failing: Arc<std::sync::atomic::AtomicBool>,
    pub got: Arc<Mutex<Vec<Answered>>>,
    _runtime: tokio::runtime::Runtime,
}

impl SwitchReceiver {
    pub fn start(failing: bool) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let got: Arc<Mutex<Vec<Answered>>> = Arc::default();
        let flag = Arc::new(AtomicBool::new(failing));
        let (sink, switch) = (got.clone(), flag.clone());
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind receiver");
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
                let (sink, switch) = (sink.clone(), switch.clone());
                async move {
                    let request = Received::read(req).await;
                    let status = if switch.load(Ordering::SeqCst) {
                        500
                    } else {
                        200
                    };
                    sink.lock().unwrap().push(Answered { request, status });
                    axum::http::StatusCode::from_u16(status).unwrap()
                }
            });
            axum::serve(listener, app).await.unwrap();
        });
        Self {
            addr,
            failing: flag,
            got,
            _runtime: runtime,
        }
    }

    pub fn set_failing(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    /// `webhook-id`s answered with `status` on `path`, in arrival order.
    pub fn ids(&self, path: &str, status: u16) -> Vec<String> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.request.path == path && a.status == status)
            .map(|a| a.request.headers["webhook-id"].clone())
            .collect()
    }

    /// Requests answered 200 on `path`.
    pub fn delivered(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.request.path == path && a.status == 200)
            .map(|a| a.request.clone())
            .collect()
    }

    /// Waits until `path` answered 200 at least `n` times, at most `timeout`.
    pub fn wait_delivered(&self, path: &str, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.ids(path, 200).len() < n {
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n} successful deliveries within {timeout:?}",
                self.ids(path, 200).len()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
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
    let mut proc = Proc::spawn(name, args, env, cwd);
    let code = proc.wait_exit(timeout);
    // The reader thread may still be draining the pipe.
    std::thread::sleep(Duration::from_millis(100));
    let lines = proc.lines.lock().unwrap().clone();
    let stderr = std::fs::read_to_string(cwd.join(format!("{name}.log"))).unwrap_or_default();
    (code, lines, stderr)
}

/// High watermark of every partition of every topic whose name starts with `prefix`.
pub fn topic_watermarks(
    brokers: &str,
    prefix: &str,
) -> std::collections::BTreeMap<(String, i32), i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "herald-e2e-watermarks")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let metadata = consumer.fetch_metadata(None, timeout).expect("metadata");
    let mut marks = std::collections::BTreeMap::new();
    for topic in metadata
        .topics()
        .iter()
        .filter(|t| t.name().starts_with(prefix))
    {
        for partition in topic.partitions() {
            let (_, high) = consumer
                .fetch_watermarks(topic.name(), partition.id(), timeout)
                .expect("watermarks");
            marks.insert((topic.name().to_owned(), partition.id()), high);
        }
    }
    marks
}

/// Every record value of `topic` (all partitions, up to the high watermarks now).
pub fn read_topic(brokers: &str, topic: &str) -> Vec<Vec<u8>> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::Message;
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "herald-e2e-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let timeout = Duration::from_secs(10);
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .expect("metadata");
    let mut assignment = rdkafka::TopicPartitionList::new();
    let mut remaining = HashMap::new();
    for partition in metadata.topics().iter().flat_map(|t| t.partitions()) {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition.id(), timeout)
            .expect("watermarks");
        if high > low {
            assignment
                .add_partition_offset(topic, partition.id(), rdkafka::Offset::Offset(low))
                .unwrap();
            remaining.insert(partition.id(), high);
        }
    }
    let mut values = Vec::new();
    if remaining.is_empty() {
        return values;
    }
    consumer.assign(&assignment).expect("assign");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !remaining.is_empty() {
        assert!(Instant::now() < deadline, "reading {topic} timed out");
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message.expect("message");
        if remaining
            .get(&message.partition())
            .is_some_and(|h| message.offset() < *h)
        {
            values.push(message.payload().unwrap_or_default().to_vec());
            if message.offset() + 1 >= remaining[&message.partition()] {
                remaining.remove(&message.partition());
            }
        }
    }
    values
}
