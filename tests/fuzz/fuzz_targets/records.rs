//! Protobuf decoding of every record type Herald reads from its topics (anyone with write
//! access to a topic can put bytes there), and the conversions behind the views: events,
//! endpoint states (with secrets to open), keys, key usage, audit, replay, lease records.
#![no_main]

use herald_core::sealing::MasterKey;
use herald_proto::{convert, decode, v1};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((kind, bytes)) = data.split_first() else {
        return;
    };
    match kind % 12 {
        0 => {
            if let Ok(event) = decode::<v1::EventEnvelope>("event", bytes) {
                let _ = herald_core::event::Event::try_from(&event);
            }
        }
        1 => {
            if let Ok(state) = decode::<v1::EndpointState>("endpoint", bytes) {
                let key = MasterKey::from_bytes([7; 32]);
                let _ = convert::sealed_with_previous_key(&state, &key);
                if let Ok(endpoint) = convert::endpoint_from_state(&state, &key) {
                    let _ = convert::endpoint_with_health(&endpoint, &state);
                }
            }
        }
        2 => drop(decode::<v1::DeliveryTask>("task", bytes)),
        3 => drop(decode::<v1::AttemptRecord>("attempt", bytes)),
        4 => drop(decode::<v1::DeadLetter>("dead letter", bytes)),
        5 => drop(decode::<v1::KeyRecord>("key", bytes)),
        6 => drop(decode::<v1::KeyUsage>("key usage", bytes)),
        7 => drop(decode::<v1::AuditRecord>("audit", bytes)),
        8 => {
            if let Ok(run) = decode::<v1::ReplayProgress>("replay", bytes) {
                let _ = herald_replay::request::run_json(&run);
            }
        }
        9 => drop(decode::<v1::ReplayLock>("replay lock", bytes)),
        10 => drop(decode::<v1::RedriveMarker>("redrive marker", bytes)),
        _ => drop(decode::<v1::Lease>("lease", bytes)),
    }
});
