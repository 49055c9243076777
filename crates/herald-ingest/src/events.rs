//! `POST /v1/events` and `POST /v1/events/batch`: validate, write to `events.v1`, answer 202
//! only after the broker acknowledged.

use crate::state::IngestState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use axum::Router;
use herald_core::ids::EventId;
use herald_http::{body, scope, ApiError, Authorized};
use herald_kafka::keys::Principal;
use herald_proto::{v1, Message};
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

/// `POST /v1/events`, `POST /v1/events/batch`.
pub fn routes() -> Router<IngestState> {
    Router::new()
        .route("/v1/events", post(create))
        .route("/v1/events/batch", post(batch))
}

/// Longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 256;

/// One event as a producer sends it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventIn {
    #[serde(rename = "type")]
    pub event_type: String,
    /// Any JSON value; its exact bytes are what endpoints receive.
    pub payload: Box<RawValue>,
    pub id: Option<String>,
    pub tenant: Option<String>,
    pub ordering_key: Option<String>,
    /// In batches; single requests use the `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchIn {
    events: Vec<Box<RawValue>>,
}

/// Turns a request item, accepted at `now`, into the envelope to write; 4xx when invalid.
/// (Public for the fuzz target `event_body`.)
pub fn envelope(
    item: EventIn,
    header_key: Option<&str>,
    principal: &Principal,
    now: i64,
) -> Result<v1::EventEnvelope, ApiError> {
    herald_core::event::validate_event_type(&item.event_type)
        .map_err(|e| ApiError::invalid(format!("type: {e}")))?;
    let tenant = match (item.tenant, principal.tenant.as_str()) {
        (Some(t), limit) if !limit.is_empty() && t != limit => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("this API key may only send events of tenant `{limit}`"),
            ))
        }
        (Some(t), _) => t,
        (None, limit) => limit.to_owned(),
    };
    if tenant.len() > 128 {
        return Err(ApiError::invalid("tenant: at most 128 characters"));
    }
    let idempotency_key = item
        .idempotency_key
        .as_deref()
        .or(header_key)
        .map(str::to_owned);
    if let Some(key) = &idempotency_key {
        if key.is_empty()
            || key.len() > MAX_IDEMPOTENCY_KEY
            || !key.bytes().all(|b| (0x20..0x7f).contains(&b))
        {
            return Err(ApiError::invalid(
                "Idempotency-Key: 1-256 printable ASCII characters",
            ));
        }
    }
    let id = match (&item.id, &idempotency_key) {
        (Some(id), _) => EventId::parse(id).map_err(|e| ApiError::invalid(format!("id: {e}")))?,
        (None, Some(key)) => EventId::from_idempotency_key(&tenant, key),
        (None, None) => EventId::generate(now),
    };
    let ordering_key = item.ordering_key.unwrap_or_else(|| id.to_string());
    if ordering_key.is_empty() || ordering_key.len() > 256 {
        return Err(ApiError::invalid("ordering_key: 1-256 characters"));
    }
    Ok(v1::EventEnvelope {
        id: id.to_string(),
        event_type: item.event_type,
        payload: item.payload.get().as_bytes().to_vec().into(),
        tenant,
        ordering_key,
        accepted_at_ms: now,
        idempotency_key: idempotency_key.unwrap_or_default(),
        source: principal.key_id.to_string(),
    })
}

/// Writes one envelope and waits for the acknowledgement.
async fn write(
    state: &IngestState,
    envelope: &v1::EventEnvelope,
) -> Result<serde_json::Value, ApiError> {
    let acked = state
        .producer
        .send(
            state.topics.events(),
            envelope.ordering_key.as_bytes(),
            &envelope.encode_to_vec(),
        )
        .await?;
    metrics::counter!("herald_events_accepted_total").increment(1);
    Ok(json!({"id": envelope.id, "partition": acked.partition, "offset": acked.offset}))
}

fn rejected(err: ApiError) -> ApiError {
    metrics::counter!("herald_events_rejected_total", "reason" => err.code).increment(1);
    err
}

/// `POST /v1/events`.
pub async fn create(
    auth: Result<Authorized<scope::EventsWrite>, ApiError>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = auth.map_err(rejected)?.caller();
    state
        .limits
        .admit(&principal, 1, state.clock.now_ms())
        .map_err(rejected)?;
    let item: EventIn = body::json(&headers, body, state.config.max_body_bytes)
        .await
        .map_err(rejected)?;
    let header_key = headers
        .get("idempotency-key")
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    let envelope =
        envelope(item, header_key, &principal, state.clock.now_ms()).map_err(rejected)?;
    let accepted = write(&state, &envelope).await.map_err(rejected)?;
    Ok((StatusCode::ACCEPTED, Json(accepted)).into_response())
}

/// `POST /v1/events/batch`: per-item results; 202 when all were accepted, 207 otherwise.
pub async fn batch(
    auth: Result<Authorized<scope::EventsWrite>, ApiError>,
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = auth.map_err(rejected)?.caller();
    let batch: BatchIn = body::json(&headers, body, state.config.max_body_bytes)
        .await
        .map_err(rejected)?;
    if batch.events.is_empty() || batch.events.len() > state.config.max_batch {
        return Err(rejected(ApiError::invalid(format!(
            "events: a batch holds 1 to {} events, got {}",
            state.config.max_batch,
            batch.events.len()
        ))));
    }
    state
        .limits
        .admit(&principal, batch.events.len() as u32, state.clock.now_ms())
        .map_err(rejected)?;
    let items = batch.events.iter().enumerate().map(|(index, raw)| {
        let state = &state;
        let principal = &principal;
        async move {
            let result = async {
                let item: EventIn = serde_json::from_str(raw.get())
                    .map_err(|e| ApiError::invalid(format!("events[{index}]: {e}")))?;
                let envelope = envelope(item, None, principal, state.clock.now_ms())?;
                write(state, &envelope).await
            }
            .await;
            match result {
                Ok(mut accepted) => {
                    accepted["index"] = json!(index);
                    accepted["status"] = json!(202);
                    (true, accepted)
                }
                Err(err) => {
                    let err = rejected(err);
                    let mut body = err.body();
                    body["index"] = json!(index);
                    body["status"] = json!(err.status.as_u16());
                    (false, body)
                }
            }
        }
    });
    let results = futures::future::join_all(items).await;
    let all_ok = results.iter().all(|(ok, _)| *ok);
    let status = if all_ok {
        StatusCode::ACCEPTED
    } else {
        StatusCode::MULTI_STATUS
    };
    let results: Vec<_> = results.into_iter().map(|(_, r)| r).collect();
    Ok((status, Json(json!({"results": results}))).into_response())
}
