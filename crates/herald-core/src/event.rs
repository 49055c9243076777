//! The event a producer hands Herald, and the validation of event types.

use crate::ids::EventId;
use crate::UnixMillis;

/// The most characters an event type may have.
pub const MAX_EVENT_TYPE_LEN: usize = 128;

/// The `source` of the events Herald itself emits about its own operation (an endpoint
/// failing, recovering, disabled; a delivery dead-lettered). Producers cannot send it: ingest
/// stamps each event with the key that sent it. Operational events go to operational
/// endpoints only, and operational endpoints receive nothing else.
pub const OPERATIONAL_SOURCE: &str = "herald:operational";

/// The operational event types.
pub const OPERATIONAL_TYPES: [&str; 4] = [
    "endpoint.failing",
    "endpoint.recovered",
    "endpoint.disabled",
    "delivery.dead_lettered",
];

/// An accepted event. `payload` is the exact JSON bytes delivered to endpoints.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: EventId,
    pub event_type: String,
    pub payload: Vec<u8>,
    /// Tenant the event belongs to (empty when the producer does not use tenants).
    pub tenant: String,
    /// Kafka key: events with the same ordering key keep their order.
    pub ordering_key: String,
    /// When ingest accepted it.
    pub accepted_at: UnixMillis,
}

fn is_type_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')
}

/// Checks an event type: 1–128 characters from `[A-Za-z0-9._:-]`.
pub fn validate_event_type(event_type: &str) -> crate::Result<()> {
    if event_type.is_empty()
        || event_type.len() > MAX_EVENT_TYPE_LEN
        || !event_type.chars().all(is_type_char)
    {
        return Err(crate::Error::InvalidEventType(
            event_type.chars().take(MAX_EVENT_TYPE_LEN + 8).collect(),
        ));
    }
    Ok(())
}

/// Checks an event-type filter: an event type, optionally ending in `*` (prefix match), or `*`.
pub fn validate_filter(filter: &str) -> crate::Result<()> {
    match filter.strip_suffix('*') {
        Some("") => Ok(()),
        Some(prefix) => validate_event_type(prefix)
            .map_err(|_| crate::Error::InvalidEventType(filter.chars().take(136).collect())),
        None => validate_event_type(filter),
    }
}

/// Whether `event_type` matches `filter` (exact, prefix with trailing `*`, or `*`).
pub fn filter_matches(filter: &str, event_type: &str) -> bool {
    match filter.strip_suffix('*') {
        Some(prefix) => event_type.starts_with(prefix),
        None => filter == event_type,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types() {
        assert!(validate_event_type("stock.moved").is_ok());
        assert!(validate_event_type("invoice:paid-v2").is_ok());
        assert!(validate_event_type("").is_err());
        assert!(validate_event_type("has space").is_err());
        assert!(validate_event_type("stock.*").is_err());
        assert!(validate_event_type(&"a".repeat(129)).is_err());
    }

    #[test]
    fn filters() {
        assert!(validate_filter("*").is_ok());
        assert!(validate_filter("stock.*").is_ok());
        assert!(validate_filter("st*ck").is_err());
        assert!(filter_matches("*", "anything"));
        assert!(filter_matches("stock.*", "stock.moved"));
        assert!(!filter_matches("stock.*", "stocks"));
        assert!(filter_matches("invoice.paid", "invoice.paid"));
        assert!(!filter_matches("invoice.paid", "invoice.paid.v2"));
    }
}
