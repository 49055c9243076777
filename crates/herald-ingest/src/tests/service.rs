//! Health, readiness, and ingest `run` on a port of its own.

use super::*;

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
