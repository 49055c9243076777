//! Executing a replay run: re-drive at the run's rate, checkpoint the cursors, mark every
//! re-driven dead letter, finish or fail with an audit record; and, when a run is resumed,
//! reconcile what it already wrote to the retry tier so nothing is re-driven twice.

use crate::rate::RateLimiter;
use crate::run::{Replayer, CHECKPOINT_EVERY};
use crate::select::{Decision, Selector};
use crate::{Error, ReplaySpec, Result};
use futures::FutureExt as _;
use herald_core::run::RunState;
use herald_kafka::scan::{self, Ranges, Scanner};
use herald_proto::{v1, Message};
use std::collections::HashSet;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

impl Replayer {
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
                        &herald_kafka::audit::Actor::named(run.actor.clone()),
                        &crate::run::run_tenant(&run),
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

/// The message of a caught panic.
fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panicked".to_owned())
}
