//! The finished application: every crate's routes merged, one JSON answer for unknown
//! routes and methods, request metrics, serving with graceful shutdown.

use crate::error::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Instant;

/// The id of a request: the client's `x-request-id` when it is 1–128 printable ASCII
/// characters, else a generated `req_…`. Handlers find it in the request's extensions; the
/// answer carries it back in `x-request-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

const REQUEST_ID: &str = "x-request-id";

impl RequestId {
    /// The client's id if usable, else a fresh one.
    pub fn from_header(value: Option<&str>) -> Self {
        match value {
            Some(v)
                if (1..=128).contains(&v.len()) && v.bytes().all(|b| (0x21..0x7f).contains(&b)) =>
            {
                Self(v.to_owned())
            }
            _ => Self(format!("req_{}", uuid::Uuid::new_v4().simple())),
        }
    }
}

async fn request_id(mut request: Request, next: Next) -> Response {
    let id = RequestId::from_header(
        request
            .headers()
            .get(REQUEST_ID)
            .and_then(|v| v.to_str().ok()),
    );
    let header = axum::http::HeaderValue::from_str(&id.0).ok();
    request.extensions_mut().insert(id);
    let mut response = next.run(request).await;
    if let Some(value) = header {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// `routes` (every API crate's routers, merged) with the JSON fallbacks, request ids and
/// request metrics.
pub fn app(routes: Router) -> Router {
    routes
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn_with_state(
            RouteMetrics::default(),
            track,
        ))
        .layer(middleware::from_fn(request_id))
}

/// The request metrics of each route template, looked up once per route: the metrics macros
/// build the labelled key and allocate a handle on every call, and this runs for every
/// request (benches/README.md, session 15). Bounded by the routes the application has.
#[derive(Clone, Default)]
struct RouteMetrics(Arc<RwLock<HashMap<String, Arc<RouteHandles>>>>);

struct RouteHandles {
    /// `herald_ingest_requests_total`, by status class: 2xx, 3xx, 4xx, 5xx.
    requests: [metrics::Counter; 4],
    duration: metrics::Histogram,
}

impl RouteMetrics {
    fn of(&self, route: &str) -> Arc<RouteHandles> {
        if let Some(handles) = self.0.read().expect("route metrics lock").get(route) {
            return handles.clone();
        }
        let owned = || route.to_owned();
        let requests = CLASSES.map(|class| {
            metrics::counter!("herald_ingest_requests_total", "route" => owned(), "status_class" => class)
        });
        let duration =
            metrics::histogram!("herald_ingest_request_duration_seconds", "route" => owned());
        let handles = Arc::new(RouteHandles { requests, duration });
        self.0
            .write()
            .expect("route metrics lock")
            .entry(owned())
            .or_insert(handles)
            .clone()
    }
}

const CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// Request count and duration by route template and status class.
async fn track(
    axum::extract::State(metrics): axum::extract::State<RouteMetrics>,
    request: Request,
    next: Next,
) -> Response {
    let handles = metrics.of(request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str()));
    let started = Instant::now();
    let response = next.run(request).await;
    let class = status_class(response.status());
    let index = CLASSES.iter().position(|c| *c == class).unwrap_or(3);
    handles.requests[index].increment(1);
    handles.duration.record(started.elapsed().as_secs_f64());
    response
}

/// Status class label for metrics.
pub fn status_class(status: StatusCode) -> &'static str {
    match status.as_u16() / 100 {
        2 => "2xx",
        3 => "3xx",
        4 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn status_and_code(method: &str, path: &str) -> (StatusCode, String) {
        let routes = Router::new().route("/v1/x", axum::routing::get(|| async { "ok" }));
        let response = app(routes)
            .oneshot(
                Request::builder()
                    .method(method)
                    .uri(path)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        (
            status,
            body["error"]["code"].as_str().unwrap_or("").to_owned(),
        )
    }

    #[tokio::test]
    async fn unknown_routes_and_methods_answer_json() {
        assert_eq!(
            status_and_code("GET", "/nope").await,
            (StatusCode::NOT_FOUND, "not_found".into())
        );
        assert_eq!(
            status_and_code("DELETE", "/v1/x").await,
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed".into())
        );
        assert_eq!(status_and_code("GET", "/v1/x").await.0, StatusCode::OK);
    }

    #[test]
    fn a_usable_client_request_id_is_kept_and_anything_else_replaced() {
        assert_eq!(RequestId::from_header(Some("abc-123")).0, "abc-123");
        for bad in [None, Some(""), Some("has space"), Some("é")] {
            assert!(RequestId::from_header(bad).0.starts_with("req_"), "{bad:?}");
        }
        let long = "x".repeat(129);
        assert!(RequestId::from_header(Some(&long)).0.starts_with("req_"));
    }

    #[tokio::test]
    async fn every_answer_carries_its_request_id() {
        let routes = Router::new().route("/v1/x", axum::routing::get(|| async { "ok" }));
        for (sent, path) in [(Some("r-1"), "/v1/x"), (None, "/nope")] {
            let mut request = Request::builder().uri(path);
            if let Some(id) = sent {
                request = request.header("x-request-id", id);
            }
            let response = app(routes.clone())
                .oneshot(request.body(Body::empty()).unwrap())
                .await
                .unwrap();
            let got = response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned();
            match sent {
                Some(id) => assert_eq!(got, id),
                None => assert!(got.starts_with("req_"), "{got}"),
            }
        }
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class(StatusCode::ACCEPTED), "2xx");
        assert_eq!(status_class(StatusCode::FOUND), "3xx");
        assert_eq!(status_class(StatusCode::CONFLICT), "4xx");
        assert_eq!(status_class(StatusCode::BAD_GATEWAY), "5xx");
    }
}
