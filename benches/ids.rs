//! Typed ids: generating (time-ordered and derived) and parsing, as ingest and the
//! dispatcher do for every event and delivery.

use criterion::{criterion_group, criterion_main, Criterion};
use herald_core::ids::{DeliveryId, EndpointId, EventId};
use std::hint::black_box;

mod common;

const NOW_MS: i64 = 1_732_000_000_000;

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("ids/generate");
    group.bench_function("EventId::generate (thread rng)", |b| {
        b.iter(|| EventId::generate(black_box(NOW_MS)))
    });
    group.bench_function("EventId::generate_with (given bits)", |b| {
        b.iter(|| EventId::generate_with(black_box(NOW_MS), black_box(0x1234_5678_9abc_def0)))
    });
    group.bench_function("EventId::from_idempotency_key", |b| {
        b.iter(|| EventId::from_idempotency_key(black_box("acme"), black_box("order-42-created")))
    });
    let event = EventId::generate(NOW_MS);
    let endpoint = EndpointId::generate(NOW_MS);
    group.bench_function("DeliveryId::for_delivery", |b| {
        b.iter(|| DeliveryId::for_delivery(black_box(&event), black_box(&endpoint)))
    });
    group.finish();
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("ids/parse");
    let generated = EventId::generate(NOW_MS).to_string();
    group.bench_function("EventId::parse (26-char body)", |b| {
        b.iter(|| EventId::parse(black_box(&generated)).unwrap())
    });
    let long = format!("evt_{}", "a".repeat(64));
    group.bench_function("EventId::parse (64-char body)", |b| {
        b.iter(|| EventId::parse(black_box(&long)).unwrap())
    });
    group.bench_function("EventId::parse (wrong prefix)", |b| {
        b.iter(|| EventId::parse(black_box("ep_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B")).unwrap_err())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = generate, parse
}
criterion_main!(benches);
