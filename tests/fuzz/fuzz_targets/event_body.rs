//! The JSON bodies producers and admins send: `POST /v1/events` (parsed, then turned into the
//! envelope ingest writes, with and without an `Idempotency-Key` and a tenant-limited key),
//! `POST /v1/events/batch` and `POST /v1/replays`. Errors are fine; panics are not.
#![no_main]

use herald_core::ids::KeyId;
use herald_ingest::events::{envelope, EventIn};
use herald_kafka::keys::Principal;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let principal = |tenant: &str| Principal {
        key_id: KeyId::parse("key_01JD8Z6Q3V5XKQ2M9R7T4W1Y0B").unwrap(),
        scopes: vec![],
        tenant: tenant.to_owned(),
        rate_per_sec: None,
    };
    if let Ok(item) = serde_json::from_slice::<EventIn>(data) {
        let header = std::str::from_utf8(&data[..data.len().min(40)]).ok();
        let copy = serde_json::from_slice::<EventIn>(data).unwrap();
        let _ = envelope(item, header, &principal(""), 1_700_000_000_000);
        let _ = envelope(copy, None, &principal("acme"), 1_700_000_000_000);
    }
    if let Ok(batch) = serde_json::from_slice::<serde_json::Value>(data) {
        for item in batch["events"].as_array().into_iter().flatten() {
            if let Ok(item) = serde_json::from_value::<EventIn>(item.clone()) {
                let _ = envelope(item, None, &principal(""), 0);
            }
        }
    }
    if let Ok(request) = serde_json::from_slice::<herald_replay::request::ReplayRequest>(data) {
        let _ = request.spec(1_700_000_000_000);
        let _ = request.run_id();
    }
});
