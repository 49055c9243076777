//! The retry schedule and outcome classification: pure functions run once per failed (or,
//! for `classify`, every) attempt.

use criterion::{criterion_group, criterion_main, Criterion};
use herald_core::outcome::{classify, AttemptResult};
use herald_core::retry::{FailureKind, RetryPolicy};
use std::hint::black_box;
use std::time::Duration;

mod common;

fn next_delay(c: &mut Criterion) {
    let policy = RetryPolicy::production();
    let mut group = c.benchmark_group("retry_policy/next_delay");
    group.bench_function("ordinary, attempt 3", |b| {
        b.iter(|| policy.next_delay(black_box(3), FailureKind::Ordinary, None, black_box(0.37)))
    });
    group.bench_function("throttled with Retry-After", |b| {
        b.iter(|| {
            policy.next_delay(
                black_box(2),
                FailureKind::Throttled,
                black_box(Some(Duration::from_secs(420))),
                black_box(0.37),
            )
        })
    });
    group.bench_function("schedule spent", |b| {
        b.iter(|| policy.next_delay(black_box(8), FailureKind::Ordinary, None, 0.5))
    });
    group.finish();
}

fn tier_for(c: &mut Criterion) {
    let policy = RetryPolicy::production();
    let delays: Vec<Duration> = [4, 60, 290, 1_900, 8_000, 20_000, 40_000]
        .map(Duration::from_secs)
        .to_vec();
    c.bench_function("retry_policy/tier_for (7 delays, 7 tiers)", |b| {
        b.iter(|| {
            delays
                .iter()
                .map(|d| policy.tier_for(black_box(*d)))
                .sum::<usize>()
        })
    });
}

fn classify_results(c: &mut Criterion) {
    let policy = RetryPolicy::production();
    let mut group = c.benchmark_group("retry_policy/classify");
    let cases = [
        (
            "200",
            AttemptResult::Response {
                status: 200,
                retry_after: None,
            },
        ),
        (
            "503",
            AttemptResult::Response {
                status: 503,
                retry_after: None,
            },
        ),
        (
            "429 Retry-After",
            AttemptResult::Response {
                status: 429,
                retry_after: Some(Duration::from_secs(30)),
            },
        ),
        (
            "410",
            AttemptResult::Response {
                status: 410,
                retry_after: None,
            },
        ),
        ("timeout", AttemptResult::Timeout),
        ("connection, spent", AttemptResult::Connection),
    ];
    for (name, result) in cases {
        let attempt = if name.ends_with("spent") { 8 } else { 2 };
        group.bench_function(name, |b| {
            b.iter(|| {
                classify(
                    black_box(&result),
                    black_box(attempt),
                    &policy,
                    black_box(0.5),
                )
            })
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = next_delay, tier_for, classify_results
}
criterion_main!(benches);
