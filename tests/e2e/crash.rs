//! The dispatcher process killed (SIGKILL) or stopped (SIGTERM) several times while it
//! delivers 10,000 events: nothing is lost; SIGTERM adds no duplicates; SIGKILL adds only
//! the deliveries in flight at each kill, every one with the same `webhook-id`. One event in
//! twenty fails its first attempt, so the stops also hit tasks waiting in the retry tiers.

use crate::chaos_receiver::{as_received, Act, ChaosReceiver, Hit};
use crate::harness::*;
use crate::stack::*;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const EVENTS: usize = 10_000;
const STOPS: usize = 3;

/// One event in twenty (by its id, so the same on every attempt) fails its first attempt.
fn fails_first(id: &str) -> bool {
    id.bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % 20
        == 0
}

/// Runs the scenario with `signal`; returns (successful deliveries, duplicates among them).
fn deliver_through_restarts(flavor: Flavor, name: &str, signal: &str) -> (usize, usize) {
    let receiver = ChaosReceiver::start(Arc::new(|id, seen| {
        if seen == 0 && fails_first(id) {
            Act::Answer(503, Duration::ZERO)
        } else {
            Act::Answer(200, Duration::ZERO)
        }
    }));
    let mut stack = Stack::on(flavor, name, &[]);
    let (_id, secret) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    // A backlog, so every stop lands while deliveries are in full flow.
    assert_eq!(stack.stop_dispatcher("TERM"), Some(0));
    let accepted: HashSet<String> = stack
        .post_events(EVENTS, "stock.moved")
        .into_iter()
        .collect();
    assert_eq!(accepted.len(), EVENTS);
    stack.start_dispatcher();

    // Stop at random points of the run, then start again.
    let mut rng = rand::thread_rng();
    let mut points: Vec<usize> = (0..STOPS)
        .map(|i| rng.gen_range(EVENTS * i / STOPS + 200..EVENTS * (i + 1) / STOPS))
        .collect();
    points.sort_unstable();
    for point in points {
        wait_until(
            &format!("{point} deliveries before stopping the dispatcher"),
            Duration::from_secs(300),
            || receiver.delivered().len() >= point,
        );
        eprintln!(
            "{name}: SIG{signal} after {} deliveries",
            receiver.delivered().len()
        );
        let code = stack.stop_dispatcher(signal);
        if signal == "TERM" {
            assert_eq!(code, Some(0), "a drained dispatcher exits 0");
        }
        stack.start_dispatcher();
    }
    wait_until(
        "every accepted event delivered",
        Duration::from_secs(300),
        || receiver.delivered().iter().collect::<HashSet<_>>().len() >= EVENTS,
    );
    // Give stragglers (duplicates still in flight) a moment to show up before counting.
    std::thread::sleep(Duration::from_secs(2));
    stack.assert_all_running();

    let hits = receiver.hits();
    let successes = receiver.delivered();
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for id in &successes {
        *per_id.entry(id.as_str()).or_default() += 1;
    }
    let delivered: HashSet<String> = per_id.keys().map(|id| (*id).to_owned()).collect();
    assert_eq!(
        delivered, accepted,
        "exactly the accepted events were delivered"
    );
    let failed_first: HashSet<&str> = hits
        .iter()
        .filter(|h| h.act == Act::Answer(503, Duration::ZERO))
        .map(Hit::id)
        .collect();
    let expected_failures = accepted.iter().filter(|id| fails_first(id)).count();
    assert_eq!(
        failed_first.len(),
        expected_failures,
        "every event meant to fail once was attempted, failed and then retried to success"
    );
    assert_eq!(
        verify_with_python(&as_received(&hits), &secret),
        hits.len(),
        "every attempt, failures and duplicates included, carries a valid signature"
    );
    let duplicates = successes.len() - EVENTS;
    eprintln!(
        "{name}: {EVENTS} events ({expected_failures} through the retry tiers), {STOPS} x SIG{signal}: \
         {} successful deliveries, {duplicates} duplicates",
        successes.len()
    );
    assert_eq!(stack.stop_dispatcher("TERM"), Some(0));
    // Everything was delivered and the last stop drained: the group's committed offsets
    // reached the end of the events topic (a restart would re-read nothing).
    let events = herald_core::topics::Topics::new(herald_core::topics::DEFAULT_PREFIX)
        .events()
        .to_owned();
    assert_committed_to_end(&stack.brokers(), "herald-dispatcher", &events);
    (successes.len(), duplicates)
}

#[test]
fn sigkill_of_the_dispatcher_loses_nothing() {
    let (_, duplicates) = deliver_through_restarts(Flavor::suite(), "sigkill", "KILL");
    assert_duplicates_bounded(duplicates);
}

/// The same on the embedded broker (`herald dev`'s), where the dispatcher consumes every
/// partition under the lease instead of the group protocol.
#[test]
fn sigkill_of_the_dispatcher_loses_nothing_on_the_embedded_broker() {
    let (_, duplicates) = deliver_through_restarts(Flavor::Embedded, "sigkill-embedded", "KILL");
    assert_duplicates_bounded(duplicates);
}

/// Only what was in flight at each kill may repeat: bounded by max_in_flight per kill.
fn assert_duplicates_bounded(duplicates: usize) {
    assert!(
        duplicates <= STOPS * 512,
        "{duplicates} duplicates: more than the in-flight deliveries at {STOPS} kills"
    );
}

#[test]
fn sigterm_of_the_dispatcher_loses_nothing_and_duplicates_nothing() {
    let (_, duplicates) = deliver_through_restarts(Flavor::suite(), "sigterm", "TERM");
    assert_eq!(duplicates, 0, "a drained stop re-sends nothing");
}

#[test]
fn sigterm_while_the_broker_is_down_still_exits() {
    // Deliveries hang at the receiver, then the broker goes away: the drain can write no
    // outcome. The dispatcher must still exit (bounded by shutdown_deadline + the stop grace),
    // and a restart against the returned broker delivers everything: nothing was committed
    // that was not done.
    let receiver = ChaosReceiver::start(Arc::new(|_, seen| {
        if seen == 0 {
            Act::Hang(Duration::from_secs(3))
        } else {
            Act::Answer(200, Duration::ZERO)
        }
    }));
    let mut stack = Stack::start("stuckstop", &[("HERALD_SHUTDOWN_DEADLINE", "2s")]);
    stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let accepted: HashSet<String> = stack.post_events(50, "stock.moved").into_iter().collect();
    wait_until("deliveries in flight", Duration::from_secs(60), || {
        receiver.hits().len() >= 10
    });
    stack.stop_broker();
    let stopping = std::time::Instant::now();
    let code = stack.stop_dispatcher("TERM");
    assert!(
        code.is_some(),
        "the dispatcher exited although the broker is gone"
    );
    eprintln!(
        "stuck stop: exit {code:?} after {:.1} s",
        stopping.elapsed().as_secs_f64()
    );
    stack.restart_broker();
    stack.start_dispatcher();
    wait_until(
        "every accepted event delivered after the restart",
        Duration::from_secs(120),
        || receiver.delivered().iter().collect::<HashSet<_>>().len() >= accepted.len(),
    );
    let delivered: HashSet<String> = receiver.delivered().into_iter().collect();
    assert_eq!(delivered, accepted);
}
