//! Herald as separate processes on a broker of their own (Apache Kafka by default, see
//! [`Flavor::suite`]): `herald ingest` and `herald dispatch`, each of which a test can stop,
//! kill and start again, as it can the broker.

use crate::harness::*;
use herald_proto::v1;
use std::time::Duration;

/// Stacks are heavy (a broker and two services, thousands of events): one at a time, so
/// tests running in parallel do not starve each other's broker into session timeouts.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Stack {
    pub dir: TempDir,
    pub broker: Broker,
    pub ingest: Proc,
    pub api: Api,
    pub dispatcher: Option<Proc>,
    /// The base URL of the stack's dispatcher's metrics listener (`…/metrics`).
    pub dispatcher_metrics: String,
    env: Vec<(&'static str, String)>,
    dispatcher_runs: usize,
    /// Declared last: released after the processes above were stopped.
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Stack {
    /// The suite's broker, ingest and one dispatcher; `overrides` replace the test defaults.
    pub fn start(name: &str, overrides: &[(&'static str, &str)]) -> Self {
        Self::on(Flavor::suite(), name, overrides)
    }

    /// [`Stack::start`] on a broker of the given flavour.
    pub fn on(flavor: Flavor, name: &str, overrides: &[(&'static str, &str)]) -> Self {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = TempDir::new(name);
        let broker = Broker::start(flavor, dir.path());
        let token = admin_token();
        let mut env = herald_env(&token, &master_key());
        env.extend(broker.herald_env());
        env.push(("HERALD_INGEST__LISTEN", "127.0.0.1:0".to_owned()));
        env.push(("HERALD_METRICS_LISTEN", "127.0.0.1:0".to_owned()));
        env.push(("HERALD_INGEST__MAX_BATCH", "100".to_owned()));
        env.push((
            "HERALD_DISPATCHER__INSTANCE_ID",
            format!("{name}-dispatcher"),
        ));
        for (key, value) in overrides {
            env.retain(|(k, _)| k != key);
            env.push((key, (*value).to_owned()));
        }
        let mut ingest = Proc::spawn("ingest", &["ingest"], &env, dir.path());
        let base = ingest.wait_line("herald: ingest listening on", Duration::from_secs(120));
        let api = Api::new(base, token);
        let mut stack = Self {
            dir,
            broker,
            ingest,
            api,
            dispatcher: None,
            dispatcher_metrics: String::new(),
            env,
            dispatcher_runs: 0,
            _turn: turn,
        };
        stack.start_dispatcher();
        stack
    }

    pub fn start_dispatcher(&mut self) {
        assert!(self.dispatcher.is_none(), "a dispatcher is already running");
        self.dispatcher_runs += 1;
        let name = format!("dispatcher-{}", self.dispatcher_runs);
        let mut dispatcher = Proc::spawn(&name, &["dispatch"], &self.env, self.dir.path());
        // Up (signal handlers installed, views caught up) before a test may signal it: a
        // SIGTERM in the first milliseconds of a process still has the default action.
        let line = dispatcher.wait_line("herald: dispatcher metrics", Duration::from_secs(120));
        self.dispatcher_metrics = line.rsplit(' ').next().unwrap_or_default().to_owned();
        self.dispatcher = Some(dispatcher);
    }

    /// Starts one more ingest process on the same broker; returns it and its API.
    pub fn spawn_ingest(&self, name: &str) -> (Proc, Api) {
        let mut ingest = Proc::spawn(name, &["ingest"], &self.env, self.dir.path());
        let base = ingest.wait_line("herald: ingest listening on", Duration::from_secs(120));
        let api = Api::new(base, self.api.token.clone());
        (ingest, api)
    }

    /// Starts one more dispatcher (same group, its own instance id), not managed by the
    /// stack: the caller signals and waits for it.
    pub fn spawn_dispatcher(&self, name: &str) -> Proc {
        let mut env = self.env.clone();
        env.retain(|(k, _)| *k != "HERALD_DISPATCHER__INSTANCE_ID");
        env.push(("HERALD_DISPATCHER__INSTANCE_ID", name.to_owned()));
        let mut dispatcher = Proc::spawn(name, &["dispatch"], &env, self.dir.path());
        dispatcher.wait_line("herald: dispatcher metrics", Duration::from_secs(120));
        dispatcher
    }

    /// Sends `signal` to the dispatcher and waits for it to exit; returns its exit code.
    pub fn stop_dispatcher(&mut self, signal: &str) -> Option<i32> {
        let mut dispatcher = self.dispatcher.take().expect("a dispatcher runs");
        dispatcher.signal(signal);
        dispatcher.wait_exit(Duration::from_secs(60))
    }

    /// `host:port,…` of the broker.
    pub fn brokers(&self) -> String {
        self.broker.bootstrap()
    }

    pub fn stop_broker(&mut self) {
        self.broker.stop();
    }

    pub fn restart_broker(&mut self) {
        self.broker.restart();
    }

    /// The environment the stack's services run with (for CLI commands against it).
    pub fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }

    /// Posts events in batches of 100, each with its own idempotency key, re-posting items
    /// answered 503 (as a careful producer would: same key, same event); returns the ids.
    pub fn post_events(&self, count: usize, kind: &str) -> Vec<String> {
        let run = rand::random::<u32>();
        let mut ids = Vec::with_capacity(count);
        let mut pending: Vec<usize> = (0..count).collect();
        for _round in 0..20 {
            let mut failed = Vec::new();
            for chunk in pending.chunks(100) {
                let events: Vec<_> = chunk
                    .iter()
                    .map(|i| {
                        serde_json::json!({"type": kind, "payload": {"n": i},
                            "idempotency_key": format!("{run}-{kind}-{i}")})
                    })
                    .collect();
                let (status, body) = self
                    .api
                    .post("/v1/events/batch", &serde_json::json!({ "events": events }));
                assert!(status == 202 || status == 207, "batch: {status} {body}");
                for item in body["results"].as_array().expect("results") {
                    let index = item["index"].as_u64().unwrap() as usize;
                    match item["status"].as_u64() {
                        Some(202) => ids.push(item["id"].as_str().unwrap().to_owned()),
                        Some(503) => failed.push(chunk[index]),
                        _ => panic!("unexpected item result {item}"),
                    }
                }
            }
            if failed.is_empty() {
                return ids;
            }
            eprintln!("{} items answered 503; posting them again", failed.len());
            std::thread::sleep(Duration::from_secs(1));
            pending = failed;
        }
        panic!("events still refused after 20 rounds");
    }

    /// Every dead letter currently in the DLQ topic.
    pub fn dead_letters(&self) -> Vec<v1::DeadLetter> {
        read_topic(&self.brokers(), "herald.deliveries.dlq.v1")
            .iter()
            .map(|bytes| herald_proto::decode("dead letter", bytes).expect("dead letter"))
            .collect()
    }

    /// Asserts no Herald process has exited.
    pub fn assert_all_running(&mut self) {
        for proc in [Some(&mut self.ingest), self.dispatcher.as_mut()]
            .into_iter()
            .flatten()
        {
            assert!(
                proc.child.try_wait().unwrap().is_none(),
                "{} exited",
                proc.name
            );
        }
    }
}
