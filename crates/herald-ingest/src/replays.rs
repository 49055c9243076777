//! Replay and dead-letter routes of the admin API:
//!
//! - `POST /v1/replays` (`replay:run`): plan (`"dry_run": true`, 200 with counts and a sample)
//!   or start a run in the background (202 with its id). A repeated request with the same
//!   `"id"` returns the existing run instead of starting another.
//! - `GET /v1/replays`, `GET /v1/replays/{id}` (`replay:run`): runs and their progress.
//! - `POST /v1/replays/{id}/resume` (`replay:run`): resume an interrupted run.
//! - `GET /v1/dead-letters` (`deliveries:read`): filters, status, cursor pagination.
//! - `GET /v1/dead-letters/{delivery_id}` (`deliveries:read`): every dead letter of a delivery.
//!
//! The routes need the Kafka settings and the shortest retry tier, which the ingest state does
//! not carry: the binary installs them once at start with [`configure`]. Without it the routes
//! answer 503 `replays_not_configured`.

use crate::auth;
use crate::body;
use crate::error::ApiError;
use crate::service::IngestState;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use herald_core::apikey::Scope;
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use herald_replay::browse::{self, Status};
use herald_replay::filter::{format_instant, parse_endpoint, parse_replay_id};
use herald_replay::rate::parse_rate;
use herald_replay::{
    run, DlqFilter, EventsFilter, ReplaySpec, Replayer, RunsView, Selection, TimeRange,
};
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What the replay routes need beyond the rest of [`IngestState`]: the Kafka settings, the
/// shortest retry tier (where re-driven tasks go), and the replay runs view (started on first
/// use).
pub struct ReplayContext {
    kafka: KafkaConfig,
    tier: Duration,
    runs: tokio::sync::OnceCell<RunsView>,
    /// One run at a time in this process: overlapping runs would race on the same markers.
    running: Arc<tokio::sync::Mutex<()>>,
    views: TaskTracker,
    shutdown: CancellationToken,
}

impl ReplayContext {
    /// The context for `kafka`, re-driving into `shortest_tier`; its runs and views stop
    /// with `shutdown`.
    pub fn new(
        kafka: KafkaConfig,
        shortest_tier: Duration,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            kafka,
            tier: shortest_tier,
            runs: tokio::sync::OnceCell::new(),
            running: Arc::default(),
            views: TaskTracker::new(),
            shutdown,
        })
    }
}

/// The routes, to merge into the router.
pub fn routes() -> Router<IngestState> {
    Router::new()
        .route("/v1/replays", post(create).get(list))
        .route("/v1/replays/{id}", get(show))
        .route("/v1/replays/{id}/resume", post(resume))
        .route("/v1/dead-letters", get(dead_letters))
        .route("/v1/dead-letters/{delivery_id}", get(dead_letter))
}

fn api_error(err: herald_replay::Error) -> ApiError {
    use herald_replay::Error as E;
    match err {
        E::Invalid(message) => ApiError::invalid(message),
        E::UnknownEndpoint(_) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "unknown_endpoint",
            err.to_string(),
        ),
        E::UnknownRun(_) => ApiError::not_found(err.to_string()),
        E::Busy { .. } => ApiError::new(StatusCode::CONFLICT, "replay_running", err.to_string()),
        E::NotResumable { .. } => {
            ApiError::new(StatusCode::CONFLICT, "not_resumable", err.to_string())
        }
        E::Kafka(inner) => inner.into(),
        E::Failed(_) => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "replay_failed",
            err.to_string(),
        ),
        other => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "broker_unavailable",
            other.to_string(),
        ),
    }
}

async fn context(state: &IngestState) -> Result<(Arc<ReplayContext>, RunsView), ApiError> {
    let context = state.replays.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "replays_not_configured",
            "this process was started without replay support",
        )
    })?;
    let runs = context
        .runs
        .get_or_try_init(|| async {
            let runs = RunsView::spawn(&context.kafka, &context.views, context.shutdown.clone());
            runs.wait_ready(Duration::from_secs(30)).await.map(|_| runs)
        })
        .await
        .map_err(api_error)?
        .clone();
    Ok((context, runs))
}

async fn replayer(state: &IngestState) -> Result<(Arc<ReplayContext>, Replayer), ApiError> {
    let (context, runs) = context(state).await?;
    let replayer = Replayer::new(
        context.kafka.clone(),
        state.producer.clone(),
        state.endpoints.clone(),
        runs,
        context.tier,
    );
    Ok((context, replayer))
}

/// The body of `POST /v1/replays`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayIn {
    /// `dlq` or `events`.
    kind: String,
    endpoint: Option<String>,
    event_type: Option<String>,
    tenant: Option<String>,
    /// DLQ only.
    reason: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// Events only.
    #[serde(default)]
    only_failed: bool,
    /// `50/s`, `600/m`.
    rate: Option<String>,
    max_count: Option<u64>,
    #[serde(default)]
    dry_run: bool,
    /// Client-chosen run id (`rpl_…`): makes the request idempotent.
    id: Option<String>,
}

fn spec_of(input: &ReplayIn) -> Result<ReplaySpec, herald_replay::Error> {
    let endpoint = input.endpoint.as_deref().map(parse_endpoint).transpose()?;
    let range = TimeRange::parse(
        input.since.as_deref(),
        input.until.as_deref(),
        herald_kafka::now_ms(),
    )?;
    let selection = match input.kind.as_str() {
        "dlq" => {
            if input.only_failed {
                return Err(herald_replay::Error::Invalid(
                    "only_failed: applies to events replays only".into(),
                ));
            }
            Selection::Dlq(DlqFilter {
                endpoint,
                event_type: input.event_type.clone(),
                tenant: input.tenant.clone(),
                reason: input.reason.clone(),
                range,
            })
        }
        "events" => {
            if input.reason.is_some() {
                return Err(herald_replay::Error::Invalid(
                    "reason: applies to dlq replays only".into(),
                ));
            }
            Selection::Events(EventsFilter {
                endpoint,
                event_type: input.event_type.clone(),
                tenant: input.tenant.clone(),
                range,
                only_failed: input.only_failed,
            })
        }
        other => {
            return Err(herald_replay::Error::Invalid(format!(
                "kind: `{other}` is neither `dlq` nor `events`"
            )))
        }
    };
    let spec = ReplaySpec {
        selection,
        rate_per_second: input.rate.as_deref().map(parse_rate).transpose()?,
        max_count: input.max_count,
    };
    spec.validate()?;
    Ok(spec)
}

/// A run as JSON, with its progress.
pub fn run_json(run: &v1::ReplayProgress) -> Value {
    let total = run.planned.max(1) as f64;
    json!({
        "id": run.id,
        "kind": run.kind,
        "state": run.state,
        "actor": run.actor,
        "spec": serde_json::from_str::<Value>(&run.spec_json).unwrap_or(Value::Null),
        "planned": run.planned,
        "redriven": run.redriven,
        "skipped": run.skipped,
        "scanned": run.scanned,
        "progress": if run.state == "finished" { 1.0 } else { (run.redriven as f64 / total).min(1.0) },
        "scan_progress": run::scan_ratio(run),
        "created_at": format_instant(run.created_at_ms),
        "updated_at": format_instant(run.updated_at_ms),
        "finished_at": (run.finished_at_ms > 0).then(|| format_instant(run.finished_at_ms)),
        "error": (!run.error.is_empty()).then(|| run.error.clone()),
    })
}

fn spawn_run(context: Arc<ReplayContext>, replayer: Replayer, run: v1::ReplayProgress) {
    let lock = context.running.clone();
    let shutdown = context.shutdown.clone();
    tokio::spawn(async move {
        let _only_one = lock.lock().await;
        let id = run.id.clone();
        if let Err(err) = replayer.execute(run, &|_| {}, &shutdown).await {
            tracing::error!(replay_id = %id, error = %err, "Replay stopped before the end; resume it.");
        }
    });
}

/// `POST /v1/replays`.
async fn create(
    State(state): State<IngestState>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = auth::require(&state, &headers, Scope::ReplayRun)?;
    let input: ReplayIn = body::json(&headers, body, state.config.max_body_bytes).await?;
    let spec = spec_of(&input).map_err(api_error)?;
    let id = input
        .id
        .as_deref()
        .map(parse_replay_id)
        .transpose()
        .map_err(api_error)?;
    let (context, replayer) = replayer(&state).await?;
    if let Some(existing) = id.as_ref().and_then(|id| replayer.runs().get(id.as_str())) {
        if existing.spec_json != serde_json::to_string(&spec).unwrap_or_default() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "id_taken",
                format!(
                    "replay id {} is taken by a run with other filters",
                    existing.id
                ),
            ));
        }
        return Ok((StatusCode::OK, Json(run_json(&existing))));
    }
    let plan = replayer.plan(&spec).await.map_err(api_error)?;
    if input.dry_run {
        return Ok((StatusCode::OK, Json(json!({"dry_run": true, "plan": plan}))));
    }
    let run = replayer
        .create(&spec, &plan, principal.key_id.as_str(), id)
        .await
        .map_err(api_error)?;
    let out = run_json(&run);
    spawn_run(context, replayer, run);
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// `GET /v1/replays`.
async fn list(
    State(state): State<IngestState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    auth::require(&state, &headers, Scope::ReplayRun)?;
    let (_, runs) = context(&state).await?;
    let data: Vec<Value> = runs.list().iter().map(run_json).collect();
    Ok(Json(json!({"data": data})))
}

/// `GET /v1/replays/{id}`.
async fn show(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth::require(&state, &headers, Scope::ReplayRun)?;
    let id = parse_replay_id(&id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))?;
    let (_, runs) = context(&state).await?;
    let run = runs
        .get(id.as_str())
        .ok_or_else(|| ApiError::not_found(format!("no replay run {id}")))?;
    Ok(Json(run_json(&run)))
}

/// `POST /v1/replays/{id}/resume`.
async fn resume(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let principal = auth::require(&state, &headers, Scope::ReplayRun)?;
    let id = parse_replay_id(&id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))?;
    let (context, replayer) = replayer(&state).await?;
    if context.running.try_lock().is_err() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "replay_in_progress",
            "a replay is running in this process; resume once it finished",
        ));
    }
    let run = replayer.resumable(id.as_str()).map_err(api_error)?;
    replayer
        .store
        .audit(
            principal.key_id.as_str(),
            "replay.resumed",
            &run.id,
            json!({"redriven_before": run.redriven}),
        )
        .await
        .map_err(api_error)?;
    let out = run_json(&run);
    spawn_run(context, replayer, run);
    Ok((StatusCode::ACCEPTED, Json(out)))
}

/// Query of `GET /v1/dead-letters`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeadLettersQuery {
    endpoint: Option<String>,
    event_type: Option<String>,
    tenant: Option<String>,
    reason: Option<String>,
    since: Option<String>,
    until: Option<String>,
    /// `pending` (default), `redriven`, `all`.
    status: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// `GET /v1/dead-letters`.
async fn dead_letters(
    State(state): State<IngestState>,
    headers: HeaderMap,
    query: Result<Query<DeadLettersQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    auth::require(&state, &headers, Scope::DeliveriesRead)?;
    let Query(query) = query.map_err(|e| ApiError::invalid(e.body_text()))?;
    let filter = DlqFilter {
        endpoint: query
            .endpoint
            .as_deref()
            .map(parse_endpoint)
            .transpose()
            .map_err(api_error)?,
        event_type: query.event_type,
        tenant: query.tenant,
        reason: query.reason,
        range: TimeRange::parse(
            query.since.as_deref(),
            query.until.as_deref(),
            herald_kafka::now_ms(),
        )
        .map_err(api_error)?,
    };
    filter.validate().map_err(api_error)?;
    let status = Status::parse(query.status.as_deref().unwrap_or("pending")).map_err(api_error)?;
    let (context, runs) = context(&state).await?;
    let (page, stats) = browse::list(
        &context.kafka,
        &runs,
        &filter,
        status,
        query.limit.unwrap_or(50),
        query.cursor.as_deref(),
    )
    .await
    .map_err(api_error)?;
    let data: Vec<Value> = page.entries.iter().map(|e| e.to_json(false)).collect();
    Ok(Json(json!({
        "data": data,
        "next_cursor": page.next_cursor,
        "total": page.total,
        "stats": stats,
    })))
}

/// `GET /v1/dead-letters/{delivery_id}`.
async fn dead_letter(
    State(state): State<IngestState>,
    headers: HeaderMap,
    Path(delivery_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    auth::require(&state, &headers, Scope::DeliveriesRead)?;
    herald_core::ids::DeliveryId::parse(&delivery_id)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_id", e.to_string()))?;
    let (context, runs) = context(&state).await?;
    let found: Vec<Value> = browse::find(&context.kafka, &runs, &delivery_id)
        .await
        .map_err(api_error)?
        .iter()
        .map(|e| e.to_json(true))
        .collect();
    if found.is_empty() {
        return Err(ApiError::not_found(format!(
            "no dead letter of delivery {delivery_id}"
        )));
    }
    Ok(Json(json!({"data": found})))
}
