//! Holding retry-tier tasks that are not due yet: offering fetched tasks and taking them
//! back out when due, as the retry consumer does between pause and resume.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use herald_dispatcher::hold::{Held, Holding, Offer, Partition};
use herald_kafka::tracker::OffsetTracker;
use herald_proto::v1;
use std::hint::black_box;

mod common;

const TASKS: usize = 3_000;
const PARTITIONS: i32 = 3;

fn tasks() -> Vec<(Partition, Held)> {
    let mut tracker = OffsetTracker::default();
    (0..TASKS)
        .map(|i| {
            let partition = (i % PARTITIONS as usize) as i32;
            let offset = (i / PARTITIONS as usize) as i64;
            let held = Held {
                ticket: tracker.begin("herald.deliveries.retry.5s", partition, offset),
                task: v1::DeliveryTask {
                    due_at_ms: 1_000 + offset,
                    delivery_id: format!("dlv_{i}"),
                    ..Default::default()
                },
            };
            (("herald.deliveries.retry.5s".to_owned(), partition), held)
        })
        .collect()
}

/// 3,000 tasks on 3 partitions, none due: offered (each partition pauses on its first), then
/// taken out in 10 rounds as the clock advances.
fn offer_and_take(c: &mut Criterion) {
    let mut group = c.benchmark_group("hold");
    group.throughput(Throughput::Elements(TASKS as u64));
    group.bench_function("offer 3k not due + take_due in 10 steps", |b| {
        b.iter_batched(
            tasks,
            |tasks| {
                let mut holding = Holding::default();
                let mut pauses = 0;
                for (partition, held) in tasks {
                    if let Offer::HeldPause = holding.offer(&partition, held, 0) {
                        pauses += 1;
                    }
                }
                let mut taken = 0;
                let step = (TASKS / PARTITIONS as usize / 10) as i64;
                let mut now = 1_000;
                while !holding.is_empty() {
                    now += step;
                    taken += holding.take_due(now).0.len();
                }
                black_box((pauses, taken))
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = offer_and_take
}
criterion_main!(benches);
