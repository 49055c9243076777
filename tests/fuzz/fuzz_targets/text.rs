//! Every small text parser behind a header, a query parameter, a config value or a CLI flag:
//! API keys, ids, durations, replay rates, time windows (evidence and replay), event types
//! and filters, endpoint URLs, page cursors.
#![no_main]

use herald_core::apikey::{ApiKeyToken, Scope};
use herald_core::ids::{DeliveryId, EndpointId, EventId, KeyId, ReplayId};
use libfuzzer_sys::fuzz_target;

const NOW: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (a, b) = text.split_once('\n').unwrap_or((&text, ""));
    let _ = ApiKeyToken::parse(a);
    let _ = Scope::parse(a);
    let _ = EndpointId::parse(a);
    let _ = EventId::parse(a);
    let _ = DeliveryId::parse(a);
    let _ = KeyId::parse(a);
    let _ = ReplayId::parse(a);
    let _ = EventId::from_idempotency_key(a, b);
    let _ = herald_core::duration::parse(a);
    let _ = herald_replay::rate::parse_rate(a);
    let _ = herald_replay::filter::parse_instant(a, NOW);
    let _ = herald_replay::filter::TimeRange::parse(Some(a), Some(b), NOW);
    let _ = herald_evidence::window::Window::parse(Some(a), Some(b), NOW);
    let _ = herald_evidence::window::Window::parse(None, Some(a), i64::MIN);
    let _ = herald_core::event::validate_event_type(a);
    if herald_core::event::validate_filter(a).is_ok() {
        let _ = herald_core::event::filter_matches(a, b);
    }
    let _ = herald_core::endpoint::validate_url(a);
    let _ = herald_core::endpoint::redacted_url(a);
    let _ = herald_kafka::page::Pager::<herald_evidence::attempts::Attempt>::new(50, Some(a));
    let _ =
        herald_kafka::page::Pager::<herald_evidence::attempts::Attempt>::new(usize::MAX, Some(b));
});
