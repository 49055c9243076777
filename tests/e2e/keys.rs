//! Key hygiene: keys expire by default (a key that never expires only when asked, flagged),
//! listings show age and rotation due, a rolled key starts a fresh lifetime, a revoked key
//! can be neither rolled nor brought back by a roll racing its revocation, a revocation
//! reaches a second service process within a second, and `herald keys` does the same.

use crate::harness::*;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const DAY_MS: i64 = 86_400_000;

fn create(api: &Api, body: Value) -> Value {
    let (status, key) = api.post("/v1/keys", &body);
    assert_eq!(status, 201, "{key}");
    key
}

fn listed(api: &Api, id: &str) -> Value {
    let (status, keys) = api.get("/v1/keys");
    assert_eq!(status, 200, "{keys}");
    keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["id"] == id)
        .cloned()
        .unwrap_or(Value::Null)
}

fn post_event(api: &Api, token: &str) -> u16 {
    let client = Api::new(api.base.clone(), token.to_owned());
    client
        .post("/v1/events", &json!({"type": "stock.moved", "payload": {}}))
        .0
}

#[test]
fn keys_expire_by_default_and_revocations_stand_and_spread() {
    let stack = Stack::start("keys", &[]);
    let api = &stack.api;

    let now = herald_kafka::now_ms();
    let plain = create(api, json!({"name": "svc", "scopes": ["events:write"]}));
    let expires = plain["expires_at_ms"].as_i64().expect("expires by default");
    assert!(
        (expires - (now + 90 * DAY_MS)).abs() < 10 * 60_000,
        "{plain}"
    );
    assert_eq!(
        (
            plain["never_expires"].as_bool(),
            plain["rotation_due"].as_bool()
        ),
        (Some(false), Some(false))
    );
    assert_eq!(plain["state"], "active");
    let forever = create(
        api,
        json!({"name": "legacy", "scopes": ["events:write"], "never_expires": true}),
    );
    assert_eq!(
        (
            forever["never_expires"].as_bool(),
            forever["expires_at_ms"].is_null()
        ),
        (Some(true), true)
    );
    assert_eq!(
        listed(api, forever["id"].as_str().unwrap())["never_expires"],
        true
    );

    // A roll gives a fresh lifetime; the old key lives until the overlap ends.
    let (status, rolled) = api.post(
        &format!("/v1/keys/{}/roll", plain["id"].as_str().unwrap()),
        &json!({"overlap_seconds": 60}),
    );
    assert_eq!(status, 201, "{rolled}");
    assert!(rolled["expires_at_ms"].as_i64().unwrap() >= expires);
    assert!(rolled["previous_expires_at_ms"].as_i64().unwrap() <= herald_kafka::now_ms() + 61_000);

    // A revoked key cannot be rolled.
    let victim = create(api, json!({"name": "victim", "scopes": ["events:write"]}));
    let id = victim["id"].as_str().unwrap();
    assert_eq!(api.delete(&format!("/v1/keys/{id}")).0, 204);
    let (status, body) = api.post(&format!("/v1/keys/{id}/roll"), &json!({}));
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("key_revoked")),
        "{body}"
    );

    // A roll racing a revocation never brings the revoked key back.
    for round in 0..10 {
        let key = create(
            api,
            json!({"name": format!("race-{round}"), "scopes": ["events:write"]}),
        );
        let id = key["id"].as_str().unwrap().to_owned();
        std::thread::scope(|s| {
            s.spawn(|| {
                api.post(
                    &format!("/v1/keys/{id}/roll"),
                    &json!({"overlap_seconds": 600}),
                )
            });
            s.spawn(|| assert_eq!(api.delete(&format!("/v1/keys/{id}")).0, 204));
        });
        assert_eq!(listed(api, &id)["state"], "revoked", "round {round}");
        assert_eq!(
            post_event(api, key["token"].as_str().unwrap()),
            401,
            "round {round}"
        );
    }

    // A second ingest process sees a revocation made through the first within a second.
    let (_second, other) = stack.spawn_ingest("ingest-2");
    let key = create(api, json!({"name": "spread", "scopes": ["events:write"]}));
    let token = key["token"].as_str().unwrap();
    wait_until(
        "the second process knows the new key",
        Duration::from_secs(30),
        || post_event(&other, token) == 202,
    );
    let revoked_at = Instant::now();
    assert_eq!(
        api.delete(&format!("/v1/keys/{}", key["id"].as_str().unwrap()))
            .0,
        204
    );
    wait_until(
        "the second process refuses the revoked key",
        Duration::from_secs(1),
        || post_event(&other, token) == 401,
    );
    eprintln!(
        "revocation reached the second process in {:?}",
        revoked_at.elapsed()
    );

    // The CLI: the same use cases, audited as cli:<user>.
    let minute = Duration::from_secs(60);
    let cli = |name: &str, args: &[&str]| {
        let (code, lines, err) = run_cli(name, args, stack.env(), stack.dir.path(), minute);
        assert_eq!(code, Some(0), "herald {args:?}: {err}");
        lines
    };
    let lines = cli(
        "keys-create",
        &[
            "keys",
            "create",
            "--name",
            "from-cli",
            "--scope",
            "events:write",
        ],
    );
    let token = lines.last().unwrap().clone();
    let id = lines[0].split_whitespace().nth(2).unwrap().to_owned();
    wait_until("the CLI's key works", Duration::from_secs(30), || {
        post_event(api, &token) == 202
    });
    let listing = cli("keys-list", &["keys", "list"]);
    assert!(
        listing
            .iter()
            .any(|l| l.starts_with(&id) && l.contains("active")),
        "{listing:?}"
    );
    cli(
        "keys-never",
        &[
            "keys",
            "create",
            "--name",
            "legacy-cli",
            "--scope",
            "events:write",
            "--never-expires",
        ],
    );
    let listing = cli("keys-list-2", &["keys", "list"]);
    assert!(
        listing
            .iter()
            .any(|l| l.contains("NEVER EXPIRES") && l.contains("legacy-cli")),
        "{listing:?}"
    );
    let rolled = cli("keys-roll", &["keys", "roll", &id, "--overlap", "1m"]);
    let new_token = rolled.last().unwrap().clone();
    wait_until("the rolled key works", Duration::from_secs(30), || {
        post_event(api, &new_token) == 202
    });
    cli("keys-revoke", &["keys", "revoke", &id]);
    wait_until(
        "the CLI's revocation holds",
        Duration::from_secs(30),
        || post_event(api, &token) == 401,
    );
    assert_eq!(listed(api, &id)["state"], "revoked");
    let (code, _, err) = run_cli(
        "keys-bad",
        &["keys", "revoke", "key_nope"],
        stack.env(),
        stack.dir.path(),
        minute,
    );
    assert_ne!(code, Some(0));
    assert!(!err.is_empty());
    let (_, audit) = api.get(&format!("/v1/audit?target={id}"));
    let actors: Vec<&str> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["actor"].as_str().unwrap())
        .collect();
    assert!(
        !actors.is_empty() && actors.iter().all(|a| a.starts_with("cli:")),
        "{audit}"
    );
}
