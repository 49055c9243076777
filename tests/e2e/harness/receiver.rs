//! HTTP receivers on loopback that record what Herald delivers, and the independent
//! signature verifier (Python `standardwebhooks`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::rand_suffix;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    /// When it arrived.
    pub at: Instant,
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
            at: Instant::now(),
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

/// Verifies every delivery with the official Python library (PyPI `standardwebhooks`);
/// returns how many verified (panics on the first that does not).
pub fn verify_with_python(deliveries: &[Received], secret: &str) -> usize {
    verify_with("python3", "verify_signatures.py", deliveries, secret)
}

/// Verifies every delivery with the official npm library (`standardwebhooks`, installed by
/// tests/install-tools.sh); returns how many verified.
pub fn verify_with_node(deliveries: &[Received], secret: &str) -> usize {
    verify_with("node", "verify_signatures.cjs", deliveries, secret)
}

fn verify_with(program: &str, script: &str, deliveries: &[Received], secret: &str) -> usize {
    super::tools::ensure();
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests")
        .join(script);
    let out = Command::new(program)
        .arg(&script)
        .arg(&file)
        .arg(secret)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "independent verifier {script:?} failed (tests/install-tools.sh installs it): {}\n{}",
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
