//! 1,000 events, single and batch, through a separate broker process to two filtered
//! endpoints: every event id arrives exactly once at every subscribed endpoint, with the
//! right headers and body bytes, and every signature verifies independently.

use crate::harness::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

const SINGLE: usize = 500;
const BATCHES: usize = 5;
const BATCH_SIZE: usize = 100;

fn event(i: usize) -> serde_json::Value {
    let kind = ["stock.moved", "invoice.paid", "audit.noise"][i % 3];
    json!({"type": kind, "payload": {"n": i, "sku": format!("SKU-{i}"), "note": "héllo \"quoted\""}})
}

#[test]
fn thousand_events_reach_subscribed_endpoints_exactly_once_with_valid_signatures() {
    let dir = TempDir::new("delivery");
    let broker = Broker::start(Flavor::suite(), dir.path());
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let token = admin_token();
    let mut env = herald_env(&token, &master_key());
    env.push(("HERALD_INGEST__MAX_BATCH", BATCH_SIZE.to_string()));
    // The consumer group protocol (what a Kafka cluster uses) against a real broker, in one
    // uninterrupted run; the other stacks use `auto`, which is `all` on the embedded broker.
    env.push(("HERALD_DISPATCHER__ASSIGNMENT", "group".to_owned()));
    let mut herald = Proc::spawn(
        "herald",
        &[
            "dev",
            "--kafka",
            &broker.bootstrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().join("dev").to_str().unwrap(),
        ],
        &env,
        dir.path(),
    );
    let base = herald.wait_line("herald: ingest listening on", Duration::from_secs(120));
    let api = Api::new(base, token);

    let stock_url = format!("http://{}/stock", receiver.addr);
    let invoice_url = format!("http://{}/invoices", receiver.addr);
    let (_stock_id, stock_secret) = api.create_endpoint(&stock_url, &["stock.*"]);
    let (_invoice_id, invoice_secret) = api.create_endpoint(&invoice_url, &["invoice.paid"]);

    // Ingest: 500 single requests from 8 threads, then 5 batches of 100.
    let sent: std::sync::Mutex<HashMap<String, (String, Vec<u8>)>> = Default::default();
    std::thread::scope(|s| {
        for t in 0..8 {
            let (api, sent) = (&api, &sent);
            s.spawn(move || {
                for i in (t..SINGLE).step_by(8) {
                    let body = event(i);
                    let (status, resp) = api.post("/v1/events", &body);
                    assert_eq!(status, 202, "{resp}");
                    let id = resp["id"].as_str().unwrap().to_owned();
                    let payload = serde_json::to_vec(&body["payload"]).unwrap();
                    sent.lock()
                        .unwrap()
                        .insert(id, (body["type"].as_str().unwrap().to_owned(), payload));
                }
            });
        }
    });
    for b in 0..BATCHES {
        let items: Vec<_> = (0..BATCH_SIZE)
            .map(|k| event(SINGLE + b * BATCH_SIZE + k))
            .collect();
        let (status, resp) = api.post("/v1/events/batch", &json!({"events": items}));
        assert_eq!(status, 202, "{resp}");
        for (k, result) in resp["results"].as_array().unwrap().iter().enumerate() {
            assert_eq!(result["status"], 202, "{result}");
            let payload = serde_json::to_vec(&items[k]["payload"]).unwrap();
            let kind = items[k]["type"].as_str().unwrap().to_owned();
            sent.lock()
                .unwrap()
                .insert(result["id"].as_str().unwrap().to_owned(), (kind, payload));
        }
    }
    let sent = sent.into_inner().unwrap();
    assert_eq!(
        sent.len(),
        SINGLE + BATCHES * BATCH_SIZE,
        "every accepted event has its own id"
    );

    let expect = |kind: &str| -> HashSet<String> {
        sent.iter()
            .filter(|(_, (k, _))| k == kind)
            .map(|(id, _)| id.clone())
            .collect()
    };
    let (stock, invoices) = (expect("stock.moved"), expect("invoice.paid"));
    receiver.wait_for("/stock", stock.len(), Duration::from_secs(180));
    receiver.wait_for("/invoices", invoices.len(), Duration::from_secs(180));

    for (path, expected, secret) in [
        ("/stock", &stock, &stock_secret),
        ("/invoices", &invoices, &invoice_secret),
    ] {
        let got = receiver.on(path);
        let ids: Vec<String> = got
            .iter()
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        let unique: HashSet<String> = ids.iter().cloned().collect();
        assert_eq!(unique.len(), ids.len(), "{path}: duplicate deliveries");
        assert_eq!(
            &unique, expected,
            "{path}: delivered set differs from the subscribed set"
        );
        for r in &got {
            let id = &r.headers["webhook-id"];
            assert_eq!(r.headers["content-type"], "application/json");
            assert!(r.headers["user-agent"].starts_with("Herald-Webhooks/"));
            assert!(r.headers["webhook-signature"].starts_with("v1,"));
            assert_eq!(
                r.body, sent[id].1,
                "{path}: body bytes of {id} differ from what was sent"
            );
        }
        assert_eq!(verify_with_python(&got, secret), expected.len());
    }
    // Nothing for the unsubscribed type reached anyone.
    let total = receiver.got.lock().unwrap().len();
    assert_eq!(total, stock.len() + invoices.len());

    herald.signal("TERM");
    assert_eq!(herald.wait_exit(Duration::from_secs(60)), Some(0));
}

#[test]
fn idempotency_key_yields_one_event_and_one_delivery() {
    let dir = TempDir::new("idem");
    let broker = Broker::start(Flavor::suite(), dir.path());
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let token = admin_token();
    let mut herald = Proc::spawn(
        "herald",
        &[
            "dev",
            "--kafka",
            &broker.bootstrap(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.path().join("dev").to_str().unwrap(),
        ],
        &herald_env(&token, &master_key()),
        dir.path(),
    );
    let api = Api::new(
        herald.wait_line("herald: ingest listening on", Duration::from_secs(120)),
        token,
    );
    api.create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let body = json!({"type": "order.created", "payload": {"order": 1}});
    let (s1, r1) = api.post_with(
        "/v1/events",
        &body,
        &[("Idempotency-Key", "order-1-created")],
    );
    let (s2, r2) = api.post_with(
        "/v1/events",
        &body,
        &[("Idempotency-Key", "order-1-created")],
    );
    assert_eq!((s1, s2), (202, 202), "{r1} {r2}");
    assert_eq!(r1["id"], r2["id"], "same key, same event id");
    // A marker event sent afterwards proves the dispatcher got past both.
    let (_, marker) = api.post(
        "/v1/events",
        &json!({"type": "order.marker", "payload": {}}),
    );
    receiver.wait_for("/hook", 2, Duration::from_secs(60));
    let ids: Vec<String> = receiver
        .on("/hook")
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let marker_id = marker["id"].as_str().unwrap();
    // Wait until the marker arrived, then count deliveries of the idempotent event.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !receiver
        .on("/hook")
        .iter()
        .any(|r| r.headers["webhook-id"] == marker_id)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "marker not delivered; got {ids:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let event_id = r1["id"].as_str().unwrap();
    let count = receiver
        .on("/hook")
        .iter()
        .filter(|r| r.headers["webhook-id"] == event_id)
        .count();
    assert_eq!(count, 1, "one event, one delivery");
    herald.signal("TERM");
    assert_eq!(herald.wait_exit(Duration::from_secs(60)), Some(0));
}
