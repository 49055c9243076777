//! Several dispatchers share the events topic through the Kafka consumer group protocol
//! (`assignment = "auto"` resolves to `group` on Apache Kafka; no lease): under a steady
//! stream of events one of three is SIGKILLed, a fourth joins, and one leaves cleanly.
//! Nothing is lost; the only duplicates are deliveries in flight at the kill, each with its
//! original `webhook-id`; every partition is delivered again within a bound of the session
//! timeout; the retry-tier consumers (one event in ten fails its first attempt) move the same
//! way; and the group's committed offsets reach the end of the topic.

use crate::chaos_receiver::{as_received, Act, ChaosReceiver, Hit};
use crate::harness::*;
use crate::stack::Stack;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 6;
/// The group session timeout the test runs with (`kafka.client."session.timeout.ms"`).
const SESSION: Duration = Duration::from_secs(6);

/// One event in ten (by its id, so on every attempt the same) fails its first attempt.
fn fails_first(id: &str) -> bool {
    id.bytes().map(u32::from).sum::<u32>() % 10 == 0
}

/// What the producer thread got accepted: event id → (partition, when).
type Accepted = Arc<Mutex<HashMap<String, (i32, Instant)>>>;

#[test]
fn dispatchers_share_partitions_and_survive_a_kill_a_join_and_a_leave() {
    let receiver = ChaosReceiver::start(Arc::new(|id, seen| {
        if seen == 0 && fails_first(id) {
            Act::Answer(503, Duration::ZERO)
        } else {
            Act::Answer(200, Duration::ZERO)
        }
    }));
    let session_ms = SESSION.as_millis().to_string();
    let partitions = PARTITIONS.to_string();
    let mut stack = Stack::on(
        Flavor::Kafka,
        "scaleout",
        &[
            ("HERALD_KAFKA__PARTITIONS", &partitions),
            ("HERALD_KAFKA__CLIENT__SESSION_TIMEOUT_MS", &session_ms),
        ],
    );
    let (_id, secret) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let mut b = stack.spawn_dispatcher("scale-b");
    let mut c = stack.spawn_dispatcher("scale-c");
    let metrics = [
        metrics_url(stack.dispatcher.as_mut().unwrap()),
        metrics_url(&mut b),
        metrics_url(&mut c),
    ];

    // A steady stream of single events until told to stop.
    let accepted: Accepted = Arc::default();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let mut kill_at = None;
    std::thread::scope(|s| {
        let (api, sink, stop) = (&stack.api, accepted.clone(), &stop);
        s.spawn(move || produce(api, &sink, stop));
        let _stop = StopOnDrop(stop);
        let phase = |what: &str, at: Duration| {
            std::thread::sleep(at.saturating_sub(started.elapsed()));
            eprintln!(
                "scale-out: {what} at {:.1} s",
                started.elapsed().as_secs_f64()
            );
        };
        phase("SIGKILL of scale-b", Duration::from_secs(8));
        // The three shared the work before the kill: each delivered some of it.
        for url in &metrics {
            let (status, text) = http_get(&format!("{url}/metrics")).expect("metrics");
            assert_eq!(status, 200);
            let mine = metric(
                &text,
                "herald_deliveries_total",
                &[("outcome", "delivered")],
            );
            eprintln!("scale-out: {url} delivered {mine:?} before the kill");
            assert!(
                mine.unwrap_or(0.0) > 0.0,
                "{url} delivered nothing: no sharing"
            );
        }
        kill_at = Some(Instant::now());
        b.signal("KILL");
        b.wait_exit(Duration::from_secs(30));
        phase("scale-d joins", Duration::from_secs(18));
        let mut d = stack.spawn_dispatcher("scale-d");
        phase("scale-c leaves (SIGTERM)", Duration::from_secs(28));
        c.signal("TERM");
        assert_eq!(
            c.wait_exit(Duration::from_secs(60)),
            Some(0),
            "a clean leave exits 0"
        );
        phase("producer stops", Duration::from_secs(38));
        stop.store(true, Ordering::SeqCst);
        // The dispatcher that joined stays until everything is delivered.
        let accepted = accepted.lock().unwrap().clone();
        wait_until(
            "every accepted event delivered",
            Duration::from_secs(120),
            || receiver.delivered().iter().collect::<HashSet<_>>().len() >= accepted.len(),
        );
        d.signal("TERM");
        assert_eq!(d.wait_exit(Duration::from_secs(60)), Some(0));
    });
    let kill_at = kill_at.unwrap();
    let accepted = accepted.lock().unwrap().clone();
    std::thread::sleep(Duration::from_secs(2)); // stragglers

    let hits = receiver.hits();
    let delivered: Vec<String> = receiver.delivered();
    let unique: HashSet<String> = delivered.iter().cloned().collect();
    let expected: HashSet<String> = accepted.keys().cloned().collect();
    assert_eq!(
        unique, expected,
        "exactly the accepted events were delivered"
    );
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for id in &delivered {
        *per_id.entry(id.as_str()).or_default() += 1;
    }
    let duplicated: Vec<&str> = per_id
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(id, _)| *id)
        .collect();
    // A repeat is allowed for what was in flight at the kill only: a clean rebalance (the
    // join, the leave) lets the deliveries running on the revoked partitions finish and
    // commits before the partitions move, in the events consumer and in the retry tiers'.
    for id in &duplicated {
        assert!(
            accepted[*id].1 < kill_at,
            "{id} was delivered twice but accepted after the kill (retried: {})",
            fails_first(id)
        );
    }
    let retried = hits
        .iter()
        .filter(|h| h.act == Act::Answer(503, Duration::ZERO))
        .count();
    assert_eq!(
        retried,
        expected.iter().filter(|id| fails_first(id)).count(),
        "every event meant to fail once went through a retry tier and was delivered"
    );
    assert_eq!(
        verify_with_python(&as_received(&hits), &secret),
        hits.len(),
        "every attempt carries a valid signature"
    );
    let gaps = partition_gaps(&hits, &accepted);
    let worst = gaps.values().max().copied().unwrap_or_default();
    eprintln!(
        "scale-out: {} events, {} deliveries, {} duplicates (all accepted before the kill), \
         {retried} through retry tiers; longest pause per partition (ms): {gaps:?}",
        accepted.len(),
        delivered.len(),
        duplicated.len()
    );
    assert_eq!(
        gaps.len(),
        PARTITIONS as usize,
        "every partition got events"
    );
    // A partition of the killed member waits for the session to expire, then a rebalance;
    // one of a clean leaver (static membership does not leave the group) the same.
    let bound = SESSION * 4;
    assert!(
        worst <= bound.as_millis() as u64,
        "a partition went {worst} ms without deliveries: not owned again within {bound:?}"
    );
    assert_eq!(stack.stop_dispatcher("TERM"), Some(0));
    let events = herald_core::topics::Topics::new(herald_core::topics::DEFAULT_PREFIX)
        .events()
        .to_owned();
    assert_committed_to_end(&stack.brokers(), "herald-dispatcher", &events);
}

/// Posts one event every 40 ms until `stop`, recording each accepted id with its partition.
fn produce(api: &Api, accepted: &Accepted, stop: &AtomicBool) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let (status, body) = api.post(
            "/v1/events",
            &serde_json::json!({"type": "stock.moved", "payload": {"n": n}}),
        );
        assert_eq!(status, 202, "{body}");
        let id = body["id"].as_str().unwrap().to_owned();
        let partition = body["partition"].as_i64().unwrap() as i32;
        accepted
            .lock()
            .unwrap()
            .insert(id, (partition, Instant::now()));
        n += 1;
        std::thread::sleep(Duration::from_millis(40));
    }
}

/// Per partition, the longest wait of an event between its acceptance and its first
/// successful delivery, in ms: a partition nobody owned shows as a long wait.
fn partition_gaps(hits: &[Hit], accepted: &HashMap<String, (i32, Instant)>) -> BTreeMap<i32, u64> {
    let mut first: HashMap<&str, Instant> = HashMap::new();
    for hit in hits
        .iter()
        .filter(|h| h.act == Act::Answer(200, Duration::ZERO))
    {
        first.entry(hit.id()).or_insert(hit.at);
    }
    let mut gaps = BTreeMap::new();
    for (id, (partition, at)) in accepted {
        let wait = first[id.as_str()]
            .saturating_duration_since(*at)
            .as_millis() as u64;
        let worst = gaps.entry(*partition).or_insert(0);
        *worst = (*worst).max(wait);
    }
    gaps
}

/// The base URL of a dispatcher's metrics listener, from its start line.
fn metrics_url(dispatcher: &mut Proc) -> String {
    dispatcher
        .wait_line("herald: dispatcher metrics", Duration::from_secs(120))
        .rsplit(' ')
        .next()
        .unwrap()
        .to_owned()
}
