//! Planning and starting a replay: the plan scans without writing anything (the dry run); a
//! run records itself in `replays.v1` and can be resumed after an interruption without
//! re-driving anything twice ([`crate::execute`] carries it out).

use crate::filter::{format_instant, ReplaySpec, Selection};
use crate::select::{Decision, Selector};
use crate::state::RunsView;
use crate::store::Store;
use crate::{Error, Result};
use herald_core::clock::SharedClock;
use herald_core::ids::ReplayId;
use herald_core::outcome::AttemptOutcome;
use herald_core::run::RunState;
use herald_kafka::audit::Actor;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::scan::{self, Ranges, Scanner};
use herald_kafka::{KafkaConfig, Producer};
use herald_proto::v1;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Slack around event time bounds: record timestamps and `accepted_at_ms` may differ a little.
const TIME_SLACK_MS: i64 = 60_000;
/// How often a run writes its progress record.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
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

    pub(crate) fn tier_topic(&self) -> String {
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
    pub(crate) async fn ranges(&self, spec: &ReplaySpec) -> Result<(String, Ranges)> {
        let topics = self.kafka.topics();
        let consumer = scan::reader(&self.kafka, "herald-replay-plan")?;
        // The scan starts at the first record stamped at or after `since` (less some slack
        // for events, whose record time and `accepted_at_ms` may differ) and ends at the high
        // watermark taken now; records are filtered by their own time. The end is not looked
        // up by time: tansu answers a lookup past the last record with offset 0, not "none".
        let (topic, since) = match &spec.selection {
            Selection::Dlq(f) => (topics.dlq(), f.range.since_ms),
            Selection::Events(f) => (
                topics.events().to_owned(),
                f.range.since_ms.map(|s| s - TIME_SLACK_MS),
            ),
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
    pub(crate) async fn delivered(&self, spec: &ReplaySpec) -> Result<HashSet<String>> {
        let Selection::Events(filter) = &spec.selection else {
            return Ok(HashSet::new());
        };
        if !filter.only_failed {
            return Ok(HashSet::new());
        }
        let topic = self.kafka.topics().attempts().to_owned();
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
        actor: &Actor,
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
            actor: actor.id.clone(),
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
                spec.tenant(),
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
        actor: &Actor,
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
                &run_tenant(&run),
                "replay.resumed",
                &run.id,
                serde_json::json!({"redriven_before": run.redriven}),
            )
            .await?;
        Ok(run)
    }
}

/// The tenant a run's spec is limited to (empty: every tenant, or an unreadable spec).
pub fn run_tenant(run: &v1::ReplayProgress) -> String {
    serde_json::from_str::<ReplaySpec>(&run.spec_json)
        .map(|spec| spec.tenant().to_owned())
        .unwrap_or_default()
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
