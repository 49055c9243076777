//! Ordered offset tracking with 10,000 records in flight, completed out of order: the
//! bookkeeping the dispatcher does for every record it consumes.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use herald_kafka::tracker::{OffsetTracker, PartitionTracker, Ticket};
use std::hint::black_box;

mod common;

const IN_FLIGHT: usize = 10_000;
const TOPIC: &str = "herald.events.v1";

/// xorshift64: deterministic and cheap, so the bench measures the tracker, not the RNG.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn shuffled(n: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for i in (1..n).rev() {
        order.swap(i, rng.below(i + 1));
    }
    order
}

/// Begin 10k records on 3 partitions in consumer order, then complete all of them shuffled.
fn burst(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker/burst 10k");
    group.throughput(Throughput::Elements(IN_FLIGHT as u64));
    let order = shuffled(IN_FLIGHT);
    group.bench_function("OffsetTracker begin+complete, shuffled", |b| {
        b.iter_batched(
            OffsetTracker::default,
            |mut tracker| {
                let tickets: Vec<Ticket> = (0..IN_FLIGHT)
                    .map(|i| tracker.begin(TOPIC, (i % 3) as i32, (i / 3) as i64))
                    .collect();
                let mut stored = 0;
                for &i in &order {
                    stored += usize::from(tracker.complete(&tickets[i]).is_some());
                }
                black_box(stored)
            },
            BatchSize::SmallInput,
        )
    });
    group.bench_function("PartitionTracker begin+complete, shuffled", |b| {
        b.iter_batched(
            PartitionTracker::default,
            |mut tracker| {
                for offset in 0..IN_FLIGHT as i64 {
                    tracker.begin(offset);
                }
                let mut stored = 0;
                for &i in &order {
                    stored += usize::from(tracker.complete(i as i64).is_some());
                }
                black_box(stored)
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

/// Steady state: 10k in flight; each iteration begins the next record and completes a random
/// one of those in flight (one record's full bookkeeping).
fn steady(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker/steady 10k in flight");
    group.throughput(Throughput::Elements(1));
    group.bench_function("OffsetTracker begin+complete one record", |b| {
        let mut tracker = OffsetTracker::default();
        let mut tickets: Vec<Ticket> = (0..IN_FLIGHT as i64)
            .map(|o| tracker.begin(TOPIC, 0, o))
            .collect();
        let (mut next, mut rng) = (IN_FLIGHT as i64, Rng(7));
        b.iter(|| {
            tickets.push(tracker.begin(TOPIC, 0, next));
            next += 1;
            let done = tickets.swap_remove(rng.below(tickets.len()));
            black_box(tracker.complete(&done))
        })
    });
    group.bench_function("PartitionTracker begin+complete one record", |b| {
        let mut tracker = PartitionTracker::default();
        let mut offsets: Vec<i64> = (0..IN_FLIGHT as i64).collect();
        for &o in &offsets {
            tracker.begin(o);
        }
        let (mut next, mut rng) = (IN_FLIGHT as i64, Rng(7));
        b.iter(|| {
            tracker.begin(next);
            offsets.push(next);
            next += 1;
            let done = offsets.swap_remove(rng.below(offsets.len()));
            black_box(tracker.complete(done))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = burst, steady
}
criterion_main!(benches);
