//! Throttling an admin watches: a key over its ingest rate gets 429 with `Retry-After` and
//! loses nothing (the retry after the wait is accepted); an endpoint with a delivery rate
//! limit gets every delivery, spaced out, none failed or dead-lettered; a receiver's own 429
//! is retried; each shows in the metrics by key or endpoint. Key usage (last use, source
//! address) reaches the topic, so a second process (the CLI) lists it.

use crate::harness::*;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const EVENTS: usize = 12;
const RATE: u32 = 4;

static RECEIVER_429S: AtomicUsize = AtomicUsize::new(0);

fn scrape(base: &str) -> String {
    let (status, text) = http_get(&format!("{base}/metrics")).expect("/metrics answers");
    assert_eq!(status, 200, "{text}");
    text
}

fn post(api: &Api, body: &Value) -> (u16, Option<String>, Value) {
    let response = api
        .client
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(&api.token)
        .json(body)
        .send()
        .expect("ingest answers");
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, retry_after, response.json().unwrap_or(Value::Null))
}

#[test]
fn keys_and_endpoints_are_throttled_without_losing_anything() {
    let stack = Stack::start("throttle", &[]);
    let api = &stack.api;

    // A producer key of 2 events a second (a bucket of 4).
    let (status, key) = api.post(
        "/v1/keys",
        &json!({"name": "slow-producer", "scopes": ["events:write"], "rate_per_sec": 2}),
    );
    assert_eq!(status, 201, "{key}");
    assert_eq!(key["rate_limit_per_sec"], 2);
    let producer = Api::new(api.base.clone(), key["token"].as_str().unwrap().to_owned());
    let event =
        json!({"type": "stock.moved", "payload": {"n": 1}, "id": "evt_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B"});
    let mut accepted = 0;
    let refused = loop {
        let (status, retry_after, body) = post(&producer, &event);
        match status {
            202 => accepted += 1,
            429 => break (retry_after, body),
            other => panic!("unexpected {other}: {body}"),
        }
        assert!(accepted <= 10, "never throttled");
    };
    assert!(accepted >= 3, "the bucket's burst first: {accepted}");
    let (retry_after, body) = refused;
    assert_eq!(body["error"]["code"], "rate_limited", "{body}");
    let wait: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&wait), "Retry-After {wait}");
    std::thread::sleep(Duration::from_secs(wait));
    let (status, _, body) = post(&producer, &event);
    assert_eq!(status, 202, "after Retry-After: {body}");
    let key_id = key["id"].as_str().unwrap();
    let ingest = scrape(&api.base);
    assert!(
        metric(
            &ingest,
            "herald_ingest_throttled_total",
            &[("key_id", key_id)]
        ) >= Some(1.0),
        "{ingest}"
    );

    // An endpoint limited to RATE deliveries a second, and one whose receiver says 429 once.
    let receiver = start_answering_receiver(|path| {
        if path == "/pushy" && RECEIVER_429S.fetch_add(1, Ordering::SeqCst) == 0 {
            429
        } else {
            200
        }
    });
    let (status, limited) = api.post(
        "/v1/endpoints",
        &json!({"url": format!("http://{}/limited", receiver.addr), "event_types": ["paced.*"], "rate_limit": RATE}),
    );
    assert_eq!(status, 201, "{limited}");
    assert_eq!(limited["rate_limit"], RATE);
    let (status, bad) = api.patch(
        &format!("/v1/endpoints/{}", limited["id"].as_str().unwrap()),
        &json!({"rate_limit": 2_000_000}),
    );
    assert_eq!(status, 422, "{bad}");
    let (pushy, _) = api.create_endpoint(&format!("http://{}/pushy", receiver.addr), &["pushy.*"]);

    stack.post_events(EVENTS, "paced.sent");
    stack.post_events(1, "pushy.sent");
    receiver.wait_for("/limited", EVENTS, Duration::from_secs(120));
    receiver.wait_for("/pushy", 2, Duration::from_secs(60));
    let arrivals: Vec<_> = receiver.on("/limited").iter().map(|r| r.at).collect();
    let span = *arrivals.iter().max().unwrap() - *arrivals.iter().min().unwrap();
    let spacing = Duration::from_secs_f64((EVENTS - 1) as f64 / f64::from(RATE));
    eprintln!("{EVENTS} deliveries at {RATE}/s arrived over {span:?} (at least {spacing:?})");
    // A lower bound only: spacing is what the limit guarantees, a slow machine only adds to
    // it (the margin covers the first request's connection set-up). Unlimited, the twelve
    // arrive within milliseconds of each other.
    assert!(
        span + Duration::from_millis(500) >= spacing,
        "{span:?} < {spacing:?}"
    );
    assert_eq!(receiver.count("/limited"), EVENTS, "each delivered once");
    assert!(
        stack.dead_letters().is_empty(),
        "a throttled delivery is not a failure"
    );

    let limited_id = limited["id"].as_str().unwrap();
    let dispatcher = scrape(&stack.dispatcher_metrics);
    assert!(
        metric(
            &dispatcher,
            "herald_deliveries_throttled_total",
            &[("endpoint_id", limited_id)]
        ) >= Some(1.0),
        "{dispatcher}"
    );
    assert_eq!(
        metric(
            &dispatcher,
            "herald_receiver_throttled_total",
            &[("endpoint_id", &pushy)]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &dispatcher,
            "herald_endpoint_failed_attempts_total",
            &[("endpoint_id", limited_id)]
        ),
        None,
        "no failed attempt to the rate-limited endpoint"
    );

    // Key usage: the flush (1 s in tests) writes it, and the CLI (its own process, reading
    // the topic) lists the producer key's last use and source address.
    wait_until(
        "the CLI lists the key's last use",
        Duration::from_secs(30),
        || {
            let (code, lines, err) = run_cli(
                "keys-list",
                &["keys", "list", "--json"],
                stack.env(),
                stack.dir.path(),
                Duration::from_secs(60),
            );
            assert_eq!(code, Some(0), "{err}");
            lines
                .iter()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .any(|k| {
                    k["id"] == key_id
                        && k["last_used_at_ms"].is_i64()
                        && k["last_addresses"][0]["address"] == "127.0.0.1"
                })
        },
    );
}
