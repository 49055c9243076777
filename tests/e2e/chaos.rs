//! Receivers that misbehave and a broker that goes away: every accepted event ends up
//! delivered or dead-lettered, never lost, within its attempt budget and its schedule.

use crate::chaos_receiver::{Act, ChaosReceiver, Hit};
use crate::harness::*;
use crate::stack::*;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// The test schedule: waits after failed attempts 1..4; attempt 5 is the last.
const SCHEDULE: [Duration; 4] = [
    Duration::from_millis(100),
    Duration::from_millis(200),
    Duration::from_millis(300),
    Duration::from_millis(400),
];
const BUDGET: usize = SCHEDULE.len() + 1;

fn roll(id: &str, seen: usize) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    (id, seen).hash(&mut hasher);
    hasher.finish() % 100
}

/// ~30 % failures: 500s, 503s, hangs past the timeout, resets; some successes are slow.
fn flaky(id: &str, seen: usize) -> Act {
    match roll(id, seen) {
        0..=9 => Act::Answer(500, Duration::ZERO),
        10..=15 => Act::Answer(503, Duration::ZERO),
        16..=22 => Act::Hang(Duration::from_secs(3)),
        23..=29 => Act::Reset,
        30..=39 => Act::Answer(200, Duration::from_millis(150)),
        _ => Act::Answer(204, Duration::ZERO),
    }
}

fn schedule_env() -> String {
    SCHEDULE
        .iter()
        .map(|d| format!("{}ms", d.as_millis()))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn flaky_receiver_every_event_delivered_or_dead_within_budget_and_schedule() {
    const EVENTS: usize = 5_000;
    let receiver = ChaosReceiver::start(Arc::new(flaky));
    let schedule = schedule_env();
    let mut stack = Stack::start(
        "flaky",
        &[
            ("HERALD_DISPATCHER__RETRY_SCHEDULE", &schedule),
            ("HERALD_DISPATCHER__ATTEMPT_TIMEOUT", "1s"),
            ("HERALD_DISPATCHER__THROTTLE_FLOOR", "300ms"),
        ],
    );
    stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let accepted: HashSet<String> = stack
        .post_events(EVENTS, "stock.moved")
        .into_iter()
        .collect();

    let settled = || {
        let delivered: HashSet<String> = receiver.delivered().into_iter().collect();
        let dead = stack.dead_letters().len();
        delivered.len() + dead >= EVENTS
    };
    wait_until(
        "every event delivered or dead",
        Duration::from_secs(600),
        settled,
    );
    stack.assert_all_running();

    let hits = receiver.hits();
    let mut by_id: HashMap<&str, Vec<&Hit>> = HashMap::new();
    for hit in &hits {
        by_id.entry(hit.id()).or_default().push(hit);
    }
    let delivered: HashSet<String> = receiver.delivered().into_iter().collect();
    let dead = stack.dead_letters();
    let dead_ids: HashSet<String> = dead
        .iter()
        .map(|d| d.task.as_ref().unwrap().event.as_ref().unwrap().id.clone())
        .collect();
    assert!(
        delivered.is_disjoint(&dead_ids),
        "nothing both delivered and dead"
    );
    let settled: HashSet<String> = delivered.union(&dead_ids).cloned().collect();
    assert_eq!(
        settled, accepted,
        "zero lost: every event delivered or dead-lettered"
    );
    assert_eq!(
        dead.len(),
        dead_ids.len(),
        "one dead letter per dead delivery"
    );

    for (id, attempts) in &by_id {
        assert!(
            attempts.len() <= BUDGET,
            "{id}: {} attempts, budget {BUDGET}",
            attempts.len()
        );
        for (n, pair) in attempts.windows(2).enumerate() {
            // Jitter is ±20 %; the wait starts when the attempt ended, so the gap between
            // starts is at least 80 % of the step (and at least the floor after a timeout).
            let step = SCHEDULE[n];
            let floor = match pair[0].act {
                Act::Hang(_) => Duration::from_millis(300),
                _ => Duration::ZERO,
            };
            let min = step.max(floor).mul_f64(0.8);
            let gap = pair[1].at - pair[0].at;
            assert!(
                gap >= min,
                "{id}: attempt {} came {gap:?} after the previous, expected ≥ {min:?}",
                n + 2
            );
        }
    }
    for letter in &dead {
        let task = letter.task.as_ref().unwrap();
        assert_eq!(letter.reason, "exhausted");
        assert_eq!(
            task.attempts.len(),
            BUDGET,
            "dead letter carries every attempt"
        );
        let last = task.last_failure.as_ref().expect("last failure");
        assert!(
            last.status >= 500 || !last.error.is_empty(),
            "last failure explains itself: {last:?}"
        );
        assert_eq!(
            by_id[task.event.as_ref().unwrap().id.as_str()].len(),
            BUDGET,
            "a dead delivery used its whole budget"
        );
    }
    eprintln!(
        "flaky: {EVENTS} events, {} attempts, {} delivered, {} dead",
        hits.len(),
        delivered.len(),
        dead.len()
    );
}

#[test]
fn poison_endpoint_does_not_hold_back_healthy_ones() {
    const EVENTS: usize = 200;
    const HEALTHY: usize = 9;
    let healthy = Receiver::start("127.0.0.1:0".parse().unwrap());
    let poison = ChaosReceiver::start(Arc::new(|_, _| Act::Hang(Duration::from_secs(30))));
    let mut stack = Stack::start(
        "poison",
        &[
            ("HERALD_DISPATCHER__RETRY_SCHEDULE", "100ms,200ms"),
            ("HERALD_DISPATCHER__ATTEMPT_TIMEOUT", "1s"),
            ("HERALD_DISPATCHER__THROTTLE_FLOOR", "200ms"),
            ("HERALD_DISPATCHER__PER_ENDPOINT_CONCURRENCY", "8"),
        ],
    );
    for n in 0..HEALTHY {
        stack
            .api
            .create_endpoint(&format!("http://{}/h{n}", healthy.addr), &[]);
    }
    stack
        .api
        .create_endpoint(&format!("http://{}/poison", poison.addr), &[]);
    let accepted: HashSet<String> = stack
        .post_events(EVENTS, "stock.moved")
        .into_iter()
        .collect();

    for n in 0..HEALTHY {
        healthy.wait_for(&format!("/h{n}"), EVENTS, Duration::from_secs(300));
    }
    // When every healthy delivery is done, the poison endpoint (8 at a time, ≥ 3 attempts of
    // 1 s each per delivery) is nowhere near through its backlog: nothing queued behind it.
    let poison_dead_when_healthy_done = stack.dead_letters().len();
    assert!(
        poison_dead_when_healthy_done < EVENTS / 2,
        "healthy deliveries finished only after {poison_dead_when_healthy_done} of {EVENTS} poison deliveries were dead"
    );
    for n in 0..HEALTHY {
        let got: HashSet<String> = healthy
            .on(&format!("/h{n}"))
            .iter()
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        assert_eq!(got, accepted, "/h{n} got every event");
    }
    wait_until(
        "every poison delivery dead",
        Duration::from_secs(300),
        || stack.dead_letters().len() >= EVENTS,
    );
    let dead: HashSet<String> = stack
        .dead_letters()
        .iter()
        .map(|d| d.task.as_ref().unwrap().event.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(dead, accepted, "every poison delivery ends in the DLQ");
    stack.assert_all_running();
}

#[test]
fn broker_outage_gets_503s_and_the_backlog_drains_after() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let mut stack = Stack::start("outage", &[("HERALD_KAFKA__PRODUCE_TIMEOUT", "2s")]);
    stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let mut accepted: HashSet<String> = stack.post_events(300, "stock.moved").into_iter().collect();
    receiver.wait_for("/hook", 300, Duration::from_secs(120));

    stack.stop_broker();
    for i in 0..5 {
        let (status, body) = stack.api.post(
            "/v1/events",
            &serde_json::json!({"type": "stock.moved", "payload": {"down": i}}),
        );
        assert_eq!(status, 503, "broker down: {body}");
        assert!(body["error"]["code"].is_string(), "JSON error: {body}");
    }
    std::thread::sleep(Duration::from_secs(3));
    stack.assert_all_running();

    stack.restart_broker();
    wait_until("ingest accepts again", Duration::from_secs(120), || {
        let (status, body) = stack.api.post(
            "/v1/events",
            &serde_json::json!({"type": "stock.moved", "payload": {"back": true}}),
        );
        if status == 202 {
            accepted.insert(body["id"].as_str().unwrap().to_owned());
        }
        status == 202
    });
    accepted.extend(stack.post_events(300, "stock.moved"));
    wait_until("the backlog drains", Duration::from_secs(300), || {
        let got: HashSet<String> = receiver
            .on("/hook")
            .iter()
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        got.is_superset(&accepted)
    });
    stack.assert_all_running();
}
