//! Broker failover on a three-node Apache Kafka cluster (KRaft, replication factor 3,
//! `min.insync.replicas=2`) under a steady stream of events: the leader of most of the events
//! topic's partitions is SIGKILLed and later restarted, then every broker is restarted in
//! turn (a rolling restart, each waiting for full replication), then two of three are stopped
//! at once so that no in-sync quorum exists, and brought back.
//!
//! What must hold: zero acknowledged (202) events lost, zero deliveries lost; ingest answers
//! 503 only while no in-sync quorum exists (never anything else, never a 202 that is then
//! lost, never a 503 while one broker is down); the services never restart; the
//! only deliveries of events that were not acknowledged are of 503-answered ones (written
//! later, as the README says). The longest pause in deliveries is reported.

use crate::harness::*;
use crate::stack::Stack;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the producer saw, by event number: 202 (with the id) or 503.
#[derive(Default)]
struct Answers {
    accepted: HashMap<u64, String>,
    refused: Vec<(u64, Instant)>,
}

#[test]
fn broker_kill_rolling_restart_and_lost_quorum_lose_nothing() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    // The default produce timeout (10 s): longer than a leader election, so a killed or
    // restarted broker alone must never make ingest answer 503.
    let mut stack = Stack::on(Flavor::KafkaCluster, "failover", &[]);
    let (_id, secret) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let answers: Arc<Mutex<Answers>> = Arc::default();
    let stop = AtomicBool::new(false);
    let brokers = stack.brokers();
    std::thread::scope(|s| {
        let (api, sink, stop) = (&stack.api, answers.clone(), &stop);
        s.spawn(move || produce(api, &sink, stop));
        let _stop = StopOnDrop(stop);
        let accepted_now = || answers.lock().unwrap().accepted.len();
        wait_until("load flowing", Duration::from_secs(60), || {
            accepted_now() > 50
        });

        // 1. SIGKILL the leader of most events partitions; restart it later.
        let leader = events_leader(&brokers);
        let node = stack.broker.index_of(leader);
        eprintln!("failover: SIGKILL of node {leader}, leader of the events topic");
        stack.broker.stop_node(node, "KILL");
        let before = accepted_now();
        wait_until(
            "ingest accepts with one node dead",
            Duration::from_secs(60),
            || accepted_now() > before + 50,
        );
        stack.broker.start_node(node);
        wait_in_sync(&brokers);
        eprintln!("failover: node {leader} back, every partition fully in sync");

        // 2. A rolling restart: each node in turn, the next only once all is in sync again.
        for i in 0..3 {
            eprintln!(
                "failover: rolling restart of node {}",
                stack.broker.node_id(i)
            );
            stack.broker.stop_node(i, "TERM");
            let before = accepted_now();
            wait_until(
                "ingest accepts during the restart",
                Duration::from_secs(60),
                || accepted_now() > before + 20,
            );
            stack.broker.start_node(i);
            wait_in_sync(&brokers);
        }

        // 3. No in-sync quorum: two of three stopped. Ingest must answer 503, then recover.
        let refused_before = answers.lock().unwrap().refused.len();
        assert_eq!(
            refused_before, 0,
            "503 while an in-sync quorum existed (one broker down or restarting)"
        );
        eprintln!("failover: stopping two of three nodes");
        stack.broker.stop_node(1, "KILL");
        stack.broker.stop_node(2, "KILL");
        wait_until(
            "ingest answers 503 without a quorum",
            Duration::from_secs(90),
            || answers.lock().unwrap().refused.len() > refused_before,
        );
        stack.broker.restart();
        let before = accepted_now();
        wait_until("ingest accepts again", Duration::from_secs(120), || {
            accepted_now() > before + 20
        });
        wait_in_sync(&brokers);
        stop.store(true, Ordering::SeqCst);
    });
    stack.assert_all_running();

    let answers = answers.lock().unwrap();
    let expected: HashSet<&str> = answers.accepted.values().map(String::as_str).collect();
    wait_until(
        "every acknowledged event delivered",
        Duration::from_secs(180),
        || {
            let got: HashSet<String> = receiver.webhook_ids("/hook").into_iter().collect();
            expected.iter().all(|id| got.contains(*id))
        },
    );
    std::thread::sleep(Duration::from_secs(2)); // stragglers
    let got = receiver.on("/hook");
    let refused: HashSet<u64> = answers.refused.iter().map(|(n, _)| *n).collect();
    let mut per_id: BTreeMap<String, usize> = BTreeMap::new();
    for delivery in &got {
        let id = delivery.headers["webhook-id"].clone();
        if !expected.contains(id.as_str()) {
            let n = serde_json::from_slice::<serde_json::Value>(&delivery.body).unwrap()["n"]
                .as_u64()
                .unwrap();
            assert!(
                refused.contains(&n),
                "event {n} ({id}) was delivered but neither acknowledged nor refused"
            );
        }
        *per_id.entry(id).or_default() += 1;
    }
    let duplicates: usize = per_id.values().map(|n| n - 1).sum();
    assert_eq!(verify_with_python(&got, &secret), got.len());
    let gap = longest_pause(&got);
    eprintln!(
        "failover: {} acknowledged, {} answered 503 ({} of those delivered later), {} \
         deliveries, {duplicates} duplicates (same webhook-id), longest pause in deliveries \
         {:.1} s",
        answers.accepted.len(),
        refused.len(),
        per_id.len() - expected.len(),
        got.len(),
        gap.as_secs_f64()
    );
    assert!(
        !answers.refused.is_empty(),
        "a lost quorum was answered 503"
    );
}

/// Posts one event every 25 ms until `stop`. Every answer must be 202 or 503.
fn produce(api: &Api, answers: &Mutex<Answers>, stop: &AtomicBool) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        let (status, body) = api.post(
            "/v1/events",
            &serde_json::json!({"type": "stock.moved", "payload": {"n": n}}),
        );
        let mut answers = answers.lock().unwrap();
        match status {
            202 => {
                let id = body["id"].as_str().unwrap().to_owned();
                answers.accepted.insert(n, id);
            }
            503 => answers.refused.push((n, Instant::now())),
            other => panic!("event {n}: answered {other} {body}"),
        }
        drop(answers);
        n += 1;
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// The node leading the most partitions of the events topic.
fn events_leader(brokers: &str) -> i32 {
    let states = partition_states(brokers, "herald.events.v1").expect("metadata");
    let mut count: BTreeMap<i32, usize> = BTreeMap::new();
    for state in states.iter().filter(|s| s.leader >= 0) {
        *count.entry(state.leader).or_default() += 1;
    }
    count
        .into_iter()
        .max_by_key(|(_, n)| *n)
        .map(|(leader, _)| leader)
        .expect("the events topic has leaders")
}

/// Waits until every Herald partition has a leader and all its replicas in sync.
fn wait_in_sync(brokers: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lagging: Vec<String> = match partition_states(brokers, "herald.") {
            Some(states) if !states.is_empty() => states
                .iter()
                .filter(|s| s.leader < 0 || s.in_sync < s.replicas)
                .map(|s| {
                    format!(
                        "{}/{} ({} of {})",
                        s.topic, s.partition, s.in_sync, s.replicas
                    )
                })
                .collect(),
            _ => vec!["no metadata".to_owned()],
        };
        if lagging.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "not fully replicated within 120 s: {lagging:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The longest time between two consecutive deliveries.
fn longest_pause(got: &[Received]) -> Duration {
    got.windows(2)
        .map(|w| w[1].at.saturating_duration_since(w[0].at))
        .max()
        .unwrap_or_default()
}
