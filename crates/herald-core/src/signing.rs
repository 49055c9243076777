//! Standard Webhooks signatures, byte-compatible with the spec and its reference libraries.
//!
//! Signed content is `"{webhook-id}.{webhook-timestamp}.{raw body}"`, HMAC-SHA256 keyed with
//! the decoded secret bytes; the header value is `v1,<base64>`, several of them separated by
//! spaces while a rotated secret overlaps. [`verify`] is what receivers run: it checks the
//! timestamp tolerance, then compares in constant time against every `v1` signature offered.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::fmt;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of every endpoint secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// The receiver's default clock tolerance, in seconds.
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;
const MIN_SECRET_BYTES: usize = 24;
const MAX_SECRET_BYTES: usize = 64;

/// An endpoint signing secret (`whsec_` + base64 of 24–64 bytes). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Vec<u8>);

impl Secret {
    /// Parses `whsec_<base64>`.
    pub fn parse(text: &str) -> crate::Result<Self> {
        let encoded = text
            .strip_prefix(SECRET_PREFIX)
            .ok_or(crate::Error::InvalidSecret("must start with whsec_"))?;
        let bytes = B64
            .decode(encoded)
            .map_err(|_| crate::Error::InvalidSecret("not valid base64"))?;
        Self::from_bytes(bytes)
    }

    /// Wraps raw key bytes (24 to 64 of them).
    pub fn from_bytes(bytes: Vec<u8>) -> crate::Result<Self> {
        if !(MIN_SECRET_BYTES..=MAX_SECRET_BYTES).contains(&bytes.len()) {
            return Err(crate::Error::InvalidSecret("must decode to 24-64 bytes"));
        }
        Ok(Self(bytes))
    }

    /// A fresh secret of 32 random bytes.
    pub fn generate() -> Self {
        Self(rand::random::<[u8; 32]>().to_vec())
    }

    /// The raw key bytes (for encryption at rest).
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The `whsec_…` text shown to the endpoint owner once.
    pub fn expose(&self) -> String {
        format!("{SECRET_PREFIX}{}", B64.encode(&self.0))
    }

    fn mac(&self, id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        mac
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// One `v1,<base64>` signature.
pub fn sign(secret: &Secret, id: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = secret.mac(id, timestamp, body).finalize().into_bytes();
    format!("v1,{}", B64.encode(tag))
}

/// The `webhook-signature` header value: one signature per active secret, space-separated.
pub fn signature_header<'a>(
    secrets: impl IntoIterator<Item = &'a Secret>,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    secrets
        .into_iter()
        .map(|secret| sign(secret, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Why a receiver rejected a webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// `webhook-timestamp` is not an integer number of seconds.
    #[error("webhook-timestamp is not a number of seconds")]
    InvalidTimestamp,
    /// The timestamp is older than the tolerance allows (a replay attempt or a slow queue).
    #[error("webhook-timestamp is too old")]
    TooOld,
    /// The timestamp is further in the future than the tolerance allows.
    #[error("webhook-timestamp is too far in the future")]
    TooNew,
    /// No `v1` signature in the header matched any of the secrets.
    #[error("no matching signature")]
    NoMatch,
}

/// Verifies a webhook the way a receiver must: timestamp within `tolerance_secs` of `now_secs`,
/// then any `v1` signature in `signature_header` matching any of `secrets` (constant time).
pub fn verify(
    secrets: &[Secret],
    id: &str,
    timestamp: &str,
    signature_header: &str,
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), VerifyError> {
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| VerifyError::InvalidTimestamp)?;
    if ts < now_secs.saturating_sub(tolerance_secs) {
        return Err(VerifyError::TooOld);
    }
    if ts > now_secs.saturating_add(tolerance_secs) {
        return Err(VerifyError::TooNew);
    }
    let offered: Vec<Vec<u8>> = signature_header
        .split_whitespace()
        .filter_map(|part| part.strip_prefix("v1,"))
        .filter_map(|b64| B64.decode(b64).ok())
        .collect();
    // The body is hashed once per secret; each offered tag only costs the finalisation of
    // a copy of that state (so a rotation's second signature does not hash the body again).
    let matched = secrets.iter().any(|secret| {
        let mac = secret.mac(id, ts, body);
        offered
            .iter()
            .any(|tag| mac.clone().verify_slice(tag).is_ok())
    });
    if matched {
        Ok(())
    } else {
        Err(VerifyError::NoMatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TS: i64 = 1_649_367_553;
    const BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;
    const EXPECTED: &str = "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=";

    #[test]
    fn standard_webhooks_test_vector() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(sign(&secret, ID, TS, BODY), EXPECTED);
        assert_eq!(
            verify(&[secret], ID, "1649367553", EXPECTED, BODY, TS, 300),
            Ok(())
        );
    }

    #[test]
    fn secret_round_trips_and_is_redacted() {
        let secret = Secret::parse(SECRET).unwrap();
        assert_eq!(secret.expose(), SECRET);
        assert_eq!(format!("{secret:?}"), "Secret(<redacted>)");
        let fresh = Secret::generate();
        assert_eq!(Secret::parse(&fresh.expose()).unwrap(), fresh);
    }

    #[test]
    fn secret_parse_errors() {
        assert!(Secret::parse("C2FVsBQIhrscChlQIMV+b5sSYspob7oD").is_err());
        assert!(Secret::parse("whsec_!!!").is_err());
        assert!(Secret::parse("whsec_AAAA").is_err()); // 3 bytes
    }

    #[test]
    fn rotation_header_carries_both_and_either_verifies() {
        let old = Secret::parse(SECRET).unwrap();
        let new = Secret::generate();
        let header = signature_header([&new, &old], ID, TS, BODY);
        assert_eq!(header.split(' ').count(), 2);
        assert!(verify(&[old], ID, "1649367553", &header, BODY, TS, 300).is_ok());
        assert!(verify(&[new], ID, "1649367553", &header, BODY, TS, 300).is_ok());
    }

    #[test]
    fn tolerance_window() {
        let secret = Secret::parse(SECRET).unwrap();
        let s = [secret];
        assert!(verify(&s, ID, "1649367553", EXPECTED, BODY, TS + 300, 300).is_ok());
        assert_eq!(
            verify(&s, ID, "1649367553", EXPECTED, BODY, TS + 301, 300),
            Err(VerifyError::TooOld)
        );
        assert_eq!(
            verify(&s, ID, "1649367553", EXPECTED, BODY, TS - 301, 300),
            Err(VerifyError::TooNew)
        );
        assert_eq!(
            verify(&s, ID, "soon", EXPECTED, BODY, TS, 300),
            Err(VerifyError::InvalidTimestamp)
        );
    }

    #[test]
    fn ignores_unknown_versions_and_garbage() {
        let secret = Secret::parse(SECRET).unwrap();
        let header = format!("v2,abc v1,!!notbase64 {EXPECTED}");
        assert!(verify(
            std::slice::from_ref(&secret),
            ID,
            "1649367553",
            &header,
            BODY,
            TS,
            300
        )
        .is_ok());
        assert_eq!(
            verify(&[secret], ID, "1649367553", "v1a,xyz", BODY, TS, 300),
            Err(VerifyError::NoMatch)
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify_round_trips(
            key in proptest::collection::vec(any::<u8>(), 24..=64),
            id in "[a-zA-Z0-9_]{1,40}",
            ts in 0i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 0..512),
        ) {
            let secret = Secret::from_bytes(key).unwrap();
            let header = sign(&secret, &id, ts, &body);
            prop_assert!(verify(&[secret], &id, &ts.to_string(), &header, &body, ts, 300).is_ok());
        }

        #[test]
        fn any_change_to_id_timestamp_or_body_fails(
            key in proptest::collection::vec(any::<u8>(), 24..=64),
            id in "[a-zA-Z0-9_]{1,40}",
            ts in 1i64..4_000_000_000,
            body in proptest::collection::vec(any::<u8>(), 1..512),
            which in 0usize..3,
            flip in any::<u8>().prop_filter("must change", |b| *b != 0),
        ) {
            let secret = Secret::from_bytes(key).unwrap();
            let header = sign(&secret, &id, ts, &body);
            let (mut id2, mut ts2, mut body2) = (id.clone(), ts, body.clone());
            match which {
                0 => id2.push('x'),
                1 => ts2 += 1,
                _ => body2[0] ^= flip,
            }
            prop_assert_eq!(
                verify(&[secret], &id2, &ts2.to_string(), &header, &body2, ts2, 300),
                Err(VerifyError::NoMatch)
            );
        }
    }
}
