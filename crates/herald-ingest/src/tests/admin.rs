//! Endpoint and key management rules: validation, bounded descriptions and endpoint counts, keys never wider than their creator.

use super::*;

#[tokio::test]
async fn admin_validation_and_routing_errors() {
    let f = fixture();
    let admin = Some(f.admin.as_str());
    let (status, body) = call(
        &f,
        "POST",
        "/v1/keys",
        admin,
        JSON,
        r#"{"name":"x","scopes":["events:delete"]}"#,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("events:delete"));
    let (status, body) = call(
        &f,
        "POST",
        "/v1/endpoints",
        admin,
        JSON,
        r#"{"url":"ftp://x"}"#,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    let (status, body) = call(&f, "GET", "/v1/endpoints/nope", admin, None, "").await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::BAD_REQUEST, "invalid_id")
    );
    let (status, body) = call(&f, "GET", "/v1/endpoints/ep_missing", admin, None, "").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = call(&f, "GET", "/v1/nothing", admin, None, "").await;
    assert_eq!((status, code(&body)), (StatusCode::NOT_FOUND, "not_found"));
    let (status, body) = call(&f, "PUT", "/v1/events", admin, JSON, EVENT).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
    );
}

#[tokio::test]
async fn an_endpoint_description_is_bounded() {
    let f = fixture();
    let long = "d".repeat(herald_core::endpoint::MAX_DESCRIPTION_CHARS + 1);
    let body = serde_json::json!({"url": "https://a.example/hook", "description": long});
    let (status, body) = call(
        &f,
        "POST",
        "/v1/endpoints",
        Some(&f.admin),
        JSON,
        &body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("description: at most 1024 characters"),
        "{body}"
    );
}

#[tokio::test]
async fn a_tenant_cannot_create_endpoints_past_its_limit() {
    use herald_core::endpoint::Endpoint;
    let mut f = fixture();
    f.state.edit().config.max_endpoints_per_tenant = 1;
    let existing = Endpoint {
        tenant: "acme".into(),
        ..Endpoint::new(
            herald_core::ids::EndpointId::generate(1),
            "https://a.example/hook".into(),
            herald_core::signing::Secret::generate(),
            1,
        )
    };
    let record =
        herald_proto::convert::endpoint_to_state(&existing, 1, f.state.endpoints.master_key());
    f.state.endpoints.view().apply_local(
        existing.id.as_str().as_bytes(),
        Some(&prost::Message::encode_to_vec(&record)),
    );
    let body = serde_json::json!({"url": "https://b.example/hook", "tenant": "acme"});
    let (status, answer) = call(
        &f,
        "POST",
        "/v1/endpoints",
        Some(&f.admin),
        JSON,
        &body.to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(code(&answer), "too_many_endpoints", "{answer}");
    // Another tenant is not held back by it (it gets as far as the broker, absent here).
    let other = serde_json::json!({"url": "https://b.example/hook", "tenant": "globex"});
    let (status, answer) = call(
        &f,
        "POST",
        "/v1/endpoints",
        Some(&f.admin),
        JSON,
        &other.to_string(),
    )
    .await;
    assert_ne!(status, StatusCode::CONFLICT, "{answer}");
}

/// `GET path` over a plain connection: status and body.

#[tokio::test]
async fn a_key_cannot_create_a_key_wider_than_itself() {
    let f = fixture();
    // An admin limited to tenant `acme` with keys:admin and events:write only.
    let (record, limited) = key(&["keys:admin", "events:write"], 0, 0);
    let record = v1::KeyRecord {
        tenant: "acme".into(),
        ..record
    };
    f.state.keys.apply_local(&record);
    let create = |body: &'static str| {
        let token = limited.clone();
        let f = &f;
        async move { call(f, "POST", "/v1/keys", Some(&token), JSON, body).await }
    };
    let (status, body) = create(r#"{"name":"x","scopes":["replay:run"]}"#).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("replay:run"));
    let (status, body) = create(r#"{"name":"x","scopes":["events:write"],"tenant":"other"}"#).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::FORBIDDEN, "forbidden"),
        "{body}"
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("tenant:"));
    // Within its limits it gets as far as the broker (unreachable here).
    let (status, body) = create(r#"{"name":"x","scopes":["events:write"]}"#).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let (status, body) = call(
        &f,
        "POST",
        "/v1/keys",
        Some(&f.admin),
        JSON,
        r#"{"name":"x","scopes":["events:write"],"never_expires":true,"expires_in_seconds":60}"#,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("never_expires:"));
}
