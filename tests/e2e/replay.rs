//! Replay end to end: a real broker process, `herald dev` delivering to a loopback receiver
//! that fails on demand, and the `herald replay` / `herald dlq` CLI and the admin API.
//! Re-drives are counted where they are written (the shortest retry tier topic), so "exactly
//! once" is checked on the log itself, not only at the receiver.

use crate::harness::*;
use herald_proto::{v1, Message};
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

/// The shortest tier of `herald_env`'s schedule (200ms,400ms,800ms): where re-drives go.
const TIER: &str = "herald.deliveries.retry.200ms";
const MINUTE: Duration = Duration::from_secs(60);

struct Stack {
    dir: TempDir,
    broker: Broker,
    herald: Proc,
    api: Api,
    env: Vec<(&'static str, String)>,
}

impl Stack {
    fn start(name: &str) -> Self {
        let dir = TempDir::new(name);
        let broker = Broker::start(Flavor::suite(), dir.path());
        let token = admin_token();
        let mut env = herald_env(&token, &master_key());
        env.extend(broker.herald_env());
        let mut herald = Proc::spawn(
            "herald",
            &[
                "dev",
                "--kafka",
                &broker.bootstrap(),
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                dir.path().join("dev").to_str().unwrap(),
            ],
            &env,
            dir.path(),
        );
        let base = herald.wait_line("herald: ingest listening on", Duration::from_secs(120));
        Self {
            dir,
            broker,
            herald,
            api: Api::new(base, token),
            env,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `herald <args>` as its own process against the same broker.
    fn cli(&self, name: &str, args: &[&str]) -> (Option<i32>, Vec<String>, String) {
        run_cli(name, args, &self.env, self.path(), Duration::from_secs(120))
    }

    fn ingest(&self, n: usize, kind: &str) -> Vec<String> {
        (0..n)
            .map(|i| {
                let (status, body) = self.api.post(
                    "/v1/events",
                    &json!({"type": kind, "payload": {"n": i, "kind": kind}}),
                );
                assert_eq!(status, 202, "{body}");
                body["id"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.api.get(path)
    }

    /// Waits until the DLQ holds `n` pending dead letters of `endpoint`.
    fn wait_pending(&self, endpoint: &str, n: u64) {
        let deadline = std::time::Instant::now() + MINUTE;
        loop {
            let (status, body) =
                self.get(&format!("/v1/dead-letters?endpoint={endpoint}&limit=1000"));
            assert_eq!(status, 200, "{body}");
            if body["total"].as_u64() == Some(n) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "DLQ did not reach {n} pending: {body}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The re-drive tasks of `replay_id` written to the shortest retry tier.
    fn redriven(&self, replay_id: &str) -> Vec<v1::DeliveryTask> {
        read_topic(&self.broker.bootstrap(), TIER)
            .iter()
            .filter_map(|bytes| v1::DeliveryTask::decode(bytes.as_slice()).ok())
            .filter(|task| task.replay_id == replay_id)
            .collect()
    }

    fn stop(mut self) {
        self.herald.signal("TERM");
        assert_eq!(self.herald.wait_exit(MINUTE), Some(0));
    }
}

/// The id of the run a `herald replay …` printed (`herald: replay rpl_… started`).
fn started_id(lines: &[String]) -> String {
    lines
        .iter()
        .find_map(|l| {
            l.strip_prefix("herald: replay ")
                .and_then(|rest| rest.strip_suffix(" started"))
        })
        .unwrap_or_else(|| panic!("no start line in {lines:#?}"))
        .to_owned()
}

fn has_line(lines: &[String], needle: &str) -> bool {
    lines.iter().any(|l| l.contains(needle))
}

fn counts(ids: &[String]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for id in ids {
        *counts.entry(id.clone()).or_default() += 1;
    }
    counts
}

/// Dead letters of a flaky receiver are re-driven after it is fixed: the backlog drains, the
/// delivered set equals the ingested set, `webhook-id`s are the original ones, and running the
/// same replay again re-drives nothing.
#[test]
fn dlq_replay_drains_the_backlog_with_original_webhook_ids_and_is_idempotent() {
    const N: usize = 12;
    let stack = Stack::start("replay-dlq");
    let receiver = SwitchReceiver::start(true);
    let (endpoint, secret) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let ingested: HashSet<String> = stack.ingest(N, "stock.moved").into_iter().collect();
    stack.wait_pending(&endpoint, N as u64);
    let failed: HashSet<String> = receiver.ids("/hook", 500).into_iter().collect();
    assert_eq!(failed, ingested, "every event failed before it was parked");

    let (code, lines, stderr) = stack.cli("dlq-stats", &["dlq", "stats"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(has_line(&lines, &format!("{N} pending")), "{lines:#?}");

    receiver.set_failing(false);
    let (code, lines, stderr) = stack.cli(
        "replay-1",
        &["replay", "dlq", "--endpoint", &endpoint, "--yes"],
    );
    assert_eq!(code, Some(0), "{lines:#?}\n{stderr}");
    assert!(
        has_line(&lines, &format!("finished: {N} re-driven")),
        "{lines:#?}"
    );
    let first = started_id(&lines);
    receiver.wait_delivered("/hook", N, MINUTE);

    let delivered = receiver.ids("/hook", 200);
    assert_eq!(
        delivered.iter().cloned().collect::<HashSet<_>>(),
        ingested,
        "delivered set equals ingested set, with the original webhook-ids"
    );
    let tasks = stack.redriven(&first);
    assert_eq!(tasks.len(), N, "each dead letter re-driven once");
    assert!(tasks
        .iter()
        .all(|t| t.next_attempt == 1 && t.last_failure.is_some()));
    assert_eq!(
        verify_with_python(&receiver.delivered("/hook"), &secret),
        N,
        "replayed deliveries are signed"
    );
    stack.wait_pending(&endpoint, 0);
    let (_, body) = stack.get(&format!("/v1/replays/{first}"));
    assert_eq!(body["state"], "finished", "{body}");
    assert_eq!(body["redriven"], N, "{body}");

    // The same replay again: nothing left to re-drive.
    let (code, lines, stderr) = stack.cli(
        "replay-2",
        &["replay", "dlq", "--endpoint", &endpoint, "--yes"],
    );
    assert_eq!(code, Some(0), "{lines:#?}\n{stderr}");
    assert!(has_line(&lines, "plan: 0 to re-drive"), "{lines:#?}");
    assert!(has_line(&lines, "finished: 0 re-driven"), "{lines:#?}");
    let second = started_id(&lines);
    assert!(stack.redriven(&second).is_empty(), "second run wrote tasks");
    assert_eq!(stack.redriven(&first).len(), N);
    assert_eq!(counts(&receiver.ids("/hook", 200)).values().max(), Some(&1));

    // Both runs are in the audit trail with who and what.
    let audit: Vec<v1::AuditRecord> = read_topic(&stack.broker.bootstrap(), "herald.audit.v1")
        .iter()
        .filter_map(|b| v1::AuditRecord::decode(b.as_slice()).ok())
        .collect();
    for id in [&first, &second] {
        for action in ["replay.started", "replay.finished"] {
            let record = audit
                .iter()
                .find(|a| a.target == *id && a.action == action)
                .unwrap_or_else(|| panic!("no {action} audit record for {id}"));
            assert!(record.actor.starts_with("cli:"), "{record:?}");
        }
    }
    stack.stop();
}

/// A replay killed half-way and resumed re-drives every dead letter exactly once.
#[test]
fn interrupted_replay_resumes_and_redrives_each_dead_letter_exactly_once() {
    const N: usize = 20;
    let stack = Stack::start("replay-resume");
    let receiver = SwitchReceiver::start(true);
    let (endpoint, _secret) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    let ingested: HashSet<String> = stack.ingest(N, "invoice.paid").into_iter().collect();
    stack.wait_pending(&endpoint, N as u64);
    receiver.set_failing(false);

    let mut replay = Proc::spawn(
        "replay-killed",
        &["replay", "dlq", "--yes", "--rate", "1/s"],
        &stack.env,
        stack.path(),
    );
    let line = replay.wait_line("herald: replay rpl_", MINUTE);
    let id = format!("rpl_{}", line.trim_end_matches(" started"));
    receiver.wait_delivered("/hook", 5, MINUTE);
    // A second replay while this one runs is refused before it writes anything.
    let (code, _, stderr) = stack.cli("replay-concurrent", &["replay", "dlq", "--yes"]);
    assert_ne!(code, Some(0), "a second replay must wait: {stderr}");
    assert!(
        stderr.contains(&format!("replay {id} is running")),
        "{stderr}"
    );
    replay.signal("KILL");
    replay.wait_exit(MINUTE);
    let before = stack.redriven(&id).len();
    assert!(
        (5..N).contains(&before),
        "killed half-way: {before} of {N} re-driven"
    );

    let (code, lines, stderr) = stack.cli("replay-resumed", &["replay", "resume", &id, "--yes"]);
    assert_eq!(code, Some(0), "{lines:#?}\n{stderr}");
    assert!(
        has_line(&lines, &format!("finished: {N} re-driven")),
        "{lines:#?}"
    );
    receiver.wait_delivered("/hook", N, MINUTE);

    let tasks = stack.redriven(&id);
    let per_delivery = counts(
        &tasks
            .iter()
            .map(|t| t.delivery_id.clone())
            .collect::<Vec<_>>(),
    );
    assert_eq!(per_delivery.len(), N, "every dead letter re-driven");
    assert!(
        per_delivery.values().all(|n| *n == 1),
        "re-driven exactly once: {per_delivery:?}"
    );
    let delivered = receiver.ids("/hook", 200);
    assert_eq!(delivered.len(), N, "one successful delivery each");
    assert_eq!(delivered.into_iter().collect::<HashSet<_>>(), ingested);

    let (code, lines, _) = stack.cli("replay-status", &["replay", "status", &id]);
    assert_eq!(code, Some(0));
    assert!(has_line(&lines, "finished"), "{lines:#?}");
    let (code, _, stderr) = stack.cli("replay-resume-again", &["replay", "resume", &id, "--yes"]);
    assert_ne!(code, Some(0), "a finished run cannot be resumed");
    assert!(stderr.contains("finished"), "{stderr}");
    stack.stop();
}

fn spin_past(at_ms: i64) {
    while herald_kafka_now() < at_ms {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn herald_kafka_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A time-range replay of the events topic delivers exactly the events of the range, to the
/// chosen endpoint only.
#[test]
fn events_replay_delivers_exactly_the_time_range_to_the_chosen_endpoint() {
    let stack = Stack::start("replay-events");
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let (chosen, _) = stack
        .api
        .create_endpoint(&format!("http://{}/chosen", receiver.addr), &[]);
    stack
        .api
        .create_endpoint(&format!("http://{}/other", receiver.addr), &[]);
    let before = stack.ingest(5, "stock.moved");
    let since = herald_kafka_now() + 1;
    spin_past(since);
    let inside: HashSet<String> = stack.ingest(6, "stock.moved").into_iter().collect();
    let until = herald_kafka_now() + 1;
    spin_past(until);
    let after = stack.ingest(4, "stock.moved");
    receiver.wait_for("/chosen", 15, MINUTE);
    receiver.wait_for("/other", 15, MINUTE);

    let (since, until) = (rfc3339(since), rfc3339(until));
    let args = [
        "replay",
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--endpoint",
        &chosen,
    ];
    let (code, lines, stderr) = stack.cli("events-dry", &[&args[..], &["--dry-run"]].concat());
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        has_line(&lines, "plan: 6 to re-drive"),
        "{lines:#?}\n{stderr}"
    );

    let (code, lines, stderr) = stack.cli("events-run", &[&args[..], &["--yes"]].concat());
    assert_eq!(code, Some(0), "{lines:#?}\n{stderr}");
    let id = started_id(&lines);
    let tasks = stack.redriven(&id);
    assert!(
        tasks.iter().all(|t| t.endpoint_id == chosen),
        "only the chosen endpoint"
    );
    let replayed: Vec<String> = tasks
        .iter()
        .map(|t| t.event.as_ref().unwrap().id.clone())
        .collect();
    assert_eq!(replayed.len(), inside.len(), "each event of the range once");
    assert_eq!(replayed.iter().cloned().collect::<HashSet<_>>(), inside);

    receiver.wait_for("/chosen", 15 + inside.len(), MINUTE);
    let got = counts(
        &receiver
            .on("/chosen")
            .iter()
            .map(|r| r.headers["webhook-id"].clone())
            .collect::<Vec<_>>(),
    );
    for id in &inside {
        assert_eq!(got[id], 2, "{id} inside the range: delivered again");
    }
    for id in before.iter().chain(&after) {
        assert_eq!(got[id], 1, "{id} outside the range: not again");
    }
    assert_eq!(
        receiver.count("/other"),
        15,
        "the other endpoint got nothing new"
    );
    stack.stop();
}

/// A dry run and bad input write nothing to any topic and deliver nothing; the API reports
/// the same errors as JSON, and runs a replay by request.
#[test]
fn dry_run_and_bad_input_change_nothing() {
    const N: usize = 5;
    let stack = Stack::start("replay-dry");
    let receiver = SwitchReceiver::start(true);
    let (endpoint, _) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &[]);
    stack.ingest(N, "stock.moved");
    stack.wait_pending(&endpoint, N as u64);
    receiver.set_failing(false);
    let brokers = stack.broker.bootstrap();
    // Left out: the dispatcher's lease renewals (leases.v1) are liveness, and keys.v1 gets
    // the admin key's usage records (its calls below are uses): bookkeeping, not data. The
    // key records themselves must not change.
    let data_marks = || {
        let mut marks = topic_watermarks(&brokers, "herald.");
        marks.retain(|(topic, _), _| topic != "herald.leases.v1" && topic != "herald.keys.v1");
        marks
    };
    let key_records = || {
        let (status, keys) = stack.get("/v1/keys");
        assert_eq!(status, 200, "{keys}");
        let mut records: Vec<String> = keys["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| format!("{} {} {}", k["id"], k["state"], k["expires_at_ms"]))
            .collect();
        records.sort();
        records
    };
    let snapshot = data_marks();
    let keys_before = key_records();
    assert!(snapshot.contains_key(&(TIER.to_owned(), 0)), "{snapshot:?}");

    let (code, lines, stderr) = stack.cli("dry", &["replay", "dlq", "--dry-run"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        has_line(&lines, &format!("plan: {N} to re-drive")),
        "{lines:#?}"
    );
    assert!(
        has_line(&lines, &format!("endpoint {endpoint}: {N}")),
        "{lines:#?}"
    );
    assert!(has_line(&lines, "plan: sample dlv_"), "{lines:#?}");
    assert!(
        has_line(&lines, "dry run: nothing was re-driven"),
        "{lines:#?}"
    );

    let bad: [(&[&str], &str); 7] = [
        (
            &["replay", "dlq", "--endpoint", "ep_nope", "--yes"],
            "unknown endpoint ep_nope",
        ),
        (
            &[
                "replay", "events", "--since", "1h", "--until", "2h", "--yes",
            ],
            "inverted time range",
        ),
        (
            &["replay", "dlq", "--since", "2x", "--yes"],
            "invalid time `2x`",
        ),
        (
            &["replay", "dlq", "--rate", "fast", "--yes"],
            "invalid rate",
        ),
        (
            &["replay", "dlq", "--rate", "1e-20/s", "--yes"],
            "invalid rate",
        ),
        (
            &["replay", "dlq", "--reason", "tired", "--yes"],
            "unknown reason",
        ),
        (&["replay", "dlq"], "pass --yes"),
    ];
    for (i, (args, message)) in bad.iter().enumerate() {
        let (code, lines, stderr) = stack.cli(&format!("bad-{i}"), args);
        assert_eq!(code, Some(2), "{args:?}: {lines:#?} {stderr}");
        assert!(
            stderr.contains(message),
            "{args:?}: expected `{message}` in {stderr}"
        );
        assert!(!has_line(&lines, " started"), "{args:?} started a run");
    }

    let (status, body) = stack
        .api
        .post("/v1/replays", &json!({"kind": "dlq", "dry_run": true}));
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["plan"]["to_redrive"], N, "{body}");
    for (request, code) in [
        (
            json!({"kind": "dlq", "endpoint": "ep_nope"}),
            "unknown_endpoint",
        ),
        (
            json!({"kind": "events", "since": "1h", "until": "2h"}),
            "invalid_field",
        ),
        (json!({"kind": "dlq", "since": "2x"}), "invalid_field"),
        (json!({"kind": "nope"}), "invalid_field"),
    ] {
        let (status, body) = stack.api.post("/v1/replays", &request);
        assert_eq!(status, 422, "{request}: {body}");
        assert_eq!(body["error"]["code"], code, "{request}: {body}");
    }
    let (status, body) = stack.get("/v1/dead-letters?since=2x");
    assert_eq!(
        (status, &body["error"]["code"]),
        (422, &json!("invalid_field")),
        "{body}"
    );

    assert_eq!(
        data_marks(),
        snapshot,
        "dry runs and refused requests wrote nothing"
    );
    assert_eq!(key_records(), keys_before, "no key changed");
    assert!(
        receiver.ids("/hook", 200).is_empty(),
        "nothing was delivered"
    );

    // The API pages through the backlog, then re-drives it by request, idempotently by id.
    let (_, page) = stack.get("/v1/dead-letters?limit=2");
    assert_eq!(page["data"].as_array().unwrap().len(), 2, "{page}");
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, next) = stack.get(&format!("/v1/dead-letters?limit=10&cursor={cursor}"));
    assert_eq!(next["data"].as_array().unwrap().len(), N - 2, "{next}");
    let delivery = page["data"][0]["delivery_id"].as_str().unwrap().to_owned();
    let (status, one) = stack.get(&format!("/v1/dead-letters/{delivery}"));
    assert_eq!(status, 200, "{one}");
    assert_eq!(one["data"][0]["reason"], "exhausted", "{one}");

    // A rate too small to space re-drives (it used to panic the run and keep its lock
    // renewed forever, so every later replay got 409) is refused up front.
    let tiny = json!({"kind": "dlq", "id": "rpl_api_tiny", "rate": "1e-20/s"});
    let (status, body) = stack.api.post("/v1/replays", &tiny);
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid rate"),
        "{body}"
    );

    let request = json!({"kind": "dlq", "id": "rpl_api_test_1", "rate": "100/s"});
    let (status, body) = stack.api.post("/v1/replays", &request);
    assert_eq!(status, 202, "{body}");
    let deadline = std::time::Instant::now() + MINUTE;
    loop {
        let (_, run) = stack.get("/v1/replays/rpl_api_test_1");
        if run["state"] == "finished" {
            assert_eq!(run["redriven"], N, "{run}");
            assert_eq!(run["progress"], 1.0, "{run}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "API replay did not finish: {run}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (status, again) = stack.api.post("/v1/replays", &request);
    assert_eq!(status, 200, "same id: the existing run, {again}");
    receiver.wait_delivered("/hook", N, MINUTE);
    assert_eq!(stack.redriven("rpl_api_test_1").len(), N);
    stack.stop();
}
