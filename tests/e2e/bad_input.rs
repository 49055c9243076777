//! Every bad request gets its stated status and a JSON error naming the problem, and the good
//! events sent between them are delivered exactly once, nothing else.

use crate::harness::Receiver;
use crate::stack::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

/// (what, status, error code, request builder)
type Case = (
    &'static str,
    u16,
    &'static str,
    Box<dyn Fn(&reqwest::blocking::Client, &str) -> reqwest::blocking::RequestBuilder>,
);

#[test]
fn bad_requests_get_clear_errors_and_leave_accepted_events_alone() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let stack = Stack::start("badinput", &[("HERALD_INGEST__MAX_BODY_BYTES", "2048")]);
    stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let (status, key) = stack.api.post(
        "/v1/keys",
        &json!({"name": "reader", "scopes": ["endpoints:read"]}),
    );
    assert_eq!(status, 201, "{key}");
    let reader = key["token"].as_str().unwrap().to_owned();
    let admin = stack.api.token.clone();
    let url = format!("{}/v1/events", stack.api.base);

    let good = |admin: &str| {
        let admin = admin.to_owned();
        move |c: &reqwest::blocking::Client, url: &str| {
            c.post(url)
                .bearer_auth(&admin)
                .header("content-type", "application/json")
        }
    };
    let cases: Vec<Case> = vec![
        (
            "no key",
            401,
            "unauthorized",
            Box::new(|c, url| c.post(url).json(&json!({"type": "a.b", "payload": {}}))),
        ),
        (
            "unknown key",
            401,
            "unauthorized",
            Box::new(|c, url| {
                c.post(url)
                    .bearer_auth("hk_01M8473WME74S5S2GW3EVNP7HR_notarealsecretnotarealsecret00")
                    .json(&json!({"type": "a.b", "payload": {}}))
            }),
        ),
        (
            "missing scope",
            403,
            "forbidden",
            Box::new(move |c, url| {
                c.post(url)
                    .bearer_auth(&reader)
                    .json(&json!({"type": "a.b", "payload": {}}))
            }),
        ),
        (
            "malformed JSON",
            400,
            "malformed_json",
            Box::new({
                let g = good(&admin);
                move |c, url| g(c, url).body("{\"type\": \"a.b\", \"payload\": ")
            }),
        ),
        (
            "missing type",
            422,
            "invalid_field",
            Box::new({
                let g = good(&admin);
                move |c, url| g(c, url).body(r#"{"payload": {"x": 1}}"#)
            }),
        ),
        (
            "too large",
            413,
            "payload_too_large",
            Box::new({
                let g = good(&admin);
                move |c, url| {
                    g(c, url).body(format!(
                        r#"{{"type": "a.b", "payload": "{}"}}"#,
                        "x".repeat(4096)
                    ))
                }
            }),
        ),
        (
            "not JSON",
            415,
            "unsupported_media_type",
            Box::new({
                let admin = admin.clone();
                move |c, url| {
                    c.post(url)
                        .bearer_auth(&admin)
                        .header("content-type", "text/plain")
                        .body(r#"{"type": "a.b", "payload": {}}"#)
                }
            }),
        ),
    ];

    let client = reqwest::blocking::Client::new();
    let mut accepted = HashSet::new();
    let mut post_good = |n: usize| {
        let (status, body) = stack.api.post(
            "/v1/events",
            &json!({"type": "stock.moved", "payload": {"n": n}}),
        );
        assert_eq!(status, 202, "{body}");
        accepted.insert(body["id"].as_str().unwrap().to_owned());
    };
    for (n, (what, status, code, request)) in cases.iter().enumerate() {
        post_good(n);
        let response = request(&client, &url).send().expect("request");
        assert_eq!(response.status().as_u16(), *status, "{what}");
        let body: serde_json::Value = response
            .json()
            .unwrap_or_else(|_| panic!("{what}: JSON body"));
        assert_eq!(body["error"]["code"], *code, "{what}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.len() > 5),
            "{what}: the message says what is wrong: {body}"
        );
    }
    post_good(cases.len());

    receiver.wait_for("/hook", accepted.len(), Duration::from_secs(120));
    std::thread::sleep(Duration::from_secs(2));
    let got = receiver.webhook_ids("/hook");
    assert_eq!(
        got.len(),
        accepted.len(),
        "nothing but the good events, once each"
    );
    assert_eq!(got.into_iter().collect::<HashSet<_>>(), accepted);
}
