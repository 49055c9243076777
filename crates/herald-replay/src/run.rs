//! Planning and running a replay: the plan scans without writing anything (the dry run); a
//! run records itself in `replays.v1`, re-drives at the configured rate, checkpoints its
//! cursors, marks every re-driven dead letter, and can be resumed after an interruption
//! without re-driving anything twice.

use crate::filter::{format_instant, ReplaySpec, Selection};
use crate::rate::RateLimiter;
use crate::scan::{self, Ranges, Scanner};
use crate::select::{Decision, Selector};
use crate::state::RunsView;
use crate::store::Store;
use crate::{Error, Result};
use futures::FutureExt as _;
use herald_core::clock::SharedClock;
use herald_core::ids::ReplayId;
use herald_core::outcome::AttemptOutcome;
use herald_core::run::RunState;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::{KafkaConfig, Producer};
use herald_proto::{v1, Message};
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Slack around event time bounds: record timestamps and `accepted_at_ms` may differ a little.
const TIME_SLACK_MS: i64 = 60_000;
/// How often a run writes its progress record.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// Sample size of a plan.
const SAMPLE: usize = 10;

/// One delivery a plan would re-drive.
#[derive(Debug, Clone, Serialize)]
pub struct SampleItem {
    pub delivery_id: String,
    pub event_id: String,
    pub endpoint_id: String,
    pub event_type: String,
    /// Why it was parked (dead letters only).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
}

/// What a replay would do: the dry-run answer.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub kind: &'static str,
    pub source_topic: String,
    /// Records of the source topic in the scan range.
    pub scanned: u64,
    /// Deliveries that would be re-driven (after `max_count`).
    pub to_redrive: u64,
    /// Selected but left alone: already re-driven, or already delivered.
    pub skipped: u64,
    pub by_endpoint: BTreeMap<String, u64>,
    pub by_event_type: BTreeMap<String, u64>,
    pub sample: Vec<SampleItem>,
    #[serde(skip)]
    pub ranges: Ranges,
}

/// Everything a replay needs.
#[derive(Clone)]
pub struct Replayer {
    pub kafka: KafkaConfig,
    pub endpoints: EndpointsView,
    pub store: Store,
    /// The retry tier re-driven tasks are written to: the shortest one. The dispatcher's retry
    /// consumer delivers them as soon as it reads them (`due_at_ms` = now).
    pub tier: Duration,
}

impl Replayer {
    /// Assembles a replayer; `runs` must be a view of the replays topic.
    pub fn new(
        kafka: KafkaConfig,
        producer: Producer,
        endpoints: EndpointsView,
        runs: RunsView,
        tier: Duration,
        clock: SharedClock,
    ) -> Self {
        let store = Store {
            producer,
            topics: kafka.topics(),
            runs,
            clock,
        };
        Self {
            kafka,
            endpoints,
            store,
            tier,
        }
    }

    /// The runs view.
    pub fn runs(&self) -> &RunsView {
        &self.store.runs
    }

    fn tier_topic(&self) -> String {
        self.kafka.topics().retry(self.tier)
    }

    /// Checks the request against the live state: valid values, known endpoint.
    pub fn check(&self, spec: &ReplaySpec) -> Result<()> {
        spec.validate()?;
        if let Some(endpoint) = spec.endpoint() {
            if self.endpoints.get(endpoint).is_none() {
                return Err(Error::UnknownEndpoint(endpoint.to_string()));
            }
        }
        Ok(())
    }

    /// The scan range of the source topic for `spec`.
    async fn ranges(&self, spec: &ReplaySpec) -> Result<(String, Ranges)> {
        let topics = self.kafka.topics();
        let consumer = scan::reader(&self.kafka, "herald-replay-plan")?;
        // The scan starts at the first record stamped at or after `since` (less some slack
        // for events, whose record time and `accepted_at_ms` may differ) and ends at the high
        // watermark taken now; records are filtered by their own time. The end is not looked
        // up by time: tansu answers a lookup past the last record with offset 0, not "none".
        let (topic, since) = match &spec.selection {
            Selection::Dlq(f) => (topics.dlq(), f.range.since_ms),
            Selection::Events(f) => (topics.events(), f.range.since_ms.map(|s| s - TIME_SLACK_MS)),
        };
        let marks = scan::watermarks(&consumer, &topic).await?;
        let partitions: Vec<i32> = marks.keys().copied().collect();
        let mut ranges: Ranges = marks;
        if let Some(since) = since {
            for (p, start) in scan::offsets_for_time(&consumer, &topic, &partitions, since).await? {
                if let Some(range) = ranges.get_mut(&p) {
                    range.0 = start.unwrap_or(range.1).max(range.0);
                }
            }
        }
        tracing::debug!(%topic, ?ranges, "Replay scan range.");
        Ok((topic, ranges))
    }

    /// Deliveries that already succeeded, from the attempts topic (for `only_failed`).
    async fn delivered(&self, spec: &ReplaySpec) -> Result<HashSet<String>> {
        let Selection::Events(filter) = &spec.selection else {
            return Ok(HashSet::new());
        };
        if !filter.only_failed {
            return Ok(HashSet::new());
        }
        let topic = self.kafka.topics().attempts();
        let consumer = scan::reader(&self.kafka, "herald-replay-attempts")?;
        let mut ranges = scan::watermarks(&consumer, &topic).await?;
        if let Some(since) = filter.range.since_ms {
            let partitions: Vec<i32> = ranges.keys().copied().collect();
            let starts =
                scan::offsets_for_time(&consumer, &topic, &partitions, since - TIME_SLACK_MS)
                    .await?;
            for (p, start) in starts {
                if let Some(range) = ranges.get_mut(&p) {
                    range.0 = start.unwrap_or(range.1).max(range.0);
                }
            }
        }
        let mut scanner = Scanner::open(&self.kafka, &topic, &ranges)?;
        let mut delivered = HashSet::new();
        while let Some(record) = scanner.next().await? {
            if let Ok(attempt) =
                herald_proto::decode::<v1::AttemptRecord>("attempt", &record.payload)
            {
                if attempt.attempt_outcome() == Some(AttemptOutcome::Delivered)
                    && filter.range.contains(attempt.event_accepted_at_ms)
                {
                    delivered.insert(attempt.delivery_id);
                }
            }
        }
        Ok(delivered)
    }

    /// Scans what `spec` selects without writing anything: the dry run, and the numbers a
    /// confirmation prompt shows.
    pub async fn plan(&self, spec: &ReplaySpec) -> Result<Plan> {
        self.check(spec)?;
        let (source_topic, ranges) = self.ranges(spec).await?;
        let mut selector = Selector::new(
            spec.clone(),
            String::new(),
            self.endpoints.clone(),
            self.store.runs.clone(),
        );
        selector.delivered = self.delivered(spec).await?;
        let mut plan = Plan {
            kind: spec.kind(),
            source_topic: source_topic.clone(),
            scanned: 0,
            to_redrive: 0,
            skipped: 0,
            by_endpoint: BTreeMap::new(),
            by_event_type: BTreeMap::new(),
            sample: Vec::new(),
            ranges: ranges.clone(),
        };
        let mut scanner = Scanner::open(&self.kafka, &source_topic, &ranges)?;
        let now = self.store.clock.now_ms();
        let max = spec.max_count.unwrap_or(u64::MAX);
        while let Some(record) = scanner.next().await? {
            plan.scanned += 1;
            for decision in selector.decide(&record, now) {
                match decision {
                    Decision::Redrive { task, reason, .. } if plan.to_redrive < max => {
                        plan.to_redrive += 1;
                        let event = task.event.clone().unwrap_or_default();
                        *plan
                            .by_endpoint
                            .entry(task.endpoint_id.clone())
                            .or_default() += 1;
                        *plan
                            .by_event_type
                            .entry(event.event_type.clone())
                            .or_default() += 1;
                        if plan.sample.len() < SAMPLE {
                            plan.sample.push(SampleItem {
                                delivery_id: task.delivery_id.clone(),
                                event_id: event.id,
                                endpoint_id: task.endpoint_id.clone(),
                                event_type: event.event_type,
                                reason,
                            });
                        }
                    }
                    Decision::Redrive { .. } => {}
                    Decision::Mark { .. } | Decision::Recovered { .. } | Decision::Skip => {
                        plan.skipped += 1
                    }
                }
            }
        }
        Ok(plan)
    }

    /// Records a new run (state `running`) for `plan` and writes the `replay.started` audit
    /// record. Nothing is re-driven until [`Replayer::execute`].
    pub async fn create(
        &self,
        spec: &ReplaySpec,
        plan: &Plan,
        actor: &str,
        id: Option<ReplayId>,
    ) -> Result<v1::ReplayProgress> {
        let now = self.store.clock.now_ms();
        let id = id.unwrap_or_else(|| ReplayId::generate(now)).to_string();
        if self.store.runs.get(&id).is_some() {
            return Err(Error::Invalid(format!("replay id {id} is already taken")));
        }
        let consumer = scan::reader(&self.kafka, "herald-replay-tier")?;
        let tier_topic = self.tier_topic();
        let tier_marks = scan::watermarks(&consumer, &tier_topic)
            .await?
            .into_iter()
            .map(|(partition, (_, high))| v1::PartitionMark {
                partition,
                offset: high,
            })
            .collect();
        let run = v1::ReplayProgress {
            id: id.clone(),
            kind: spec.kind().to_owned(),
            actor: actor.to_owned(),
            spec_json: serde_json::to_string(spec).expect("spec serializes"),
            state: RunState::Running.as_str().into(),
            created_at_ms: now,
            updated_at_ms: now,
            source_topic: plan.source_topic.clone(),
            cursors: plan
                .ranges
                .iter()
                .map(|(p, (start, end))| v1::PartitionCursor {
                    partition: *p,
                    next_offset: *start,
                    end_offset: *end,
                    start_offset: *start,
                })
                .collect(),
            tier_topic,
            tier_marks,
            planned: plan.to_redrive,
            ..Default::default()
        };
        // One run at a time, across processes: refused here, before anything is written.
        self.store.lock(&id).await?;
        self.store.put_run(&run).await?;
        self.store
            .audit(
                actor,
                "replay.started",
                &id,
                serde_json::json!({"spec": spec, "planned": plan.to_redrive, "skipped": plan.skipped, "by_endpoint": plan.by_endpoint}),
            )
            .await?;
        tracing::info!(replay_id = %id, kind = spec.kind(), planned = plan.to_redrive, "Replay started.");
        Ok(run)
    }

    /// A run that may be resumed: it exists and is still `running` (its process stopped).
    pub fn resumable(&self, id: &str) -> Result<v1::ReplayProgress> {
        let run = self
            .store
            .runs
            .get(id)
            .ok_or_else(|| Error::UnknownRun(id.to_owned()))?;
        if !run.run_state().is_some_and(RunState::is_resumable) {
            return Err(Error::NotResumable {
                id: id.to_owned(),
                state: run.state,
            });
        }
        Ok(run)
    }

    /// The run a repeated request with client-chosen `id` refers to: `None` when the id is
    /// free, the run when it was made from the same `spec`, `Error::IdTaken` otherwise.
    pub fn existing(&self, id: &ReplayId, spec: &ReplaySpec) -> Result<Option<v1::ReplayProgress>> {
        let Some(run) = self.store.runs.get(id.as_str()) else {
            return Ok(None);
        };
        if run.spec_json != serde_json::to_string(spec).unwrap_or_default() {
            return Err(Error::IdTaken(run.id));
        }
        Ok(Some(run))
    }

    /// Takes an interrupted run up again: checks it is resumable, applies a new rate if
    /// given, and writes the `replay.resumed` audit record (refused without it). Then
    /// [`Replayer::execute`] it.
    pub async fn resume(
        &self,
        id: &ReplayId,
        actor: &str,
        rate_per_second: Option<f64>,
    ) -> Result<v1::ReplayProgress> {
        let mut run = self.resumable(id.as_str())?;
        if let Some(rate) = rate_per_second {
            let mut spec: ReplaySpec = serde_json::from_str(&run.spec_json).map_err(|e| {
                Error::Failed(format!("run {} has an unreadable spec: {e}", run.id))
            })?;
            spec.rate_per_second = Some(rate);
            spec.validate()?;
            run.spec_json = serde_json::to_string(&spec).unwrap_or_default();
        }
        self.store
            .audit(
                actor,
                "replay.resumed",
                &run.id,
                serde_json::json!({"redriven_before": run.redriven}),
            )
            .await?;
        Ok(run)
    }

    /// Deliveries this run already wrote to the retry tier (from its creation on): after an
    /// interruption these count as re-driven even where the marker or cursor did not make it.
    async fn reconcile(&self, run: &v1::ReplayProgress) -> Result<HashSet<String>> {
        let consumer = scan::reader(&self.kafka, "herald-replay-reconcile")?;
        let marks = scan::watermarks(&consumer, &run.tier_topic).await?;
        let ranges: Ranges = marks
            .into_iter()
            .map(|(p, (low, high))| {
                let from = run
                    .tier_marks
                    .iter()
                    .find(|m| m.partition == p)
                    .map_or(low, |m| m.offset);
                (p, (from.max(low), high))
            })
            .collect();
        let mut scanner = Scanner::open(&self.kafka, &run.tier_topic, &ranges)?;
        let mut done = HashSet::new();
        while let Some(record) = scanner.next().await? {
            if let Ok(task) = herald_proto::decode::<v1::DeliveryTask>("task", &record.payload) {
                if task.replay_id == run.id {
                    done.insert(task.delivery_id);
                }
            }
        }
        Ok(done)
    }

    /// Runs (or resumes) `run` until it finished, failed, or `shutdown`. `report` sees the
    /// progress after every record. Returns the final state.
    pub async fn execute(
        &self,
        mut run: v1::ReplayProgress,
        report: &(dyn Fn(&v1::ReplayProgress) + Send + Sync),
        shutdown: &CancellationToken,
    ) -> Result<v1::ReplayProgress> {
        // Taken by `create` already; a resumed run takes it (back) here.
        self.store.lock(&run.id).await?;
        let renewing = CancellationToken::new();
        self.store.keep_lock(&run.id, renewing.clone());
        // Renewal stops however the run ends, a panic included, and the lock is released:
        // a failed run must never keep every later run out.
        let renewal = renewing.drop_guard();
        let result = std::panic::AssertUnwindSafe(self.execute_inner(&mut run, report, shutdown))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(Error::Failed(panic_text(&panic))));
        drop(renewal);
        if let Err(err) = self.store.unlock(&run.id).await {
            tracing::warn!(replay_id = %run.id, error = %err, "Replay lock not released; it expires within a minute.");
        }
        match &result {
            Ok(()) => {
                run.set_run_state(RunState::Finished);
                run.finished_at_ms = self.store.clock.now_ms();
                self.checkpoint(&mut run).await?;
                metrics::gauge!("herald_replay_progress_ratio", "replay_id" => run.id.clone())
                    .set(1.0);
                self.store
                    .audit(
                        &run.actor,
                        "replay.finished",
                        &run.id,
                        serde_json::json!({"redriven": run.redriven, "skipped": run.skipped, "scanned": run.scanned}),
                    )
                    .await?;
                tracing::info!(replay_id = %run.id, redriven = run.redriven, skipped = run.skipped, "Replay finished.");
                report(&run);
                Ok(run)
            }
            Err(err) if err.is_bad_input() => {
                run.set_run_state(RunState::Failed);
                run.error = err.to_string();
                let _ = self.checkpoint(&mut run).await;
                Err(result.unwrap_err())
            }
            Err(err) => {
                // Kafka trouble or shutdown: keep `running` with the cursors so far: resumable.
                tracing::warn!(replay_id = %run.id, error = %err, "Replay stopped; resumable.");
                let _ = self.checkpoint(&mut run).await;
                Err(result.unwrap_err())
            }
        }
    }

    async fn checkpoint(&self, run: &mut v1::ReplayProgress) -> Result<()> {
        run.updated_at_ms = self.store.clock.now_ms().max(run.updated_at_ms + 1);
        self.store.put_run(run).await
    }

    async fn execute_inner(
        &self,
        run: &mut v1::ReplayProgress,
        report: &(dyn Fn(&v1::ReplayProgress) + Send + Sync),
        shutdown: &CancellationToken,
    ) -> Result<()> {
        let spec: ReplaySpec = serde_json::from_str(&run.spec_json)
            .map_err(|e| Error::Invalid(format!("run {} has an unreadable spec: {e}", run.id)))?;
        let mut selector = Selector::new(
            spec.clone(),
            run.id.clone(),
            self.endpoints.clone(),
            self.store.runs.clone(),
        );
        selector.recovered = self.reconcile(run).await?;
        selector.delivered = self.delivered(&spec).await?;
        let ranges: Ranges = run
            .cursors
            .iter()
            .map(|c| (c.partition, (c.next_offset, c.end_offset)))
            .collect();
        let mut scanner = Scanner::open(&self.kafka, &run.source_topic, &ranges)?;
        let mut limiter = RateLimiter::new(spec.rate_per_second);
        let max = spec.max_count.unwrap_or(u64::MAX);
        let mut last_checkpoint = Instant::now();
        let total = run.planned.min(max).max(1) as f64;
        loop {
            let record = tokio::select! {
                _ = shutdown.cancelled() => return Err(Error::Interrupted),
                record = scanner.next() => record?,
            };
            let Some(record) = record else {
                return Ok(());
            };
            for decision in selector.decide(&record, self.store.clock.now_ms()) {
                match decision {
                    Decision::Redrive { .. } if run.redriven >= max => return Ok(()),
                    Decision::Redrive { task, marker, .. } => {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Err(Error::Interrupted),
                            _ = limiter.acquire() => {}
                        }
                        self.send_task(run, &task).await?;
                        if let Some((partition, offset)) = marker {
                            self.mark(run, partition, offset, &task.delivery_id).await?;
                        }
                        run.redriven += 1;
                        metrics::counter!("herald_replay_redriven_total", "kind" => spec.kind())
                            .increment(1);
                    }
                    Decision::Mark {
                        marker: (partition, offset),
                        delivery_id,
                    } => {
                        self.mark(run, partition, offset, &delivery_id).await?;
                        run.skipped += 1;
                    }
                    Decision::Recovered {
                        marker,
                        delivery_id,
                    } => {
                        if let Some((partition, offset)) = marker {
                            self.mark(run, partition, offset, &delivery_id).await?;
                        }
                        run.redriven += 1;
                    }
                    Decision::Skip => run.skipped += 1,
                }
            }
            run.scanned += 1;
            if let Some(cursor) = run
                .cursors
                .iter_mut()
                .find(|c| c.partition == record.partition)
            {
                cursor.next_offset = record.offset + 1;
            }
            metrics::gauge!("herald_replay_progress_ratio", "replay_id" => run.id.clone())
                .set((run.redriven as f64 / total).min(1.0));
            if last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
                self.checkpoint(run).await?;
                last_checkpoint = Instant::now();
            }
            report(run);
        }
    }

    async fn send_task(&self, run: &v1::ReplayProgress, task: &v1::DeliveryTask) -> Result<()> {
        self.store
            .producer
            .send(
                &run.tier_topic,
                task.endpoint_id.as_bytes(),
                &task.encode_to_vec(),
            )
            .await?;
        tracing::debug!(replay_id = %run.id, delivery_id = %task.delivery_id, "Re-driven.");
        Ok(())
    }

    async fn mark(
        &self,
        run: &v1::ReplayProgress,
        partition: i32,
        offset: i64,
        delivery_id: &str,
    ) -> Result<()> {
        let marker = v1::RedriveMarker {
            replay_id: run.id.clone(),
            delivery_id: delivery_id.to_owned(),
            at_ms: self.store.clock.now_ms(),
        };
        self.store.put_marker(partition, offset, &marker).await
    }
}

/// A one-line summary of a run's state, for logs and the CLI.
pub fn describe(run: &v1::ReplayProgress) -> String {
    let mut text = format!(
        "{} ({}) {}: {} re-driven, {} skipped, {} records scanned, planned {}; started {} by {}",
        run.id,
        run.kind,
        run.state,
        run.redriven,
        run.skipped,
        run.scanned,
        run.planned,
        format_instant(run.created_at_ms),
        run.actor
    );
    if run.finished_at_ms > 0 {
        text.push_str(&format!(
            ", finished {}",
            format_instant(run.finished_at_ms)
        ));
    }
    if !run.error.is_empty() {
        text.push_str(&format!(", error: {}", run.error));
    }
    text
}

/// Share of the scan range read so far, 0..1 (a run's progress through its source topic).
pub fn scan_ratio(run: &v1::ReplayProgress) -> f64 {
    let (mut done, mut total) = (0i64, 0i64);
    for c in &run.cursors {
        total += (c.end_offset - c.start_offset).max(0);
        done += (c.next_offset.min(c.end_offset) - c.start_offset).max(0);
    }
    if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    }
}

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}
