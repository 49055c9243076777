//! The producing end: the admin calls (create endpoints) and `C` concurrent clients posting
//! events to `/v1/events` (or `/v1/events/batch`), paced to a target rate, each event with
//! an `Idempotency-Key` so that a retried request never makes a second event.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Attempts per request before its events count as rejected.
const ATTEMPTS: u32 = 5;

/// Herald's HTTP API.
#[derive(Clone)]
pub struct Api {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    pub fn new(base: String, key: String, concurrency: usize) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(concurrency)
            .build()?;
        Ok(Self { client, base, key })
    }

    async fn post(
        &self,
        path: &str,
        body: &Value,
        headers: &[(&str, &str)],
    ) -> Result<(u16, Value)> {
        let mut request = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        Ok((status, response.json().await.unwrap_or(Value::Null)))
    }

    /// Creates an endpoint subscribed to every event type; returns (id, secret).
    pub async fn create_endpoint(&self, url: &str) -> Result<(String, String)> {
        let (status, body) = self
            .post(
                "/v1/endpoints",
                &json!({"url": url, "description": "herald-load"}),
                &[],
            )
            .await?;
        if status != 201 {
            bail!("creating endpoint {url}: HTTP {status} {body}");
        }
        let field = |name: &str| {
            body[name]
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("endpoint response lacks `{name}`: {body}"))
        };
        Ok((field("id")?, field("secret")?))
    }

    /// Posts one warm-up event (not counted).
    pub async fn warmup(&self) -> Result<()> {
        let body = json!({"type": "load.warmup", "payload": {"warmup": true}});
        let (status, resp) = self.post("/v1/events", &body, &[]).await?;
        if status != 202 {
            bail!("warm-up event: HTTP {status} {resp}");
        }
        Ok(())
    }
}

/// How to send.
#[derive(Clone)]
pub struct Plan {
    pub events: usize,
    pub concurrency: usize,
    /// Events per second over all clients; `None` = as fast as possible.
    pub rate: Option<f64>,
    /// Events per request; 0 = single `/v1/events` requests.
    pub batch: usize,
    pub payload_bytes: usize,
    /// Stop starting requests after this long.
    pub deadline: Duration,
    /// Tripped when Herald died, panicked or stalled: stop sending.
    pub stop: Arc<crate::watchdog::Watchdog>,
    /// Makes this run's idempotency keys unique.
    pub run_id: String,
}

/// What the clients observed. Times are nanoseconds since `start`, `+ 1` so 0 is "not yet".
pub struct Sent {
    pub start: Instant,
    pub accepted_at: Vec<AtomicU64>,
    pub event_ids: Vec<OnceLock<String>>,
    /// Request round-trip times of accepted requests, microseconds.
    pub request_micros: Mutex<Vec<u64>>,
    pub requests: AtomicUsize,
    pub retries: AtomicUsize,
    pub rejected: AtomicUsize,
    pub not_sent: AtomicUsize,
    /// Non-2xx answers and transport errors, by kind.
    pub failures: Mutex<BTreeMap<String, usize>>,
    pub sending_done_at: AtomicU64,
}

impl Sent {
    pub fn new(start: Instant, events: usize) -> Self {
        Self {
            start,
            accepted_at: (0..events).map(|_| AtomicU64::new(0)).collect(),
            event_ids: (0..events).map(|_| OnceLock::new()).collect(),
            request_micros: Mutex::default(),
            requests: AtomicUsize::new(0),
            retries: AtomicUsize::new(0),
            rejected: AtomicUsize::new(0),
            not_sent: AtomicUsize::new(0),
            failures: Mutex::default(),
            sending_done_at: AtomicU64::new(0),
        }
    }

    pub fn accepted(&self, seq: usize) -> Option<u64> {
        match self.accepted_at[seq].load(Ordering::Acquire) {
            0 => None,
            t => Some(t - 1),
        }
    }

    /// Events accepted so far.
    pub fn accepted_count(&self) -> usize {
        self.accepted_at
            .iter()
            .filter(|t| t.load(Ordering::Relaxed) > 0)
            .count()
    }

    fn failure(&self, kind: String) {
        *self
            .failures
            .lock()
            .expect("failures lock")
            .entry(kind)
            .or_default() += 1;
    }
}

pub fn payload(seq: usize, bytes: usize) -> Value {
    let base = format!(r#"{{"seq":{seq},"pad":""}}"#).len();
    json!({"seq": seq, "pad": "x".repeat(bytes.saturating_sub(base))})
}

fn item(plan: &Plan, seq: usize) -> Value {
    json!({
        "type": "load.test",
        "payload": payload(seq, plan.payload_bytes),
        "idempotency_key": format!("{}-{seq}", plan.run_id),
    })
}

/// Sends events `seqs` in one request; returns those still to retry (transient failures).
async fn send_once(api: &Api, plan: &Plan, sent: &Sent, seqs: &[usize]) -> Vec<usize> {
    sent.requests.fetch_add(1, Ordering::Relaxed);
    let began = Instant::now();
    let result = if plan.batch == 0 {
        let mut body = item(plan, seqs[0]);
        let key = body["idempotency_key"].take();
        let key = key.as_str().unwrap_or_default().to_owned();
        let body = json!({"type": body["type"], "payload": body["payload"]});
        api.post("/v1/events", &body, &[("Idempotency-Key", &key)])
            .await
    } else {
        let items: Vec<Value> = seqs.iter().map(|&s| item(plan, s)).collect();
        api.post("/v1/events/batch", &json!({"events": items}), &[])
            .await
    };
    let done = sent.start.elapsed().as_nanos() as u64 + 1;
    let (status, body) = match result {
        Ok(answer) => answer,
        Err(err) => {
            let kind = if err.to_string().contains("timed out") {
                "timeout"
            } else {
                "transport error"
            };
            sent.failure(kind.to_owned());
            return seqs.to_vec();
        }
    };
    let accept = |seq: usize, id: Option<&str>| {
        sent.accepted_at[seq].store(done, Ordering::Release);
        if let Some(id) = id {
            let _ = sent.event_ids[seq].set(id.to_owned());
        }
    };
    match status {
        202 if plan.batch == 0 => {
            accept(seqs[0], body["id"].as_str());
            sent.request_micros
                .lock()
                .expect("latency lock")
                .push(began.elapsed().as_micros() as u64);
            Vec::new()
        }
        202 | 207 if plan.batch > 0 => {
            let results = body["results"].as_array().cloned().unwrap_or_default();
            let mut retry = Vec::new();
            for (index, &seq) in seqs.iter().enumerate() {
                let result = results
                    .iter()
                    .find(|r| r["index"].as_u64() == Some(index as u64));
                match result.and_then(|r| r["status"].as_u64()) {
                    Some(202) => accept(seq, result.and_then(|r| r["id"].as_str())),
                    Some(code) => {
                        sent.failure(format!("item HTTP {code}"));
                        if code == 429 || code >= 500 {
                            retry.push(seq);
                        } else {
                            sent.rejected.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => retry.push(seq),
                }
            }
            if status == 202 {
                sent.request_micros
                    .lock()
                    .expect("latency lock")
                    .push(began.elapsed().as_micros() as u64);
            }
            retry
        }
        code => {
            sent.failure(format!("HTTP {code}"));
            if code == 429 || code >= 500 {
                seqs.to_vec()
            } else {
                sent.rejected.fetch_add(seqs.len(), Ordering::Relaxed);
                Vec::new()
            }
        }
    }
}

/// Runs the clients to completion (every event accepted, rejected or past the deadline).
pub async fn run(api: Api, plan: Plan, sent: Arc<Sent>) {
    let per_request = plan.batch.max(1);
    let units = plan.events.div_ceil(per_request);
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..plan.concurrency {
        let (api, plan, sent, next) = (api.clone(), plan.clone(), sent.clone(), next.clone());
        clients.push(tokio::spawn(async move {
            loop {
                let unit = next.fetch_add(1, Ordering::Relaxed);
                if unit >= units {
                    break;
                }
                let first = unit * per_request;
                let mut pending: Vec<usize> =
                    (first..(first + per_request).min(plan.events)).collect();
                if let Some(rate) = plan.rate {
                    let due = Duration::from_secs_f64(first as f64 / rate);
                    if due > plan.deadline {
                        sent.not_sent.fetch_add(pending.len(), Ordering::Relaxed);
                        continue;
                    }
                    tokio::time::sleep_until((began + due).into()).await;
                }
                for attempt in 0..ATTEMPTS {
                    if pending.is_empty() || began.elapsed() > plan.deadline || plan.stop.tripped()
                    {
                        break;
                    }
                    if attempt > 0 {
                        sent.retries.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                    }
                    pending = send_once(&api, &plan, &sent, &pending).await;
                }
                if !pending.is_empty() {
                    let field = if began.elapsed() > plan.deadline || plan.stop.tripped() {
                        &sent.not_sent
                    } else {
                        &sent.rejected
                    };
                    field.fetch_add(pending.len(), Ordering::Relaxed);
                }
            }
        }));
    }
    for client in clients {
        let _ = client.await;
    }
    sent.sending_done_at.store(
        sent.start.elapsed().as_nanos() as u64 + 1,
        Ordering::Release,
    );
}
