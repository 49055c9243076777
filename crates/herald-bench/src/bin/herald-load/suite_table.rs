//! The suite's table (`table.md`): one row per run, and each target of issue #13 with the
//! figure measured for it, met or missed. Figures are what the runs measured; nothing here
//! is asserted in a test.

use crate::args::Args;
use crate::procs::Broker;
use crate::report::{Ceiling, Report};
use std::fmt::Write as _;

/// What the table needs of one run.
pub struct RowView<'a> {
    pub broker: Broker,
    pub scenario: &'a str,
    pub what: &'a str,
    pub report: Option<&'a Report>,
    pub error: Option<&'a str>,
}

fn is_broker(name: &str) -> bool {
    matches!(name, "broker" | "kafka")
}

/// CPU µs per delivery (= ms per 1,000) summed over Herald's processes or the broker's.
fn cpu_us(r: &Report, broker: bool) -> Option<f64> {
    (r.delivery.received > 0).then(|| {
        r.processes
            .iter()
            .filter(|p| is_broker(&p.name) == broker)
            .filter_map(|p| p.cpu_ms_per_1000_deliveries)
            .sum()
    })
}

fn rss(r: &Report, pick: impl Fn(&str) -> bool) -> f64 {
    r.processes
        .iter()
        .filter(|p| pick(&p.name))
        .map(|p| p.peak_rss_mib)
        .sum()
}

fn dispatcher_rss(r: &Report) -> f64 {
    rss(r, |n| matches!(n, "dev" | "dispatch"))
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("–".to_owned(), |v| format!("{v:.digits$}"))
}

fn broker_name(b: Broker) -> &'static str {
    match b {
        Broker::Embedded => "embedded",
        Broker::Kafka => "Kafka",
    }
}

/// Worst tenth of the delivery time (all but the last, where the drain tails off) as a share
/// of the first tenth.
pub fn worst_tenth_share(r: &Report) -> Option<f64> {
    worst_tenth(&r.delivery.delivered_per_s_by_tenth)
}

fn worst_tenth(tenths: &[f64]) -> Option<f64> {
    let first = *tenths.first()?;
    let worst = tenths
        .get(1..tenths.len().saturating_sub(1))?
        .iter()
        .copied()
        .fold(f64::INFINITY, f64::min);
    (first > 0.0 && worst.is_finite()).then(|| worst / first)
}

/// The Markdown table and the targets.
pub fn markdown(base: &Args, rows: &[RowView<'_>], ceiling: &Ceiling) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Command: `{}`\n\nHerald binary: `{}`; {} CPUs. Loopback ceiling (the same signed 1 KiB deliveries posted straight to the receiver by 16 keep-alive clients): **{:.0} deliveries/s**, at {:.0} µs of CPU per round trip (client, receiver and signatures, both ends in one process: the machine's cost of the HTTP part of a delivery).\n",
        std::env::args().collect::<Vec<_>>().join(" "),
        base.herald_bin().display(),
        std::thread::available_parallelism().map_or(0, usize::from),
        ceiling.deliveries_per_s,
        ceiling.cpu_us_per_delivery
    );
    out.push_str("| broker | run | events/s accepted | ingest p50 / p99 ms | deliveries/s | share of ceiling | end-to-end p50 / p99 / p99.9 ms | Herald CPU µs/delivery | broker CPU µs/delivery | harness CPU µs/delivery | peak RSS MiB: dispatcher / Herald / broker | result |\n");
    out.push_str("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for row in rows {
        let Some(r) = row.report else {
            let _ = writeln!(
                out,
                "| {} | {} | | | | | | | | | | could not run: {} |",
                broker_name(row.broker),
                row.scenario,
                row.error.unwrap_or_default().replace('|', "/")
            );
            continue;
        };
        let (i, d) = (&r.ingest, &r.delivery);
        let e = &d.end_to_end_ms;
        let rate = match r.parameters.rate_per_s {
            Some(rate) => format!(" (offered {rate:.0})"),
            None => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} ({} x {}) | {:.0}{rate} | {:.1} / {:.1} | {:.0}{} | {:.0} % | {:.0} / {:.0} / {:.0} | {} | {} | {:.0} | {:.0} / {:.0} / {:.0} | {} |",
            broker_name(row.broker),
            row.scenario,
            r.parameters.events,
            r.parameters.endpoints,
            i.accepted_per_s,
            i.request_latency_ms.p50,
            i.request_latency_ms.p99,
            d.delivered_per_s,
            if d.healthy_endpoints < r.parameters.endpoints {
                format!(" ({:.0} per answering endpoint)", d.per_endpoint_per_s)
            } else {
                String::new()
            },
            r.share_of_ceiling.unwrap_or_default() * 100.0,
            e.p50,
            e.p99,
            e.p999,
            opt(cpu_us(r, false), 0),
            opt(cpu_us(r, true), 0),
            r.harness_cpu_seconds * 1e6 / (d.received.max(1) as f64),
            dispatcher_rss(r),
            rss(r, |n| !is_broker(n)),
            rss(r, is_broker),
            if r.ok { "OK".to_owned() } else { r.problems.join("; ").replace('|', "/") },
        );
    }
    out.push_str("\nRuns: ");
    for row in rows.iter().filter(|r| r.broker == rows[0].broker) {
        let _ = write!(out, "`{}` {}; ", row.scenario, row.what);
    }
    out.push_str("\n\n");
    out.push_str(&targets(rows));
    out
}

fn find<'a>(rows: &'a [RowView<'a>], broker: Broker, scenario: &str) -> Option<&'a Report> {
    rows.iter()
        .find(|r| r.broker == broker && r.scenario == scenario)
        .and_then(|r| r.report)
}

/// Each target with its measured figure.
fn targets(rows: &[RowView<'_>]) -> String {
    let mut out = String::from("| target | measured | |\n| --- | --- | --- |\n");
    let mut line = |what: &str, value: Option<f64>, unit: &str, met: &dyn Fn(f64) -> bool| {
        let (shown, verdict) = match value {
            Some(v) => (
                format!("{v:.1} {unit}"),
                if met(v) { "met" } else { "missed" },
            ),
            None => ("not measured".to_owned(), "–"),
        };
        let _ = writeln!(out, "| {what} | {shown} | {verdict} |");
    };
    let k = Broker::Kafka;
    let e = Broker::Embedded;
    let delivered = |b, s| find(rows, b, s).map(|r| r.delivery.delivered_per_s);
    let accepted = |b, s| find(rows, b, s).map(|r| r.ingest.accepted_per_s);
    line(
        "Kafka: backlog drain ≥ 10,000 deliveries/s",
        delivered(k, "d-backlog"),
        "deliveries/s",
        &|v| v >= 10_000.0,
    );
    line(
        "Kafka: ingest with batches ≥ 5,000 events/s",
        accepted(k, "batches"),
        "events/s",
        &|v| v >= 5_000.0,
    );
    line(
        "Kafka: ingest with single requests ≥ 2,000 events/s",
        accepted(k, "saturation"),
        "events/s",
        &|v| v >= 2_000.0,
    );
    line(
        "Kafka: end-to-end p99 < 50 ms at 50 % of saturation",
        find(rows, k, "load-50").map(|r| r.delivery.end_to_end_ms.p99),
        "ms",
        &|v| v < 50.0,
    );
    line(
        "Kafka: Herald CPU ≤ 50 µs per delivery (saturation run)",
        find(rows, k, "saturation").and_then(|r| cpu_us(r, false)),
        "µs",
        &|v| v <= 50.0,
    );
    line(
        "Kafka: dispatcher RSS < 150 MiB, 100,000-event backlog, one endpoint down",
        find(rows, k, "d-backlog-1-down").map(dispatcher_rss),
        "MiB",
        &|v| v < 150.0,
    );
    let per_endpoint = |s| find(rows, k, s).map(|r| r.delivery.per_endpoint_per_s);
    line(
        "Kafka: (e) healthy endpoints' throughput within 10 % of (b)",
        per_endpoint("e-1-hanging-of-10")
            .zip(per_endpoint("b-10-endpoints"))
            .map(|(e, b)| e / b * 100.0),
        "% of (b) per endpoint",
        &|v| v >= 90.0,
    );
    line(
        "embedded: every tenth of a 100,000-event run within 20 % of the first (all but the last tenth)",
        find(rows, e, "saturation").and_then(worst_tenth_share).map(|s| s * 100.0),
        "% of the first tenth at worst",
        &|v| v >= 80.0,
    );
    line(
        "embedded: ≥ 900 events/s accepted",
        accepted(e, "saturation"),
        "events/s",
        &|v| v >= 900.0,
    );
    line(
        "embedded: ≥ 3,600 deliveries/s",
        delivered(e, "saturation"),
        "deliveries/s",
        &|v| v >= 3_600.0,
    );
    line(
        "embedded: end-to-end p99 < 200 ms (saturation run)",
        find(rows, e, "saturation").map(|r| r.delivery.end_to_end_ms.p99),
        "ms",
        &|v| v < 200.0,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::worst_tenth;

    #[test]
    fn the_worst_tenth_leaves_out_the_first_and_the_last() {
        assert_eq!(worst_tenth(&[100.0; 10]), Some(1.0));
        let falling = [100.0, 90.0, 80.0, 70.0, 60.0, 50.0, 40.0, 30.0, 20.0, 1.0];
        assert!((worst_tenth(&falling).unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(worst_tenth(&[]), None);
        assert_eq!(worst_tenth(&[0.0, 5.0, 5.0]), None);
    }
}
