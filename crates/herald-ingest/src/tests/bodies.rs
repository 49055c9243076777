//! Every bad-input answer of the write routes, and 503 (never 2xx) when the broker is away.

use super::*;

#[tokio::test]
async fn bad_bodies_get_precise_errors() {
    let f = fixture();
    let admin = Some(f.admin.as_str());
    let big = format!(r#"{{"type":"a","payload":"{}"}}"#, "x".repeat(3_000));
    let cases: Vec<(Option<&str>, String, StatusCode, &str)> = vec![
        (
            Some("text/plain"),
            EVENT.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            None,
            EVENT.into(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            JSON,
            big,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
        (
            JSON,
            "{\"type\": ".into(),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            JSON,
            r#"{"payload":{}}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            JSON,
            r#"{"type":"a.b"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            JSON,
            r#"{"type":"bad type","payload":1}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            JSON,
            r#"{"type":"a","payload":1,"id":"ep_1"}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            JSON,
            r#"{"type":"a","payload":1,"extra":true}"#.into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
        (
            JSON,
            "[1,2]".into(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_field",
        ),
    ];
    for (ct, body, status, expected) in cases {
        let (got, json) = call(&f, "POST", "/v1/events", admin, ct, &body).await;
        assert_eq!(
            (got, code(&json)),
            (status, expected),
            "{ct:?} {}",
            &body[..body.len().min(60)]
        );
    }
    let (_, json) = call(&f, "POST", "/v1/events", admin, JSON, r#"{"payload":{}}"#).await;
    assert!(
        json["error"]["message"].as_str().unwrap().contains("type"),
        "{json}"
    );
}

#[tokio::test]
async fn broker_unreachable_is_503_never_2xx() {
    let f = fixture();
    let (status, body) = call(&f, "POST", "/v1/events", Some(&f.admin), JSON, EVENT).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&body), "broker_unavailable");
    let batch = format!(r#"{{"events":[{EVENT},{{"type":"bad type","payload":1}}]}}"#);
    let (status, body) = call(&f, "POST", "/v1/events/batch", Some(&f.admin), JSON, &batch).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(body["results"][0]["status"], 503);
    assert_eq!(body["results"][1]["status"], 422);
}

#[tokio::test]
async fn batch_size_is_bounded() {
    let f = fixture();
    let batch = format!(r#"{{"events":[{EVENT},{EVENT},{EVENT},{EVENT}]}}"#);
    let (status, body) = call(&f, "POST", "/v1/events/batch", Some(&f.admin), JSON, &batch).await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
    let (status, body) = call(
        &f,
        "POST",
        "/v1/events/batch",
        Some(&f.admin),
        JSON,
        r#"{"events":[]}"#,
    )
    .await;
    assert_eq!(
        (status, code(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
    );
}
