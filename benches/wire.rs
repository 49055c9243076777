//! The Kafka wire format: prost encode/decode of what every event and retry carries (1 KiB
//! payload), the envelope → domain conversion, and sealing endpoint secrets at rest.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use herald_core::endpoint::Endpoint;
use herald_core::event::Event;
use herald_core::ids::{DeliveryId, EndpointId, EventId};
use herald_core::sealing::MasterKey;
use herald_core::signing::Secret;
use herald_proto::{convert, v1, Message};
use std::hint::black_box;

mod common;

const NOW_MS: i64 = 1_732_000_000_000;

fn envelope() -> v1::EventEnvelope {
    let mut payload = br#"{"sku":"A-1","qty":3,"pad":""#.to_vec();
    payload.resize(1022, b'x');
    payload.extend_from_slice(br#""}"#);
    let id = EventId::generate(NOW_MS).to_string();
    v1::EventEnvelope {
        ordering_key: id.clone(),
        id,
        event_type: "stock.moved".into(),
        payload: payload.into(),
        tenant: "acme".into(),
        accepted_at_ms: NOW_MS,
        idempotency_key: "order-42-created".into(),
        source: "key_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B".into(),
    }
}

fn summary(attempt: u32) -> v1::AttemptSummary {
    v1::AttemptSummary {
        attempt,
        started_at_ms: NOW_MS + i64::from(attempt) * 5_000,
        latency_ms: 120,
        status: 503,
        result_class: "5xx".into(),
        error: "HTTP 503 Service Unavailable".into(),
    }
}

/// A task on its third attempt: the event, two failures so far.
fn task(event: v1::EventEnvelope) -> v1::DeliveryTask {
    let endpoint = EndpointId::generate(NOW_MS);
    let delivery = DeliveryId::for_delivery(&EventId::parse(&event.id).unwrap(), &endpoint);
    v1::DeliveryTask {
        event: Some(event),
        endpoint_id: endpoint.to_string(),
        delivery_id: delivery.to_string(),
        next_attempt: 3,
        due_at_ms: NOW_MS + 300_000,
        first_failure: Some(summary(1)),
        last_failure: Some(summary(2)),
        attempts: vec![summary(1), summary(2)],
        replay_id: String::new(),
        paced_turn_ms: 0,
        deferrals: 0,
    }
}

fn protobuf(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire/protobuf");
    let envelope = envelope();
    let envelope_bytes = envelope.encode_to_vec();
    group.throughput(Throughput::Bytes(envelope_bytes.len() as u64));
    group.bench_function("EventEnvelope encode", |b| {
        b.iter(|| black_box(&envelope).encode_to_vec())
    });
    group.bench_function("EventEnvelope decode", |b| {
        b.iter(|| v1::EventEnvelope::decode(black_box(envelope_bytes.as_slice())).unwrap())
    });
    group.bench_function("EventEnvelope decode + Event::try_from", |b| {
        b.iter(|| {
            let decoded = v1::EventEnvelope::decode(black_box(envelope_bytes.as_slice())).unwrap();
            Event::try_from(&decoded).unwrap()
        })
    });
    let task = task(envelope);
    let task_bytes = task.encode_to_vec();
    group.throughput(Throughput::Bytes(task_bytes.len() as u64));
    group.bench_function("DeliveryTask encode", |b| {
        b.iter(|| black_box(&task).encode_to_vec())
    });
    group.bench_function("DeliveryTask decode", |b| {
        b.iter(|| v1::DeliveryTask::decode(black_box(task_bytes.as_slice())).unwrap())
    });
    group.finish();
}

/// An endpoint with `keys` signing secrets, built through its wire form so that fields added
/// to `Endpoint` later take their defaults here.
fn endpoint(keys: usize, key: &MasterKey) -> Endpoint {
    let id = EndpointId::generate(NOW_MS).to_string();
    let state = v1::EndpointState {
        url: "https://hooks.example.com/herald".into(),
        description: "warehouse".into(),
        event_types: vec!["stock.*".into(), "invoice.paid".into()],
        tenant: "acme".into(),
        enabled: true,
        secrets: (0..keys)
            .map(|k| v1::EncryptedSecret {
                sealed: key.seal(Secret::generate().as_bytes(), id.as_bytes()),
                expires_at_ms: if k > 0 { NOW_MS + 86_400_000 } else { 0 },
                key_id: key.id(),
            })
            .collect(),
        created_at_ms: NOW_MS,
        updated_at_ms: NOW_MS,
        version: 1,
        id,
        ..Default::default()
    };
    convert::endpoint_from_state(&state, key).unwrap()
}

fn sealing(c: &mut Criterion) {
    let mut group = c.benchmark_group("wire/endpoint state");
    let key = MasterKey::from_bytes([7; 32]);
    let secret = Secret::generate();
    let context = b"ep_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B";
    group.bench_function("MasterKey::seal (32-byte secret)", |b| {
        b.iter(|| key.seal(black_box(secret.as_bytes()), context))
    });
    let sealed = key.seal(secret.as_bytes(), context);
    let key_id = key.id();
    group.bench_function("MasterKey::open (32-byte secret)", |b| {
        b.iter(|| key.open(&key_id, black_box(&sealed), context).unwrap())
    });
    for keys in [1, 2] {
        let endpoint = endpoint(keys, &key);
        group.bench_function(format!("seal + encode, {keys} secret(s)"), |b| {
            b.iter(|| convert::endpoint_to_state(black_box(&endpoint), 3, &key).encode_to_vec())
        });
        let bytes = convert::endpoint_to_state(&endpoint, 3, &key).encode_to_vec();
        group.bench_function(format!("decode + open, {keys} secret(s)"), |b| {
            b.iter(|| {
                let state = v1::EndpointState::decode(black_box(bytes.as_slice())).unwrap();
                convert::endpoint_from_state(&state, &key).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = protobuf, sealing
}
criterion_main!(benches);
