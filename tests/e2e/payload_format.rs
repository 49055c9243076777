//! Receivers can tell what they got: an endpoint with `payload_format: standard` receives the
//! Standard Webhooks payload (`type`, `timestamp`, `data` holding the producer's payload
//! unchanged), one with the default `raw` receives the producer's bytes exactly; both verify
//! with the official Python and npm libraries, and the format can be changed on a live endpoint.

use crate::harness::*;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::time::Duration;

const PAYLOAD: &str = r#"{"sku": "A-1",  "qty":3}"#;

fn post_raw(api: &Api, body: &str) {
    let response = api
        .client
        .post(format!("{}/v1/events", api.base))
        .bearer_auth(&api.token)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
}

#[test]
fn standard_and_raw_payloads_arrive_as_configured_and_verify() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let stack = Stack::start("payload-format", &[]);
    let api = &stack.api;
    let (raw_id, raw_secret) = api.create_endpoint(&format!("http://{}/raw", receiver.addr), &[]);
    let (status, std_ep) = api.post(
        "/v1/endpoints",
        &json!({"url": format!("http://{}/std", receiver.addr), "payload_format": "standard"}),
    );
    assert_eq!(status, 201, "{std_ep}");
    assert_eq!(std_ep["payload_format"], "standard");
    let std_id = std_ep["id"].as_str().unwrap().to_owned();
    let std_secret = std_ep["secret"].as_str().unwrap().to_owned();
    let (_, raw_ep) = api.get(&format!("/v1/endpoints/{raw_id}"));
    assert_eq!(raw_ep["payload_format"], "raw", "the default");

    let before = herald_kafka::now_ms();
    post_raw(
        api,
        &format!(r#"{{"type":"stock.moved","payload":{PAYLOAD}}}"#),
    );
    receiver.wait_for("/raw", 1, Duration::from_secs(60));
    receiver.wait_for("/std", 1, Duration::from_secs(60));
    let raw = receiver.on("/raw");
    assert_eq!(
        String::from_utf8_lossy(&raw[0].body),
        PAYLOAD,
        "raw: the producer's bytes"
    );
    let std = receiver.on("/std");
    let body: Value = serde_json::from_slice(&std[0].body).unwrap();
    assert_eq!(body["type"], "stock.moved");
    assert_eq!(
        body["data"],
        serde_json::from_str::<Value>(PAYLOAD).unwrap()
    );
    assert!(String::from_utf8_lossy(&std[0].body).contains(&format!(r#""data":{PAYLOAD}}}"#)));
    let at = chrono::DateTime::parse_from_rfc3339(body["timestamp"].as_str().unwrap()).unwrap();
    assert!((at.timestamp_millis() - before).abs() < 60_000, "{body}");
    assert_eq!(verify_with_python(&raw, &raw_secret), 1);
    assert_eq!(verify_with_python(&std, &std_secret), 1);
    assert_eq!(verify_with_node(&raw, &raw_secret), 1);
    assert_eq!(verify_with_node(&std, &std_secret), 1);

    // Changed on a live endpoint; bad values are refused by name.
    let (status, patched) = api.patch(
        &format!("/v1/endpoints/{std_id}"),
        &json!({"payload_format": "raw"}),
    );
    assert_eq!(
        (status, patched["payload_format"].as_str()),
        (200, Some("raw")),
        "{patched}"
    );
    let (status, body) = api.patch(
        &format!("/v1/endpoints/{std_id}"),
        &json!({"payload_format": "xml"}),
    );
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("payload_format"));
    post_raw(
        api,
        &format!(r#"{{"type":"stock.moved","payload":{PAYLOAD}}}"#),
    );
    receiver.wait_for("/std", 2, Duration::from_secs(60));
    assert_eq!(
        String::from_utf8_lossy(&receiver.on("/std")[1].body),
        PAYLOAD
    );
}
