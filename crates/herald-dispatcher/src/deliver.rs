//! One delivery step, shared by the events consumer and the retry consumer: look up the
//! endpoint, respect its concurrency limit, attempt, classify, log the attempt, route the
//! outcome. Returns only once everything it decided is durable.

use crate::delivered::Delivered;
use crate::health::HealthBook;
use crate::pacing::{Pace, Pacing};
use crate::route::{Abandoned, OutcomeWriter};
use crate::slots::{EndpointLimits, EndpointSlots};
use crate::transitions::EndpointStates;
use crate::transport::{AttemptOutput, Outbound};
use herald_core::clock::SharedClock;
use herald_core::ids::{DeliveryId, EndpointId};
use herald_core::outcome::{classify, DeadReason, Outcome};
use herald_core::retry::RetryPolicy;
use herald_kafka::endpoints::{EndpointsView, Entry};
use herald_proto::v1;
use std::sync::Mutex;

/// The most attempt summaries a task carries (older ones stay in the attempts topic).
const MAX_SUMMARIES: usize = 32;
/// How long a delivery waits for the endpoints view to catch up before it goes on with
/// what the view has (the broker is unreachable or the view is stuck).
const VIEW_SYNC_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);
/// First attempts remembered to drop duplicate events (idempotent re-sends, redelivery).
const DEDUPE_CAPACITY: usize = 200_000;

/// What a task needs before its attempt.
enum Lookup {
    /// Already delivered (per the attempts log): nothing to do.
    Skip,
    /// Cannot be attempted: park it for this reason.
    Park(DeadReason),
    /// Attempt it to this endpoint.
    Attempt(EndpointId, Entry),
}

/// What a deliverer is made of.
pub struct Parts {
    pub writer: OutcomeWriter,
    pub endpoints: EndpointsView,
    pub outbound: Outbound,
    pub policy: RetryPolicy,
    pub per_endpoint: EndpointLimits,
    pub delivered: Delivered,
    pub health: HealthBook,
    /// Where "now" comes from: due times, signatures, health, records.
    pub clock: SharedClock,
}

/// Everything a delivery step needs.
pub struct Deliverer {
    pub writer: OutcomeWriter,
    pub endpoints: EndpointsView,
    pub outbound: Outbound,
    pub policy: RetryPolicy,
    pub slots: EndpointSlots,
    /// Per-endpoint rate limits.
    pub pacing: Pacing,
    pub delivered: Delivered,
    /// Endpoint health and its durable transitions.
    pub states: EndpointStates,
    pub clock: SharedClock,
    claimed: Mutex<crate::dedupe::Claims>,
    hot: crate::metrics::Hot,
}

impl Deliverer {
    /// Assembles a deliverer.
    pub fn new(parts: Parts) -> Self {
        Self {
            states: EndpointStates::new(
                parts.health,
                parts.writer.clone(),
                parts.endpoints.clone(),
                parts.clock.clone(),
            ),
            writer: parts.writer,
            endpoints: parts.endpoints,
            outbound: parts.outbound,
            policy: parts.policy,
            slots: EndpointSlots::new(parts.per_endpoint),
            pacing: Pacing::new(parts.per_endpoint.permit_wait),
            delivered: parts.delivered,
            clock: parts.clock,
            claimed: Mutex::new(crate::dedupe::Claims::with_capacity(DEDUPE_CAPACITY)),
            hot: crate::metrics::Hot::register(),
        }
    }

    /// A fresh task for the first attempt of `event` to `endpoint_id`.
    pub fn first_task(event: &v1::EventEnvelope, endpoint_id: &EndpointId) -> v1::DeliveryTask {
        let event_id = herald_core::ids::EventId::parse(&event.id).ok();
        let delivery_id = event_id
            .map(|e| String::from(DeliveryId::for_delivery(&e, endpoint_id)))
            .unwrap_or_default();
        v1::DeliveryTask {
            event: Some(event.clone()),
            endpoint_id: endpoint_id.as_str().to_owned(),
            delivery_id,
            next_attempt: 1,
            due_at_ms: 0,
            ..Default::default()
        }
    }

    /// Waits until the endpoints view holds every change acknowledged before `at_ms`, so an
    /// endpoint created (or re-subscribed) just before an event was accepted is not missed.
    /// When the broker cannot confirm it within the patience the view is used as it is (and
    /// counted); when the service is stopping and the view's syncs halted, the work is
    /// abandoned instead (its offset is not stored: it is done after the restart).
    pub async fn endpoints_synced(&self, at_ms: i64) -> Result<(), Abandoned> {
        let view = self.endpoints.view();
        if view.wait_synced(at_ms, VIEW_SYNC_PATIENCE).await {
            return Ok(());
        }
        if view.syncs_halted() {
            return Err(Abandoned);
        }
        metrics::counter!("herald_endpoints_view_stale_total").increment(1);
        tracing::warn!(
            waited_s = VIEW_SYNC_PATIENCE.as_secs(),
            "Endpoints view not confirmed current; using it as it is."
        );
        Ok(())
    }

    /// The endpoint of a task; a miss is double-checked against a synced view, so a delivery
    /// is never parked as "endpoint deleted" only because this view had not read it yet.
    async fn endpoint(
        &self,
        id: &EndpointId,
    ) -> Result<Option<herald_kafka::endpoints::Entry>, Abandoned> {
        if let Some(entry) = self.endpoints.get(id) {
            return Ok(Some(entry));
        }
        self.endpoints_synced(herald_kafka::now_ms()).await?;
        Ok(self.endpoints.get(id))
    }

    /// Claims the delivery of a task fresh from the events topic. False when this process
    /// already started that delivery: the event is a duplicate (the same id twice in the
    /// events topic) and the first copy owns the delivery.
    pub fn claim(&self, task: &v1::DeliveryTask) -> bool {
        let fresh = self
            .claimed
            .lock()
            .expect("claims lock")
            .claim(&task.delivery_id);
        if !fresh {
            metrics::counter!("herald_deliveries_deduplicated_total", "source" => "in_process")
                .increment(1);
            tracing::debug!(delivery_id = %task.delivery_id, "Duplicate event delivery dropped.");
        }
        fresh
    }

    /// Runs the next attempt of `task` and makes its outcome durable: lookup → attempt →
    /// classify → record.
    pub async fn step(&self, mut task: v1::DeliveryTask) -> Result<(), Abandoned> {
        let (endpoint_id, entry) = match self.lookup(&task).await? {
            Lookup::Skip => return Ok(()),
            Lookup::Park(reason) => return self.dead_unattempted(task, reason).await,
            Lookup::Attempt(id, entry) => (id, entry),
        };
        if let Some(rate) = entry.endpoint.rate_limit {
            let reserved = Some(std::mem::take(&mut task.paced_turn_ms)).filter(|t| *t != 0);
            let pace = self
                .pacing
                .pace(&endpoint_id, rate, reserved, self.clock.now_ms());
            if pace != Pace::Go {
                metrics::counter!("herald_deliveries_throttled_total", "endpoint_id" => endpoint_id.to_string())
                    .increment(1);
            }
            match pace {
                Pace::Go => {}
                Pace::Wait(wait) => tokio::time::sleep(wait).await,
                Pace::Later(turn) => return self.wait_turn(task, turn).await,
            }
        }
        let healthy = self.states.health.is_healthy(&endpoint_id);
        let Some(slot) = self.slots.acquire(&endpoint_id, healthy).await else {
            return self.defer(task).await;
        };
        let output = self.attempt(&entry, event_of(&task)).await;
        // The endpoint's slot covers the attempt only, not the bookkeeping after it.
        drop(slot);
        let attempt = task.next_attempt.max(1);
        task.deferrals = 0;
        let outcome = classify(&output.result, attempt, &self.policy, rand::random::<f64>());
        self.record(task, entry, output, attempt, outcome).await
    }

    /// What to do with `task` before any attempt: skip it (already delivered), park it (its
    /// endpoint is gone or disabled), or attempt it.
    async fn lookup(&self, task: &v1::DeliveryTask) -> Result<Lookup, Abandoned> {
        if task.replay_id.is_empty() && self.delivered.contains(&task.delivery_id) {
            // The attempts log shows this delivery succeeded (re-read after a crash).
            metrics::counter!("herald_deliveries_deduplicated_total", "source" => "attempts_log")
                .increment(1);
            tracing::debug!(delivery_id = %task.delivery_id, "Already delivered; skipped.");
            return Ok(Lookup::Skip);
        }
        let Ok(endpoint_id) = EndpointId::parse(&task.endpoint_id) else {
            return Ok(Lookup::Park(DeadReason::EndpointDeleted));
        };
        Ok(match self.endpoint(&endpoint_id).await? {
            None => Lookup::Park(DeadReason::EndpointDeleted),
            Some(entry) if !entry.endpoint.enabled => Lookup::Park(DeadReason::EndpointDisabled),
            Some(entry) => Lookup::Attempt(endpoint_id, entry),
        })
    }

    /// The endpoint is at its concurrency limit and failing, stalled or busy for too long:
    /// the task waits in a tier instead of holding a slot, one tier longer for each deferral
    /// in a row (see `RetryPolicy::deferral_tier`). No attempt is spent.
    async fn defer(&self, mut task: v1::DeliveryTask) -> Result<(), Abandoned> {
        let tier = self.policy.tiers()[self.policy.deferral_tier(task.deferrals)];
        task.deferrals = task.deferrals.saturating_add(1);
        task.due_at_ms = self.clock.now_ms() + tier.as_millis() as i64;
        metrics::counter!("herald_deliveries_deferred_total").increment(1);
        self.writer.retry(tier, &task).await
    }

    /// The endpoint's rate limit puts `task`'s turn at `turn`, too far ahead to wait in
    /// memory: it keeps the turn and waits in the retry tier closest to the wait. No attempt
    /// is spent.
    async fn wait_turn(&self, mut task: v1::DeliveryTask, turn: i64) -> Result<(), Abandoned> {
        let wait = std::time::Duration::from_millis((turn - self.clock.now_ms()).max(0) as u64);
        let tier = self.policy.tiers()[self.policy.tier_for(wait)];
        task.paced_turn_ms = turn;
        task.due_at_ms = turn;
        self.writer.retry(tier, &task).await
    }

    /// One signed attempt of `event` to `entry` (the request shares the event's payload).
    async fn attempt(&self, entry: &Entry, event: &v1::EventEnvelope) -> AttemptOutput {
        let payload = crate::payload::body(
            entry.endpoint.payload_format,
            &event.event_type,
            event.accepted_at_ms,
            event.payload.clone(),
        );
        self.hot.in_flight.increment(1.0);
        let output = self
            .outbound
            .attempt(&entry.endpoint, &event.id, payload, self.clock.now_ms())
            .await;
        self.hot.in_flight.decrement(1.0);
        self.hot
            .attempt_seconds
            .record(output.latency.as_secs_f64());
        output
    }

    /// Makes the attempt durable: the attempts log, the endpoint's health, the task's
    /// history, then the outcome's destination.
    async fn record(
        &self,
        mut task: v1::DeliveryTask,
        entry: Entry,
        output: AttemptOutput,
        attempt: u32,
        outcome: Outcome,
    ) -> Result<(), Abandoned> {
        let summary = summarize(&output, attempt);
        let success = output.result.is_success();
        if output.status == 429 {
            metrics::counter!("herald_receiver_throttled_total", "endpoint_id" => task.endpoint_id.clone())
                .increment(1);
        }
        if !success {
            tracing::debug!(event_id = %event_of(&task).id, endpoint_id = %task.endpoint_id, attempt, class = output.result.class(), status = output.status, error = %output.error, "Attempt failed.");
        }
        self.writer
            .attempt(&attempt_record(&task, &summary, &outcome, output.excerpt))
            .await?;
        // The endpoint as the view has it now (it may have changed during the attempt).
        let current = self.endpoints.get(&entry.endpoint.id).unwrap_or(entry);
        let transition = self.states.health.record(
            &current,
            success,
            output.result.class(),
            &output.error,
            self.clock.now_ms(),
        );
        self.states
            .on_transition(&current.endpoint.id, transition, &output.error)
            .await?;
        if !success {
            task.first_failure.get_or_insert_with(|| summary.clone());
            task.last_failure = Some(summary.clone());
        }
        task.attempts.push(summary);
        if task.attempts.len() > MAX_SUMMARIES {
            task.attempts.remove(0);
        }
        self.route(task, outcome).await
    }

    async fn route(&self, mut task: v1::DeliveryTask, outcome: Outcome) -> Result<(), Abandoned> {
        match outcome {
            Outcome::Delivered => {
                let event = event_of(&task);
                self.delivered.insert(&task.delivery_id);
                self.hot.delivered.increment(1);
                let e2e = (self.clock.now_ms() - event.accepted_at_ms).max(0) as f64 / 1_000.0;
                self.hot.e2e_seconds.record(e2e);
                tracing::debug!(event_id = %event.id, endpoint_id = %task.endpoint_id, "Delivery succeeded.");
                Ok(())
            }
            Outcome::Retry { after } => {
                self.hot.retried.increment(1);
                task.next_attempt += 1;
                task.due_at_ms = self.clock.now_ms() + after.as_millis() as i64;
                let tier = self.policy.tiers()[self.policy.tier_for(after)];
                self.writer.retry(tier, &task).await
            }
            Outcome::Dead {
                reason,
                disable_endpoint,
            } => {
                self.hot.dead.increment(1);
                if disable_endpoint {
                    if let Ok(id) = EndpointId::parse(&task.endpoint_id) {
                        self.states
                            .disable(&id, "gone", "the endpoint answered 410 Gone")
                            .await?;
                    }
                }
                self.park(task, reason).await
            }
        }
    }

    /// Parks a delivery that cannot be attempted (its endpoint is gone or disabled); it counts
    /// as a dead delivery like any other, so the delivery counters add up.
    async fn dead_unattempted(
        &self,
        task: v1::DeliveryTask,
        reason: DeadReason,
    ) -> Result<(), Abandoned> {
        self.hot.dead.increment(1);
        tracing::debug!(delivery_id = %task.delivery_id, endpoint_id = %task.endpoint_id, reason = reason.as_str(), "Delivery parked without an attempt.");
        self.park(task, reason).await
    }

    /// Writes the dead letter, then tells the tenant's operational endpoint.
    async fn park(&self, task: v1::DeliveryTask, reason: DeadReason) -> Result<(), Abandoned> {
        let report = task.clone();
        self.writer.dead(task, reason).await?;
        self.states
            .ops
            .dead_lettered(&report, reason.as_str())
            .await
    }
}

pub(crate) fn summarize(output: &AttemptOutput, attempt: u32) -> v1::AttemptSummary {
    v1::AttemptSummary {
        attempt,
        started_at_ms: output.started_at_ms,
        latency_ms: output.latency.as_millis().min(u32::MAX as u128) as u32,
        status: u32::from(output.status),
        result_class: output.result.class().to_owned(),
        error: output.error.clone(),
    }
}

/// The event a task delivers; a task that lost it (written by hand, say) delivers an empty
/// one rather than panicking the step.
fn event_of(task: &v1::DeliveryTask) -> &v1::EventEnvelope {
    static NONE: std::sync::LazyLock<v1::EventEnvelope> =
        std::sync::LazyLock::new(v1::EventEnvelope::default);
    task.event.as_ref().unwrap_or(&NONE)
}

fn attempt_record(
    task: &v1::DeliveryTask,
    summary: &v1::AttemptSummary,
    outcome: &Outcome,
    excerpt: Vec<u8>,
) -> v1::AttemptRecord {
    let event = event_of(task);
    v1::AttemptRecord {
        delivery_id: task.delivery_id.clone(),
        event_id: event.id.clone(),
        endpoint_id: task.endpoint_id.clone(),
        event_type: event.event_type.clone(),
        tenant: event.tenant.clone(),
        summary: Some(summary.clone()),
        outcome: outcome.kind().as_str().to_owned(),
        response_excerpt: excerpt,
        event_accepted_at_ms: event.accepted_at_ms,
        replay_id: task.replay_id.clone(),
    }
}
