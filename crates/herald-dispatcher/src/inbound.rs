//! Records of the events topic as the dispatcher reads them. HTTP ingest writes only valid
//! envelopes, but producers may also write `EventEnvelope` records straight to Kafka: each is
//! checked here (it decodes, its id is an `evt_…` id, its type is valid, its payload is JSON)
//! before it is fanned out. One that fails is parked whole in the dead-letter topic with
//! reason `undecodable`, so it neither blocks its partition nor vanishes.

use herald_core::event::validate_event_type;
use herald_core::ids::EventId;
use herald_proto::v1;

/// What the dispatcher does with one record of the events topic.
#[derive(Debug, PartialEq)]
pub enum Inbound {
    /// A valid event, ready for fan-out.
    Event(v1::EventEnvelope),
    /// Not a deliverable event: park it.
    Undecodable(String),
}

/// Decodes and checks one record's value. `timestamp_ms` (the record's Kafka timestamp)
/// stands in for `accepted_at_ms` when a producer left it out: the event was accepted when
/// the broker appended it.
pub fn read(value: &[u8], timestamp_ms: Option<i64>) -> Inbound {
    let mut envelope = match herald_proto::decode::<v1::EventEnvelope>("event", value) {
        Ok(envelope) => envelope,
        Err(err) => return Inbound::Undecodable(err.to_string()),
    };
    if let Err(problem) = check(&envelope) {
        return Inbound::Undecodable(problem);
    }
    if envelope.accepted_at_ms <= 0 {
        envelope.accepted_at_ms = timestamp_ms.filter(|t| *t > 0).unwrap_or_else(now_ms);
    }
    Inbound::Event(envelope)
}

fn check(envelope: &v1::EventEnvelope) -> Result<(), String> {
    envelope
        .id
        .parse::<EventId>()
        .map_err(|err| format!("invalid id {:?}: {err}", truncated(&envelope.id)))?;
    validate_event_type(&envelope.event_type).map_err(|err| err.to_string())?;
    serde_json::from_slice::<serde::de::IgnoredAny>(&envelope.payload)
        .map_err(|err| format!("payload is not JSON: {err}"))?;
    Ok(())
}

fn truncated(text: &str) -> String {
    text.chars().take(64).collect()
}

fn now_ms() -> i64 {
    herald_kafka::now_ms()
}

/// The dead letter for a record that [`read`] refused.
pub fn dead_letter(
    record: &rdkafka::message::BorrowedMessage<'_>,
    error: String,
    attempts_topic: String,
) -> v1::DeadLetter {
    use rdkafka::Message as _;
    v1::DeadLetter {
        task: None,
        reason: herald_core::outcome::DeadReason::Undecodable
            .as_str()
            .to_owned(),
        dead_at_ms: now_ms(),
        attempts_topic,
        undecodable: Some(v1::UndecodableRecord {
            topic: record.topic().to_owned(),
            partition: record.partition(),
            offset: record.offset(),
            key: record.key().unwrap_or_default().to_vec(),
            value: record.payload().unwrap_or_default().to_vec(),
            error,
            timestamp_ms: record.timestamp().to_millis().unwrap_or_default(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    fn envelope() -> v1::EventEnvelope {
        v1::EventEnvelope {
            id: EventId::generate_with(1_700_000_000_000, 7).to_string(),
            event_type: "stock.moved".into(),
            payload: br#"{"sku":"A-1"}"#.to_vec().into(),
            accepted_at_ms: 1_700_000_000_000,
            ..Default::default()
        }
    }

    fn problem(inbound: Inbound) -> String {
        match inbound {
            Inbound::Undecodable(problem) => problem,
            Inbound::Event(e) => panic!("accepted {e:?}"),
        }
    }

    #[test]
    fn a_valid_envelope_is_an_event() {
        let bytes = envelope().encode_to_vec();
        assert_eq!(read(&bytes, Some(5)), Inbound::Event(envelope()));
    }

    #[test]
    fn a_missing_accepted_at_is_the_record_timestamp() {
        let mut e = envelope();
        e.accepted_at_ms = 0;
        let Inbound::Event(read) = read(&e.encode_to_vec(), Some(1_800_000_000_000)) else {
            panic!("refused");
        };
        assert_eq!(read.accepted_at_ms, 1_800_000_000_000);
        let Inbound::Event(read) = super::read(&e.encode_to_vec(), None) else {
            panic!("refused");
        };
        assert!(read.accepted_at_ms > 1_700_000_000_000);
    }

    #[test]
    fn garbage_and_invalid_fields_are_undecodable_with_a_reason() {
        assert!(problem(read(b"\xff\xff\xff not protobuf", None)).contains("undecodable"));
        let mut e = envelope();
        e.id = "order-17".into();
        assert!(problem(read(&e.encode_to_vec(), None)).contains("invalid id"));
        let mut e = envelope();
        e.event_type = "has spaces".into();
        assert!(problem(read(&e.encode_to_vec(), None)).contains("event type"));
        let mut e = envelope();
        e.payload = bytes::Bytes::from_static(b"not json");
        assert!(problem(read(&e.encode_to_vec(), None)).contains("not JSON"));
        assert!(problem(read(&[], None)).contains("invalid id"));
    }
}
