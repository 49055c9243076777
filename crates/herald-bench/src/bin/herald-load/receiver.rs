//! The receiving end: an axum server on loopback that checks every delivery with
//! `herald_core::signing::verify` and records when each (event, endpoint) pair first arrived.
//!
//! Deliveries go to `/ep/{k}` (endpoint number `k`). For the failure scenarios it can also
//! misbehave on purpose (`Behaviour`): the first `hanging` endpoints never answer, the next
//! `slow` ones answer each delivery `slow_ms` after it arrived, and a fixed share of the
//! other deliveries is answered 500 on its first attempt (then accepted). The payload carries the event's sequence
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

/// How the receiver misbehaves on purpose (all off by default).
#[derive(Debug, Clone, Copy, Default)]
pub struct Behaviour {
    /// Endpoints `0..hanging` accept the connection and never answer.
    pub hanging: usize,
    /// Share (0 to 1) of deliveries answered 500 on their first attempt, chosen by a fixed
    /// hash of (event, endpoint) so every run fails the same ones.
    pub fail_share: f64,
    /// Endpoints `hanging..hanging + slow` answer, but only `slow_ms` after each delivery
    /// arrived (its arrival is recorded when it arrives).
    pub slow: usize,
    pub slow_ms: u64,
}

impl Behaviour {
    fn fails_first(&self, slot: usize) -> bool {
        if self.fail_share <= 0.0 {
            return false;
        }
        // SplitMix64's finaliser: a fixed, well-spread hash of the slot.
        let mut x = (slot as u64).wrapping_add(0x9e37_79b9_7f4a_7c15);
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        x ^= x >> 31;
        (x % 10_000) < (self.fail_share * 10_000.0) as u64
    }
}

/// What the receiver saw. Times are nanoseconds since `start`, stored `+ 1` so 0 means "not yet".
pub struct Arrivals {
    pub start: Instant,
    pub events: usize,
    pub endpoints: usize,
    secrets: RwLock<Vec<Secret>>,
    first_arrival: Vec<AtomicU64>,
    webhook_ids: Vec<OnceLock<String>>,
    warmup: Vec<AtomicBool>,
    behaviour: Behaviour,
    /// Per slot, whether its planned 500 was answered (empty when `fail_share` is 0).
    failed_once: Vec<AtomicBool>,
    pub answered_500: AtomicUsize,
    pub hung: AtomicUsize,
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
            behaviour: Behaviour::default(),
            failed_once: Vec::new(),
            answered_500: AtomicUsize::new(0),
            hung: AtomicUsize::new(0),
            requests: AtomicUsize::new(0),
            unique: AtomicUsize::new(0),
            duplicates: AtomicUsize::new(0),
            bad_signatures: AtomicUsize::new(0),
            unrecognised: AtomicUsize::new(0),
        }
    }

    /// The same, misbehaving as `behaviour` says.
    pub fn with_behaviour(mut self, behaviour: Behaviour) -> Self {
        if behaviour.fail_share > 0.0 {
            self.failed_once = (0..self.events * self.endpoints)
                .map(|_| AtomicBool::new(false))
                .collect();
        }
        self.behaviour = behaviour;
        self
    }

    /// Endpoints that answer (all but the hanging ones): `hanging..endpoints`.
    pub fn healthy(&self) -> std::ops::Range<usize> {
        self.behaviour.hanging.min(self.endpoints)..self.endpoints
    }

    /// Endpoints that answer at once (neither hanging nor slow).
    pub fn fast(&self) -> std::ops::Range<usize> {
        (self.behaviour.hanging + self.behaviour.slow).min(self.endpoints)..self.endpoints
    }

    /// Endpoints that answer late on purpose (`Behaviour::slow`).
    pub fn slow(&self) -> std::ops::Range<usize> {
        self.healthy().start..self.fast().start
    }

    /// Adds the secret of the next endpoint (endpoint `k` is the `k`-th added).
    pub fn add_secret(&self, secret: Secret) {
        self.secrets.write().expect("secrets lock").push(secret);
    }

    /// Whether every answering endpoint got the warm-up event.
    pub fn warmed_up(&self) -> bool {
        self.warmup[self.healthy()]
            .iter()
            .all(|w| w.load(Ordering::Relaxed))
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
                if self.behaviour.fails_first(slot)
                    && !self.failed_once[slot].swap(true, Ordering::AcqRel)
                {
                    self.answered_500.fetch_add(1, Ordering::Relaxed);
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
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
    if endpoint < arrivals.behaviour.hanging {
        // Never answers: the connection stays open until Herald's attempt timeout drops it.
        arrivals.hung.fetch_add(1, Ordering::Relaxed);
        std::future::pending::<()>().await;
    }
    let status = arrivals.record(endpoint, &headers, &body);
    if arrivals.slow().contains(&endpoint) {
        tokio::time::sleep(std::time::Duration::from_millis(arrivals.behaviour.slow_ms)).await;
    }
    status
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

#[cfg(test)]
mod tests {
    use super::Behaviour;

    #[test]
    fn the_planned_failures_are_the_share_asked_for_and_fixed() {
        let b = Behaviour {
            fail_share: 0.1,
            ..Behaviour::default()
        };
        let failing = (0..100_000).filter(|s| b.fails_first(*s)).count();
        assert!((9_500..=10_500).contains(&failing), "{failing}");
        let again = (0..100_000).filter(|s| b.fails_first(*s)).count();
        assert_eq!(failing, again);
        let none = Behaviour::default();
        assert!((0..10_000).all(|s| !none.fails_first(s)));
    }

    #[test]
    fn slow_endpoints_come_after_the_hanging_ones_and_fast_ones_after_them() {
        let b = Behaviour {
            hanging: 1,
            slow: 2,
            slow_ms: 200,
            ..Behaviour::default()
        };
        let arrivals = super::Arrivals::new(std::time::Instant::now(), 10, 6).with_behaviour(b);
        let slow: Vec<usize> = (0..6).filter(|k| arrivals.slow().contains(k)).collect();
        assert_eq!(slow, vec![1, 2]);
        assert_eq!(arrivals.healthy(), 1..6);
        assert_eq!(arrivals.slow(), 1..3);
        assert_eq!(arrivals.fast(), 3..6);
        let plain = super::Arrivals::new(std::time::Instant::now(), 10, 4);
        assert_eq!((plain.slow(), plain.fast()), (0..0, 0..4));
    }
}
