//! Events accepted, then `herald dev` (embedded broker, sqlite storage) killed before they
//! could be delivered, then started again: every event is still delivered.

use crate::harness::*;
use serde_json::json;
use std::collections::HashSet;
use std::time::Duration;

const EVENTS: usize = 50;

fn start_dev(dir: &std::path::Path, broker: std::net::SocketAddr, token: &str) -> Proc {
    // Retries wait long enough that nothing is dead-lettered before the restart.
    let mut env = herald_env(token, &master_key());
    env.retain(|(k, _)| *k != "HERALD_DISPATCHER__RETRY_SCHEDULE");
    env.push((
        "HERALD_DISPATCHER__RETRY_SCHEDULE",
        "3s,3s,3s,3s,3s,3s".to_owned(),
    ));
    Proc::spawn(
        "herald-dev",
        &[
            "dev",
            "--broker-listen",
            &broker.to_string(),
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            dir.join("data").to_str().unwrap(),
        ],
        &env,
        dir,
    )
}

#[test]
fn events_accepted_before_a_kill_are_delivered_after_restart() {
    let dir = TempDir::new("restart");
    let token = admin_token();
    let broker_addr = free_port();
    let receiver_addr = free_port(); // nothing listens here until after the restart
    let mut herald = start_dev(dir.path(), broker_addr, &token);
    let api = Api::new(
        herald.wait_line("herald: ingest listening on", Duration::from_secs(120)),
        token.clone(),
    );
    let (_id, secret) = api.create_endpoint(&format!("http://{receiver_addr}/hook"), &[]);
    let mut accepted = HashSet::new();
    for i in 0..EVENTS {
        let (status, body) = api.post(
            "/v1/events",
            &json!({"type": "stock.moved", "payload": {"n": i}}),
        );
        assert_eq!(status, 202, "{body}");
        accepted.insert(body["id"].as_str().unwrap().to_owned());
    }
    herald.signal("KILL");
    herald.wait_exit(Duration::from_secs(30));

    let receiver = Receiver::start(receiver_addr);
    let mut herald = start_dev(dir.path(), broker_addr, &token);
    herald.wait_line("herald: ingest listening on", Duration::from_secs(120));
    receiver.wait_for("/hook", EVENTS, Duration::from_secs(120));
    let got = receiver.on("/hook");
    let ids: HashSet<String> = got
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(
        ids, accepted,
        "every accepted event delivered after the restart"
    );
    assert_eq!(verify_with_python(&got, &secret), got.len());
    herald.signal("TERM");
    assert_eq!(herald.wait_exit(Duration::from_secs(60)), Some(0));

    // The embedded broker's database: Herald wrote no record headers, and the header lookup
    // tansu runs for every record it serves has its index (or it would scan the whole table).
    let db = dir.path().join("data/tansu.db");
    let (headers, indexed) = sqlite(
        &db,
        "select (select count(*) from header), \
         (select count(*) from sqlite_master where type = 'index' and tbl_name = 'header' \
          and name = 'herald_header_by_record')",
    );
    assert_eq!(
        (headers, indexed),
        (0, 1),
        "header rows, header index in {}",
        db.display()
    );
}

/// Two integers from one row of `query` on the sqlite database `db` (Python's sqlite3, so
/// the check does not go through the broker's own driver).
fn sqlite(db: &std::path::Path, query: &str) -> (i64, i64) {
    let script = format!(
        "import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute({query:?}).fetchone())"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script, db.to_str().unwrap()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut values = text.split_whitespace().map(|v| v.parse::<i64>().unwrap());
    (values.next().unwrap(), values.next().unwrap())
}
