//! Standard Webhooks signing: what the dispatcher pays per attempt (`signature_header`) and a
//! receiver pays per request (`verify`), by body size, with one secret and with two secrets
//! active during a rotation.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use herald_core::signing::{self, Secret};
use std::hint::black_box;

mod common;

const ID: &str = "evt_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B";
const TS: i64 = 1_732_000_000;
const SIZES: [(&str, usize); 3] = [("256B", 256), ("4KiB", 4 << 10), ("64KiB", 64 << 10)];

fn body(len: usize) -> Vec<u8> {
    let mut body = br#"{"sku":"A-1","qty":3,"pad":""#.to_vec();
    body.resize(len.saturating_sub(2), b'x');
    body.extend_from_slice(br#""}"#);
    body
}

fn secret(byte: u8) -> Secret {
    Secret::from_bytes(vec![byte; 32]).unwrap()
}

fn sign(c: &mut Criterion) {
    let mut group = c.benchmark_group("signing/sign");
    let key = secret(1);
    for (name, len) in SIZES {
        let body = body(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &body, |b, body| {
            b.iter(|| signing::sign(&key, black_box(ID), black_box(TS), black_box(body)))
        });
    }
    group.finish();
}

fn signature_header(c: &mut Criterion) {
    let mut group = c.benchmark_group("signing/signature_header");
    let (old, new) = (secret(1), secret(2));
    for (name, len) in SIZES {
        let body = body(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("1 secret", name), &body, |b, body| {
            b.iter(|| signing::signature_header([&old], ID, black_box(TS), black_box(body)))
        });
        group.bench_with_input(BenchmarkId::new("2 secrets", name), &body, |b, body| {
            b.iter(|| signing::signature_header([&new, &old], ID, black_box(TS), black_box(body)))
        });
    }
    group.finish();
}

fn verify(c: &mut Criterion) {
    let mut group = c.benchmark_group("signing/verify");
    let (old, new) = (secret(1), secret(2));
    let ts = TS.to_string();
    for (name, len) in SIZES {
        let body = body(len);
        group.throughput(Throughput::Bytes(len as u64));
        let single = signing::signature_header([&old], ID, TS, &body);
        // Rotation: the header carries the new signature first; a receiver still holding only
        // the old secret matches the second one.
        let rotated = signing::signature_header([&new, &old], ID, TS, &body);
        let cases = [
            ("1 signature", single.as_str(), std::slice::from_ref(&old)),
            (
                "2 signatures, old secret",
                rotated.as_str(),
                std::slice::from_ref(&old),
            ),
            (
                "2 signatures, new secret",
                rotated.as_str(),
                std::slice::from_ref(&new),
            ),
        ];
        for (case, header, secrets) in cases {
            group.bench_with_input(BenchmarkId::new(case, name), &body, |b, body| {
                b.iter(|| {
                    signing::verify(
                        secrets,
                        ID,
                        &ts,
                        black_box(header),
                        black_box(body),
                        TS,
                        300,
                    )
                    .unwrap()
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = sign, signature_header, verify
}
criterion_main!(benches);
