//! One active dispatcher per group on the embedded broker (`assignment = "all"`): a second
//! dispatcher stands by instead of delivering everything a second time, takes over when the
//! active one is killed (its lease expires) or stopped (it releases the lease), and nothing
//! is lost or sent twice along the way.

use crate::harness::*;
use crate::stack::Stack;
use std::collections::HashSet;
use std::time::{Duration, Instant};

/// Waits until `receiver` has `n` deliveries on `/hook`, then checks they are exactly `ids`.
fn assert_delivered_once(receiver: &Receiver, ids: &HashSet<String>, what: &str) {
    receiver.wait_for("/hook", ids.len(), Duration::from_secs(120));
    // A second dispatcher delivering too would show up within moments.
    std::thread::sleep(Duration::from_secs(2));
    let got = receiver.webhook_ids("/hook");
    let unique: HashSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), unique.len(), "{what}: duplicate deliveries");
    assert_eq!(&unique, ids, "{what}: delivered set differs");
}

#[test]
fn a_second_dispatcher_stands_by_and_takes_over_without_loss_or_duplicates() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let mut stack = Stack::on(
        Flavor::Embedded,
        "standby",
        &[("HERALD_DISPATCHER__LEASE", "3s")],
    );
    stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let mut standby = stack.spawn_dispatcher("standby-a");
    standby.wait_line("herald: dispatcher standing by", Duration::from_secs(120));

    let mut ids: HashSet<String> = stack.post_events(200, "stock.moved").into_iter().collect();
    assert_delivered_once(&receiver, &ids, "two dispatchers, one lease");

    // The active one dies without releasing: the standby takes over once the lease expires.
    assert_eq!(stack.stop_dispatcher("KILL"), None);
    let killed_at = Instant::now();
    ids.extend(stack.post_events(100, "stock.moved"));
    assert_delivered_once(&receiver, &ids, "after the kill");
    eprintln!(
        "standby delivered the post-kill events {:?} after the kill",
        killed_at.elapsed()
    );

    // A clean stop releases the lease: the next standby takes over without waiting it out.
    let mut standby_b = stack.spawn_dispatcher("standby-b");
    standby_b.wait_line("herald: dispatcher standing by", Duration::from_secs(120));
    standby.signal("TERM");
    assert_eq!(standby.wait_exit(Duration::from_secs(60)), Some(0));
    ids.extend(stack.post_events(100, "stock.moved"));
    assert_delivered_once(&receiver, &ids, "after the handover");
    let log = std::fs::read_to_string(stack.dir.path().join("standby-b.log")).unwrap();
    assert!(
        log.contains("Dispatcher lease taken"),
        "standby-b took over"
    );

    standby_b.signal("TERM");
    assert_eq!(standby_b.wait_exit(Duration::from_secs(60)), Some(0));
}
