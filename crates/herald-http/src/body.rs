//! Request body checks shared by every write route: JSON content type (415), size limit
//! (413), well-formed JSON (400), expected shape (422).

use crate::error::ApiError;
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

/// Reads a JSON body of at most `limit` bytes and decodes it as `T`.
pub async fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read(headers, body, limit, true).await?;
    decode(&bytes)
}

/// Like [`json`], but an empty body (and no content type) means `T::default()`.
pub async fn optional_json<T: DeserializeOwned + Default>(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<T, ApiError> {
    let bytes = read(headers, body, limit, false).await?;
    if bytes.is_empty() {
        return Ok(T::default());
    }
    decode(&bytes)
}

async fn read(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    required: bool,
) -> Result<axum::body::Bytes, ApiError> {
    let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
    let is_json = content_type
        .map(|ct| {
            ct.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !is_json && (content_type.is_some() || required) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ));
    }
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body exceeds the limit of {limit} bytes"),
        )
    };
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| too_large())
}

fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    // Well-formed JSON first (400), then the expected shape (422).
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!("body is not valid JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid("body must be a JSON object"));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::invalid(shape_error(&e)))
}

fn shape_error(err: &serde_json::Error) -> String {
    let text = err.to_string();
    // serde's text already names the field (`missing field `type``); drop the position noise.
    match text.find(" at line ") {
        Some(cut) => text[..cut].to_owned(),
        None => text,
    }
}
