//! Operational webhooks: a tenant's operational endpoint receives Herald's own signed
//! `endpoint.failing`, `endpoint.recovered`, `endpoint.disabled` and
//! `delivery.dead_lettered` events about that tenant's endpoints, through the normal
//! pipeline, verified with the official Standard Webhooks library; another tenant's
//! trouble and producers' look-alike events never reach it.

use crate::harness::*;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

static DOWN: AtomicBool = AtomicBool::new(true);

fn post(api: &Api, tenant: &str, kind: &str) {
    let (status, body) = api.post(
        "/v1/events",
        &json!({"type": kind, "tenant": tenant, "payload": {"order": 1}}),
    );
    assert_eq!(status, 202, "{body}");
}

/// The operational events the receiver got so far: (type, data).
fn received(receiver: &Receiver) -> Vec<(String, Value)> {
    receiver
        .on("/ops")
        .iter()
        .map(|r| {
            let body: Value = serde_json::from_slice(&r.body).expect("JSON body");
            (
                body["type"].as_str().unwrap_or("").to_owned(),
                body["data"].clone(),
            )
        })
        .collect()
}

fn count(events: &[(String, Value)], kind: &str, endpoint: &str) -> usize {
    events
        .iter()
        .filter(|(t, d)| t == kind && d["endpoint_id"] == endpoint)
        .count()
}

#[test]
fn a_tenants_operational_endpoint_hears_about_its_endpoints_and_dead_letters() {
    let receiver = start_answering_receiver(|path| match path {
        "/down" if DOWN.load(Ordering::SeqCst) => 500,
        "/gone" => 410,
        "/elsewhere" => 500,
        _ => 200,
    });
    let stack = Stack::start("operational", &[("HERALD_DISPATCHER__FAILING_AFTER", "2")]);
    let api = &stack.api;
    let url = |path: &str| format!("http://{}{path}", receiver.addr);
    let (status, ops) = api.post(
        "/v1/endpoints",
        &json!({"url": url("/ops"), "tenant": "acme", "operational": true}),
    );
    assert_eq!(status, 201, "{ops}");
    assert_eq!(ops["payload_format"], "standard", "the type is in the body");
    let ops_secret = ops["secret"].as_str().unwrap().to_owned();
    let (status, body) = api.post(
        "/v1/endpoints",
        &json!({"url": url("/ops2"), "tenant": "acme", "operational": true}),
    );
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("operational_endpoint_exists")),
        "{body}"
    );
    let (status, body) = api.post(
        "/v1/endpoints",
        &json!({"url": url("/ops3"), "tenant": "beta", "operational": true, "event_types": ["stock.*"]}),
    );
    assert_eq!(status, 422, "{body}");

    let endpoint = |path: &str, tenant: &str| {
        let (status, body) = api.post(
            "/v1/endpoints",
            &json!({"url": url(path), "tenant": tenant, "event_types": ["order.*", "endpoint.*"]}),
        );
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    };
    let down = endpoint("/down", "acme");
    let gone = endpoint("/gone", "acme");
    let elsewhere = endpoint("/elsewhere", "beta");
    for _ in 0..3 {
        post(api, "acme", "order.paid");
        post(api, "beta", "order.paid");
    }
    // A producer's look-alike is an ordinary event: it never reaches the operational endpoint.
    post(api, "acme", "endpoint.failing");

    wait_until(
        "failing, disabled and dead-lettered reported",
        Duration::from_secs(90),
        || {
            let got = received(&receiver);
            count(&got, "endpoint.failing", &down) == 1
                && count(&got, "endpoint.disabled", &gone) == 1
                && count(&got, "delivery.dead_lettered", &down) >= 3
                && count(&got, "delivery.dead_lettered", &gone) >= 3
        },
    );
    DOWN.store(false, Ordering::SeqCst);
    post(api, "acme", "order.paid");
    wait_until("recovery reported", Duration::from_secs(60), || {
        count(&received(&receiver), "endpoint.recovered", &down) == 1
    });

    let got = received(&receiver);
    let disabled = got
        .iter()
        .find(|(t, d)| t == "endpoint.disabled" && d["endpoint_id"] == gone)
        .unwrap();
    assert_eq!(disabled.1["reason"], "gone", "{disabled:?}");
    let dead = got
        .iter()
        .find(|(t, d)| t == "delivery.dead_lettered" && d["endpoint_id"] == down)
        .unwrap();
    assert_eq!(dead.1["reason"], "exhausted", "{dead:?}");
    assert_eq!(dead.1["last_status"], 500);
    assert_eq!(dead.1["tenant"], "acme");
    assert!(
        got.iter()
            .all(|(_, d)| d["endpoint_id"] != elsewhere && d["tenant"] == "acme"),
        "another tenant's trouble stays out: {got:?}"
    );
    assert!(
        got.iter()
            .all(|(t, _)| herald_core::event::OPERATIONAL_TYPES.contains(&t.as_str())),
        "only Herald's own events: {got:?}"
    );
    // The normal pipeline: signed, verified by the official library.
    let deliveries = receiver.on("/ops");
    assert_eq!(
        verify_with_python(&deliveries, &ops_secret),
        deliveries.len()
    );
    // Each report once (ids are derived from what they report).
    let mut ids = receiver.webhook_ids("/ops");
    let all = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all, "no report delivered twice");
}
