//! Redaction, end to end at debug log level: after a scenario that creates, rolls and
//! revokes keys, rotates a secret, sends a test delivery, fails deliveries (500s, a refused
//! destination) and presents a wrong key, no API key token, endpoint secret, master key or
//! endpoint URL query token appears in any Herald log, metrics output, topic record (but the
//! endpoint's own configuration record) or error body.

use crate::harness::*;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::time::Duration;

/// The secret part of an `hk_<id>_<secret>` token.
fn token_secret(token: &str) -> &str {
    token.rsplit('_').next().unwrap()
}

#[test]
fn no_secret_appears_in_logs_metrics_topics_or_error_bodies() {
    let stack = Stack::start("redaction", &[("HERALD_LOG", "debug")]);
    let receiver = start_answering_receiver(|path| if path == "/fail" { 500 } else { 200 });
    let api = &stack.api;
    let query_token = format!("qtok{}", rand_suffix());
    let mut secrets: Vec<String> = vec![
        api.token.clone(),
        token_secret(&api.token).to_owned(),
        master_key(),
        query_token.clone(),
    ];
    let mut bodies: Vec<Value> = Vec::new();
    let endpoint = |url: String| {
        let (status, body) = api.post(
            "/v1/endpoints",
            &json!({"url": url, "event_types": ["red.*"]}),
        );
        assert_eq!(status, 201, "{body}");
        let secret = body["secret"].as_str().unwrap().to_owned();
        (body["id"].as_str().unwrap().to_owned(), secret)
    };
    let (ok, ok_secret) = endpoint(format!("http://{}/ok?token={query_token}", receiver.addr));
    let (fail, fail_secret) =
        endpoint(format!("http://{}/fail?token={query_token}", receiver.addr));
    let (_, far_secret) = endpoint(format!("http://10.255.255.1/x?token={query_token}"));
    secrets.extend([ok_secret.clone(), fail_secret.clone(), far_secret.clone()]);
    for s in [&ok_secret, &fail_secret, &far_secret] {
        secrets.push(s.trim_start_matches("whsec_").to_owned());
    }
    let (status, rotated) = api.post(&format!("/v1/endpoints/{ok}/secret/rotate"), &json!({}));
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["secret"].as_str().unwrap().to_owned();
    secrets.push(new_secret.trim_start_matches("whsec_").to_owned());
    secrets.push(new_secret);
    let (_, tested) = api.post(&format!("/v1/endpoints/{fail}/test"), &json!({}));
    bodies.push(tested);

    // A producer key: used, rolled, used, revoked, presented again.
    let (status, key) = api.post(
        "/v1/keys",
        &json!({"name": "p", "scopes": ["events:write"]}),
    );
    assert_eq!(status, 201, "{key}");
    let token = key["token"].as_str().unwrap().to_owned();
    let producer = Api::new(api.base.clone(), token.clone());
    assert_eq!(
        producer
            .post("/v1/events", &json!({"type": "red.one", "payload": {}}))
            .0,
        202
    );
    let (status, rolled) = api.post(
        &format!("/v1/keys/{}/roll", key["id"].as_str().unwrap()),
        &json!({}),
    );
    assert_eq!(status, 201, "{rolled}");
    let rolled_token = rolled["token"].as_str().unwrap().to_owned();
    assert_eq!(
        api.delete(&format!("/v1/keys/{}", rolled["id"].as_str().unwrap()))
            .0,
        204
    );
    for t in [&token, &rolled_token] {
        secrets.push(t.clone());
        secrets.push(token_secret(t).to_owned());
    }
    let revoked = Api::new(api.base.clone(), rolled_token.clone());
    let (status, body) = revoked.post("/v1/events", &json!({"type": "red.two", "payload": {}}));
    assert_eq!(status, 401, "{body}");
    bodies.push(body);
    let wrong = Api::new(
        api.base.clone(),
        format!("{}x", &api.token[..api.token.len() - 1]),
    );
    bodies.push(wrong.get("/v1/endpoints").1);
    let (_, body) = api.post(
        "/v1/endpoints",
        &json!({"url": format!("ftp://h/?token={query_token}")}),
    );
    bodies.push(body);

    stack.post_events(3, "red.sent");
    receiver.wait_for("/ok", 4, Duration::from_secs(60));
    wait_until(
        "failed deliveries dead-lettered",
        Duration::from_secs(120),
        || stack.dead_letters().len() >= 6,
    );
    std::thread::sleep(Duration::from_secs(2)); // key usage flush, last log lines

    let mut found: Vec<String> = Vec::new();
    let mut check = |place: &str, haystack: &[u8]| {
        for secret in &secrets {
            if haystack
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
            {
                found.push(format!(
                    "{place} holds `{}…`",
                    &secret[..secret.len().min(12)]
                ));
            }
        }
    };
    let mut logs = 0;
    for entry in std::fs::read_dir(stack.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".log") && (name.starts_with("ingest") || name.starts_with("dispatcher"))
        {
            let text = std::fs::read(&path).unwrap();
            assert!(!text.is_empty(), "{name} is empty");
            logs += text.len();
            check(&name, &text);
        }
    }
    assert!(logs > 10_000, "debug logs were written ({logs} bytes)");
    for base in [api.base.as_str(), stack.dispatcher_metrics.as_str()] {
        let (_, text) = http_get(&format!("{base}/metrics")).expect("metrics");
        check(&format!("{base}/metrics"), text.as_bytes());
    }
    let brokers = stack.brokers();
    let topics: std::collections::BTreeSet<String> = topic_watermarks(&brokers, "herald.")
        .into_keys()
        .map(|(topic, _)| topic)
        .collect();
    assert!(topics.contains("herald.deliveries.dlq.v1"), "{topics:?}");
    for topic in topics.iter().filter(|t| *t != "herald.endpoints.v1") {
        for record in read_topic(&brokers, topic) {
            check(topic, &record);
        }
    }
    for body in &bodies {
        check("an error body", body.to_string().as_bytes());
    }
    assert!(found.is_empty(), "secrets leaked:\n{}", found.join("\n"));
}
