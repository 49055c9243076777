//! The dispatcher's side of one attempt before any network I/O: building and signing the
//! request (`DeliveryRequest::signed`, 1 KiB payload, one secret) and passing it through the
//! `Deadline` layer to a transport that answers at once. What the transport seam adds to a
//! delivery is the difference between `send_through_deadline` and `signed_request`.

use criterion::{criterion_group, criterion_main, Criterion};
use futures::future::BoxFuture;
use herald_core::endpoint::Endpoint;
use herald_core::ids::EndpointId;
use herald_core::outcome::AttemptResult;
use herald_core::signing::Secret;
use herald_dispatcher::transport::{
    AttemptOutput, Deadline, DeliveryRequest, Outbound, RequestSettings, Transport,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

mod common;

/// Answers 204 at once.
struct Instant204;

impl Transport for Instant204 {
    fn send(&self, request: DeliveryRequest) -> BoxFuture<'_, AttemptOutput> {
        Box::pin(async move {
            AttemptOutput {
                result: AttemptResult::Response {
                    status: 204,
                    retry_after: None,
                },
                started_at_ms: request.started_at_ms,
                latency: Duration::ZERO,
                status: 204,
                error: String::new(),
                excerpt: Vec::new(),
            }
        })
    }
}

fn fixture() -> (Endpoint, bytes::Bytes, RequestSettings) {
    let endpoint = Endpoint::new(
        EndpointId::generate(1),
        "https://hooks.example.com/in".into(),
        Secret::from_bytes(vec![7; 32]).unwrap(),
        1,
    );
    let mut payload = br#"{"sku":"A-1","pad":""#.to_vec();
    payload.resize(1_022, b'x');
    payload.extend_from_slice(br#""}"#);
    let settings = RequestSettings::new("Herald-Webhooks/1", false).unwrap();
    (endpoint, payload.into(), settings)
}

fn transport(c: &mut Criterion) {
    let (endpoint, payload, settings) = fixture();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("transport");
    group.bench_function("signed_request", |b| {
        b.iter(|| {
            DeliveryRequest::signed(
                black_box(&endpoint),
                "evt_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B",
                payload.clone(),
                1_732_000_000_000,
                &settings,
            )
        })
    });
    let outbound = Outbound {
        transport: Arc::new(Deadline::new(Instant204, Duration::from_secs(35))),
        settings: settings.clone(),
    };
    group.bench_function("send_through_deadline", |b| {
        b.iter(|| {
            runtime.block_on(outbound.attempt(
                black_box(&endpoint),
                "evt_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B",
                payload.clone(),
                1_732_000_000_000,
            ))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = common::quick();
    targets = transport
}
criterion_main!(benches);
