//! The finished application: every crate's routes merged, one JSON answer for unknown
//! routes and methods, request metrics, serving with graceful shutdown.

use crate::error::ApiError;
use axum::extract::{MatchedPath, Request};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// `routes` (every API crate's routers, merged) with the JSON fallbacks and request metrics.
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
        .layer(middleware::from_fn(track))
}

/// Serves `app` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// Request count and duration by route template and status class.
async fn track(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let started = Instant::now();
    let response = next.run(request).await;
    let class = status_class(response.status());
    metrics::counter!("herald_ingest_requests_total", "route" => route.clone(), "status_class" => class).increment(1);
    metrics::histogram!("herald_ingest_request_duration_seconds", "route" => route)
        .record(started.elapsed().as_secs_f64());
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
    fn status_classes() {
        assert_eq!(status_class(StatusCode::ACCEPTED), "2xx");
        assert_eq!(status_class(StatusCode::FOUND), "3xx");
        assert_eq!(status_class(StatusCode::CONFLICT), "4xx");
        assert_eq!(status_class(StatusCode::BAD_GATEWAY), "5xx");
    }
}
