//! Turning what the clients sent and the receiver got into a `Report`: which deliveries
//! arrived, how fast, how late, and what the Herald processes spent.

use crate::args::Args;
use crate::report::{self, Delivery, Distribution, Ingest, Parameters, Process, Report};
use crate::{load, procs, receiver, Herald};
use std::sync::atomic::Ordering;

/// Everything observed during one run.
pub struct Measured<'a> {
    pub arrivals: &'a receiver::Arrivals,
    pub sent: &'a load::Sent,
    /// When the first event was sent, nanoseconds since the run's start.
    pub load_began: u64,
    /// With `--backlog`: when the dispatcher started again (the drain's start).
    pub drain_began: Option<u64>,
    pub warmup_seconds: f64,
    pub all_arrived: bool,
    pub stopped_early: Option<String>,
    pub herald_metrics: std::collections::BTreeMap<String, String>,
    /// Per watched process: usage when the measurement began and when it ended.
    pub idle: &'a [procs::Usage],
    pub end: &'a [procs::Usage],
    pub sampled: &'a [u64],
    /// `herald-load`'s own CPU seconds over the measurement.
    pub harness_cpu_seconds: f64,
    pub exits: &'a [(u32, String, Vec<String>)],
}

pub fn build_report(args: &Args, herald: &Herald, m: Measured<'_>) -> Report {
    let (events, endpoints) = (args.events, args.endpoints);
    let healthy = m.arrivals.healthy();
    let accepted: Vec<usize> = (0..events)
        .filter(|s| m.sent.accepted(*s).is_some())
        .collect();
    let last_accept = accepted
        .iter()
        .filter_map(|s| m.sent.accepted(*s))
        .max()
        .unwrap_or(m.load_began);
    let mut e2e = Vec::with_capacity(accepted.len() * healthy.len());
    let mut arrivals = Vec::with_capacity(accepted.len() * healthy.len());
    let (mut early, mut mismatches, mut last_arrival) = (0, 0, m.load_began);
    for &seq in &accepted {
        let accepted_at = m.sent.accepted(seq).unwrap_or_default();
        for k in healthy.clone() {
            let Some(arrived) = m.arrivals.arrival(seq, k) else {
                continue;
            };
            last_arrival = last_arrival.max(arrived);
            arrivals.push(arrived);
            if arrived < accepted_at {
                early += 1;
            }
            e2e.push(arrived.saturating_sub(accepted_at) / 1_000);
            let sent_id = m.sent.event_ids[seq].get().map(String::as_str);
            if sent_id.is_some() && m.arrivals.webhook_id(seq, k) != sent_id {
                mismatches += 1;
            }
        }
    }
    let secs = |from: u64, to: u64| to.saturating_sub(from) as f64 / 1e9;
    let sending_done = m
        .sent
        .sending_done_at
        .load(Ordering::Acquire)
        .saturating_sub(1);
    let ingest_seconds = secs(m.load_began, sending_done);
    let received = e2e.len();
    let expected = accepted.len() * healthy.len();
    let delivery_began = m.drain_began.unwrap_or(m.load_began);
    let delivery_seconds = secs(delivery_began, last_arrival);
    let series = report::Series {
        accepted_per_s: report::per_second(
            accepted.iter().filter_map(|s| m.sent.accepted(*s)),
            m.load_began,
        ),
        delivered_per_s: report::per_second(arrivals.iter().copied(), m.load_began),
        drain_began_s: m
            .drain_began
            .map(|t| t.saturating_sub(m.load_began) as f64 / 1e9),
    };
    let ticks = procs::clock_ticks() as f64;
    let mib = |kib: u64| kib as f64 / 1024.0;
    let processes = herald
        .watched
        .iter()
        .enumerate()
        .map(|(i, (name, pid))| {
            let exit = m.exits.iter().find(|(p, _, _)| p == pid);
            let cpu_seconds = m.end[i].cpu_ticks.saturating_sub(m.idle[i].cpu_ticks) as f64 / ticks;
            Process {
                name: name.clone(),
                pid: *pid,
                peak_rss_mib: mib(m.end[i]
                    .hwm_kib
                    .max(m.sampled.get(i).copied().unwrap_or_default())),
                max_sampled_rss_mib: mib(m.sampled.get(i).copied().unwrap_or_default()),
                idle_rss_mib: mib(m.idle[i].rss_kib),
                cpu_seconds,
                cpu_ms_per_1000_deliveries: (received > 0)
                    .then(|| cpu_seconds * 1_000_000.0 / received as f64),
                exit: exit.map_or_else(
                    || "left running (--target)".to_owned(),
                    |(_, e, _)| e.clone(),
                ),
                panics: exit.map(|(_, _, p)| p.clone()).unwrap_or_default(),
            }
        })
        .collect::<Vec<_>>();
    let bad_signatures = m.arrivals.bad_signatures.load(Ordering::Relaxed);
    let rejected = m.sent.rejected.load(Ordering::Relaxed);
    let not_sent = m.sent.not_sent.load(Ordering::Relaxed);
    let mut problems = Vec::new();
    if received < expected {
        problems.push(format!(
            "{} of {expected} deliveries missing{}",
            expected - received,
            if m.all_arrived || m.stopped_early.is_some() {
                ""
            } else {
                " after the timeout"
            }
        ));
    }
    if let Some(reason) = &m.stopped_early {
        problems.push(format!("stopped early: {reason}"));
    }
    if accepted.len() < events {
        problems.push(format!(
            "{} of {events} events not accepted ({rejected} rejected, {not_sent} not sent)",
            events - accepted.len()
        ));
    }
    if bad_signatures > 0 {
        problems.push(format!(
            "{bad_signatures} deliveries failed signature verification"
        ));
    }
    if mismatches > 0 {
        problems.push(format!(
            "{mismatches} deliveries carried a webhook-id other than the accepted event id"
        ));
    }
    for proc in &processes {
        if !proc.panics.is_empty() {
            problems.push(format!("{} panicked", proc.name));
        }
    }
    let rate_of = |endpoints| per_endpoint_rate(m.arrivals, &accepted, endpoints, delivery_began);
    let fast_per_endpoint_per_s = (args.slow > 0).then(|| rate_of(m.arrivals.fast()));
    let slow_per_endpoint_per_s = (args.slow > 0).then(|| rate_of(m.arrivals.slow()));
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    Report {
        parameters: Parameters {
            command,
            herald: match &args.target {
                Some(target) => target.clone(),
                None => args.herald_bin().display().to_string(),
            },
            broker: args.target.is_none().then_some(args.broker),
            hanging: args.hanging,
            slow: args.slow,
            slow_ms: args.slow_ms,
            fail_share: args.fail_share,
            backlog: args.backlog,
            layout: if args.target.is_some() {
                "target".into()
            } else {
                format!("{:?}", args.layout).to_lowercase()
            },
            events,
            endpoints,
            concurrency: args.concurrency,
            rate_per_s: (args.rate > 0.0).then_some(args.rate),
            batch: args.batch,
            payload_bytes: args.payload_bytes,
            partitions: args.target.is_none().then_some(args.partitions),
            retry_schedule: args.target.is_none().then(|| args.retry_schedule.clone()),
            attempt_timeout: args.target.is_none().then(|| args.attempt_timeout.clone()),
            timeout_s: args.timeout,
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
        },
        warmup_seconds: m.warmup_seconds,
        ingest: Ingest {
            accepted: accepted.len(),
            rejected,
            not_sent,
            requests: m.sent.requests.load(Ordering::Relaxed),
            retried_requests: m.sent.retries.load(Ordering::Relaxed),
            failures: m.sent.failures.lock().expect("failures lock").clone(),
            seconds: ingest_seconds,
            accepted_per_s: accepted.len() as f64 / ingest_seconds.max(1e-9),
            accepted_per_s_by_tenth: report::rate_by_tenth(
                accepted.iter().filter_map(|s| m.sent.accepted(*s)),
                m.load_began,
                sending_done,
            ),
            request_latency_ms: Distribution::of(
                std::mem::take(&mut *m.sent.request_micros.lock().expect("latency lock")),
                0.001,
            ),
        },
        delivery: Delivery {
            expected,
            received,
            missing: expected - received,
            duplicates: m.arrivals.duplicates.load(Ordering::Relaxed),
            bad_signatures,
            webhook_id_mismatches: mismatches,
            unrecognised: m.arrivals.unrecognised.load(Ordering::Relaxed),
            seconds: delivery_seconds,
            delivered_per_s: received as f64 / delivery_seconds.max(1e-9),
            delivered_per_s_by_tenth: report::rate_by_tenth(
                arrivals.into_iter(),
                delivery_began,
                last_arrival,
            ),
            healthy_endpoints: healthy.len(),
            per_endpoint_per_s: received as f64
                / delivery_seconds.max(1e-9)
                / healthy.len().max(1) as f64,
            fast_per_endpoint_per_s,
            slow_per_endpoint_per_s,
            drain_seconds: secs(last_accept, last_arrival),
            backlog_drain_seconds: m.drain_began.map(|t| secs(t, last_arrival)),
            end_to_end_ms: Distribution::of(e2e.clone(), 0.001),
            arrived_before_accept: early,
            answered_500: m.arrivals.answered_500.load(Ordering::Relaxed),
            hung_requests: m.arrivals.hung.load(Ordering::Relaxed),
        },
        series,
        end_to_end_micros: e2e,
        processes,
        harness_cpu_seconds: m.harness_cpu_seconds,
        herald_metrics: m.herald_metrics,
        ceiling: None,
        share_of_ceiling: None,
        ok: problems.is_empty(),
        problems,
    }
}

/// Deliveries per second per endpoint of `endpoints`, from `began` to the last of their
/// arrivals.
fn per_endpoint_rate(
    arrivals: &receiver::Arrivals,
    accepted: &[usize],
    endpoints: std::ops::Range<usize>,
    began: u64,
) -> f64 {
    let (mut count, mut last) = (0usize, began);
    for &seq in accepted {
        for k in endpoints.clone() {
            if let Some(arrived) = arrivals.arrival(seq, k) {
                count += 1;
                last = last.max(arrived);
            }
        }
    }
    let seconds = last.saturating_sub(began) as f64 / 1e9;
    count as f64 / seconds.max(1e-9) / endpoints.len().max(1) as f64
}
