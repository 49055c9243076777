//! Turning what the clients sent and the receiver got into figures, printed as text or JSON.

use serde::Serialize;

/// Nearest-rank percentiles of a sample, in the sample's unit.
#[derive(Debug, Default, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
    pub mean: f64,
}

/// Rate per second in each tenth of `[from, to]` (nanoseconds) of the given event times.
pub fn rate_by_tenth(times: impl Iterator<Item = u64>, from: u64, to: u64) -> Vec<f64> {
    let span = to.saturating_sub(from).max(1);
    let mut counts = [0usize; 10];
    for t in times {
        let tenth = (t.saturating_sub(from) as u128 * 10 / span as u128).min(9) as usize;
        counts[tenth] += 1;
    }
    let seconds = span as f64 / 1e9 / 10.0;
    counts
        .iter()
        .map(|c| (*c as f64 / seconds).round())
        .collect()
}

/// Counts per whole second since `from` (nanoseconds) of the given event times.
pub fn per_second(times: impl Iterator<Item = u64>, from: u64) -> Vec<u32> {
    let mut counts: Vec<u32> = Vec::new();
    for t in times {
        let second = (t.saturating_sub(from) / 1_000_000_000) as usize;
        if counts.len() <= second {
            counts.resize(second + 1, 0);
        }
        counts[second] += 1;
    }
    counts
}

/// The run second by second, for the chart.
#[derive(Debug, Default, Serialize)]
pub struct Series {
    /// Events accepted in each second since the first was sent.
    pub accepted_per_s: Vec<u32>,
    /// First arrivals in each second since the first event was sent.
    pub delivered_per_s: Vec<u32>,
    /// With `--backlog`: when the dispatcher started again, seconds since the first event.
    pub drain_began_s: Option<f64>,
}

impl Distribution {
    /// From raw values, scaled by `scale` (e.g. µs → ms = 0.001).
    pub fn of(mut values: Vec<u64>, scale: f64) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_unstable();
        let rank = |q: f64| {
            let index = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[index] as f64 * scale
        };
        let sum: f64 = values.iter().map(|v| *v as f64).sum();
        Self {
            count: values.len(),
            p50: rank(0.50),
            p95: rank(0.95),
            p99: rank(0.99),
            p999: rank(0.999),
            max: values[values.len() - 1] as f64 * scale,
            mean: sum / values.len() as f64 * scale,
        }
    }

    fn line(&self, unit: &str) -> String {
        format!(
            "p50 {:.1} {unit}, p95 {:.1} {unit}, p99 {:.1} {unit}, p99.9 {:.1} {unit}, max {:.1} {unit}, mean {:.1} {unit} (n = {})",
            self.p50, self.p95, self.p99, self.p999, self.max, self.mean, self.count
        )
    }
}

/// The run's parameters, exactly.
#[derive(Debug, Serialize)]
pub struct Parameters {
    pub command: String,
    pub herald: String,
    pub layout: String,
    /// The broker of a spawned Herald (None with `--target`).
    pub broker: Option<crate::procs::Broker>,
    pub hanging: usize,
    /// `--slow` endpoints and how late they answer (`--slow-ms`).
    pub slow: usize,
    pub slow_ms: u64,
    pub fail_share: f64,
    pub backlog: bool,
    pub events: usize,
    pub endpoints: usize,
    pub concurrency: usize,
    pub rate_per_s: Option<f64>,
    pub batch: usize,
    pub payload_bytes: usize,
    pub partitions: Option<u32>,
    pub retry_schedule: Option<String>,
    pub attempt_timeout: Option<String>,
    pub timeout_s: u64,
    pub cpus: usize,
}

#[derive(Debug, Serialize)]
pub struct Ingest {
    pub accepted: usize,
    pub rejected: usize,
    pub not_sent: usize,
    pub requests: usize,
    pub retried_requests: usize,
    pub failures: std::collections::BTreeMap<String, usize>,
    pub seconds: f64,
    pub accepted_per_s: f64,
    /// Accepted events per second in each tenth of the sending time.
    pub accepted_per_s_by_tenth: Vec<f64>,
    /// Round trip of each accepted request (one event, or one batch).
    pub request_latency_ms: Distribution,
}

#[derive(Debug, Serialize)]
pub struct Delivery {
    pub expected: usize,
    pub received: usize,
    pub missing: usize,
    pub duplicates: usize,
    pub bad_signatures: usize,
    pub webhook_id_mismatches: usize,
    pub unrecognised: usize,
    /// From the first request sent to the last first-arrival.
    pub seconds: f64,
    pub delivered_per_s: f64,
    /// First arrivals per second in each tenth of the delivery time.
    pub delivered_per_s_by_tenth: Vec<f64>,
    /// Endpoints that answer (all but `--hanging`); deliveries are expected only to them.
    pub healthy_endpoints: usize,
    /// `delivered_per_s` per answering endpoint.
    pub per_endpoint_per_s: f64,
    /// With `--slow`: deliveries per second per endpoint that answers at once, from the
    /// first request to the last of *their* arrivals (how much the slow ones held them back),
    /// and the same for the slow endpoints.
    pub fast_per_endpoint_per_s: Option<f64>,
    pub slow_per_endpoint_per_s: Option<f64>,
    /// From the last event accepted to the last delivery arriving.
    pub drain_seconds: f64,
    /// With `--backlog`: from the dispatcher's start to the last delivery arriving.
    pub backlog_drain_seconds: Option<f64>,
    /// Accepted (client got 202) → first arrival at the receiver.
    pub end_to_end_ms: Distribution,
    /// Deliveries that arrived before their 202 reached the client (counted as 0 ms above).
    pub arrived_before_accept: usize,
    /// First attempts answered 500 on purpose (`--fail-share`).
    pub answered_500: usize,
    /// Requests to the hanging endpoints (`--hanging`), never answered.
    pub hung_requests: usize,
}

/// The machine's loopback ceiling for the same deliveries (see `ceiling.rs`).
#[derive(Debug, Serialize)]
pub struct Ceiling {
    pub deliveries: usize,
    pub seconds: f64,
    pub deliveries_per_s: f64,
    /// One POST, sent to answered.
    pub request_latency_ms: Distribution,
    /// CPU µs of `herald-load` per delivery during the ceiling run: sending, signing,
    /// receiving and verifying, both ends of the round trip together.
    pub cpu_us_per_delivery: f64,
}

#[derive(Debug, Serialize)]
pub struct Process {
    pub name: String,
    pub pid: u32,
    /// The peak resident set: VmHWM at the end of the measurement (or a larger sample).
    pub peak_rss_mib: f64,
    /// Largest VmRSS among the samples (every 100 ms).
    pub max_sampled_rss_mib: f64,
    /// VmRSS after start-up and warm-up, before the first event.
    pub idle_rss_mib: f64,
    /// CPU seconds (user + system) spent during the measurement.
    pub cpu_seconds: f64,
    /// CPU milliseconds per 1,000 deliveries received (None when none arrived).
    pub cpu_ms_per_1000_deliveries: Option<f64>,
    pub exit: String,
    pub panics: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub parameters: Parameters,
    pub warmup_seconds: f64,
    pub ingest: Ingest,
    pub delivery: Delivery,
    pub series: Series,
    /// Every end-to-end latency, µs (for the chart; not in the JSON).
    #[serde(skip)]
    pub end_to_end_micros: Vec<u64>,
    pub processes: Vec<Process>,
    /// CPU seconds of `herald-load` itself (its clients and receiver share the machine with
    /// Herald and the broker) over the same measurement.
    pub harness_cpu_seconds: f64,
    /// `herald_*` series scraped from the Herald's `/metrics` at the end of the run.
    pub herald_metrics: std::collections::BTreeMap<String, String>,
    /// The machine's loopback ceiling for the same deliveries (None with `--no-ceiling`).
    pub ceiling: Option<Ceiling>,
    /// Herald's deliveries/s as a share of the ceiling's.
    pub share_of_ceiling: Option<f64>,
    pub ok: bool,
    pub problems: Vec<String>,
}

impl Report {
    pub fn text(&self) -> String {
        let p = &self.parameters;
        let i = &self.ingest;
        let d = &self.delivery;
        let mut out = String::new();
        let mut line = |s: String| {
            out.push_str(&s);
            out.push('\n');
        };
        line("herald-load report".into());
        line(format!("  command      {}", p.command));
        line(format!(
            "  herald       {} ({} layout, {} broker)",
            p.herald,
            p.layout,
            p.broker
                .map_or("the target's".to_owned(), |b| format!("{b:?}")
                    .to_lowercase())
        ));
        if p.hanging > 0 || p.fail_share > 0.0 || p.backlog {
            line(format!(
                "  scenario     {} hanging endpoint(s), {:.0} % of first attempts answered 500, backlog drain {}",
                p.hanging,
                p.fail_share * 100.0,
                if p.backlog { "yes" } else { "no" }
            ));
        }
        line(format!(
            "  parameters   {} events x {} endpoints, {} clients, rate {}, {}, payload {} B, partitions {}, retry schedule {}, attempt timeout {}, timeout {} s, {} CPUs",
            p.events,
            p.endpoints,
            p.concurrency,
            p.rate_per_s.map_or("unlimited".into(), |r| format!("{r}/s")),
            if p.batch == 0 { "single /v1/events".to_owned() } else { format!("batches of {} on /v1/events/batch", p.batch) },
            p.payload_bytes,
            p.partitions.map_or("(target's)".into(), |n| n.to_string()),
            p.retry_schedule.as_deref().unwrap_or("(target's)"),
            p.attempt_timeout.as_deref().unwrap_or("(target's)"),
            p.timeout_s,
            p.cpus,
        ));
        line(format!(
            "  warm-up      {:.2} s until a first event reached every endpoint",
            self.warmup_seconds
        ));
        line(format!(
            "ingest         {} accepted in {:.2} s = {:.0} events/s; {} rejected, {} not sent; {} requests, {} retried; failures {:?}",
            i.accepted, i.seconds, i.accepted_per_s, i.rejected, i.not_sent, i.requests, i.retried_requests, i.failures
        ));
        line(format!(
            "  request latency  {}",
            i.request_latency_ms.line("ms")
        ));
        line(format!(
            "delivery       {} of {} received in {:.2} s = {:.0} deliveries/s; drain after last accept {:.2} s",
            d.received, d.expected, d.seconds, d.delivered_per_s, d.drain_seconds
        ));
        if let Some(drain) = d.backlog_drain_seconds {
            line(format!(
                "  backlog      the dispatcher drained {} deliveries in {drain:.2} s after it started",
                d.received
            ));
        }
        line(format!(
            "  delivered/s by tenth of the run  {:?}; {:.0} per answering endpoint ({} of {})",
            d.delivered_per_s_by_tenth, d.per_endpoint_per_s, d.healthy_endpoints, p.endpoints
        ));
        if let (Some(fast), Some(slow)) = (d.fast_per_endpoint_per_s, d.slow_per_endpoint_per_s) {
            line(format!(
                "  slow         {} endpoint(s) answering {} ms late: {slow:.0} deliveries/s each; the others {fast:.0} each",
                p.slow, p.slow_ms
            ));
        }
        if d.answered_500 > 0 || d.hung_requests > 0 {
            line(format!(
                "  on purpose   {} first attempts answered 500, {} requests left hanging",
                d.answered_500, d.hung_requests
            ));
        }
        line(format!(
            "  missing {}, duplicates {}, bad signatures {}, webhook-id mismatches {}, unrecognised {}",
            d.missing, d.duplicates, d.bad_signatures, d.webhook_id_mismatches, d.unrecognised
        ));
        line(format!(
            "  end-to-end (202 -> received)  {}",
            d.end_to_end_ms.line("ms")
        ));
        line(format!(
            "  arrived before the client saw 202: {}",
            d.arrived_before_accept
        ));
        if let (Some(c), Some(share)) = (&self.ceiling, self.share_of_ceiling) {
            line(format!(
                "ceiling        {} signed deliveries posted straight to the receiver in {:.2} s = {:.0}/s (request {}), {:.0} CPU µs per round trip (both ends); Herald delivered {:.1} % of that",
                c.deliveries, c.seconds, c.deliveries_per_s, c.request_latency_ms.line("ms"), c.cpu_us_per_delivery, share * 100.0
            ));
        }
        for proc in &self.processes {
            line(format!(
                "process {:<8} pid {:<7} peak RSS (VmHWM) {:.1} MiB, max sampled RSS {:.1} MiB, idle RSS {:.1} MiB, CPU {:.1} s ({} ms per 1,000 deliveries); exit: {}",
                proc.name, proc.pid, proc.peak_rss_mib, proc.max_sampled_rss_mib, proc.idle_rss_mib, proc.cpu_seconds,
                proc.cpu_ms_per_1000_deliveries.map_or("-".to_owned(), |ms| format!("{ms:.0}")), proc.exit
            ));
            for panic in &proc.panics {
                line(format!("  PANIC {panic}"));
            }
        }
        line(format!(
            "harness        herald-load itself (clients, receiver, signature checks) used {:.1} CPU-s",
            self.harness_cpu_seconds
        ));
        if !self.herald_metrics.is_empty() {
            line("herald /metrics at the end of the run".into());
            for (name, value) in &self.herald_metrics {
                line(format!("  {name} {value}"));
            }
        }
        line(if self.ok {
            "result         OK".into()
        } else {
            format!("result         FAILED: {}", self.problems.join("; "))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::{per_second, Distribution};

    #[test]
    fn per_second_counts_whole_seconds_from_the_start() {
        let s = 1_000_000_000u64;
        let times = [5 * s, 5 * s + 1, 6 * s - 1, 6 * s, 8 * s + 7];
        assert_eq!(per_second(times.into_iter(), 5 * s), vec![3, 1, 0, 1]);
        assert!(per_second(std::iter::empty(), 0).is_empty());
    }

    #[test]
    fn p999_is_the_nearest_rank() {
        let d = Distribution::of((1..=2_000).collect(), 1.0);
        assert_eq!(d.p999, 1_998.0);
        assert_eq!(d.p99, 1_980.0);
        assert_eq!(d.max, 2_000.0);
    }
}
