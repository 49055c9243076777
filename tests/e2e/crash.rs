//! The dispatcher process killed (SIGKILL) or stopped (SIGTERM) several times while it
//! delivers 10,000 events: nothing is lost; SIGTERM adds no duplicates; SIGKILL adds only
//! the deliveries in flight at each kill, every one with the same `webhook-id`.

use crate::chaos_receiver::{Act, ChaosReceiver};
use crate::stack::*;
use crate::utils::verify_with_python;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

const EVENTS: usize = 10_000;
const STOPS: usize = 3;

/// Runs the scenario with `signal`; returns (accepted, hits per id, duplicates).
fn deliver_through_restarts(name: &str, signal: &str) -> (usize, usize) {
    let receiver = ChaosReceiver::start(Arc::new(|_, _| Act::Answer(200, Duration::ZERO)));
    let mut stack = Stack::start(name, &[]);
    let (_id, secret) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let accepted: HashSet<String> = stack
        .post_events(EVENTS, "stock.moved")
        .into_iter()
        .collect();
    assert_eq!(accepted.len(), EVENTS);

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
    let mut per_id: HashMap<&str, usize> = HashMap::new();
    for hit in &hits {
        *per_id.entry(hit.id()).or_default() += 1;
    }
    let delivered: HashSet<String> = per_id.keys().map(|id| (*id).to_owned()).collect();
    assert_eq!(
        delivered, accepted,
        "exactly the accepted events were delivered"
    );
    assert_eq!(
        verify_with_python(&as_received(&hits), &secret),
        hits.len(),
        "every delivery, duplicates included, carries a valid signature"
    );
    let duplicates = hits.len() - EVENTS;
    eprintln!(
        "{name}: {EVENTS} events, {STOPS} x SIG{signal}: {} deliveries, {duplicates} duplicates",
        hits.len()
    );
    stack.stop_dispatcher("TERM");
    (hits.len(), duplicates)
}

#[test]
#[ignore = "flaky on tansu 0.6: after a SIGKILL its group coordinator can leave the restarted dispatcher unassigned or time out its session under load; run with --ignored; see issue #3 notes"]
fn sigkill_of_the_dispatcher_loses_nothing() {
    let (_, duplicates) = deliver_through_restarts("sigkill", "KILL");
    // Only what was in flight at each kill may repeat: bounded by max_in_flight per kill.
    assert!(
        duplicates <= STOPS * 512,
        "{duplicates} duplicates: more than the in-flight deliveries at {STOPS} kills"
    );
}

#[test]
fn sigterm_of_the_dispatcher_loses_nothing_and_duplicates_nothing() {
    let (_, duplicates) = deliver_through_restarts("sigterm", "TERM");
    assert_eq!(duplicates, 0, "a drained stop re-sends nothing");
}
