//! The receiving end: an axum server on loopback that checks every delivery with
//! `herald_core::signing::verify` and records when each (event, endpoint) pair first arrived.
//!
//! Deliveries go to `/ep/{k}` (endpoint number `k`). The payload carries the event's sequence
//! number (`{"seq":N,…}`), so arrivals are slots in flat arrays: no map, no lock on the hot
//! path except the once-per-slot `webhook-id` record.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use herald_core::signing::{self, Secret, DEFAULT_TOLERANCE_SECS};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Instant;

/// What the receiver saw. Times are nanoseconds since `start`, stored `+ 1` so 0 means "not yet".
pub struct Arrivals {
    pub start: Instant,
    pub events: usize,
    pub endpoints: usize,
    secrets: RwLock<Vec<Secret>>,
    first_arrival: Vec<AtomicU64>,
    webhook_ids: Vec<OnceLock<String>>,
    warmup: Vec<AtomicBool>,
    pub requests: AtomicUsize,
    pub unique: AtomicUsize,
    pub duplicates: AtomicUsize,
    pub bad_signatures: AtomicUsize,
    pub unrecognised: AtomicUsize,
}

#[derive(Deserialize)]
struct Probe {
    seq: Option<usize>,
    warmup: Option<bool>,
}

impl Arrivals {
    pub fn new(start: Instant, events: usize, endpoints: usize) -> Self {
        Self {
            start,
            events,
            endpoints,
            secrets: RwLock::new(Vec::new()),
            first_arrival: (0..events * endpoints).map(|_| AtomicU64::new(0)).collect(),
            webhook_ids: (0..events * endpoints).map(|_| OnceLock::new()).collect(),
            warmup: (0..endpoints).map(|_| AtomicBool::new(false)).collect(),
            requests: AtomicUsize::new(0),
            unique: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            bad_signatures: AtomicUsize::new(0),
            unrecognised: AtomicUsize::new(0),
        }
    }

    /// Adds the secret of the next endpoint (endpoint `k` is the `k`-th added).
    pub fn add_secret(&self, secret: Secret) {
        self.secrets.write().expect("secrets lock").push(secret);
    }

    /// Whether every endpoint got the warm-up event.
    pub fn warmed_up(&self) -> bool {
        self.warmup.iter().all(|w| w.load(Ordering::Relaxed))
    }

    /// Endpoints that got the warm-up event.
    pub fn warmed_count(&self) -> usize {
        self.warmup
            .iter()
            .filter(|w| w.load(Ordering::Relaxed))
            .count()
    }

    /// When delivery `(seq, endpoint)` first arrived, in nanoseconds since `start`.
    pub fn arrival(&self, seq: usize, endpoint: usize) -> Option<u64> {
        match self.first_arrival[seq * self.endpoints + endpoint].load(Ordering::Acquire) {
            0 => None,
            t => Some(t - 1),
        }
    }

    /// The `webhook-id` of the first arrival of delivery `(seq, endpoint)`.
    pub fn webhook_id(&self, seq: usize, endpoint: usize) -> Option<&str> {
        self.webhook_ids[seq * self.endpoints + endpoint]
            .get()
            .map(String::as_str)
    }

    fn record(&self, endpoint: usize, headers: &HeaderMap, body: &[u8]) -> StatusCode {
        let now = self.start.elapsed().as_nanos() as u64;
        self.requests.fetch_add(1, Ordering::Relaxed);
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
        };
        let id = header("webhook-id");
        let secret = match self.secrets.read().expect("secrets lock").get(endpoint) {
            Some(secret) => secret.clone(),
            None => {
                self.unrecognised.fetch_add(1, Ordering::Relaxed);
                return StatusCode::NOT_FOUND;
            }
        };
        let unix_now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let verified = signing::verify(
            &[secret],
            id,
            header("webhook-timestamp"),
            header("webhook-signature"),
            body,
            unix_now,
            DEFAULT_TOLERANCE_SECS,
        );
        if verified.is_err() {
            // Counted and reported; answering 2xx keeps one bad signature from turning into
            // a retry storm that would blur the measurement.
            self.bad_signatures.fetch_add(1, Ordering::Relaxed);
        }
        match serde_json::from_slice::<Probe>(body) {
            Ok(Probe {
                warmup: Some(true), ..
            }) => self.warmup[endpoint].store(true, Ordering::Relaxed),
            Ok(Probe { seq: Some(seq), .. }) if seq < self.events => {
                let slot = seq * self.endpoints + endpoint;
                let first = self.first_arrival[slot].compare_exchange(
                    0,
                    now + 1,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                );
                if first.is_ok() {
                    let _ = self.webhook_ids[slot].set(id.to_owned());
                    self.unique.fetch_add(1, Ordering::Relaxed);
                } else {
                    self.duplicates.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {
                self.unrecognised.fetch_add(1, Ordering::Relaxed);
            }
        }
        StatusCode::NO_CONTENT
    }
}

async fn receive(
    State(arrivals): State<Arc<Arrivals>>,
    Path(endpoint): Path<usize>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if endpoint >= arrivals.endpoints {
        arrivals.unrecognised.fetch_add(1, Ordering::Relaxed);
        return StatusCode::NOT_FOUND;
    }
    arrivals.record(endpoint, &headers, &body)
}

/// Binds `127.0.0.1:0` and serves until the runtime stops. Returns the bound address.
pub async fn start(arrivals: Arc<Arrivals>) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let app = Router::new()
        .route("/ep/{endpoint}", post(receive))
        .with_state(arrivals);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            eprintln!("herald-load: receiver stopped: {err}");
        }
    });
    Ok(addr)
}
