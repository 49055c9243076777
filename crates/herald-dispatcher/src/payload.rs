//! The body of a delivery, as the endpoint's payload format says: the producer's payload
//! byte for byte (`raw`), or the Standard Webhooks payload `{"type", "timestamp", "data"}`
//! with the producer's payload, unchanged, as `data` (`standard`).

use herald_core::endpoint::PayloadFormat;

/// The body for an event of `event_type` accepted at `accepted_at_ms` carrying `payload`
/// (valid JSON: ingest checked it).
pub fn body(
    format: PayloadFormat,
    event_type: &str,
    accepted_at_ms: i64,
    payload: bytes::Bytes,
) -> bytes::Bytes {
    match format {
        PayloadFormat::Raw => payload,
        PayloadFormat::Standard => {
            let timestamp = chrono::DateTime::from_timestamp_millis(accepted_at_ms)
                .unwrap_or_default()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            let head = format!(
                r#"{{"type":{},"timestamp":"{timestamp}","data":"#,
                serde_json::Value::from(event_type)
            );
            let mut out = Vec::with_capacity(head.len() + payload.len() + 1);
            out.extend_from_slice(head.as_bytes());
            out.extend_from_slice(&payload);
            out.push(b'}');
            out.into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_is_the_payload_and_standard_wraps_it_unchanged() {
        let payload = bytes::Bytes::from_static(br#"{"sku": "A-1",  "qty":3}"#);
        assert_eq!(
            &body(PayloadFormat::Raw, "stock.moved", 0, payload.clone())[..],
            &payload[..]
        );
        let wrapped = body(
            PayloadFormat::Standard,
            "stock.\"moved\"",
            1_700_000_000_123,
            payload.clone(),
        );
        let text = std::str::from_utf8(&wrapped).unwrap();
        let value: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(value["type"], "stock.\"moved\"");
        assert_eq!(value["timestamp"], "2023-11-14T22:13:20.123Z");
        assert_eq!(value["data"]["qty"], 3);
        // The producer's bytes, spacing and all, are inside.
        assert!(
            text.contains(r#""data":{"sku": "A-1",  "qty":3}}"#),
            "{text}"
        );
    }
}
