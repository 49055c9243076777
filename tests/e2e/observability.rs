//! Observability end to end, on separate `herald broker`, `herald ingest` and `herald dispatch`
//! processes: the counters and histogram counts of `/metrics` equal what the receivers got and
//! what the dead-letter topic holds, both `/metrics` outputs pass `promtool check metrics`,
//! `herald status` summarises them, and `/readyz` follows the broker going away and back.

use crate::harness::*;
use herald_proto::v1;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 3;

/// A metric, a label filter and the value it must have.
type Expect = (&'static str, Vec<(&'static str, &'static str)>, f64);
const SINGLE: usize = 20;
const BATCH: usize = 5;
const EVENTS: usize = SINGLE + BATCH;

/// Ingest and dispatcher processes against one broker.
struct Stack {
    _ingest: Proc,
    _dispatcher: Proc,
    api: Api,
    ingest_url: String,
    dispatcher_url: String,
}

fn start_stack(dir: &Path, broker: &Broker, token: &str) -> Stack {
    let mut env = herald_env(token, &master_key());
    env.extend(broker.herald_env());
    env.push(("HERALD_INGEST__LISTEN", "127.0.0.1:0".to_owned()));
    let mut ingest = Proc::spawn("ingest", &["ingest"], &env, dir);
    let ingest_url = ingest.wait_line("herald: ingest listening on", Duration::from_secs(120));
    let metrics = free_port();
    env.push(("HERALD_METRICS_LISTEN", metrics.to_string()));
    env.push(("HERALD_DISPATCHER__INSTANCE_ID", "obs-e2e-1".to_owned()));
    let mut dispatcher = Proc::spawn("dispatcher", &["dispatch"], &env, dir);
    let dispatcher_url = dispatcher
        .wait_line("herald: dispatcher metrics", Duration::from_secs(120))
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned();
    Stack {
        api: Api::new(ingest_url.clone(), token.to_owned()),
        _ingest: ingest,
        _dispatcher: dispatcher,
        ingest_url,
        dispatcher_url,
    }
}

fn scrape(base: &str) -> String {
    let (status, text) = http_get(&format!("{base}/metrics")).expect("/metrics answers");
    assert_eq!(status, 200, "{base}/metrics: {text}");
    text
}

fn readyz(base: &str) -> Option<(u16, serde_json::Value)> {
    let (status, body) = http_get(&format!("{base}/readyz"))?;
    Some((status, serde_json::from_str(&body).expect("readyz JSON")))
}

/// Polls `f` every 200 ms until it returns true, at most `timeout`; panics with `what()`.
fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool, what: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "within {timeout:?}: {}", what());
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Dead letters by reason, read from the DLQ topic from the beginning until `expected`
/// records were read (or `timeout`).
fn dead_letters(brokers: &str, expected: usize, timeout: Duration) -> BTreeMap<String, u64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "obs-e2e-dlq-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition_offset("herald.deliveries.dlq.v1", p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    let mut reasons = BTreeMap::new();
    let mut read = 0;
    let deadline = Instant::now() + timeout;
    while read < expected && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let letter: v1::DeadLetter =
                herald_proto::decode("dead letter", message.payload().unwrap()).unwrap();
            *reasons.entry(letter.reason).or_insert(0) += 1;
            read += 1;
        }
    }
    reasons
}

fn answer(path: &str) -> u16 {
    match path {
        "/ok" => 200,
        "/too-big" => 413,
        _ => 500,
    }
}

#[test]
fn metrics_match_what_receivers_and_the_dlq_saw_and_pass_promtool() {
    let dir = TempDir::new("observability");
    let broker = Broker::start(Flavor::suite(), dir.path());
    let receiver = start_answering_receiver(answer);
    let token = admin_token();
    let stack = start_stack(dir.path(), &broker, &token);
    let api = &stack.api;
    for path in ["/ok", "/too-big", "/failing"] {
        api.create_endpoint(&format!("http://{}{path}", receiver.addr), &["mix.*"]);
    }

    // 20 single events, one batch of 5, two invalid events and one without a key.
    for i in 0..SINGLE {
        let (status, body) = api.post(
            "/v1/events",
            &json!({"type": "mix.one", "payload": {"i": i}}),
        );
        assert_eq!(status, 202, "{body}");
    }
    let items: Vec<_> = (0..BATCH)
        .map(|i| json!({"type": "mix.batch", "payload": {"i": i}}))
        .collect();
    let (status, body) = api.post("/v1/events/batch", &json!({"events": items}));
    assert_eq!(status, 202, "{body}");
    for bad in [json!({"type": "", "payload": {}}), json!({"payload": {}})] {
        let (status, body) = api.post("/v1/events", &bad);
        assert!((400..500).contains(&status), "{status} {body}");
    }
    // An empty bearer token: one auth failure (reason `malformed`).
    let anonymous = Api::new(stack.ingest_url.clone(), String::new());
    let (status, _) = anonymous.post("/v1/events", &json!({"type": "mix.one", "payload": {}}));
    assert_eq!(status, 401);

    // Every event ends delivered at /ok and dead at /too-big (413) and /failing (500,
    // retried through the whole short schedule, then exhausted).
    let letters = dead_letters(&broker.bootstrap(), 2 * EVENTS, Duration::from_secs(180));
    assert_eq!(
        letters,
        BTreeMap::from([
            ("exhausted".to_owned(), EVENTS as u64),
            ("payload_rejected".to_owned(), EVENTS as u64)
        ]),
        "dead-letter topic"
    );
    receiver.wait_for("/ok", EVENTS, Duration::from_secs(60));
    let (ok, too_big, failing) = (
        receiver.count("/ok"),
        receiver.count("/too-big"),
        receiver.count("/failing"),
    );
    assert_eq!((ok, too_big), (EVENTS, EVENTS), "one attempt each");
    assert!(failing > EVENTS, "the 500 endpoint was retried");
    let attempts = (ok + too_big + failing) as f64;

    // The counters catch up with the outcomes they count (they are updated after the
    // attempt record is acknowledged, just after the receiver answered).
    let expected_dispatcher: Vec<Expect> = vec![
        (
            "herald_deliveries_total",
            vec![("outcome", "delivered")],
            ok as f64,
        ),
        (
            "herald_deliveries_total",
            vec![("outcome", "dead")],
            (too_big + EVENTS) as f64,
        ),
        (
            "herald_deliveries_total",
            vec![("outcome", "retry")],
            (failing - EVENTS) as f64,
        ),
        (
            "herald_dlq_writes_total",
            vec![("reason", "exhausted")],
            letters["exhausted"] as f64,
        ),
        (
            "herald_dlq_writes_total",
            vec![("reason", "payload_rejected")],
            letters["payload_rejected"] as f64,
        ),
        ("herald_dlq_writes_total", vec![], (2 * EVENTS) as f64),
        // Exported from 0 (alerts use increase()); no fan-out went ahead unconfirmed.
        ("herald_endpoints_view_stale_total", vec![], 0.0),
        // This dispatcher is the one consuming.
        ("herald_dispatcher_active", vec![], 1.0),
        (
            "herald_fanout_deliveries_total",
            vec![],
            (3 * EVENTS) as f64,
        ),
        ("herald_delivery_attempt_seconds_count", vec![], attempts),
        ("herald_delivery_e2e_seconds_count", vec![], ok as f64),
        (
            "herald_delivery_e2e_seconds_bucket",
            vec![("le", "+Inf")],
            ok as f64,
        ),
        ("herald_deliveries_in_flight", vec![], 0.0),
        (
            "herald_endpoint_disabled_total",
            vec![("reason", "gone")],
            0.0,
        ),
        ("herald_ready", vec![("service", "dispatcher")], 1.0),
    ];
    let mismatches = |text: &str, expected: &[Expect]| -> Vec<String> {
        expected
            .iter()
            .filter_map(|(name, labels, want)| {
                let got = metric(text, name, labels);
                (got != Some(*want)).then(|| format!("{name}{labels:?}: got {got:?}, want {want}"))
            })
            .collect()
    };
    let last = std::cell::RefCell::new(String::new());
    wait_until(
        Duration::from_secs(30),
        || {
            *last.borrow_mut() = scrape(&stack.dispatcher_url);
            mismatches(&last.borrow(), &expected_dispatcher).is_empty()
        },
        || {
            format!(
                "dispatcher metrics differ: {:?}",
                mismatches(&last.borrow(), &expected_dispatcher)
            )
        },
    );
    // Nothing moved after the numbers matched (no late duplicates).
    std::thread::sleep(Duration::from_secs(1));
    let dispatcher_text = scrape(&stack.dispatcher_url);
    assert_eq!(
        mismatches(&dispatcher_text, &expected_dispatcher),
        Vec::<String>::new()
    );
    // accepted × fan-out = delivered + dead (nothing in flight or pending any more).
    let outcome = |o: &str| {
        metric(
            &dispatcher_text,
            "herald_deliveries_total",
            &[("outcome", o)],
        )
        .unwrap()
    };
    assert_eq!(3.0 * EVENTS as f64, outcome("delivered") + outcome("dead"));

    let expected_ingest: Vec<Expect> = vec![
        ("herald_events_accepted_total", vec![], EVENTS as f64),
        ("herald_events_rejected_total", vec![], 3.0),
        ("herald_auth_failures_total", vec![], 1.0),
        (
            "herald_ingest_requests_total",
            vec![("route", "/v1/events"), ("status_class", "2xx")],
            SINGLE as f64,
        ),
        (
            "herald_ingest_requests_total",
            vec![("route", "/v1/events"), ("status_class", "4xx")],
            3.0,
        ),
        (
            "herald_ingest_requests_total",
            vec![("route", "/v1/events"), ("status_class", "5xx")],
            0.0,
        ),
        (
            "herald_ingest_requests_total",
            vec![("route", "/v1/events/batch"), ("status_class", "2xx")],
            1.0,
        ),
        (
            "herald_ingest_request_duration_seconds_count",
            vec![("route", "/v1/events")],
            (SINGLE + 3) as f64,
        ),
        (
            "herald_ingest_request_duration_seconds_count",
            vec![("route", "/v1/events/batch")],
            1.0,
        ),
        ("herald_ready", vec![("service", "ingest")], 1.0),
    ];
    let ingest_text = scrape(&stack.ingest_url);
    assert_eq!(
        mismatches(&ingest_text, &expected_ingest),
        Vec::<String>::new()
    );
    // Every accepted event was one acknowledged produce (plus endpoint, key and audit writes).
    assert!(
        metric(&ingest_text, "herald_kafka_produce_seconds_count", &[]).unwrap() >= EVENTS as f64
    );
    assert!(metric(
        &dispatcher_text,
        "herald_kafka_consumer_lag",
        &[("topic", "herald.events.v1")]
    )
    .is_some());

    for (name, text) in [("ingest", &ingest_text), ("dispatcher", &dispatcher_text)] {
        if let Some(result) = promtool_check_metrics(text) {
            result.unwrap_or_else(|e| panic!("promtool check metrics on {name}: {e}\n{text}"));
        }
    }

    // `herald status` reads the same numbers from the running services.
    let out = std::process::Command::new(BIN)
        .args([
            "status",
            "--ingest",
            &stack.ingest_url,
            "--dispatcher",
            &stack.dispatcher_url,
            "--interval",
            "200ms",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        format!("ingest      ready        {}", stack.ingest_url),
        format!("dispatcher  ready        {}", stack.dispatcher_url),
        format!("exhausted={EVENTS}  payload_rejected={EVENTS}"),
        format!("delivered={ok}"),
        "herald.events.v1=".to_owned(),
    ] {
        assert!(text.contains(&needle), "`{needle}` missing from:\n{text}");
    }
    drop(stack);
}

#[test]
fn status_fails_clearly_when_nothing_answers() {
    let (a, b) = (free_port(), free_port());
    let out = std::process::Command::new(BIN)
        .args([
            "status",
            "--ingest",
            &format!("http://{a}"),
            "--dispatcher",
            &format!("http://{b}"),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no Herald service answered"), "{err}");
}

#[test]
fn readyz_is_503_while_the_broker_is_down_and_200_after_it_returns() {
    let dir = TempDir::new("readyz");
    let mut broker = Broker::start(Flavor::suite(), dir.path());
    let token = admin_token();
    let stack = start_stack(dir.path(), &broker, &token);
    let urls = [stack.ingest_url.clone(), stack.dispatcher_url.clone()];
    let ready_gauge = |url: &str, value: f64| {
        let service = if url == urls[0] {
            "ingest"
        } else {
            "dispatcher"
        };
        metric(&scrape(url), "herald_ready", &[("service", service)]) == Some(value)
    };
    for url in &urls {
        wait_until(
            Duration::from_secs(60),
            || readyz(url).is_some_and(|(s, _)| s == 200),
            || format!("{url}/readyz: {:?}", readyz(url)),
        );
        wait_until(
            Duration::from_secs(30),
            || ready_gauge(url, 1.0),
            || format!("{url} herald_ready != 1"),
        );
        let (status, _) = http_get(&format!("{url}/healthz")).unwrap();
        assert_eq!(status, 200);
    }

    broker.stop_node(0, "KILL");
    for url in &urls {
        wait_until(
            Duration::from_secs(30),
            || readyz(url).is_some_and(|(s, _)| s == 503),
            || format!("{url}/readyz while the broker is down: {:?}", readyz(url)),
        );
        let (_, body) = readyz(url).unwrap();
        assert_eq!(body["ready"], false, "{body}");
        let broker_check = body["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "broker")
            .cloned()
            .unwrap();
        assert_eq!(broker_check["ok"], false, "{body}");
        wait_until(
            Duration::from_secs(30),
            || ready_gauge(url, 0.0),
            || format!("{url} herald_ready != 0"),
        );
        // The process is alive all along.
        assert_eq!(http_get(&format!("{url}/healthz")).unwrap().0, 200);
    }

    broker.restart();
    for url in &urls {
        wait_until(
            Duration::from_secs(120),
            || readyz(url).is_some_and(|(s, _)| s == 200),
            || format!("{url}/readyz after the broker returned: {:?}", readyz(url)),
        );
        wait_until(
            Duration::from_secs(30),
            || ready_gauge(url, 1.0),
            || format!("{url} herald_ready != 1"),
        );
    }
    drop(stack);
}
