//! Unit tests of the delivery step, driven through an in-memory transport against
//! librdkafka's in-process mock cluster: lookup → attempt → classify → record, and where
//! each outcome goes. (The real-broker, real-receiver tests live in the top-level `tests/`.)

use crate::deliver::{Deliverer, Parts};
use crate::delivered::Delivered;
use crate::health::HealthBook;
use crate::route::OutcomeWriter;
use crate::slots::EndpointLimits;
use crate::transport::memory::{Answer, Memory};
use crate::transport::{Deadline, Outbound, RequestSettings};
use herald_core::clock::{Clock, ManualClock, SharedClock};
use herald_core::endpoint::Endpoint;
use herald_core::health::HealthPolicy;
use herald_core::ids::{EndpointId, EventId};
use herald_core::retry::RetryPolicy;
use herald_core::sealing::MasterKey;
use herald_core::signing::Secret;
use herald_kafka::endpoints::EndpointsView;
use herald_kafka::{KafkaConfig, Producer};
use herald_proto::{convert, v1, Message};
use rdkafka::consumer::Consumer;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::DefaultProducerContext;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

struct Fixture {
    _cluster: MockCluster<'static, DefaultProducerContext>,
    kafka: KafkaConfig,
    deliverer: Deliverer,
    memory: Arc<Memory>,
    endpoint: Endpoint,
    policy: RetryPolicy,
    /// The deliverer's clock: it moves only when a test moves it.
    clock: Arc<ManualClock>,
    shutdown: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A deliverer whose only endpoint (enabled or not) answers with `answers` in turn.
async fn fixture(answers: &[Answer], enabled: bool) -> Fixture {
    fixture_with(answers, |endpoint| endpoint.enabled = enabled).await
}

/// Like [`fixture`], with the endpoint as `configure` leaves it.
async fn fixture_with(answers: &[Answer], configure: impl FnOnce(&mut Endpoint)) -> Fixture {
    fixture_sized(
        answers,
        configure,
        KafkaConfig::with_brokers("").max_record_bytes,
    )
    .await
}

/// Like [`fixture_with`], with a producer refusing records over `max_record_bytes`.
async fn fixture_sized(
    answers: &[Answer],
    configure: impl FnOnce(&mut Endpoint),
    max_record_bytes: usize,
) -> Fixture {
    let cluster = MockCluster::new(1).unwrap();
    let mut kafka = KafkaConfig::with_brokers(cluster.bootstrap_servers());
    kafka.max_record_bytes = max_record_bytes;
    let topics = kafka.topics();
    let policy = RetryPolicy::new(
        vec![Duration::from_secs(1), Duration::from_secs(10)],
        0.0,
        Duration::from_secs(5),
    )
    .unwrap();
    let mut names = vec![
        topics.events().to_owned(),
        topics.attempts().to_owned(),
        topics.dlq(),
        topics.endpoints(),
        topics.audit(),
    ];
    names.extend(policy.tiers().iter().map(|t| topics.retry(*t)));
    for name in &names {
        cluster.create_topic(name, 1, 1).unwrap();
    }
    let key = MasterKey::from_bytes([7; 32]);
    let now = herald_kafka::now_ms();
    let mut endpoint = Endpoint::new(
        EndpointId::generate(now),
        "http://127.0.0.1:9/hook".into(),
        Secret::generate(),
        now,
    );
    configure(&mut endpoint);
    let producer = Producer::new(&kafka, "test").unwrap();
    let state = convert::endpoint_to_state(&endpoint, 1, &key);
    producer
        .send(
            &topics.endpoints(),
            endpoint.id.as_str().as_bytes(),
            &state.encode_to_vec(),
        )
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let endpoints = EndpointsView::spawn(&kafka, key, &TaskTracker::new(), shutdown.clone());
    endpoints
        .view()
        .wait_ready(Duration::from_secs(30))
        .await
        .unwrap();
    let memory = Arc::new(Memory::answering(answers));
    let outbound = Outbound {
        transport: Arc::new(Deadline::new(
            SharedMemory(memory.clone()),
            Duration::from_secs(2),
        )),
        settings: RequestSettings::new("Herald-Webhooks/test", false).unwrap(),
    };
    let (clock, hand) = SharedClock::manual(now);
    let writer = OutcomeWriter {
        producer,
        topics,
        abort: CancellationToken::new(),
        clock: clock.clone(),
    };
    let deliverer = Deliverer::new(Parts {
        writer,
        endpoints,
        outbound,
        policy: policy.clone(),
        per_endpoint: EndpointLimits {
            concurrency: 2,
            permit_wait: Duration::from_secs(1),
            stalled_after: Duration::from_secs(1),
        },
        delivered: Delivered::empty(1_000),
        health: HealthBook::new(
            HealthPolicy {
                failing_after: 3,
                disable_after_ms: 0,
            },
            100,
        ),
        clock,
    });
    Fixture {
        _cluster: cluster,
        kafka,
        deliverer,
        memory,
        endpoint,
        policy,
        clock: hand,
        shutdown,
    }
}

/// The memory transport behind an `Arc`, so the test keeps a handle on what it saw.
struct SharedMemory(Arc<Memory>);

impl crate::transport::Transport for SharedMemory {
    fn send(
        &self,
        request: crate::transport::DeliveryRequest,
    ) -> futures::future::BoxFuture<'_, crate::transport::AttemptOutput> {
        self.0.send(request)
    }
}

fn event() -> v1::EventEnvelope {
    let now = herald_kafka::now_ms();
    v1::EventEnvelope {
        id: EventId::generate(now).to_string(),
        event_type: "stock.adjusted".into(),
        payload: br#"{"sku":"A-1","delta":-3}"#.to_vec().into(),
        accepted_at_ms: now,
        ..Default::default()
    }
}

/// Every record of partition 0 of `topic`, decoded.
async fn records<M: Message + Default>(kafka: &KafkaConfig, topic: &str) -> Vec<M> {
    let consumer = herald_kafka::consumer::reader(kafka, "unit-test").unwrap();
    let (_, high) = consumer
        .fetch_watermarks(topic, 0, Duration::from_secs(10))
        .unwrap();
    let mut out = Vec::new();
    if high == 0 {
        return out;
    }
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&list).unwrap();
    while (out.len() as i64) < high {
        let message = tokio::time::timeout(Duration::from_secs(10), consumer.recv())
            .await
            .expect("records within 10 s")
            .unwrap();
        let payload = rdkafka::Message::payload(&message).unwrap_or_default();
        out.push(M::decode(payload).unwrap());
    }
    out
}

#[tokio::test]
async fn a_failed_attempt_is_logged_and_rescheduled_and_the_retry_delivers() {
    let f = fixture(&[Answer::Status(503), Answer::Status(204)], true).await;
    let event = event();
    let task = Deliverer::first_task(&event, &f.endpoint.id);
    f.deliverer.step(task).await.unwrap();

    let topics = f.kafka.topics();
    let first_tier = topics.retry(f.policy.tiers()[0]);
    let retries: Vec<v1::DeliveryTask> = records(&f.kafka, &first_tier).await;
    assert_eq!(retries.len(), 1, "one retry task in {first_tier}");
    let retry = retries[0].clone();
    assert_eq!(retry.next_attempt, 2);
    // No jitter: due exactly one schedule step after the attempt, by the deliverer's clock.
    let signed_at = f.clock.now_ms();
    assert_eq!(retry.due_at_ms, signed_at + 1_000);
    f.clock.advance(1_000);
    assert_eq!(retry.attempts.len(), 1);
    assert_eq!(retry.last_failure.as_ref().unwrap().status, 503);

    f.deliverer.step(retry).await.unwrap();
    let attempts: Vec<v1::AttemptRecord> = records(&f.kafka, topics.attempts()).await;
    let outcomes: Vec<(&str, u32)> = attempts
        .iter()
        .map(|a| (a.outcome.as_str(), a.summary.as_ref().unwrap().status))
        .collect();
    assert_eq!(outcomes, [("retry", 503), ("delivered", 204)]);
    assert!(attempts.iter().all(|a| a.event_id == event.id));
    let dead: Vec<v1::DeadLetter> = records(&f.kafka, &topics.dlq()).await;
    assert!(dead.is_empty());

    // Both attempts carried the same webhook-id (the event id) over the exact payload.
    let requests = f.memory.requests.lock().unwrap();
    assert_eq!(requests.len(), 2);
    let stamps: Vec<i64> = requests.iter().map(|r| r.started_at_ms).collect();
    assert_eq!(stamps, [signed_at, signed_at + 1_000]);
    for request in requests.iter() {
        assert_eq!(
            request.header("webhook-timestamp"),
            Some((request.started_at_ms / 1_000).to_string().as_str())
        );
        assert_eq!(request.header("webhook-id"), Some(event.id.as_str()));
        assert_eq!(&request.body[..], &event.payload[..]);
        assert_eq!(request.url, "http://127.0.0.1:9/hook");
    }
}

#[tokio::test]
async fn a_disabled_endpoint_gets_no_request_and_the_delivery_is_parked() {
    let f = fixture(&[], false).await;
    let task = Deliverer::first_task(&event(), &f.endpoint.id);
    f.deliverer.step(task).await.unwrap();
    let dead: Vec<v1::DeadLetter> = records(&f.kafka, &f.kafka.topics().dlq()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "endpoint_disabled");
    assert!(f.memory.requests.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_hanging_receiver_costs_one_attempt_and_a_retry_not_a_stuck_slot() {
    let f = fixture(&[Answer::Hang], true).await;
    let task = Deliverer::first_task(&event(), &f.endpoint.id);
    f.deliverer.step(task).await.unwrap();
    let attempts: Vec<v1::AttemptRecord> = records(&f.kafka, f.kafka.topics().attempts()).await;
    assert_eq!(attempts.len(), 1);
    let summary = attempts[0].summary.as_ref().unwrap();
    assert_eq!(summary.result_class, "timeout");
    assert_eq!(attempts[0].outcome, "retry");
}

#[tokio::test]
async fn a_gone_answer_parks_the_delivery_at_once() {
    let f = fixture(&[Answer::Status(410)], true).await;
    let task = Deliverer::first_task(&event(), &f.endpoint.id);
    f.deliverer.step(task).await.unwrap();
    let dead: Vec<v1::DeadLetter> = records(&f.kafka, &f.kafka.topics().dlq()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "endpoint_gone");
    assert_eq!(dead[0].task.as_ref().unwrap().attempts.len(), 1);
    // 410 also disables the endpoint, with audit evidence.
    let audit: Vec<v1::AuditRecord> = records(&f.kafka, &f.kafka.topics().audit()).await;
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].actor.as_str(), audit[0].action.as_str()),
        ("system:dispatcher", "endpoint.disabled")
    );
    assert_eq!(audit[0].target, f.endpoint.id.as_str());
}

#[tokio::test]
async fn fan_out_reaches_subscribers_once_per_event_id() {
    let f = fixture_with(&[], |endpoint| {
        endpoint.event_types = vec!["stock.*".into()]
    })
    .await;
    let subscribed = event();
    let mut other = event();
    other.event_type = "invoice.paid".into();
    assert!(crate::consumer::fan_out(&f.deliverer, subscribed.clone()).await);
    assert!(crate::consumer::fan_out(&f.deliverer, other).await);
    // The same event again (a producer retry that made a second record): not delivered twice.
    assert!(crate::consumer::fan_out(&f.deliverer, subscribed.clone()).await);
    let requests = f.memory.requests.lock().unwrap();
    let ids: Vec<&str> = requests
        .iter()
        .filter_map(|r| r.header("webhook-id"))
        .collect();
    assert_eq!(ids, [subscribed.id.as_str()]);
}

#[tokio::test]
async fn a_rate_limited_endpoint_gets_spaced_deliveries_and_none_fails() {
    let f = fixture_with(&[], |endpoint| endpoint.rate_limit = Some(2)).await;
    let start = tokio::time::Instant::now();
    let now = f.clock.now_ms();
    let tasks: Vec<_> = (0..4)
        .map(|_| Deliverer::first_task(&event(), &f.endpoint.id))
        .collect();
    let steps = tasks.into_iter().map(|task| f.deliverer.step(task));
    for result in futures::future::join_all(steps).await {
        result.unwrap();
    }
    // Turns at +0, +0.5 s, +1 s (waited for in memory, patience 1 s) and +1.5 s (too far:
    // it waits in a retry tier, keeping its turn).
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert_eq!(f.memory.requests.lock().unwrap().len(), 3);
    let topics = f.kafka.topics();
    let tier = topics.retry(f.policy.tiers()[0]);
    let waiting: Vec<v1::DeliveryTask> = records(&f.kafka, &tier).await;
    assert_eq!(waiting.len(), 1);
    assert_eq!(waiting[0].paced_turn_ms, now + 1_500);
    assert_eq!(waiting[0].due_at_ms, now + 1_500);
    assert_eq!(waiting[0].next_attempt, 1, "no attempt was spent");
    assert!(waiting[0].attempts.is_empty());
    // Back at its turn it goes, without taking another.
    f.clock.set(now + 1_500);
    f.deliverer.step(waiting[0].clone()).await.unwrap();
    assert_eq!(f.memory.requests.lock().unwrap().len(), 4);
    let attempts: Vec<v1::AttemptRecord> = records(&f.kafka, topics.attempts()).await;
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|a| a.outcome == "delivered"));
    let dead: Vec<v1::DeadLetter> = records(&f.kafka, &topics.dlq()).await;
    assert!(dead.is_empty());
}

#[tokio::test]
async fn a_task_the_broker_refuses_is_parked_slim_instead_of_retried_forever() {
    // Records over 4,000 bytes are refused; the event's payload alone is 5,000.
    let f = fixture_sized(&[Answer::Status(503)], |_| {}, 4_000).await;
    let mut big = event();
    big.payload = format!("{{\"pad\":\"{}\"}}", "x".repeat(4_990))
        .into_bytes()
        .into();
    let task = Deliverer::first_task(&big, &f.endpoint.id);
    tokio::time::timeout(Duration::from_secs(60), f.deliverer.step(task))
        .await
        .expect("not retried forever")
        .unwrap();
    let topics = f.kafka.topics();
    let dead: Vec<v1::DeadLetter> = records(&f.kafka, &topics.dlq()).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, "record_too_large");
    let parked = dead[0].task.as_ref().unwrap();
    let event = parked.event.as_ref().unwrap();
    assert_eq!(
        event.id, big.id,
        "the event is named, for a replay of the events topic"
    );
    assert!(
        event.payload.is_empty(),
        "without the payload that did not fit"
    );
    assert_eq!(parked.attempts.len(), 1);
    let tier = topics.retry(f.policy.tiers()[0]);
    let retries: Vec<v1::DeliveryTask> = records(&f.kafka, &tier).await;
    assert!(retries.is_empty(), "the refused task is not in the tier");
    let attempts: Vec<v1::AttemptRecord> = records(&f.kafka, topics.attempts()).await;
    assert_eq!(attempts.len(), 1, "the attempt itself is logged");
}

#[tokio::test]
async fn deliveries_to_a_stalled_endpoint_are_deferred_each_time_one_tier_longer() {
    // Both slots (concurrency 2) hang until the 2 s deadline; nothing frees one meanwhile.
    let f = fixture(&[Answer::Hang, Answer::Hang], true).await;
    let topics = f.kafka.topics();
    let shortest = topics.retry(f.policy.tiers()[0]);
    let hanging = futures::future::join_all((0..2).map(|_| {
        f.deliverer
            .step(Deliverer::first_task(&event(), &f.endpoint.id))
    }));
    let deferrals = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        // Waits until the endpoint counts as stalled (1 s without a freed slot), then defers.
        let task = Deliverer::first_task(&event(), &f.endpoint.id);
        f.deliverer.step(task).await.unwrap();
        let deferred: Vec<v1::DeliveryTask> = records(&f.kafka, &shortest).await;
        assert_eq!(deferred.len(), 1);
        assert_eq!(deferred[0].deferrals, 1);
        assert_eq!(deferred[0].next_attempt, 1, "no attempt was spent");
        assert_eq!(
            deferred[0].due_at_ms,
            f.clock.now_ms() + f.policy.tiers()[0].as_millis() as i64
        );
        // Still stalled: deferred again at once, to the next tier up.
        f.deliverer.step(deferred[0].clone()).await.unwrap();
        let again: Vec<v1::DeliveryTask> =
            records(&f.kafka, &topics.retry(f.policy.tiers()[1])).await;
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].deferrals, 2);
        assert_eq!(
            f.memory.requests.lock().unwrap().len(),
            2,
            "only the hanging two"
        );
        again[0].clone()
    };
    let (hung, again) = tokio::join!(hanging, deferrals);
    assert!(hung.iter().all(Result::is_ok));
    // Once the endpoint answers, the deferred delivery is attempted and the count starts over.
    let mut answered = again;
    answered.delivery_id = "dlv_answered".into();
    f.memory
        .answers
        .lock()
        .unwrap()
        .push_back(Answer::Status(503));
    f.deliverer.step(answered).await.unwrap();
    let retried: Vec<v1::DeliveryTask> = records(&f.kafka, &shortest).await;
    let retried = retried.last().unwrap();
    assert_eq!(retried.delivery_id, "dlv_answered");
    assert_eq!((retried.next_attempt, retried.deferrals), (2, 0));
}
