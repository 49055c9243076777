//! Conversions between wire records and domain types.

use crate::v1;
use crate::{Error, Result};
use herald_core::endpoint::{Endpoint, PayloadFormat, SigningKey};
use herald_core::event::Event;
use herald_core::ids::{EndpointId, EventId};
use herald_core::outcome::AttemptOutcome;
use herald_core::run::RunState;
use herald_core::sealing::MasterKey;

fn invalid(kind: &'static str, reason: impl ToString) -> Error {
    Error::Invalid {
        kind,
        reason: reason.to_string(),
    }
}

impl v1::ReplayProgress {
    /// The run's state; `None` for a state this version does not know.
    pub fn run_state(&self) -> Option<RunState> {
        RunState::parse(&self.state)
    }

    /// Sets the run's state.
    pub fn set_run_state(&mut self, state: RunState) {
        self.state = state.as_str().to_owned();
    }
}

impl v1::AttemptRecord {
    /// What the attempt led to; `None` for an outcome this version does not know.
    pub fn attempt_outcome(&self) -> Option<AttemptOutcome> {
        AttemptOutcome::parse(&self.outcome)
    }
}

impl From<&Event> for v1::EventEnvelope {
    fn from(event: &Event) -> Self {
        Self {
            id: event.id.to_string(),
            event_type: event.event_type.clone(),
            payload: event.payload.clone().into(),
            tenant: event.tenant.clone(),
            ordering_key: event.ordering_key.clone(),
            accepted_at_ms: event.accepted_at,
            idempotency_key: String::new(),
            source: String::new(),
        }
    }
}

impl TryFrom<&v1::EventEnvelope> for Event {
    type Error = Error;

    fn try_from(envelope: &v1::EventEnvelope) -> Result<Self> {
        herald_core::event::validate_event_type(&envelope.event_type)
            .map_err(|e| invalid("event", e))?;
        Ok(Self {
            id: EventId::parse(&envelope.id).map_err(|e| invalid("event", e))?,
            event_type: envelope.event_type.clone(),
            payload: envelope.payload.to_vec(),
            tenant: envelope.tenant.clone(),
            ordering_key: envelope.ordering_key.clone(),
            accepted_at: envelope.accepted_at_ms,
        })
    }
}

/// Seals an endpoint's secrets and writes its full state record.
pub fn endpoint_to_state(endpoint: &Endpoint, version: u64, key: &MasterKey) -> v1::EndpointState {
    v1::EndpointState {
        id: endpoint.id.to_string(),
        url: endpoint.url.clone(),
        description: endpoint.description.clone(),
        event_types: endpoint.event_types.clone(),
        tenant: endpoint.tenant.clone(),
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason.clone(),
        secrets: endpoint
            .signing_keys
            .iter()
            .map(|signing| v1::EncryptedSecret {
                sealed: key.seal(signing.secret.as_bytes(), endpoint.id.as_str().as_bytes()),
                expires_at_ms: signing.expires_at.unwrap_or(0),
                key_id: key.id(),
            })
            .collect(),
        created_at_ms: endpoint.created_at,
        updated_at_ms: endpoint.updated_at,
        version,
        failing_since_ms: endpoint.failing_since.unwrap_or(0),
        health_only: false,
        payload_format: match endpoint.payload_format {
            PayloadFormat::Raw => String::new(),
            other => other.as_str().to_owned(),
        },
        rate_limit_per_sec: endpoint.rate_limit.unwrap_or(0),
        operational: endpoint.operational,
    }
}

/// A dispatcher's health record for `endpoint`: enabled, why disabled, failing since, as
/// the next `version`; no configuration and no secrets (see `health_only` in the proto).
pub fn endpoint_health_to_state(endpoint: &Endpoint, version: u64) -> v1::EndpointState {
    v1::EndpointState {
        id: endpoint.id.to_string(),
        enabled: endpoint.enabled,
        disabled_reason: endpoint.disabled_reason.clone(),
        updated_at_ms: endpoint.updated_at,
        version,
        failing_since_ms: endpoint.failing_since.unwrap_or(0),
        health_only: true,
        ..Default::default()
    }
}

/// `current` with the health fields of a health-only `record` (the rest unchanged).
pub fn endpoint_with_health(current: &Endpoint, record: &v1::EndpointState) -> Endpoint {
    Endpoint {
        enabled: record.enabled,
        disabled_reason: record.disabled_reason.clone(),
        updated_at: record.updated_at_ms,
        failing_since: (record.failing_since_ms > 0).then_some(record.failing_since_ms),
        ..current.clone()
    }
}

/// Whether a state record holds secrets sealed under another key than `key`'s current one
/// (to re-seal before that key is dropped).
pub fn sealed_with_previous_key(state: &v1::EndpointState, key: &MasterKey) -> bool {
    let current = key.id();
    state.secrets.iter().any(|s| s.key_id != current)
}

/// Reads a state record back, opening its secrets with `key`.
pub fn endpoint_from_state(state: &v1::EndpointState, key: &MasterKey) -> Result<Endpoint> {
    let id = EndpointId::parse(&state.id).map_err(|e| invalid("endpoint", e))?;
    let signing_keys = state
        .secrets
        .iter()
        .map(|sealed| {
            let bytes = key
                .open(&sealed.key_id, &sealed.sealed, id.as_str().as_bytes())
                .map_err(|e| invalid("endpoint", e))?;
            let secret = herald_core::signing::Secret::from_bytes(bytes)
                .map_err(|e| invalid("endpoint", e))?;
            Ok(SigningKey {
                secret,
                expires_at: (sealed.expires_at_ms != 0).then_some(sealed.expires_at_ms),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Endpoint {
        failing_since: (state.failing_since_ms != 0).then_some(state.failing_since_ms),
        id,
        url: state.url.clone(),
        description: state.description.clone(),
        event_types: state.event_types.clone(),
        tenant: state.tenant.clone(),
        enabled: state.enabled,
        disabled_reason: state.disabled_reason.clone(),
        signing_keys,
        created_at: state.created_at_ms,
        updated_at: state.updated_at_ms,
        payload_format: PayloadFormat::parse(&state.payload_format)
            .map_err(|e| invalid("endpoint", e))?,
        rate_limit: Some(state.rate_limit_per_sec).filter(|r| *r != 0),
        operational: state.operational,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_core::signing::Secret;
    use prost::Message;

    #[test]
    fn event_round_trips_through_the_wire() {
        let event = Event {
            id: EventId::generate(1),
            event_type: "stock.moved".into(),
            payload: br#"{"sku":"A-1","qty":3}"#.to_vec(),
            tenant: "acme".into(),
            ordering_key: "A-1".into(),
            accepted_at: 1_700_000_000_000,
        };
        let bytes = v1::EventEnvelope::from(&event).encode_to_vec();
        let decoded: v1::EventEnvelope = crate::decode("event", &bytes).unwrap();
        assert_eq!(Event::try_from(&decoded).unwrap(), event);
    }

    #[test]
    fn invalid_envelopes_are_named() {
        let envelope = v1::EventEnvelope {
            id: "nope".into(),
            event_type: "a".into(),
            ..Default::default()
        };
        let err = Event::try_from(&envelope).unwrap_err().to_string();
        assert!(err.contains("invalid event record"), "{err}");
        assert!(crate::decode::<v1::EventEnvelope>("event", &[0xff, 0xff]).is_err());
    }

    #[test]
    fn endpoint_state_seals_secrets() {
        let key = MasterKey::from_bytes([7; 32]);
        let secret = Secret::generate();
        let endpoint = Endpoint {
            failing_since: Some(7),
            id: EndpointId::generate(1),
            url: "https://example.com".into(),
            description: "d".into(),
            event_types: vec!["stock.*".into()],
            tenant: String::new(),
            enabled: true,
            disabled_reason: String::new(),
            signing_keys: vec![SigningKey {
                secret: secret.clone(),
                expires_at: None,
            }],
            created_at: 1,
            updated_at: 2,
            payload_format: PayloadFormat::Standard,
            rate_limit: Some(25),
            operational: true,
        };
        let state = endpoint_to_state(&endpoint, 3, &key);
        assert_eq!(state.payload_format, "standard");
        let bytes = state.encode_to_vec();
        assert!(!bytes
            .windows(secret.as_bytes().len())
            .any(|w| w == secret.as_bytes()));
        assert_eq!(endpoint_from_state(&state, &key).unwrap(), endpoint);
        let wrong = MasterKey::from_bytes([8; 32]);
        let err = endpoint_from_state(&state, &wrong).unwrap_err().to_string();
        assert!(err.contains(&key.id()), "names the missing key: {err}");
        // Rotated: the old key is a previous one; the record opens, and it needs re-sealing
        // until it is written again under the new key.
        let rotated = MasterKey::from_bytes([8; 32]).with_previous([key.clone()]);
        assert_eq!(state.secrets[0].key_id, key.id());
        assert!(!sealed_with_previous_key(&state, &key));
        assert!(sealed_with_previous_key(&state, &rotated));
        assert_eq!(endpoint_from_state(&state, &rotated).unwrap(), endpoint);
        let resealed = endpoint_to_state(&endpoint, 4, &rotated);
        assert!(!sealed_with_previous_key(&resealed, &rotated));
        assert!(endpoint_from_state(&resealed, &key).is_err());
    }
}
