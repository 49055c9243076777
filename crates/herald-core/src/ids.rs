//! Typed, prefixed identifiers.
//!
//! Every id is `<prefix>_<body>`. Generated bodies are 26 characters of Crockford base32
//! holding 48 bits of milliseconds and 80 random bits (ULID layout), so ids sort by creation
//! time. Derived ids ([`EventId::from_idempotency_key`], [`DeliveryId::for_delivery`]) hash
//! their inputs, so the same inputs always give the same id. Parsing accepts any body of 1–64
//! characters from `[A-Za-z0-9_-]`, so producers may bring their own `evt_` ids.

use sha2::{Digest, Sha256};
use std::fmt;

const CROCKFORD: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const MAX_BODY: usize = 64;

/// Encodes 128 bits as 26 Crockford base32 characters, most significant first.
fn encode_u128(mut value: u128) -> String {
    let mut out = [0u8; 26];
    for slot in out.iter_mut().rev() {
        *slot = CROCKFORD[(value & 31) as usize];
        value >>= 5;
    }
    out.iter().map(|b| *b as char).collect()
}

/// A time-ordered body: 48 bits of milliseconds since the epoch, then 80 random bits.
fn time_ordered_body(unix_millis: i64, random: u128) -> String {
    let millis = (unix_millis.max(0) as u128) & ((1 << 48) - 1);
    encode_u128((millis << 80) | (random & ((1 << 80) - 1)))
}

/// A body derived from a hash of `parts`, separated so that ("ab","c") != ("a","bc").
fn derived_body(domain: &str, parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(domain.as_bytes());
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 16];
    first.copy_from_slice(&digest[..16]);
    encode_u128(u128::from_be_bytes(first))
}

fn validate(kind: &'static str, prefix: &str, value: &str) -> crate::Result<()> {
    let invalid = |reason| crate::Error::InvalidId {
        kind,
        value: value.chars().take(80).collect(),
        reason,
    };
    let body = value
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('_'))
        .ok_or_else(|| invalid("wrong prefix"))?;
    if body.is_empty() || body.len() > MAX_BODY {
        return Err(invalid("body must be 1 to 64 characters"));
    }
    if !body
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(invalid("body may only hold A-Z a-z 0-9 _ -"));
    }
    Ok(())
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix before the underscore.
            pub const PREFIX: &'static str = $prefix;

            /// Validates and wraps an id received from outside.
            pub fn parse(value: &str) -> crate::Result<Self> {
                validate($kind, $prefix, value)?;
                Ok(Self(value.to_owned()))
            }

            /// A new time-ordered id; `random` supplies the 80 random bits.
            pub fn generate_with(unix_millis: i64, random: u128) -> Self {
                Self(format!("{}_{}", $prefix, time_ordered_body(unix_millis, random)))
            }

            /// A new time-ordered id from the thread-local random generator.
            pub fn generate(unix_millis: i64) -> Self {
                Self::generate_with(unix_millis, rand::random())
            }

            /// The id as text, prefix included.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Error;
            fn from_str(value: &str) -> crate::Result<Self> {
                Self::parse(value)
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::Error;
            fn try_from(value: String) -> crate::Result<Self> {
                validate($kind, $prefix, &value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

typed_id!(
    /// An event accepted by ingest. Doubles as the Standard Webhooks `webhook-id`.
    EventId, "evt", "event"
);
typed_id!(
    /// A subscribed endpoint.
    EndpointId, "ep", "endpoint"
);
typed_id!(
    /// One event's delivery to one endpoint: stable across attempts, retries and replays.
    DeliveryId, "dlv", "delivery"
);
typed_id!(
    /// An API key (the public part of `hk_<id>_<secret>`).
    KeyId, "key", "key"
);
typed_id!(
    /// A replay run.
    ReplayId, "rpl", "replay"
);

impl EventId {
    /// The event id an `Idempotency-Key` maps to: the same key (within a tenant) always gives
    /// the same id, so a client retry never creates a second event.
    pub fn from_idempotency_key(tenant: &str, key: &str) -> Self {
        Self(format!(
            "evt_{}",
            derived_body("herald.idempotency.v1", &[tenant, key])
        ))
    }
}

impl DeliveryId {
    /// The delivery of `event` to `endpoint`: deterministic, so every attempt, retry and
    /// replay of that pair shares it.
    pub fn for_delivery(event: &EventId, endpoint: &EndpointId) -> Self {
        Self(format!(
            "dlv_{}",
            derived_body("herald.delivery.v1", &[event.as_str(), endpoint.as_str()])
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_ids_have_prefix_and_26_char_body() {
        let id = EventId::generate_with(1_700_000_000_000, 42);
        assert!(id.as_str().starts_with("evt_"));
        assert_eq!(id.as_str().len(), 4 + 26);
        assert_eq!(EventId::parse(id.as_str()).unwrap(), id);
    }

    #[test]
    fn generated_ids_sort_by_time() {
        let early = EndpointId::generate_with(1_000, u128::MAX);
        let late = EndpointId::generate_with(1_001, 0);
        assert!(early < late);
    }

    #[test]
    fn parse_rejects_wrong_prefix_and_bad_bodies() {
        assert!(matches!(
            EventId::parse("ep_ABC"),
            Err(crate::Error::InvalidId {
                reason: "wrong prefix",
                ..
            })
        ));
        assert!(EventId::parse("evt_").is_err());
        assert!(EventId::parse("evt_a b").is_err());
        assert!(EventId::parse("evtABC").is_err());
        assert!(EventId::parse(&format!("evt_{}", "a".repeat(65))).is_err());
        assert!(EventId::parse("evt_order-123_v2").is_ok());
    }

    #[test]
    fn idempotency_key_is_deterministic_and_tenant_scoped() {
        let a = EventId::from_idempotency_key("acme", "order-1");
        assert_eq!(a, EventId::from_idempotency_key("acme", "order-1"));
        assert_ne!(a, EventId::from_idempotency_key("acme", "order-2"));
        assert_ne!(a, EventId::from_idempotency_key("globex", "order-1"));
        assert_ne!(
            EventId::from_idempotency_key("ab", "c"),
            EventId::from_idempotency_key("a", "bc")
        );
        assert!(EventId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn delivery_id_depends_on_both_sides() {
        let event = EventId::parse("evt_1").unwrap();
        let ep1 = EndpointId::parse("ep_1").unwrap();
        let ep2 = EndpointId::parse("ep_2").unwrap();
        let d = DeliveryId::for_delivery(&event, &ep1);
        assert_eq!(d, DeliveryId::for_delivery(&event, &ep1));
        assert_ne!(d, DeliveryId::for_delivery(&event, &ep2));
    }

    #[test]
    fn serde_round_trips_and_validates() {
        let id = KeyId::generate(5);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<KeyId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<KeyId>("\"evt_1\"").is_err());
    }

    proptest! {
        #[test]
        fn every_generated_id_parses(millis in 0i64..(1 << 47), random in any::<u128>()) {
            let id = ReplayId::generate_with(millis, random);
            prop_assert_eq!(ReplayId::parse(id.as_str()).unwrap(), id);
        }
    }
}
