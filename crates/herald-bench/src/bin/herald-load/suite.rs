//! `--suite DIR`: the whole performance table in one command. Measures the loopback ceiling
//! once, then runs each scenario on each broker (a fresh Herald and broker per run, in turn,
//! never two at once), and writes per run a JSON report and a PNG chart, plus `suite.json`
//! and `table.md` (the table, and each target of issue #13 with its measured value).

use crate::args::Args;
use crate::procs::Broker;
use crate::report::Report;
use crate::suite_table::RowView;
use anyhow::{Context, Result};
use serde::Serialize;
use std::path::Path;

/// One run of the suite: a name and how it differs from the standard workload
/// (4 endpoints, 1 KiB payloads, 16 clients, single requests, as fast as possible).
#[derive(Debug, Clone)]
struct Scenario {
    name: &'static str,
    what: &'static str,
    events: usize,
    endpoints: usize,
    batch: usize,
    concurrency: usize,
    hanging: usize,
    fail_share: f64,
    backlog: bool,
    /// Offered load as a share of the saturation run's accepted events/s.
    offered: Option<f64>,
    /// Run with Herald's production retry schedule instead of the harness's 200–800 ms one.
    production_tiers: bool,
}

/// Herald's default `dispatcher.retry_schedule`, as the `--retry-schedule` text
/// (`5s,5m,30m,2h,5h,10h,10h`). (b) and (e) run with it: with the harness's 200 ms tiers the
/// hanging endpoint's backlog comes back 25 times as often as it would in production, so (e)
/// would measure the test schedule's churn rather than the product.
fn production_schedule() -> String {
    let steps = herald_core::retry::RetryPolicy::production();
    let steps: Vec<String> = steps
        .steps()
        .iter()
        .map(|step| herald_core::duration::format(*step))
        .collect();
    steps.join(",")
}

const STANDARD: Scenario = Scenario {
    name: "",
    what: "",
    events: 10_000,
    endpoints: 4,
    batch: 0,
    concurrency: 16,
    hanging: 0,
    fail_share: 0.0,
    backlog: false,
    offered: None,
    production_tiers: false,
};

fn scenarios(broker: Broker) -> Vec<Scenario> {
    let mut list = vec![
        Scenario {
            name: "saturation",
            what: "100,000 events x 4 endpoints, single requests, as fast as possible",
            events: 100_000,
            ..STANDARD
        },
        Scenario {
            name: "batches",
            what: "20,000 events x 4 endpoints in batches of 100, 4 clients",
            events: 20_000,
            batch: 100,
            concurrency: 4,
            ..STANDARD
        },
        Scenario {
            name: "a-1-endpoint",
            what: "(a) 20,000 events x 1 endpoint",
            events: 20_000,
            endpoints: 1,
            ..STANDARD
        },
        Scenario {
            name: "b-10-endpoints",
            what: "(b) 10,000 events x 10 endpoints (fan-out), production retry schedule",
            endpoints: 10,
            production_tiers: true,
            ..STANDARD
        },
        Scenario {
            name: "c-10pct-500",
            what: "(c) 10,000 events x 4 endpoints, 10 % of first attempts answered 500",
            fail_share: 0.1,
            ..STANDARD
        },
        Scenario {
            name: "d-backlog",
            what: "(d) 100,000 events x 4 endpoints accepted with the dispatcher stopped, then drained",
            events: 100_000,
            backlog: true,
            ..STANDARD
        },
        Scenario {
            name: "e-1-hanging-of-10",
            what: "(e) 10,000 events x 10 endpoints, one of which never answers, production retry schedule",
            endpoints: 10,
            hanging: 1,
            production_tiers: true,
            ..STANDARD
        },
    ];
    if broker == Broker::Kafka {
        list.push(Scenario {
            name: "d-backlog-1-down",
            what: "(d') the backlog drain with one of the 4 endpoints never answering",
            events: 100_000,
            backlog: true,
            hanging: 1,
            ..STANDARD
        });
    }
    for (name, share) in [("load-25", 0.25), ("load-50", 0.5), ("load-80", 0.8)] {
        list.push(Scenario {
            name,
            what: "the standard workload offered at a share of the saturation run's events/s, for 30 s",
            offered: Some(share),
            ..STANDARD
        });
    }
    list
}

/// One finished run, as `suite.json` lists it.
#[derive(Serialize)]
struct Row {
    broker: Broker,
    scenario: &'static str,
    what: &'static str,
    offered_share: Option<f64>,
    report: Option<Report>,
    error: Option<String>,
}

/// The arguments of one run of the suite.
fn run_args(base: &Args, broker: Broker, s: &Scenario, saturation: Option<f64>) -> Args {
    let mut args = base.clone();
    args.suite = None;
    args.no_ceiling = true;
    args.json = false;
    args.broker = broker;
    args.events = ((s.events as f64 * base.suite_scale).round() as usize).max(200);
    args.endpoints = s.endpoints;
    args.batch = s.batch;
    args.concurrency = s.concurrency;
    args.hanging = s.hanging;
    args.slow = 0;
    args.fail_share = s.fail_share;
    args.backlog = s.backlog;
    args.payload_bytes = 1024;
    args.rate = 0.0;
    args.chart = None;
    if s.production_tiers {
        args.retry_schedule = production_schedule();
    }
    if let (Some(share), Some(saturation)) = (s.offered, saturation) {
        args.rate = (share * saturation).max(1.0);
        args.events = ((args.rate * 30.0 * base.suite_scale.min(1.0)) as usize).max(200);
    }
    args.apply_smoke();
    args
}

/// Runs the suite into `dir`; returns whether every run finished without a problem.
pub async fn run(base: Args, dir: &Path) -> Result<bool> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ceiling_deliveries = ((100_000.0 * base.suite_scale) as usize).max(1_000);
    let ceiling = crate::ceiling::measure(ceiling_deliveries / 4, 4, 16, 1024).await?;
    eprintln!(
        "herald-load suite: loopback ceiling {:.0} deliveries/s",
        ceiling.deliveries_per_s
    );
    let mut rows = Vec::new();
    for &broker in &base.suite_brokers {
        let mut saturation = None;
        for s in scenarios(broker) {
            let args = run_args(&base, broker, &s, saturation);
            let label = format!("{}-{}", format!("{broker:?}").to_lowercase(), s.name);
            eprintln!("herald-load suite: {label}: {}", s.what);
            let result = Box::pin(crate::run(args)).await;
            let row = match result {
                Ok(mut report) => {
                    report.share_of_ceiling =
                        Some(report.delivery.delivered_per_s / ceiling.deliveries_per_s);
                    if s.name == "saturation" {
                        saturation = Some(report.ingest.accepted_per_s);
                    }
                    let chart = crate::plot::chart_of(&report, &label, Some(&ceiling));
                    if let Err(err) =
                        crate::chart::render_png(&chart, &dir.join(format!("{label}.png")))
                    {
                        eprintln!("herald-load suite: {label}: no chart: {err:#}");
                    }
                    std::fs::write(
                        dir.join(format!("{label}.json")),
                        serde_json::to_string_pretty(&report)?,
                    )?;
                    eprint!("{}", report.text());
                    Row {
                        broker,
                        scenario: s.name,
                        what: s.what,
                        offered_share: s.offered,
                        report: Some(report),
                        error: None,
                    }
                }
                Err(err) => {
                    eprintln!("herald-load suite: {label}: could not run: {err:#}");
                    Row {
                        broker,
                        scenario: s.name,
                        what: s.what,
                        offered_share: s.offered,
                        report: None,
                        error: Some(format!("{err:#}")),
                    }
                }
            };
            rows.push(row);
        }
    }
    let table = crate::suite_table::markdown(&base, &rows_view(&rows), &ceiling);
    std::fs::write(dir.join("table.md"), &table)?;
    std::fs::write(
        dir.join("suite.json"),
        serde_json::to_string_pretty(&serde_json::json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "ceiling": ceiling,
            "runs": rows,
        }))?,
    )?;
    print!("{table}");
    Ok(rows.iter().all(|r| r.report.as_ref().is_some_and(|r| r.ok)))
}

fn rows_view(rows: &[Row]) -> Vec<RowView<'_>> {
    rows.iter()
        .map(|r| RowView {
            broker: r.broker,
            scenario: r.scenario,
            what: r.what,
            report: r.report.as_ref(),
            error: r.error.as_deref(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_production_schedule_is_herald_cores_default_as_the_flag_spells_it() {
        assert_eq!(super::production_schedule(), "5s,5m,30m,2h,5h,10h,10h");
    }
}
