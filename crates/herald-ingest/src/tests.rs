//! Unit tests of the HTTP surface without a broker: authentication, scopes and every
//! bad-input answer. (The real-broker tests live in the top-level `tests/`.)

use crate::{router, IngestConfig, IngestState};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use herald_core::apikey::ApiKeyToken;
use herald_core::ids::KeyId;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::keys::KeysView;
use herald_kafka::{KafkaConfig, Producer};
use herald_proto::v1;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

struct Fixture {
    state: IngestState,
    /// The service's clock: it moves only when a test moves it.
    clock: std::sync::Arc<herald_core::clock::ManualClock>,
    admin: String,
    reader: String,
    shutdown: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn key(scopes: &[&str], expires_at_ms: i64, revoked_at_ms: i64) -> (v1::KeyRecord, String) {
    let token = ApiKeyToken::generate(KeyId::generate(herald_kafka::now_ms()));
    let record = v1::KeyRecord {
        id: token.id.to_string(),
        name: "t".into(),
        token_sha256: token.hash(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        created_at_ms: 0,
        expires_at_ms,
        revoked_at_ms,
        tenant: String::new(),
    };
    (record, token.expose())
}

fn fixture() -> Fixture {
    let mut kafka = KafkaConfig::with_brokers("127.0.0.1:1");
    kafka.produce_timeout = Duration::from_millis(300);
    let tasks = TaskTracker::new();
    let shutdown = CancellationToken::new();
    let endpoints = EndpointsView::spawn(
        &kafka,
        herald_core::sealing::MasterKey::from_bytes([1; 32]),
        &tasks,
        shutdown.clone(),
    );
    let keys = KeysView::spawn(&kafka, &tasks, shutdown.clone());
    let all: Vec<&str> = herald_core::apikey::Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let (admin_record, admin) = key(&all, 0, 0);
    let (reader_record, reader) = key(&["endpoints:read"], 0, 0);
    keys.apply_local(&admin_record);
    keys.apply_local(&reader_record);
    let (clock, hand) = herald_core::clock::SharedClock::manual(herald_kafka::now_ms());
    let mut config = IngestConfig::defaults();
    config.max_body_bytes = 2_048;
    config.max_batch = 3;
    let state = IngestState {
        config,
        producer: Producer::new(&kafka, "test").unwrap(),
        topics: kafka.topics(),
        endpoints,
        keys,
        clock,
    };
    Fixture {
        state,
        clock: hand,
        admin,
        reader,
        shutdown,
    }
}

async fn call(
    f: &Fixture,
    method: &str,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: &str,
) -> (StatusCode, serde_json::Value) {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = herald_http::app(router(f.state.clone()))
        .oneshot(request.body(Body::from(body.to_owned())).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

const JSON: Option<&str> = Some("application/json");
const EVENT: &str = r#"{"type":"stock.moved","payload":{"sku":"A"}}"#;

fn code(body: &serde_json::Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

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
async fn health_and_readiness() {
    let f = fixture();
    let (status, body) = call(&f, "GET", "/healthz", None, None, "").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = call(&f, "GET", "/readyz", None, None, "").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ready"], false);
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
    f.state.config.max_endpoints_per_tenant = 1;
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
async fn raw_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test]
async fn run_serves_its_routes_and_others_on_port_0_and_stops_on_shutdown() {
    let f = fixture();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (started, listening) = tokio::sync::oneshot::channel();
    let deps = crate::IngestDeps {
        producer: f.state.producer.clone(),
        topics: f.state.topics.clone(),
        endpoints: f.state.endpoints.clone(),
        keys: f.state.keys.clone(),
        clock: f.state.clock.clone(),
        routes: axum::Router::new().route("/v1/other", axum::routing::get(|| async { "other" })),
        unmetered: axum::Router::new().route("/metrics", axum::routing::get(|| async { "m" })),
        listening: Box::new(move |addr| {
            let _ = started.send(addr);
        }),
    };
    let stop = CancellationToken::new();
    let serving = tokio::spawn(crate::run(
        f.state.config.clone(),
        deps,
        listener,
        stop.clone(),
    ));
    assert_eq!(listening.await.unwrap(), addr);

    assert_eq!(raw_get(addr, "/healthz").await.0, 200);
    let (status, body) = raw_get(addr, "/v1/endpoints").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("unauthorized"), "{body}");
    assert_eq!(raw_get(addr, "/v1/other").await, (200, "other".into()));
    assert_eq!(raw_get(addr, "/metrics").await, (200, "m".into()));
    let (status, body) = raw_get(addr, "/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert!(body.contains("not_found"), "{body}");

    stop.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(10), serving).await;
    assert!(matches!(stopped, Ok(Ok(Ok(())))), "{stopped:?}");
}

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
