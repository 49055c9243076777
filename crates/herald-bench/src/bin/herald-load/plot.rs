//! From a run's report to the chart `chart.rs` draws: events accepted and deliveries per
//! second over the run (with the loopback ceiling as a flat line), and the distribution of
//! end-to-end latencies.

use crate::chart::{Chart, Series};
use crate::report::{Ceiling, Report};

fn per_second(label: &str, counts: &[u32]) -> Series {
    Series {
        label: label.to_owned(),
        points: counts
            .iter()
            .enumerate()
            .map(|(s, c)| (s as f64 + 0.5, f64::from(*c)))
            .collect(),
    }
}

/// The chart of `report`, titled with `label`, the date and the revision.
pub fn chart_of(report: &Report, label: &str, ceiling: Option<&Ceiling>) -> Chart {
    let s = &report.series;
    let mut throughput = vec![
        per_second("events accepted/s", &s.accepted_per_s),
        per_second("deliveries/s", &s.delivered_per_s),
    ];
    let seconds = s.accepted_per_s.len().max(s.delivered_per_s.len()) as f64;
    if let Some(c) = ceiling {
        throughput.push(Series {
            label: format!("loopback ceiling {:.0}/s", c.deliveries_per_s),
            points: vec![(0.0, c.deliveries_per_s), (seconds, c.deliveries_per_s)],
        });
    }
    let p = &report.parameters;
    let title = format!(
        "herald-load · {label} · {} events x {} endpoints, {} clients{} · {}",
        p.events,
        p.endpoints,
        p.concurrency,
        p.rate_per_s
            .map_or(String::new(), |r| format!(", offered {r:.0}/s")),
        crate::revision()
    );
    Chart {
        title,
        throughput,
        latency: vec![(
            "end-to-end (202 -> first arrival)".to_owned(),
            report
                .end_to_end_micros
                .iter()
                .map(|us| *us as f64 / 1000.0)
                .collect(),
        )],
    }
}
