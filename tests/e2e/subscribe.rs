//! Subscriptions take effect for the very next event: an endpoint created (or re-subscribed)
//! through ingest, then an event accepted right after it, is delivered to that endpoint by a
//! dispatcher running as a separate process (whose endpoints view follows the topic a little
//! behind). Before the dispatcher synced its view per event, such events fanned out without
//! the new endpoint and were lost to it for good.

use crate::harness::*;
use crate::stack::Stack;
use serde_json::json;
use std::time::Duration;

const ROUNDS: usize = 30;

#[test]
fn an_endpoint_created_just_before_an_event_receives_it() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let stack = Stack::start("subscribe", &[]);
    let mut expected = Vec::new();
    for i in 0..ROUNDS {
        let kind = format!("fresh.n{i}");
        stack
            .api
            .create_endpoint(&format!("http://{}/e{i}", receiver.addr), &[&kind]);
        let (status, resp) = stack
            .api
            .post("/v1/events", &json!({"type": kind, "payload": {"i": i}}));
        assert_eq!(status, 202, "{resp}");
        expected.push((format!("/e{i}"), resp["id"].as_str().unwrap().to_owned()));
    }
    // Re-subscribing an existing endpoint counts as well.
    let (id, _) = stack.api.create_endpoint(
        &format!("http://{}/moved", receiver.addr),
        &["fresh.before"],
    );
    let (status, body) = stack.api.patch(
        &format!("/v1/endpoints/{id}"),
        &json!({"event_types": ["fresh.after"]}),
    );
    assert_eq!(status, 200, "{body}");
    let (status, resp) = stack
        .api
        .post("/v1/events", &json!({"type": "fresh.after", "payload": {}}));
    assert_eq!(status, 202, "{resp}");
    expected.push(("/moved".to_owned(), resp["id"].as_str().unwrap().to_owned()));

    // Deliveries take milliseconds; one fanned out without its endpoint never comes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while expected.iter().any(|(path, _)| receiver.count(path) == 0)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut missing = Vec::new();
    for (path, event_id) in &expected {
        let got = receiver.webhook_ids(path);
        if got != [event_id.clone()] {
            missing.push(format!("{path}: expected [{event_id}], got {got:?}"));
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} fresh subscriptions missed their event:\n{}",
        missing.len(),
        expected.len(),
        missing.join("\n")
    );
}
