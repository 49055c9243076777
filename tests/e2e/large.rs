//! Size limits hold end to end: an event just under the ingest body limit (1 MiB) goes
//! through every retry tier and into the dead-letter topic with all its attempt summaries,
//! because every topic and the producer accept `kafka.max_record_bytes` (2 MiB), which start
//! checks against `ingest.max_body_bytes` plus what an outcome adds. Before, the retry task of
//! such an event exceeded librdkafka's 1,000,000-byte default and was retried forever,
//! freezing its partition's committed offset.

use crate::harness::*;
use crate::stack::Stack;
use std::time::Duration;

const PAD: usize = 999_600;

#[test]
fn an_event_near_the_body_limit_is_retried_and_parked_whole() {
    let receiver = Receiver::answering("127.0.0.1:0".parse().unwrap(), |_| 500);
    let mut stack = Stack::start("large", &[]);
    stack
        .api
        .create_endpoint(&format!("http://{}/fail", receiver.addr), &[]);
    let pad = "x".repeat(PAD);
    let (status, body) = stack.api.post(
        "/v1/events",
        &serde_json::json!({"type": "big.one", "payload": {"pad": pad}}),
    );
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();

    let mut letters = Vec::new();
    wait_until(
        "the large delivery dead-lettered",
        Duration::from_secs(120),
        || {
            letters = stack.dead_letters();
            !letters.is_empty()
        },
    );
    let letter = &letters[0];
    assert_eq!(letter.reason, "exhausted", "{}", letter.reason);
    let task = letter.task.as_ref().unwrap();
    let event = task.event.as_ref().unwrap();
    assert_eq!(event.id, id);
    assert!(event.payload.len() > PAD, "the payload is kept whole");
    assert_eq!(task.attempts.len(), 4, "every attempt summarised");
    assert_eq!(receiver.count("/fail"), 4);

    assert_eq!(stack.stop_dispatcher("TERM"), Some(0));
    assert_committed_to_end(&stack.brokers(), "herald-dispatcher", "herald.events.v1");
}
