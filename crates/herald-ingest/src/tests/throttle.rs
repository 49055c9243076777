//! Per-key ingest rate limits as a producer meets them, and key usage in the listing.

use super::*;

#[tokio::test]
async fn a_key_over_its_rate_gets_429_with_retry_after_and_a_json_body() {
    let mut f = fixture();
    f.state.edit().limits = std::sync::Arc::new(crate::throttle::KeyLimits::new(1_000));
    let (mut record, token) = key(&["events:write"], 0, 0);
    record.rate_per_sec = Some(1); // a bucket of 2
    f.state.keys.apply_local(&record);
    for _ in 0..2 {
        // Admitted (the broker is unreachable here, so not accepted: 503).
        let (status, body) = call(&f, "POST", "/v1/events", Some(&token), JSON, EVENT).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    let request = Request::builder()
        .method("POST")
        .uri("/v1/events")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(EVENT))
        .unwrap();
    let response = herald_http::app(router(f.state.clone()))
        .oneshot(request)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "1");
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code(&body), "rate_limited");
    // A batch is counted by its events, and one larger than the bucket is told to split.
    let batch = format!(r#"{{"events":[{EVENT},{EVENT},{EVENT}]}}"#);
    let (status, body) = call(&f, "POST", "/v1/events/batch", Some(&token), JSON, &batch).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(code(&body), "batch_exceeds_burst");
    // Time refills the bucket.
    f.clock.advance(1_000);
    let (status, _) = call(&f, "POST", "/v1/events", Some(&token), JSON, EVENT).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_new_key_names_its_rate_and_zero_is_unlimited_and_flagged() {
    let f = fixture();
    let create = |body: &'static str| {
        let f = &f;
        async move { call(f, "POST", "/v1/keys", Some(&f.admin), JSON, body).await }
    };
    let (status, body) =
        create(r#"{"name":"p","scopes":["events:write"],"rate_per_sec":5000000}"#).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("rate_per_sec"));
    // Creating keys needs the broker, which is unreachable here: the validation passed.
    let (status, body) = create(r#"{"name":"p","scopes":["events:write"],"rate_per_sec":0}"#).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (mut record, _) = key(&["events:write"], 0, 0);
    record.rate_per_sec = Some(0);
    f.state.keys.apply_local(&record);
    let listed = crate::key_admin::key_json(&record, &f.state);
    assert_eq!(listed["unlimited_rate"], true);
    assert_eq!(listed["rate_limit_per_sec"], serde_json::Value::Null);
    record.rate_per_sec = None;
    let listed = crate::key_admin::key_json(&record, &f.state);
    assert_eq!(
        listed["rate_limit_per_sec"], 1_000,
        "the configured default"
    );
}

#[tokio::test]
async fn a_request_notes_its_key_last_use_without_writing() {
    let f = fixture();
    let (status, _) = call(&f, "GET", "/v1/keys", Some(&f.reader), None, "").await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no keys:admin; still a use");
    let (status, body) = call(&f, "GET", "/v1/keys", Some(&f.admin), None, "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let keys = body["data"].as_array().unwrap();
    let now = f.state.clock.now_ms();
    for listed in keys {
        assert_eq!(listed["last_used_at_ms"], now, "{listed}");
    }
    assert_eq!(keys.len(), 2);
}
