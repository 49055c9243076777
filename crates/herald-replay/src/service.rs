//! Replay as a long-lived service inside an API process: the runs view started on first use,
//! one run at a time in this process, runs executed in the background until shutdown.

use crate::request::ReplayRequest;
use crate::{Plan, Replayer, Result, RunsView};
use herald_core::clock::SharedClock;
use herald_kafka::audit::Actor;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::{KafkaConfig, Producer};
use herald_proto::v1;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// What a started request turned into.
#[derive(Debug)]
pub enum Started {
    /// A dry run: what would be re-driven; nothing changed.
    Planned(Plan),
    /// The request repeated a client-chosen id: the run it made before.
    Existing(v1::ReplayProgress),
    /// A new run, now executing in the background.
    Running(v1::ReplayProgress),
}

/// Replay runs for an API process.
pub struct Replays {
    kafka: KafkaConfig,
    producer: Producer,
    endpoints: EndpointsView,
    tier: Duration,
    clock: SharedClock,
    runs: tokio::sync::OnceCell<RunsView>,
    /// One run at a time in this process: overlapping runs would race on the same markers.
    running: Arc<tokio::sync::Mutex<()>>,
    views: TaskTracker,
    shutdown: CancellationToken,
}

impl Replays {
    /// Replays through `producer`, re-driving into `shortest_tier`; its runs and views stop
    /// with `shutdown`.
    pub fn new(
        kafka: KafkaConfig,
        producer: Producer,
        endpoints: EndpointsView,
        shortest_tier: Duration,
        clock: SharedClock,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        Arc::new(Self {
            kafka,
            producer,
            endpoints,
            tier: shortest_tier,
            clock,
            runs: tokio::sync::OnceCell::new(),
            running: Arc::default(),
            views: TaskTracker::new(),
            shutdown,
        })
    }

    /// Where "now" comes from.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }

    /// The Kafka settings (for dead-letter browsing).
    pub fn kafka(&self) -> &KafkaConfig {
        &self.kafka
    }

    /// The runs view, started and caught up on first use.
    pub async fn runs(&self) -> Result<RunsView> {
        let runs = self
            .runs
            .get_or_try_init(|| async {
                let runs = RunsView::spawn(&self.kafka, &self.views, self.shutdown.clone());
                runs.wait_ready(Duration::from_secs(30)).await.map(|_| runs)
            })
            .await?;
        Ok(runs.clone())
    }

    async fn replayer(&self) -> Result<Replayer> {
        Ok(Replayer::new(
            self.kafka.clone(),
            self.producer.clone(),
            self.endpoints.clone(),
            self.runs().await?,
            self.tier,
            self.clock.clone(),
        ))
    }

    /// Plans `request` and, unless it is a dry run, starts it for `actor` in the background.
    /// A repeated client-chosen id returns the run it made.
    pub async fn start(&self, request: &ReplayRequest, actor: &Actor) -> Result<Started> {
        let spec = request.spec(self.clock.now_ms())?;
        let id = request.run_id()?;
        let replayer = self.replayer().await?;
        if let Some(id) = &id {
            if let Some(existing) = replayer.existing(id, &spec)? {
                return Ok(Started::Existing(existing));
            }
        }
        let plan = replayer.plan(&spec).await?;
        if request.dry_run {
            return Ok(Started::Planned(plan));
        }
        let run = replayer.create(&spec, &plan, actor, id).await?;
        self.spawn(replayer, run.clone());
        Ok(Started::Running(run))
    }

    /// Resumes interrupted run `id` for `actor` in the background. `Ok(None)` when a run is
    /// already executing in this process.
    pub async fn resume(&self, id: &str, actor: &Actor) -> Result<Option<v1::ReplayProgress>> {
        let id = crate::filter::parse_replay_id(id)?;
        let replayer = self.replayer().await?;
        if self.running.try_lock().is_err() {
            return Ok(None);
        }
        let run = replayer.resume(&id, actor, None).await?;
        self.spawn(replayer, run.clone());
        Ok(Some(run))
    }

    fn spawn(&self, replayer: Replayer, run: v1::ReplayProgress) {
        let lock = self.running.clone();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let _only_one = lock.lock().await;
            let id = run.id.clone();
            if let Err(err) = replayer.execute(run, &|_| {}, &shutdown).await {
                tracing::error!(replay_id = %id, error = %err, "Replay stopped before the end; resume it.");
            }
        });
    }
}
