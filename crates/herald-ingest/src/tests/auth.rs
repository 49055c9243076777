//! Authentication and scopes: 401s with JSON, expiry by the injected clock, 403 naming the scope.

use super::*;

#[tokio::test]
async fn authentication_failures_are_401_with_json() {
    let f = fixture();
    let (revoked, revoked_token) = key(&["events:write"], 0, 1);
    let (expired, expired_token) = key(&["events:write"], 1, 0);
    f.state.keys.apply_local(&revoked);
    f.state.keys.apply_local(&expired);
    let unknown = ApiKeyToken::generate(KeyId::generate(1)).expose();
    for (token, why) in [
        (None, "missing"),
        (Some("hk_nope"), "malformed"),
        (Some(unknown.as_str()), "unknown"),
        (Some(revoked_token.as_str()), "revoked"),
        (Some(expired_token.as_str()), "expired"),
    ] {
        let (status, body) = call(&f, "POST", "/v1/events", token, JSON, EVENT).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}");
        assert_eq!(code(&body), "unauthorized", "{why}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{why}: {body}"
        );
    }
}

#[tokio::test]
async fn a_key_expires_by_the_service_clock_to_the_millisecond() {
    let f = fixture();
    let expires_at = f.state.clock.now_ms() + 60_000;
    let (record, token) = key(&["endpoints:read"], expires_at, 0);
    f.state.keys.apply_local(&record);
    f.clock.set(expires_at - 1);
    let (status, _) = call(&f, "GET", "/v1/endpoints", Some(&token), None, "").await;
    assert_eq!(status, StatusCode::OK, "valid until its last millisecond");
    f.clock.set(expires_at);
    let (status, body) = call(&f, "GET", "/v1/endpoints", Some(&token), None, "").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn missing_scope_is_403_naming_it() {
    let f = fixture();
    let (status, body) = call(&f, "POST", "/v1/events", Some(&f.reader), JSON, EVENT).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(code(&body), "forbidden");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("events:write"));
}
