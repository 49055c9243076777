//! The integration admin's evidence, read back from the topics: the delivery log answers
//! "did event X reach endpoint Y, when, with what response?" in one call, an endpoint's
//! attempts filter by status class and page without gaps, and the audit trail shows every
//! change with actor, source address and request id, through the API and `herald audit`
//! exports (CSV, JSON lines).

use crate::harness::*;
use crate::stack::Stack;
use serde_json::Value;
use std::collections::HashSet;
use std::time::Duration;

fn answer(path: &str) -> u16 {
    if path == "/down" {
        500
    } else {
        204
    }
}

#[test]
fn the_delivery_log_and_the_audit_trail_answer_an_admin() {
    let receiver = Receiver::answering("127.0.0.1:0".parse().unwrap(), answer);
    let stack = Stack::start("evidence", &[]);
    let api = &stack.api;
    let (ok_id, _) = api.create_endpoint(&format!("http://{}/ok", receiver.addr), &[]);
    let (status, created) = api.post_with(
        "/v1/endpoints",
        &serde_json::json!({"url": format!("http://{}/down", receiver.addr)}),
        &[("x-request-id", "e2e-evidence-1")],
    );
    assert_eq!(status, 201, "{created}");
    let down_id = created["id"].as_str().unwrap().to_owned();
    let events = stack.post_events(3, "stock.moved");
    receiver.wait_for("/ok", 3, Duration::from_secs(120));

    // The API describes itself.
    let (status, spec) = api.get("/openapi.json");
    assert_eq!((status, spec["openapi"].as_str()), (200, Some("3.1.0")));
    assert!(spec["paths"]["/v1/events/{id}/deliveries"]["get"].is_object());

    // One call per event: where each delivery stands, with the receiver's answers.
    let deliveries = |event: &str| -> Vec<Value> {
        let (status, body) = api.get(&format!("/v1/events/{event}/deliveries"));
        assert_eq!(status, 200, "{body}");
        body["data"].as_array().unwrap().clone()
    };
    wait_until(
        "the failing delivery of the first event is dead (retries spent)",
        Duration::from_secs(120),
        || {
            deliveries(&events[0])
                .iter()
                .any(|d| d["endpoint_id"] == down_id.as_str() && d["state"] == "dead")
        },
    );
    let data = deliveries(&events[0]);
    assert_eq!(data.len(), 2, "{data:?}");
    let of = |id: &str| {
        data.iter()
            .find(|d| d["endpoint_id"] == id)
            .unwrap()
            .clone()
    };
    let ok = of(&ok_id);
    assert_eq!(ok["state"], "delivered", "{ok}");
    assert_eq!(ok["last_attempt"]["status"], 204);
    assert!(ok["delivered_at"].is_string());
    let down = of(&down_id);
    assert_eq!(down["state"], "dead", "{down}");
    assert_eq!(down["attempts"], 4, "first attempt + 3 retries: {down}");
    assert_eq!(down["last_attempt"]["status"], 500);
    assert_eq!(down["last_attempt"]["class"], "5xx");
    assert_eq!(down["last_attempt"]["response_excerpt"], "ok");

    // An endpoint's attempts: status filter, and pages that walk everything once.
    wait_until(
        "every failing attempt logged",
        Duration::from_secs(120),
        || {
            let (_, body) = api.get(&format!(
                "/v1/endpoints/{down_id}/attempts?status=5xx&limit=1"
            ));
            body["total"].as_u64() == Some(12)
        },
    );
    let mut seen = HashSet::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = api.get(&format!(
            "/v1/endpoints/{down_id}/attempts?status=5xx&limit=5{cursor}"
        ));
        assert_eq!(status, 200, "{page}");
        for a in page["data"].as_array().unwrap() {
            assert_eq!(a["class"], "5xx");
            assert!(seen.insert((a["delivery_id"].to_string(), a["attempt"].to_string())));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 12, "3 deliveries x 4 attempts, each once");
    let (_, none) = api.get(&format!("/v1/endpoints/{down_id}/attempts?status=2xx"));
    assert_eq!(none["total"], 0, "{none}");

    // Bad input: a clear 4xx naming the problem.
    let (status, body) = api.get(&format!("/v1/endpoints/{ok_id}/attempts?status=500"));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("invalid_field"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("status"),
        "{body}"
    );
    let (status, _) = api.get("/v1/events/not-an-id/deliveries");
    assert_eq!(status, 400);
    let (status, body) = api.get("/v1/audit?since=yesterday");
    assert_eq!(status, 422, "{body}");

    // The audit trail: who, what, from where, which request.
    let (status, audit) = api.get("/v1/audit?action=endpoint.*");
    assert_eq!(status, 200, "{audit}");
    let records = audit["data"].as_array().unwrap();
    let created: Vec<&Value> = records
        .iter()
        .filter(|r| r["action"] == "endpoint.created")
        .collect();
    assert_eq!(created.len(), 2, "{audit}");
    let admin_key = herald_core::apikey::ApiKeyToken::parse(&stack.api.token)
        .unwrap()
        .id
        .to_string();
    let down_record = created
        .iter()
        .find(|r| r["target"] == down_id.as_str())
        .unwrap();
    assert_eq!(down_record["actor"], admin_key.as_str(), "{down_record}");
    assert_eq!(down_record["source_ip"], "127.0.0.1");
    assert_eq!(down_record["request_id"], "e2e-evidence-1");
    assert!(created
        .iter()
        .all(|r| r["request_id"].as_str().is_some_and(|id| !id.is_empty())));

    // A key without audit:read is refused; one with it but limited to a tenant sees only that
    // tenant's records: the creation of its own key, nothing of the untenanted endpoints.
    let (status, key) = api.post(
        "/v1/keys",
        &serde_json::json!({"name": "reader", "scopes": ["deliveries:read"]}),
    );
    assert_eq!(status, 201, "{key}");
    let reader = Api::new(api.base.clone(), key["token"].as_str().unwrap().to_owned());
    wait_until("the new key is usable", Duration::from_secs(10), || {
        reader.get("/v1/audit").0 == 403
    });
    let (status, key) = api.post(
        "/v1/keys",
        &serde_json::json!({"name": "acme-audit", "scopes": ["audit:read", "deliveries:read"], "tenant": "acme"}),
    );
    assert_eq!(status, 201, "{key}");
    let acme = Api::new(api.base.clone(), key["token"].as_str().unwrap().to_owned());
    wait_until("the tenant key is usable", Duration::from_secs(10), || {
        acme.get("/v1/audit").0 == 200
    });
    let (_, seen_by_acme) = acme.get("/v1/audit");
    let actions: Vec<(&str, &str)> = seen_by_acme["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["action"].as_str().unwrap(), r["tenant"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("key.created", "acme")], "{seen_by_acme}");
    assert_eq!(
        acme.get(&format!("/v1/events/{}/deliveries", events[0])).1["data"],
        serde_json::json!([])
    );

    // Export: CSV with a header and one row per record, JSON lines that parse.
    let minute = Duration::from_secs(60);
    let (code, lines, err) = run_cli(
        "audit-csv",
        &["audit", "--format", "csv", "--action", "endpoint.created"],
        stack.env(),
        stack.dir.path(),
        minute,
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines[0], herald_evidence::audit::CSV_HEADER);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines
        .iter()
        .any(|l| l.contains(&down_id) && l.contains("e2e-evidence-1")));
    let (code, lines, err) = run_cli(
        "audit-jsonl",
        &["audit", "--format", "jsonl", "--target", &ok_id],
        stack.env(),
        stack.dir.path(),
        minute,
    );
    assert_eq!(code, Some(0), "{err}");
    let parsed: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(parsed.iter().all(|r| r["target"] == ok_id.as_str()) && !parsed.is_empty());
    let (code, lines, err) = run_cli(
        "deliveries",
        &["deliveries", "--event", &events[1], "--json"],
        stack.env(),
        stack.dir.path(),
        minute,
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(lines.len(), 2, "{lines:?}");
    let (code, _, err) = run_cli(
        "deliveries-bad",
        &["deliveries", "--endpoint", "evt_nope"],
        stack.env(),
        stack.dir.path(),
        minute,
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("--endpoint"), "{err}");
}

#[test]
fn a_test_delivery_is_signed_answered_at_once_and_recorded() {
    let receiver = Receiver::answering("127.0.0.1:0".parse().unwrap(), answer);
    let stack = Stack::start("test-delivery", &[]);
    let api = &stack.api;
    let (ok_id, ok_secret) = api.create_endpoint(&format!("http://{}/ok", receiver.addr), &[]);
    let (down_id, _) = api.create_endpoint(&format!("http://{}/down", receiver.addr), &[]);
    // Outside the allow-list (127.0.0.0/8 in the tests): refused by the same SSRF guard.
    let (internal_id, _) = api.create_endpoint("http://10.255.255.1:9/hook", &[]);

    let (status, ok) = api.post(
        &format!("/v1/endpoints/{ok_id}/test"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{ok}");
    assert_eq!(
        (ok["success"].as_bool(), ok["status"].as_u64()),
        (Some(true), Some(204)),
        "{ok}"
    );
    assert!(ok["latency_ms"].is_u64());
    let got = receiver.on("/ok");
    assert_eq!(got.len(), 1, "delivered synchronously, before the answer");
    assert_eq!(
        got[0].headers["webhook-id"],
        ok["event_id"].as_str().unwrap()
    );
    let body: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(body["type"], "herald.test");
    assert_eq!(body["data"]["endpoint_id"], ok_id.as_str());
    assert_eq!(
        verify_with_python(&got, &ok_secret),
        1,
        "the official verifier accepts it"
    );

    let (status, down) = api.post(
        &format!("/v1/endpoints/{down_id}/test"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{down}");
    assert_eq!(
        (down["success"].as_bool(), down["status"].as_u64()),
        (Some(false), Some(500))
    );
    assert_eq!(down["response_excerpt"], "ok");
    let (status, refused) = api.post(
        &format!("/v1/endpoints/{internal_id}/test"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 200, "{refused}");
    assert_eq!(refused["class"], "forbidden", "{refused}");
    assert_eq!(refused["success"], false);

    let (status, _) = api.post("/v1/endpoints/evt_wrong_kind/test", &serde_json::json!({}));
    assert_eq!(status, 400);
    let missing = herald_core::ids::EndpointId::generate(1).to_string();
    let (status, _) = api.post(
        &format!("/v1/endpoints/{missing}/test"),
        &serde_json::json!({}),
    );
    assert_eq!(status, 404);

    // In the delivery log and the audit trail.
    let (_, log) = api.get(&format!("/v1/endpoints/{ok_id}/attempts"));
    let first = &log["data"][0];
    assert_eq!(
        (first["event_type"].as_str(), first["status"].as_u64()),
        (Some("herald.test"), Some(204)),
        "{log}"
    );
    let (_, audit) = api.get("/v1/audit?action=endpoint.tested");
    let targets: HashSet<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["target"].as_str().unwrap())
        .collect();
    assert_eq!(
        targets,
        HashSet::from([ok_id.as_str(), down_id.as_str(), internal_id.as_str()])
    );

    // The CLI: exit 0 when the receiver accepted, non-zero when it did not.
    let minute = Duration::from_secs(60);
    let (code, lines, err) = run_cli(
        "endpoints-test-ok",
        &["endpoints", "test", &ok_id],
        stack.env(),
        stack.dir.path(),
        minute,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(lines.iter().any(|l| l.contains("204")), "{lines:?}");
    let (code, _, err) = run_cli(
        "endpoints-test-down",
        &["endpoints", "test", &down_id],
        stack.env(),
        stack.dir.path(),
        minute,
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("did not accept"), "{err}");
    assert_eq!(receiver.count("/ok"), 2);
}
