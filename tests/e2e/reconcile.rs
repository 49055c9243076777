//! The reconciliation report an admin closes the day with: per endpoint, events accepted =
//! delivered + dead-lettered + pending, from the topics, the same on the API and the CLI;
//! `open` while deliveries are pending, `mismatch` (and a failing CLI) when records exist
//! that nobody owed.

use crate::harness::*;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::time::Duration;

const EVENTS: usize = 20;

fn counts(report: &Value, endpoint: &str) -> (u64, u64, u64, u64) {
    let c = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["endpoint_id"] == endpoint)
        .unwrap_or_else(|| panic!("{endpoint} not in {report}"));
    let n = |k: &str| c[k].as_u64().unwrap();
    (
        n("accepted"),
        n("delivered"),
        n("dead_lettered"),
        n("pending"),
    )
}

fn cli(stack: &Stack, args: &[&str]) -> (Option<i32>, Value) {
    let mut all = vec!["reconcile", "--since", "30m", "--json"];
    all.extend_from_slice(args);
    let (code, lines, err) = run_cli(
        "reconcile",
        &all,
        stack.env(),
        stack.dir.path(),
        Duration::from_secs(120),
    );
    let report = lines
        .iter()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or_else(|| panic!("no JSON report: {lines:?} {err}"));
    (code, report)
}

#[test]
fn the_numbers_add_up_per_endpoint_on_the_api_and_the_cli() {
    let mut stack = Stack::start("reconcile", &[]);
    let receiver = start_answering_receiver(|path| if path == "/fail" { 500 } else { 200 });
    let api = &Api::new(stack.api.base.clone(), stack.api.token.clone());
    let (ok, _) = api.create_endpoint(&format!("http://{}/ok", receiver.addr), &["recon.*"]);
    let (fail, _) = api.create_endpoint(&format!("http://{}/fail", receiver.addr), &["recon.*"]);
    let (off, _) = api.create_endpoint(&format!("http://{}/off", receiver.addr), &["recon.*"]);
    let (status, body) = api.patch(&format!("/v1/endpoints/{off}"), &json!({"enabled": false}));
    assert_eq!(status, 200, "{body}");

    stack.post_events(EVENTS, "recon.done");
    receiver.wait_for("/ok", EVENTS, Duration::from_secs(60));
    wait_until(
        "the failing and the disabled endpoint's deliveries are dead-lettered",
        Duration::from_secs(120),
        || stack.dead_letters().len() >= 2 * EVENTS,
    );

    let (status, report) = api.get("/v1/reconciliation?since=30m");
    assert_eq!(status, 200, "{report}");
    eprintln!("{report:#}");
    let n = EVENTS as u64;
    assert_eq!(counts(&report, &ok), (n, n, 0, 0));
    assert_eq!(
        counts(&report, &fail),
        (n, 0, n, 0),
        "parked after the retries"
    );
    assert_eq!(
        counts(&report, &off),
        (n, 0, n, 0),
        "parked without an attempt"
    );
    assert_eq!(report["verdict"], "balanced");
    assert_eq!(report["totals"]["accepted"], 3 * n);
    assert_eq!(report["events_read"], n);
    let (code, from_cli) = cli(&stack, &[]);
    assert_eq!(code, Some(0));
    assert_eq!(from_cli["endpoints"], report["endpoints"], "the CLI agrees");
    let (status, one) = api.get(&format!("/v1/reconciliation?since=30m&endpoint={ok}"));
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["endpoints"].as_array().unwrap().len(), 1);

    // Pending: accepted while no dispatcher runs.
    stack.stop_dispatcher("TERM");
    stack.post_events(5, "recon.later");
    let (_, open) = api.get("/v1/reconciliation?since=30m");
    assert_eq!(open["verdict"], "open", "{open}");
    assert_eq!(counts(&open, &ok), (n + 5, n, 0, 5));
    assert_eq!(open["endpoints"][0]["adds_up"], true);
    stack.start_dispatcher();
    receiver.wait_for("/ok", EVENTS + 5, Duration::from_secs(60));

    // Records nobody owed: the endpoint no longer subscribes to these events.
    let (status, body) = api.patch(
        &format!("/v1/endpoints/{ok}"),
        &json!({"event_types": ["other.*"]}),
    );
    assert_eq!(status, 200, "{body}");
    let (_, changed) = api.get(&format!("/v1/reconciliation?since=30m&endpoint={ok}"));
    assert_eq!(changed["verdict"], "mismatch", "{changed}");
    assert_eq!(changed["endpoints"][0]["unexpected"], n + 5);
    let (code, _) = cli(&stack, &["--endpoint", &ok]);
    assert_eq!(
        code,
        Some(2),
        "the CLI fails on a mismatch, like any failed command"
    );

    // Bad input: a clear 4xx naming the problem.
    for (query, status, needle) in [
        ("", 422, "since"),
        ("?since=1h&until=2h", 422, "before until"),
        ("?since=yesterday", 422, "since"),
        ("?since=1h&colour=red", 422, "colour"),
        ("?since=1h&endpoint=nope", 400, "endpoint id"),
        (
            "?since=1h&endpoint=ep_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B",
            404,
            "no endpoint",
        ),
    ] {
        let (got, body) = api.get(&format!("/v1/reconciliation{query}"));
        assert_eq!(got, status, "{query}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{query}: {message}");
    }
}
