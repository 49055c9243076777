//! `herald status`: a terminal summary for SREs, read from the running services' `/metrics`
//! and `/readyz` (two scrapes `--interval` apart give the rates).

use crate::cli::StatusArgs;
use crate::config::HeraldConfig;
use crate::prometheus::{parse, Scrape};
use anyhow::{bail, Result};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What one service answered.
struct Service {
    name: &'static str,
    base: String,
    first: Option<Scrape>,
    second: Option<Scrape>,
    ready: Option<(u16, serde_json::Value)>,
    error: Option<String>,
}

fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new([127, 0, 0, 1].into(), addr.port())
    } else {
        addr
    }
}

/// Runs `herald status`.
pub async fn run(config: HeraldConfig, args: StatusArgs) -> Result<()> {
    let ingest = args
        .ingest
        .unwrap_or_else(|| format!("http://{}", loopback_if_unspecified(config.ingest.listen)));
    let dispatcher = args
        .dispatcher
        .unwrap_or_else(|| format!("http://{}", loopback_if_unspecified(config.metrics_listen)));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let mut services = vec![
        Service::new("ingest", ingest),
        Service::new("dispatcher", dispatcher),
    ];
    for s in &mut services {
        s.first = s.scrape(&client).await;
        s.ready = s.readyz(&client).await;
    }
    if services.iter().all(|s| s.first.is_none()) {
        let tried: Vec<String> = services
            .iter()
            .map(|s| {
                format!(
                    "{} at {} ({})",
                    s.name,
                    s.base,
                    s.error.as_deref().unwrap_or("?")
                )
            })
            .collect();
        bail!(
            "no Herald service answered: {}. Pass --ingest/--dispatcher or check that they run.",
            tried.join(", ")
        );
    }
    let started = Instant::now();
    tokio::time::sleep(args.interval).await;
    for s in &mut services {
        if s.first.is_some() {
            s.second = s.scrape(&client).await;
        }
    }
    print!("{}", render(&services, started.elapsed().as_secs_f64()));
    Ok(())
}

impl Service {
    fn new(name: &'static str, base: String) -> Self {
        Self {
            name,
            base: base.trim_end_matches('/').to_owned(),
            first: None,
            second: None,
            ready: None,
            error: None,
        }
    }

    async fn scrape(&mut self, client: &reqwest::Client) -> Option<Scrape> {
        let url = format!("{}/metrics", self.base);
        let result = async {
            let resp = client.get(&url).send().await?.error_for_status()?;
            resp.text().await
        }
        .await;
        match result {
            Ok(text) => Some(Scrape(parse(&text))),
            Err(err) => {
                self.error = Some(err.to_string());
                None
            }
        }
    }

    async fn readyz(&self, client: &reqwest::Client) -> Option<(u16, serde_json::Value)> {
        let resp = client
            .get(format!("{}/readyz", self.base))
            .send()
            .await
            .ok()?;
        let status = resp.status().as_u16();
        Some((status, resp.json().await.unwrap_or_default()))
    }

    /// Latest scrape.
    fn now(&self) -> Option<&Scrape> {
        self.second.as_ref().or(self.first.as_ref())
    }

    /// Per-second increase of a counter between the two scrapes.
    fn rate(&self, name: &str, filter: &[(&str, &str)], seconds: f64) -> Option<f64> {
        let a = self.first.as_ref()?.sum(name, filter)?;
        let b = self.second.as_ref()?.sum(name, filter)?;
        Some(((b - a) / seconds).max(0.0))
    }
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

fn fmt_map(map: &BTreeMap<String, f64>) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    map.iter()
        .map(|(k, v)| format!("{k}={}", fmt_num(*v)))
        .collect::<Vec<_>>()
        .join("  ")
}

fn render(services: &[Service], seconds: f64) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Readiness");
    for s in services {
        let state = match (&s.first, &s.ready) {
            (None, _) => format!(
                "UNREACHABLE  {} ({})",
                s.base,
                s.error.as_deref().unwrap_or("no answer")
            ),
            (Some(_), Some((200, _))) => format!("ready        {}", s.base),
            (Some(_), Some((_, body))) => {
                let failing: Vec<String> = body["checks"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|c| c["ok"] == false)
                    .map(|c| {
                        format!(
                            "{}: {}",
                            c["name"].as_str().unwrap_or("?"),
                            c["detail"].as_str().unwrap_or("")
                        )
                    })
                    .collect();
                format!("NOT READY    {} ({})", s.base, failing.join("; "))
            }
            (Some(_), None) => format!("no /readyz   {}", s.base),
        };
        let _ = writeln!(out, "  {:<11} {state}", s.name);
    }
    let find = |name: &str| {
        services
            .iter()
            .find(|s| s.name == name && s.now().is_some())
    };
    if let Some(ingest) = find("ingest") {
        let m = ingest.now().expect("scraped");
        let _ = writeln!(out, "\nIngest");
        let accepted = m.sum("herald_events_accepted_total", &[]).unwrap_or(0.0);
        let rate = ingest.rate("herald_events_accepted_total", &[], seconds);
        let _ = writeln!(
            out,
            "  events accepted     {:>10}  ({}/s)",
            fmt_num(accepted),
            rate.map_or("?".into(), |r| format!("{r:.1}"))
        );
        let _ = writeln!(
            out,
            "  rejected by reason  {}",
            fmt_map(&m.by("herald_events_rejected_total", "reason"))
        );
        let _ = writeln!(
            out,
            "  auth failures       {}",
            fmt_map(&nonzero(m.by("herald_auth_failures_total", "reason")))
        );
        let _ = writeln!(
            out,
            "  keys expiring ≤7d   {}",
            m.sum("herald_api_keys_expiring", &[("within", "7d")])
                .map_or("-".into(), fmt_num)
        );
    }
    if let Some(d) = find("dispatcher") {
        render_dispatcher(&mut out, d, seconds);
    }
    out
}

fn nonzero(map: BTreeMap<String, f64>) -> BTreeMap<String, f64> {
    map.into_iter().filter(|(_, v)| *v != 0.0).collect()
}

fn render_dispatcher(out: &mut String, d: &Service, seconds: f64) {
    let m = d.now().expect("scraped");
    let _ = writeln!(out, "\nDispatcher");
    let role = match m.sum("herald_dispatcher_active", &[]) {
        Some(v) if v >= 1.0 => "active",
        Some(_) => "standing by (another dispatcher holds the group's lease)",
        None => "-",
    };
    let _ = writeln!(out, "  role                {role}");
    let outcomes = m.by("herald_deliveries_total", "outcome");
    let _ = writeln!(out, "  deliveries          {}", fmt_map(&outcomes));
    let rates: Vec<String> = outcomes
        .keys()
        .filter_map(|o| {
            d.rate("herald_deliveries_total", &[("outcome", o)], seconds)
                .map(|r| format!("{o}={r:.1}/s"))
        })
        .collect();
    let _ = writeln!(
        out,
        "  throughput          {}",
        if rates.is_empty() {
            "?".to_owned()
        } else {
            rates.join("  ")
        }
    );
    let _ = writeln!(
        out,
        "  in flight           {}   retry tasks held {}",
        m.sum("herald_deliveries_in_flight", &[])
            .map_or("-".into(), fmt_num),
        m.sum("herald_retry_held_tasks", &[])
            .map_or("-".into(), fmt_num)
    );
    let _ = writeln!(
        out,
        "  DLQ writes          {}",
        fmt_map(&nonzero(m.by("herald_dlq_writes_total", "reason")))
    );
    let mut lag: BTreeMap<String, f64> = BTreeMap::new();
    for s in m.0.iter().filter(|s| s.name == "herald_kafka_consumer_lag") {
        let topic = s.labels.get("topic").cloned().unwrap_or_default();
        *lag.entry(topic).or_insert(0.0) += s.value;
    }
    let _ = writeln!(out, "  consumer lag        {}", fmt_map(&lag));
    let _ = writeln!(
        out,
        "  producer queue      {}",
        m.sum("herald_kafka_producer_queue_depth", &[])
            .map_or("-".into(), fmt_num)
    );
    let _ = writeln!(
        out,
        "  broker errors       {}",
        fmt_map(&nonzero(m.by("herald_kafka_broker_errors_total", "kind")))
    );
    let failures = m.by("herald_endpoint_consecutive_failures", "endpoint_id");
    let unhealthy: Vec<String> =
        m.0.iter()
            .filter(|s| s.name == "herald_endpoint_healthy" && s.value == 0.0)
            .filter_map(|s| s.labels.get("endpoint_id").cloned())
            .collect();
    let mut failing: BTreeMap<String, f64> = nonzero(failures);
    for id in unhealthy {
        failing.entry(id).or_insert(0.0);
    }
    let _ = writeln!(out, "  failing endpoints   {}", failing.len());
    let mut worst: Vec<(String, f64)> = failing.into_iter().collect();
    worst.sort_by(|a, b| b.1.total_cmp(&a.1));
    for (id, n) in worst.iter().take(10) {
        let _ = writeln!(out, "    {id}  {} consecutive failures", fmt_num(*n));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::prometheus::tests::TEXT;

    #[test]
    fn renders_rates_and_unreachable_services() {
        let mut d = Service::new("dispatcher", "http://127.0.0.1:1".into());
        d.first = Some(Scrape(parse(TEXT)));
        d.second = Some(Scrape(parse(&TEXT.replace("} 10\n", "} 30\n"))));
        d.ready = Some((200, serde_json::json!({"ready": true})));
        let mut i = Service::new("ingest", "http://127.0.0.1:2".into());
        i.error = Some("connection refused".into());
        let text = render(&[i, d], 2.0);
        assert!(text.contains("UNREACHABLE  http://127.0.0.1:2"), "{text}");
        assert!(text.contains("delivered=10.0/s"), "{text}");
        assert!(text.contains("herald.events.v1=7"), "{text}");
        assert!(text.contains("dead=2"), "{text}");
        assert!(text.contains("role                standing by"), "{text}");
    }
}
