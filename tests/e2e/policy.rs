//! Tenant isolation and key states on every route, as one policy table: each route is called
//! with a key in each state (valid, wrong scope, another tenant's, revoked, expired, rolled
//! and still inside its overlap, rolled and past it, malformed) and must answer exactly the
//! expected status. The table is printed; any mismatch fails the test.
//!
//! Destructive routes are probed without destroying: `If-Match: "999"` makes an authorized
//! PATCH, DELETE or rotation answer 412 and change nothing; the key revoked and rolled is a
//! throwaway one revoked beforehand (revoking again is 204, rolling it 409).

use crate::harness::*;
use crate::stack::Stack;
use serde_json::{json, Value};
use std::time::Duration;

const STATES: [&str; 8] = [
    "valid",
    "wrong scope",
    "other tenant",
    "revoked",
    "expired",
    "rolled, in overlap",
    "rolled, past overlap",
    "malformed",
];

const ALL_SCOPES: [&str; 7] = [
    "events:write",
    "endpoints:read",
    "endpoints:write",
    "keys:admin",
    "replay:run",
    "deliveries:read",
    "audit:read",
];

struct Route {
    method: &'static str,
    path: String,
    body: Option<Value>,
    if_match: bool,
    scope: &'static str,
    /// Status for a valid key, and for the other tenant's key.
    ok: u16,
    other_tenant: u16,
}

fn key(api: &Api, body: Value) -> (String, String) {
    let (status, key) = api.post("/v1/keys", &body);
    assert_eq!(status, 201, "{key}");
    (
        key["id"].as_str().unwrap().to_owned(),
        key["token"].as_str().unwrap().to_owned(),
    )
}

fn call(base: &str, token: &str, route: &Route) -> u16 {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let url = format!("{base}{}", route.path);
    let mut req = match route.method {
        "GET" => client.get(&url),
        "POST" => client.post(&url),
        "PATCH" => client.patch(&url),
        "DELETE" => client.delete(&url),
        other => panic!("method {other}"),
    };
    req = req.bearer_auth(token);
    if route.if_match {
        req = req.header("if-match", "\"999\"");
    }
    if let Some(body) = &route.body {
        req = req.json(body);
    }
    req.send().expect("request").status().as_u16()
}

#[test]
fn every_route_answers_every_key_state_as_the_policy_says() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let stack = Stack::start("policy", &[]);
    let api = &stack.api;
    let url = format!("http://{}/hook", receiver.addr);
    let (status, acme_ep) = api.post("/v1/endpoints", &json!({"url": url, "tenant": "acme"}));
    assert_eq!(status, 201, "{acme_ep}");
    let ep = acme_ep["id"].as_str().unwrap().to_owned();
    let (victim, _) = key(
        api,
        json!({"name": "victim", "scopes": ["events:write"], "tenant": "acme"}),
    );
    assert_eq!(api.delete(&format!("/v1/keys/{victim}")).0, 204);
    let (status, accepted) = api.post(
        "/v1/events",
        &json!({"type": "stock.moved", "payload": {}, "tenant": "acme"}),
    );
    assert_eq!(status, 202, "{accepted}");
    let event = accepted["id"].as_str().unwrap().to_owned();

    // A key in each state. The wrong-scope key has one scope; the routes needing it use a key
    // with every other scope instead (below).
    let all = json!(ALL_SCOPES);
    let (_, valid) = key(api, json!({"name": "valid", "scopes": all}));
    let (_, other) = key(
        api,
        json!({"name": "globex", "scopes": all, "tenant": "globex"}),
    );
    let (revoked_id, revoked) = key(api, json!({"name": "revoked", "scopes": all}));
    assert_eq!(api.delete(&format!("/v1/keys/{revoked_id}")).0, 204);
    let (_, expired) = key(
        api,
        json!({"name": "expired", "scopes": all, "expires_in_seconds": 1}),
    );
    let (inside_id, inside) = key(api, json!({"name": "inside", "scopes": all}));
    assert_eq!(
        api.post(
            &format!("/v1/keys/{inside_id}/roll"),
            &json!({"overlap_seconds": 600})
        )
        .0,
        201
    );
    let (past_id, past) = key(api, json!({"name": "past", "scopes": all}));
    assert_eq!(
        api.post(
            &format!("/v1/keys/{past_id}/roll"),
            &json!({"overlap_seconds": 0})
        )
        .0,
        201
    );
    let malformed = "hk_not-a-key".to_owned();
    let mut lacking = std::collections::HashMap::new();
    for scope in ALL_SCOPES {
        let others: Vec<&str> = ALL_SCOPES.iter().copied().filter(|s| *s != scope).collect();
        lacking.insert(
            scope,
            key(
                api,
                json!({"name": format!("no-{scope}"), "scopes": others}),
            )
            .1,
        );
    }
    std::thread::sleep(Duration::from_millis(1_200)); // the 1 s key expires

    let r = |method, path: String, body: Option<Value>, if_match, scope, ok, other_tenant| Route {
        method,
        path,
        body,
        if_match,
        scope,
        ok,
        other_tenant,
    };
    let event_body = json!({"type": "stock.moved", "payload": {}, "tenant": "acme"});
    let routes = vec![
        r(
            "POST",
            "/v1/events".into(),
            Some(event_body.clone()),
            false,
            "events:write",
            202,
            403,
        ),
        r(
            "POST",
            "/v1/events/batch".into(),
            Some(json!({"events": [event_body]})),
            false,
            "events:write",
            202,
            207,
        ),
        r(
            "POST",
            "/v1/endpoints".into(),
            Some(json!({"url": url, "tenant": "acme"})),
            false,
            "endpoints:write",
            201,
            403,
        ),
        r(
            "GET",
            "/v1/endpoints".into(),
            None,
            false,
            "endpoints:read",
            200,
            200,
        ),
        r(
            "GET",
            format!("/v1/endpoints/{ep}"),
            None,
            false,
            "endpoints:read",
            200,
            404,
        ),
        r(
            "PATCH",
            format!("/v1/endpoints/{ep}"),
            Some(json!({"description": "x"})),
            true,
            "endpoints:write",
            412,
            404,
        ),
        r(
            "DELETE",
            format!("/v1/endpoints/{ep}"),
            None,
            true,
            "endpoints:write",
            412,
            404,
        ),
        r(
            "POST",
            format!("/v1/endpoints/{ep}/secret/rotate"),
            Some(json!({})),
            true,
            "endpoints:write",
            412,
            404,
        ),
        r(
            "POST",
            format!("/v1/endpoints/{ep}/test"),
            None,
            false,
            "endpoints:write",
            200,
            404,
        ),
        r(
            "GET",
            format!("/v1/endpoints/{ep}/attempts"),
            None,
            false,
            "deliveries:read",
            200,
            404,
        ),
        r(
            "GET",
            format!("/v1/events/{event}/deliveries"),
            None,
            false,
            "deliveries:read",
            200,
            200,
        ),
        r(
            "POST",
            "/v1/keys".into(),
            Some(json!({"name": "k", "scopes": ["events:write"], "tenant": "acme"})),
            false,
            "keys:admin",
            201,
            403,
        ),
        r(
            "GET",
            "/v1/keys".into(),
            None,
            false,
            "keys:admin",
            200,
            200,
        ),
        r(
            "DELETE",
            format!("/v1/keys/{victim}"),
            None,
            false,
            "keys:admin",
            204,
            404,
        ),
        r(
            "POST",
            format!("/v1/keys/{victim}/roll"),
            Some(json!({})),
            false,
            "keys:admin",
            409,
            404,
        ),
        r(
            "POST",
            "/v1/replays".into(),
            Some(json!({"kind": "dlq", "tenant": "acme", "dry_run": true})),
            false,
            "replay:run",
            200,
            403,
        ),
        r(
            "GET",
            "/v1/replays".into(),
            None,
            false,
            "replay:run",
            200,
            200,
        ),
        r(
            "GET",
            "/v1/replays/rpl_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B".into(),
            None,
            false,
            "replay:run",
            404,
            404,
        ),
        r(
            "POST",
            "/v1/replays/rpl_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B/resume".into(),
            None,
            false,
            "replay:run",
            404,
            404,
        ),
        r(
            "GET",
            "/v1/dead-letters?tenant=acme".into(),
            None,
            false,
            "deliveries:read",
            200,
            403,
        ),
        r(
            "GET",
            "/v1/dead-letters/dlv_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B".into(),
            None,
            false,
            "deliveries:read",
            404,
            404,
        ),
        r(
            "GET",
            "/v1/audit".into(),
            None,
            false,
            "audit:read",
            200,
            200,
        ),
        r(
            "GET",
            "/v1/reconciliation?since=1h&tenant=acme".into(),
            None,
            false,
            "deliveries:read",
            200,
            403,
        ),
        r(
            "GET",
            format!("/v1/reconciliation?since=1h&endpoint={ep}"),
            None,
            false,
            "deliveries:read",
            200,
            404,
        ),
    ];

    let mut table = String::new();
    let mut mismatches = Vec::new();
    table.push_str(&format!("{:<64}", "route"));
    for state in STATES {
        table.push_str(&format!(" | {state:^20}"));
    }
    table.push('\n');
    for route in &routes {
        table.push_str(&format!(
            "{:<64}",
            format!("{} {}", route.method, route.path.split('?').next().unwrap())
        ));
        for state in STATES {
            let (token, want) = match state {
                "valid" => (&valid, route.ok),
                "wrong scope" => (&lacking[route.scope], 403),
                "other tenant" => (&other, route.other_tenant),
                "revoked" => (&revoked, 401),
                "expired" => (&expired, 401),
                "rolled, in overlap" => (&inside, route.ok),
                "rolled, past overlap" => (&past, 401),
                _ => (&malformed, 401),
            };
            let got = call(&api.base, token, route);
            let cell = if got == want {
                format!("{got}")
            } else {
                format!("{got} (want {want})")
            };
            table.push_str(&format!(" | {cell:^20}"));
            if got != want {
                mismatches.push(format!(
                    "{} {} as {state}: {got}, want {want}",
                    route.method, route.path
                ));
            }
        }
        table.push('\n');
    }
    eprintln!("{table}");
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}
