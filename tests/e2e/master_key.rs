//! Master-key rotation: secrets sealed under the old key keep opening once it is a previous
//! key, `herald endpoints reseal` moves every endpoint to the new key, and the old key can
//! then go; a process without the key that sealed an endpoint says so (readiness fails, a
//! metric counts it, the log and the CLI name the key) instead of silently dropping it.

use crate::harness::*;
use crate::stack::Stack;
use base64::Engine as _;
use serde_json::{json, Value};
use std::time::Duration;

const MINUTE: Duration = Duration::from_secs(60);

fn key(byte: u8) -> String {
    base64::engine::general_purpose::STANDARD.encode([byte; 32])
}

/// The stack's settings with another master key and previous keys.
fn env_with(stack: &Stack, master: &str, previous: &[&str]) -> Vec<(&'static str, String)> {
    let mut env: Vec<(&'static str, String)> = stack
        .env()
        .iter()
        .filter(|(k, _)| *k != "HERALD_MASTER_KEY" && *k != "HERALD_DISPATCHER__INSTANCE_ID")
        .cloned()
        .collect();
    env.push(("HERALD_MASTER_KEY", master.to_owned()));
    let list: Vec<String> = previous.iter().map(|k| format!("\"{k}\"")).collect();
    env.push((
        "HERALD_PREVIOUS_MASTER_KEYS",
        format!("[{}]", list.join(",")),
    ));
    env.push(("HERALD_DISPATCHER__INSTANCE_ID", "mk-dispatcher".to_owned()));
    env
}

/// An ingest and a dispatcher on `env`.
struct Pair {
    ingest: Proc,
    dispatcher: Proc,
    api: Api,
}

impl Pair {
    fn start(stack: &Stack, name: &str, env: &[(&'static str, String)]) -> Self {
        let mut ingest = Proc::spawn(
            &format!("{name}-ingest"),
            &["ingest"],
            env,
            stack.dir.path(),
        );
        let base = ingest.wait_line("herald: ingest listening on", Duration::from_secs(120));
        let mut dispatcher = Proc::spawn(
            &format!("{name}-dispatcher"),
            &["dispatch"],
            env,
            stack.dir.path(),
        );
        dispatcher.wait_line("herald: dispatcher metrics", Duration::from_secs(120));
        Self {
            ingest,
            dispatcher,
            api: Api::new(base, stack.api.token.clone()),
        }
    }

    fn stop(mut self) {
        for proc in [&mut self.dispatcher, &mut self.ingest] {
            proc.signal("TERM");
            proc.wait_exit(MINUTE);
        }
    }

    fn readyz(&self) -> (u16, Value) {
        let (status, body) = http_get(&format!("{}/readyz", self.api.base)).expect("readyz");
        (status, serde_json::from_str(&body).expect("readyz JSON"))
    }
}

fn check<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {report}"))
}

fn deliver_one(api: &Api, receiver: &Receiver, n: usize) {
    let (status, body) = api.post(
        "/v1/events",
        &json!({"type": "mk.sent", "payload": {"n": n}}),
    );
    assert_eq!(status, 202, "{body}");
    receiver.wait_for("/hook", n, MINUTE);
}

#[test]
fn the_master_key_rotates_without_losing_an_endpoint() {
    let mut stack = Stack::start("master-key", &[]);
    let receiver = start_answering_receiver(|_| 200);
    let (endpoint, secret) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    deliver_one(&stack.api, &receiver, 1);
    let old = master_key();
    let (new, stranger) = (key(7), key(9));

    // Rotate: the new key seals, the old one still opens.
    stack.stop_dispatcher("TERM");
    stack.ingest.signal("TERM");
    stack.ingest.wait_exit(MINUTE);
    let rotated = env_with(&stack, &new, &[&old]);
    let pair = Pair::start(&stack, "rotated", &rotated);
    let (status, report) = pair.readyz();
    assert_eq!(status, 200, "{report}");
    let readable = check(&report, "endpoints_readable");
    assert!(
        readable["detail"]
            .as_str()
            .unwrap()
            .contains("previous master key"),
        "{readable}"
    );
    deliver_one(&pair.api, &receiver, 2);
    let text = http_get(&format!("{}/metrics", pair.api.base)).unwrap().1;
    assert_eq!(
        metric(&text, "herald_endpoints_sealed_with_previous_key", &[]),
        Some(1.0)
    );

    // Re-seal, then the old key can go.
    let (code, lines, err) = run_cli(
        "reseal",
        &["endpoints", "reseal"],
        &rotated,
        stack.dir.path(),
        MINUTE,
    );
    assert_eq!(code, Some(0), "{err}");
    let done: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(done["resealed"], json!([endpoint]), "{done}");
    pair.stop();
    let pair = Pair::start(&stack, "new-only", &env_with(&stack, &new, &[]));
    let (status, report) = pair.readyz();
    assert_eq!(status, 200, "{report}");
    deliver_one(&pair.api, &receiver, 3);
    let text = http_get(&format!("{}/metrics", pair.api.base)).unwrap().1;
    assert_eq!(
        metric(&text, "herald_endpoints_sealed_with_previous_key", &[]),
        Some(0.0)
    );
    pair.stop();

    // Without the key that sealed it, the endpoint is not silently gone: readiness fails,
    // the metric counts it, the CLI names the key it needs.
    let wrong = env_with(&stack, &stranger, &[&old]);
    let pair = Pair::start(&stack, "wrong", &wrong);
    let (status, report) = pair.readyz();
    assert_eq!(status, 503, "{report}");
    let readable = check(&report, "endpoints_readable");
    assert_eq!(readable["ok"], false);
    assert!(
        readable["detail"].as_str().unwrap().contains(&endpoint),
        "{readable}"
    );
    let text = http_get(&format!("{}/metrics", pair.api.base)).unwrap().1;
    assert_eq!(
        metric(&text, "herald_unreadable_records", &[("view", "endpoints")]),
        Some(1.0)
    );
    let (code, _, err) = run_cli(
        "reseal-wrong",
        &["endpoints", "reseal"],
        &wrong,
        stack.dir.path(),
        MINUTE,
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("previous_master_keys"), "{err}");
    pair.stop();

    // Every delivery was signed with the endpoint's one secret, whatever key sealed it.
    let got = receiver.on("/hook");
    assert_eq!(verify_with_python(&got, &secret), got.len());
}
