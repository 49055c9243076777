//! Unit tests of the HTTP surface without a broker: authentication, scopes and every
//! bad-input answer. (The real-broker tests live in the top-level `tests/`.)
//!
//! Split by what they check: [`auth`] (keys and scopes), [`bodies`] (every bad-input
//! answer of the write routes), [`admin`] (endpoint and key management rules), [`service`]
//! (health, readiness, `run` on a port of its own), [`throttle`] (per-key rate limits and
//! key usage).

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
        rate_per_sec: None,
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
    let state = IngestState::new(crate::IngestParts {
        config,
        producer: Producer::new(&kafka, "test").unwrap(),
        topics: kafka.topics(),
        endpoints,
        keys,
        clock,
        limits: std::sync::Arc::new(crate::throttle::KeyLimits::new(0)),
    });
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

mod admin;
mod auth;
mod bodies;
mod service;
mod throttle;
