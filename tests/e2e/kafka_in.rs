//! Kafka in: a producer that is not Herald (`kcat`, from Debian's package) writes
//! `EventEnvelope` records straight to the events topic, between records that are not valid
//! events (garbage bytes, an envelope with an invalid id, one with a payload that is not
//! JSON), all in one partition. The valid ones are delivered, signed, with the producer's own
//! id as `webhook-id`; the others are parked whole in the dead-letter topic with reason
//! `undecodable`; and the partition is not blocked: its committed offset reaches the end.

use crate::harness::*;
use crate::stack::Stack;
use herald_proto::{v1, Message};
use std::collections::HashSet;
use std::time::Duration;

const VALID: usize = 20;

#[test]
fn records_written_straight_to_kafka_are_delivered_and_bad_ones_parked() {
    let receiver = Receiver::start("127.0.0.1:0".parse().unwrap());
    let stack = Stack::start("kafka-in", &[]);
    let (_id, secret) = stack
        .api
        .create_endpoint(&format!("http://{}/hook", receiver.addr), &["stock.*"]);

    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let envelope = |i: usize| v1::EventEnvelope {
        id: herald_core::ids::EventId::generate(now + i as i64).to_string(),
        event_type: "stock.moved".into(),
        payload: format!(r#"{{"sku":"K-{i}","via":"kcat"}}"#)
            .into_bytes()
            .into(),
        source: "kcat".into(),
        // accepted_at_ms left out: the record's timestamp stands in.
        ..Default::default()
    };
    let mut bad_id = envelope(900);
    bad_id.id = "order-17".into();
    let mut bad_payload = envelope(901);
    bad_payload.payload = b"not json".to_vec().into();
    let garbage = b"\xde\xad\xbe\xef definitely not protobuf".to_vec();
    let bad: Vec<Vec<u8>> = vec![garbage, bad_id.encode_to_vec(), bad_payload.encode_to_vec()];
    let valid: Vec<v1::EventEnvelope> = (0..VALID).map(envelope).collect();
    // Bad records first and in between: they must not hold back the ones after them.
    let mut records = vec![bad[0].clone()];
    records.extend(valid[..VALID / 2].iter().map(|e| e.encode_to_vec()));
    records.push(bad[1].clone());
    records.extend(valid[VALID / 2..].iter().map(|e| e.encode_to_vec()));
    records.push(bad[2].clone());
    kcat_produce(&stack, "herald.events.v1", &records);

    receiver.wait_for("/hook", VALID, Duration::from_secs(60));
    let got = receiver.on("/hook");
    let ids: HashSet<String> = got
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    let expected: HashSet<String> = valid.iter().map(|e| e.id.clone()).collect();
    assert_eq!(
        ids, expected,
        "every valid record delivered under its own id"
    );
    for delivery in &got {
        let sent = valid
            .iter()
            .find(|e| e.id == delivery.headers["webhook-id"])
            .unwrap();
        assert_eq!(delivery.body, sent.payload, "the payload bytes as written");
    }
    assert_eq!(verify_with_python(&got, &secret), got.len());

    let mut parked = Vec::new();
    wait_until(
        "three undecodable dead letters",
        Duration::from_secs(60),
        || {
            parked = stack
                .dead_letters()
                .into_iter()
                .filter(|l| l.reason == "undecodable")
                .collect();
            parked.len() >= bad.len()
        },
    );
    assert_eq!(parked.len(), bad.len(), "{parked:?}");
    let values: Vec<Vec<u8>> = parked
        .iter()
        .map(|l| l.undecodable.as_ref().expect("the record").value.clone())
        .collect();
    for record in &bad {
        assert!(values.contains(record), "a bad record parked whole");
    }
    let errors: Vec<&str> = parked
        .iter()
        .map(|l| l.undecodable.as_ref().unwrap().error.as_str())
        .collect();
    assert!(
        errors.iter().any(|e| e.contains("undecodable")),
        "{errors:?}"
    );
    assert!(
        errors.iter().any(|e| e.contains("invalid id")),
        "{errors:?}"
    );
    assert!(errors.iter().any(|e| e.contains("not JSON")), "{errors:?}");
    for letter in &parked {
        let record = letter.undecodable.as_ref().unwrap();
        assert_eq!(
            (record.topic.as_str(), record.partition),
            ("herald.events.v1", 0)
        );
        assert!(letter.task.is_none());
    }

    let mut stack = stack;
    assert_eq!(stack.stop_dispatcher("TERM"), Some(0));
    // The partition with the bad records too.
    assert_committed_to_end(&stack.brokers(), "herald-dispatcher", "herald.events.v1");
}

/// Writes each record as one message to partition 0 of `topic` with `kcat`.
fn kcat_produce(stack: &Stack, topic: &str, records: &[Vec<u8>]) {
    let files: Vec<String> = records
        .iter()
        .enumerate()
        .map(|(i, bytes)| {
            let path = stack.dir.path().join(format!("record-{i:03}.bin"));
            std::fs::write(&path, bytes).unwrap();
            path.to_str().unwrap().to_owned()
        })
        .collect();
    let brokers = stack.brokers();
    let mut args = vec!["-P", "-b", &brokers, "-t", topic, "-p", "0"];
    args.extend(files.iter().map(String::as_str));
    let out = std::process::Command::new("kcat")
        .args(&args)
        .output()
        .expect("kcat (Debian package `kcat`; tests/install-tools.sh installs it)");
    assert!(
        out.status.success(),
        "kcat failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
