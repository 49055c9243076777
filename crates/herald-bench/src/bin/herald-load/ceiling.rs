//! The loopback ceiling of this machine, measured in the same run before Herald starts: the
//! load generator's own HTTP clients post the same deliveries Herald would (same payload
//! size, signed per Standard Webhooks, `concurrency` keep-alive connections) straight to a
//! receiver of the same code, which verifies every signature. Nothing Herald does can be
//! faster than this on the machine; its figures are reported as a share of it. The CPU the
//! process spends meanwhile (clients, receiver and signing on both sides, one process) is the
//! machine's cost of one signed HTTP round trip, the reference for Herald's CPU per delivery.

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
    let cpu_before = own_cpu_seconds();
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
    let cpu_seconds = (own_cpu_seconds() - cpu_before).max(0.0);
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
        cpu_us_per_delivery: cpu_seconds * 1e6 / total.max(1) as f64,
    })
}

/// CPU seconds this process's threads have run: the sum of each thread's run time in
/// `/proc/self/task/*/schedstat` (nanoseconds, so a short smoke run still measures), or
/// `/proc/self/stat`'s clock ticks where schedstat is missing.
fn own_cpu_seconds() -> f64 {
    let from_schedstat = || -> Option<f64> {
        let mut nanos = 0u64;
        for task in std::fs::read_dir("/proc/self/task").ok()? {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            nanos += stat.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(nanos as f64 / 1e9)
    };
    from_schedstat().unwrap_or_else(|| {
        let ticks = crate::procs::usage(std::process::id()).map_or(0, |u| u.cpu_ticks);
        ticks as f64 / crate::procs::clock_ticks() as f64
    })
}
