//! Every error answer is JSON: `{"error": {"code": "…", "message": "…"}}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An HTTP error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429s).
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// An error with a status, a stable code and a human message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_s: None,
        }
    }

    /// Adds a `Retry-After` header of `seconds` (at least 1).
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_s = Some(seconds.max(1));
        self
    }

    /// 422: a field is missing or invalid.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field", message)
    }

    /// 404.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({"error": {"code": self.code, "message": self.message}})
    }
}

impl From<herald_kafka::Error> for ApiError {
    fn from(err: herald_kafka::Error) -> Self {
        match err {
            herald_kafka::Error::Rejected(reason) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "rejected_by_broker",
                format!("the broker refused the record: {reason}"),
            ),
            other => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "broker_unavailable",
                format!(
                    "not acknowledged by the broker, retry later with the same Idempotency-Key \
                     (same key, same event id: a retry never duplicates): {other}"
                ),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() || self.status == StatusCode::SERVICE_UNAVAILABLE {
            tracing::warn!(code = self.code, message = %self.message, "Request failed.");
        }
        let retry_after = self.retry_after_s;
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}
