//! Endpoint health against the real dispatcher: an endpoint that keeps failing is declared
//! failing after `failing_after` consecutive failures and disabled after `disable_after`; an
//! admin edit made meanwhile survives the dispatcher's health writes; re-enabling starts
//! the period over; a success recovers it. Each transition is one audit record.

use crate::chaos_receiver::{Act, ChaosReceiver};
use crate::harness::read_topic;
use crate::stack::*;
use herald_proto::v1;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(90);

#[test]
fn failing_endpoint_is_disabled_without_losing_admin_edits_and_reenabling_starts_over() {
    let failing = Arc::new(AtomicBool::new(true));
    let fail = failing.clone();
    let receiver = ChaosReceiver::start(Arc::new(move |_, _| {
        let status = if fail.load(Ordering::SeqCst) {
            500
        } else {
            200
        };
        Act::Answer(status, Duration::ZERO)
    }));
    let stack = Stack::start(
        "health",
        &[
            ("HERALD_DISPATCHER__FAILING_AFTER", "3"),
            ("HERALD_DISPATCHER__DISABLE_AFTER", "8s"),
        ],
    );
    let url = format!("http://{}/hook", receiver.addr);
    let (id, _secret) = stack.api.create_endpoint(&url, &[]);
    let path = format!("/v1/endpoints/{id}");
    let endpoint = || {
        let (status, body) = stack.api.get(&path);
        assert_eq!(status, 200, "{body}");
        body
    };
    let post_until = |what: &str, done: &dyn Fn(&Value) -> bool| {
        let deadline = Instant::now() + LIMIT;
        loop {
            let state = endpoint();
            if done(&state) {
                return state;
            }
            assert!(Instant::now() < deadline, "timed out: {what}; last {state}");
            stack.post_events(1, "stock.moved");
            std::thread::sleep(Duration::from_millis(300));
        }
    };

    // 1. Failing: declared after three consecutive failures, with the run's start.
    let declared = post_until("declared failing", &|e| e["failing_since_ms"].is_i64());
    assert_eq!(declared["enabled"], true);
    // 2. An admin edits the endpoint while the dispatcher is about to write its health.
    let (status, body) = stack
        .api
        .patch(&path, &json!({"description": "edited while failing"}));
    assert_eq!(status, 200, "{body}");
    // 3. Disabled after failing continuously for 8 s; the edit is still there.
    let disabled = post_until("disabled", &|e| e["enabled"] == false);
    assert_eq!(disabled["disabled_reason"], "failing", "{disabled}");
    assert_eq!(
        disabled["description"], "edited while failing",
        "{disabled}"
    );
    assert_eq!(disabled["url"], url.as_str());
    let first_run = disabled["failing_since_ms"]
        .as_i64()
        .expect("failing since");

    // 4. Re-enabled by an admin while the receiver still fails: a new run starts (declared
    //    failing again later, not disabled on its first failure).
    let (status, body) = stack.api.patch(&path, &json!({"enabled": true}));
    assert_eq!(status, 200, "{body}");
    assert!(body["failing_since_ms"].is_null(), "{body}");
    let again = post_until("failing again", &|e| e["failing_since_ms"].is_i64());
    assert_eq!(
        again["enabled"], true,
        "a new run, not the old one: {again}"
    );
    assert!(
        again["failing_since_ms"].as_i64().unwrap() > first_run,
        "{again}"
    );

    // 5. The receiver recovers: the next success clears the run.
    failing.store(false, Ordering::SeqCst);
    let recovered = post_until("recovered", &|e| e["failing_since_ms"].is_null());
    assert_eq!(recovered["enabled"], true);
    assert_eq!(recovered["description"], "edited while failing");

    // One audit record per transition, in order.
    let actions: Vec<String> = read_topic(&stack.brokers(), "herald.audit.v1")
        .iter()
        .map(|bytes| herald_proto::decode::<v1::AuditRecord>("audit", bytes).unwrap())
        .filter(|r| r.target == id && r.actor == "system:dispatcher")
        .map(|r| r.action)
        .collect();
    assert_eq!(
        actions,
        [
            "endpoint.failing",
            "endpoint.disabled",
            "endpoint.failing",
            "endpoint.recovered"
        ],
        "dispatcher audit records of {id}"
    );
}
