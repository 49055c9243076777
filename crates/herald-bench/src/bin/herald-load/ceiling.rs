//! The loopback ceiling of this machine, measured in the same run before Herald starts: the
//! load generator's own HTTP clients post the same deliveries Herald would (same payload
//! size, signed per Standard Webhooks, `concurrency` keep-alive connections) straight to a
//! receiver of the same code, which verifies every signature. Nothing Herald does can be
//! faster than this on the machine; its figures are reported as a share of it.

use crate::receiver::{self, Arrivals};
use crate::report::{Ceiling, Distribution};
use anyhow::{bail, Result};
use herald_core::signing::{signature_header, Secret};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Posts `events × endpoints` signed deliveries of `payload_bytes` with `concurrency` clients.
pub async fn measure(
    events: usize,
    endpoints: usize,
    concurrency: usize,
    payload_bytes: usize,
) -> Result<Ceiling> {
    let start = Instant::now();
    let arrivals = Arc::new(Arrivals::new(start, events, endpoints));
    let secrets: Vec<Secret> = (0..endpoints).map(|_| Secret::generate()).collect();
    for secret in &secrets {
        arrivals.add_secret(secret.clone());
    }
    let addr = receiver::start(arrivals.clone()).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(30))
        .build()?;
    let total = events * endpoints;
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let secrets = Arc::new(secrets);
    let began = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, next, latencies, secrets) = (
                client.clone(),
                next.clone(),
                latencies.clone(),
                secrets.clone(),
            );
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return Ok::<(), reqwest::Error>(());
                    }
                    let (seq, k) = (i / endpoints, i % endpoints);
                    let body = serde_json::to_vec(&crate::load::payload(seq, payload_bytes))
                        .unwrap_or_default();
                    let id = format!("msg_ceiling_{seq}_{k}");
                    let ts = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs() as i64);
                    let signature = signature_header([&secrets[k]], &id, ts, &body);
                    let sent = Instant::now();
                    client
                        .post(format!("http://{addr}/ep/{k}"))
                        .header("content-type", "application/json")
                        .header("webhook-id", &id)
                        .header("webhook-timestamp", ts.to_string())
                        .header("webhook-signature", signature)
                        .body(body)
                        .send()
                        .await?
                        .error_for_status()?;
                    let micros = sent.elapsed().as_micros() as u64;
                    latencies.lock().expect("latencies lock").push(micros);
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    let seconds = began.elapsed().as_secs_f64();
    let received = arrivals.unique.load(Ordering::Relaxed);
    let bad = arrivals.bad_signatures.load(Ordering::Relaxed);
    if received != total || bad != 0 {
        bail!("ceiling run: {received} of {total} deliveries recorded, {bad} bad signatures");
    }
    let latencies = std::mem::take(&mut *latencies.lock().expect("latencies lock"));
    Ok(Ceiling {
        deliveries: total,
        seconds,
        deliveries_per_s: total as f64 / seconds,
        request_latency_ms: Distribution::of(latencies, 0.001),
    })
}
