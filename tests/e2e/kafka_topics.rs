//! What Apache Kafka does with Herald's topics that the embedded broker did not: compacted
//! topics are created `cleanup.policy=compact` and compaction really runs (forced here with
//! small segments), after which a fresh ingest and a fresh dispatcher rebuild the same
//! endpoints; and provisioning against an existing cluster is idempotent, and refuses with a
//! clear message a topic whose partition count or cleanup policy differs.

use crate::harness::*;
use crate::stack::Stack;
use rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::client::DefaultClientContext;
use serde_json::json;
use std::time::Duration;

const ENDPOINTS_TOPIC: &str = "herald.endpoints.v1";

fn admin(brokers: &str) -> AdminClient<DefaultClientContext> {
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client")
}

fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

/// `cleanup.policy` of `topic` as the broker describes it.
fn cleanup_policy(brokers: &str, topic: &str) -> String {
    let results = block_on(
        admin(brokers).describe_configs(&[ResourceSpecifier::Topic(topic)], &AdminOptions::new()),
    )
    .expect("describe configs");
    let config = results.into_iter().next().unwrap().expect("topic config");
    config
        .get("cleanup.policy")
        .and_then(|e| e.value.clone())
        .unwrap_or_default()
}

#[test]
fn compaction_runs_and_every_view_rebuilds_the_same_endpoints() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let mut stack = Stack::start("compaction", &[]);
    let brokers = stack.brokers();
    for (topic, policy) in [
        (ENDPOINTS_TOPIC, "compact"),
        ("herald.keys.v1", "compact"),
        ("herald.leases.v1", "compact"),
        ("herald.replays.v1", "compact"),
        ("herald.events.v1", "delete"),
        ("herald.deliveries.dlq.v1", "delete"),
    ] {
        assert_eq!(cleanup_policy(&brokers, topic), policy, "{topic}");
    }
    // Small segments and an eager cleaner, so compaction runs within the test. AlterConfigs
    // replaces a topic's whole configuration: the policy is restated.
    let config = AlterConfig::new(ResourceSpecifier::Topic(ENDPOINTS_TOPIC))
        .set("cleanup.policy", "compact")
        .set("segment.ms", "200")
        .set("min.cleanable.dirty.ratio", "0.01")
        .set("delete.retention.ms", "100")
        .set("min.compaction.lag.ms", "0");
    let altered = block_on(admin(&brokers).alter_configs(&[config], &AdminOptions::new()))
        .expect("alter configs");
    assert!(altered.iter().all(Result::is_ok), "{altered:?}");
    assert_eq!(cleanup_policy(&brokers, ENDPOINTS_TOPIC), "compact");

    // Three endpoints, each edited many times; one secret rotated; one deleted.
    let url = |n: usize| format!("http://{}/hook-{n}", receiver.addr);
    let mut ids = Vec::new();
    for n in 0..3 {
        let (id, _) = stack.api.create_endpoint(&url(n), &["stock.*"]);
        for edit in 0..10 {
            let (status, body) = stack.api.patch(
                &format!("/v1/endpoints/{id}"),
                &json!({"description": format!("edit {edit}")}),
            );
            assert_eq!(status, 200, "{body}");
            std::thread::sleep(Duration::from_millis(50)); // spread over segments
        }
        ids.push(id);
    }
    let (status, rotated) = stack.api.post(
        &format!("/v1/endpoints/{}/secret/rotate", ids[0]),
        &json!({"overlap_seconds": 0}),
    );
    assert_eq!(status, 200, "{rotated}");
    let client = reqwest::blocking::Client::new();
    let deleted = client
        .delete(format!("{}/v1/endpoints/{}", stack.api.base, ids[2]))
        .bearer_auth(&stack.api.token)
        .send()
        .unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    // Compaction: the topic holds fewer records than were ever appended (its end offset).
    // Each later write rolls the active segment (segment.ms), so the cleaner can work on the
    // rest.
    let appended = || -> usize {
        topic_watermarks(&brokers, ENDPOINTS_TOPIC)
            .values()
            .map(|end| *end as usize)
            .sum()
    };
    let (mut written, mut kept) = (0, 0);
    wait_until(
        "compaction removed superseded records",
        Duration::from_secs(120),
        || {
            let (status, body) = stack.api.patch(
                &format!("/v1/endpoints/{}", ids[1]),
                &json!({"description": "final"}),
            );
            assert_eq!(status, 200, "{body}");
            std::thread::sleep(Duration::from_millis(300));
            written = appended();
            kept = read_topic(&brokers, ENDPOINTS_TOPIC).len();
            kept < written
        },
    );
    assert!(written >= 36, "every change appended a record: {written}");
    eprintln!("compaction: {written} endpoint records written, {kept} kept");

    let listing = |api: &Api| {
        let (status, body) = api.get("/v1/endpoints");
        assert_eq!(status, 200, "{body}");
        let mut items: Vec<(String, u64, String)> = body["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|e| {
                (
                    e["id"].as_str().unwrap().to_owned(),
                    e["version"].as_u64().unwrap(),
                    e["description"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        items.sort();
        items
    };
    let before = listing(&stack.api);
    assert_eq!(before.len(), 2, "the deleted endpoint is gone: {before:?}");
    // A fresh ingest rebuilds its view from the compacted topic: the same endpoints.
    let (_fresh, fresh_api) = stack.spawn_ingest("ingest-fresh");
    assert_eq!(listing(&fresh_api), before, "rebuilt after compaction");

    // A fresh dispatcher too: the rotated secret signs, the deleted endpoint gets nothing.
    assert_eq!(stack.stop_dispatcher("TERM"), Some(0));
    stack.start_dispatcher();
    let (status, body) = fresh_api.post(
        "/v1/events",
        &json!({"type": "stock.moved", "payload": {"after": "compaction"}}),
    );
    assert_eq!(status, 202, "{body}");
    receiver.wait_for("/hook-0", 1, Duration::from_secs(60));
    receiver.wait_for("/hook-1", 1, Duration::from_secs(60));
    let secret = rotated["secret"].as_str().expect("the new secret");
    assert_eq!(verify_with_python(&receiver.on("/hook-0"), secret), 1);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        receiver.count("/hook-2"),
        0,
        "deleted endpoint received nothing"
    );
}

#[test]
fn provisioning_is_idempotent_and_refuses_mismatched_topics() {
    let dir = TempDir::new("provision");
    let broker = Broker::start(Flavor::suite(), dir.path());
    let token = admin_token();
    let mut env = herald_env(&token, &master_key());
    env.extend(broker.herald_env());
    let minute = Duration::from_secs(60);

    let (code, lines, err) = run_cli("create-1", &["topics", "create"], &env, dir.path(), minute);
    assert_eq!(code, Some(0), "{err}");
    assert!(lines.iter().any(|l| l.ends_with("\tcreated")), "{lines:?}");
    let (code, lines, err) = run_cli("create-2", &["topics", "create"], &env, dir.path(), minute);
    assert_eq!(code, Some(0), "{err}");
    assert!(lines.iter().all(|l| l.ends_with("\texists")), "{lines:?}");

    // Another configuration: more partitions than the cluster's topics have.
    let mut wider = env.clone();
    wider.retain(|(k, _)| *k != "HERALD_KAFKA__PARTITIONS");
    wider.push(("HERALD_KAFKA__PARTITIONS", "5".to_owned()));
    let (code, _, err) = run_cli(
        "create-wide",
        &["topics", "create"],
        &wider,
        dir.path(),
        minute,
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("exists with 3 partitions") && err.contains("kafka.partitions"),
        "{err}"
    );
    // A service refuses to start on it too, with the same message.
    let (code, _, err) = run_cli("ingest-wide", &["ingest"], &wider, dir.path(), minute);
    assert_ne!(code, Some(0));
    assert!(err.contains("exists with 3 partitions"), "{err}");

    // A state topic someone created with the wrong cleanup policy.
    let mut other = env.clone();
    other.push(("HERALD_KAFKA__TOPIC_PREFIX", "other.".to_owned()));
    let topic = NewTopic::new("other.endpoints.v1", 1, TopicReplication::Fixed(1))
        .set("cleanup.policy", "delete");
    let created =
        block_on(admin(&broker.bootstrap()).create_topics(&[topic], &AdminOptions::new())).unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let (code, _, err) = run_cli(
        "create-other",
        &["topics", "create"],
        &other,
        dir.path(),
        minute,
    );
    assert_ne!(code, Some(0));
    assert!(err.contains("cleanup.policy=compact"), "{err}");
}
