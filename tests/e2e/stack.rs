//! Herald as separate processes on one broker process: `herald broker`, `herald ingest`,
//! `herald dispatch`, each of which a test can stop, kill and start again.

use crate::chaos_receiver::Hit;
use crate::utils::*;
use herald_proto::v1;
use rdkafka::consumer::Consumer;
use rdkafka::Message;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Stacks are heavy (a broker and two services, thousands of events): one at a time, so
/// tests running in parallel do not starve each other's broker into session timeouts.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub struct Stack {
    pub dir: TempDir,
    pub broker: Option<Proc>,
    pub broker_addr: SocketAddr,
    pub ingest: Proc,
    pub api: Api,
    pub dispatcher: Option<Proc>,
    env: Vec<(&'static str, String)>,
    dispatcher_runs: usize,
    /// Declared last: released after the processes above were stopped.
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Stack {
    /// Broker, ingest and one dispatcher; `env` overrides the test defaults.
    pub fn start(name: &str, overrides: &[(&'static str, &str)]) -> Self {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let dir = TempDir::new(name);
        let broker_addr = free_port();
        let broker = Some(start_broker_at(dir.path(), broker_addr, "broker"));
        let token = admin_token();
        let mut env = herald_env(&token, &master_key());
        env.push(("HERALD_KAFKA__BROKERS", broker_addr.to_string()));
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
            broker_addr,
            ingest,
            api,
            dispatcher: None,
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
        dispatcher.wait_line("herald: dispatcher metrics", Duration::from_secs(120));
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

    pub fn stop_broker(&mut self) {
        let mut broker = self.broker.take().expect("the broker runs");
        broker.signal("TERM");
        broker.wait_exit(Duration::from_secs(30));
    }

    pub fn restart_broker(&mut self) {
        assert!(self.broker.is_none());
        self.broker = Some(start_broker_at(self.dir.path(), self.broker_addr, "broker"));
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
        read_topic(self.broker_addr, "herald.deliveries.dlq.v1")
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

/// A group-less reader on `broker` and the high watermark of each partition of `topic`.
async fn reader_and_ends(
    broker: SocketAddr,
    topic: &str,
) -> (
    std::sync::Arc<rdkafka::consumer::StreamConsumer>,
    std::collections::HashMap<i32, i64>,
) {
    let config = herald_kafka::KafkaConfig::with_brokers(broker.to_string());
    let reader = std::sync::Arc::new(herald_kafka::consumer::reader(&config, "e2e").unwrap());
    let ends = herald_kafka::view::high_watermarks(&reader, topic)
        .await
        .unwrap();
    (reader, ends)
}

/// Reads every record value of `topic` up to its current end.
pub fn read_topic(broker: SocketAddr, topic: &str) -> Vec<Vec<u8>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (reader, ends) = reader_and_ends(broker, topic).await;
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in ends.keys() {
            list.add_partition_offset(topic, *partition, rdkafka::Offset::Beginning)
                .unwrap();
        }
        reader.assign(&list).unwrap();
        let mut left: std::collections::HashMap<i32, i64> =
            ends.into_iter().filter(|(_, end)| *end > 0).collect();
        let mut values = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while !left.is_empty() {
            assert!(Instant::now() < deadline, "reading {topic} timed out");
            let message = tokio::time::timeout(Duration::from_secs(10), reader.recv())
                .await
                .expect("record within 10s")
                .unwrap();
            values.push(message.payload().unwrap_or_default().to_vec());
            if left
                .get(&message.partition())
                .is_some_and(|end| message.offset() + 1 >= *end)
            {
                left.remove(&message.partition());
            }
        }
        values
    })
}

/// For each partition of `topic`: (offset `group` committed, high watermark).
pub fn committed_and_end(broker: SocketAddr, group: &str, topic: &str) -> Vec<(i64, i64)> {
    use rdkafka::consumer::BaseConsumer;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (_reader, ends) = runtime.block_on(reader_and_ends(broker, topic));
    let group_client: BaseConsumer = herald_kafka::KafkaConfig::with_brokers(broker.to_string())
        .client_config("e2e-offsets")
        .set("group.id", group)
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in ends.keys() {
        list.add_partition(topic, *partition);
    }
    let committed = group_client
        .committed_offsets(list, Duration::from_secs(30))
        .unwrap();
    ends.iter()
        .map(|(partition, end)| {
            let offset = committed
                .find_partition(topic, *partition)
                .and_then(|e| e.offset().to_raw())
                .unwrap_or(-1);
            (offset, *end)
        })
        .collect()
}

/// Chaos hits as the Python verifier's input.
pub fn as_received(hits: &[Hit]) -> Vec<Received> {
    hits.iter()
        .map(|h| Received {
            path: "/".into(),
            headers: h.headers.clone(),
            body: h.body.clone(),
        })
        .collect()
}

/// Polls `done` every 100 ms until it holds, at most `timeout` (then panics with `what`).
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
