//! Endpoint secrets are stored sealed: XChaCha20-Poly1305 under a configured 32-byte master
//! key, with the endpoint id as associated data (a sealed secret cannot be moved to another
//! endpoint). Sealed form: 24-byte random nonce, then ciphertext and tag; the record next to
//! it names the key that sealed it by its [`MasterKey::id`].
//!
//! Rotation: configure the new key as the master key and the old one among the previous
//! keys. New secrets seal under the new key; secrets sealed under any configured key open.
//! Once every endpoint is re-sealed (`herald endpoints reseal`), drop the old key.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use std::fmt;

const NONCE_LEN: usize = 24;

/// The master key that seals endpoint secrets, with the previous keys that still open
/// secrets sealed before a rotation. `Debug` never shows them.
#[derive(Clone)]
pub struct MasterKey {
    current: [u8; 32],
    previous: Vec<[u8; 32]>,
}

/// Why a sealed secret could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Too short to hold a nonce and a tag.
    #[error("sealed secret is truncated")]
    Truncated,
    /// Wrong master key, wrong endpoint, or tampered bytes.
    #[error("sealed secret does not open with the configured master keys")]
    Unauthentic,
    /// Sealed under a key that is not configured.
    #[error(
        "sealed under master key {0}, which is neither master_key nor one of previous_master_keys"
    )]
    UnknownKey(String),
}

/// The public id of a key: `mk_` and 12 hex digits of a SHA-256 over a label and the key.
fn key_id(key: &[u8; 32]) -> String {
    let digest = Sha256::new()
        .chain_update(b"herald.master-key-id.v1")
        .chain_update(key)
        .finalize();
    let hex: String = digest[..6].iter().map(|b| format!("{b:02x}")).collect();
    format!("mk_{hex}")
}

fn open_with(key: &[u8; 32], sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
    let (nonce, body) = sealed.split_at(NONCE_LEN);
    XChaCha20Poly1305::new(key.into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: body,
                aad: context,
            },
        )
        .map_err(|_| SealError::Unauthentic)
}

impl MasterKey {
    /// Wraps 32 key bytes (no previous keys).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self {
            current: bytes,
            previous: Vec::new(),
        }
    }

    /// Parses base64 of exactly 32 bytes (how the key is configured).
    pub fn parse_base64(text: &str) -> Option<Self> {
        let bytes = B64.decode(text.trim()).ok()?;
        Some(Self::from_bytes(bytes.try_into().ok()?))
    }

    /// Adds keys of earlier rotations: they open secrets, they never seal.
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = MasterKey>) -> Self {
        self.previous
            .extend(previous.into_iter().map(|k| k.current));
        self
    }

    /// The id of the key that seals (recorded next to every sealed secret).
    pub fn id(&self) -> String {
        key_id(&self.current)
    }

    /// The ids of the previous keys, in the order configured.
    pub fn previous_ids(&self) -> Vec<String> {
        self.previous.iter().map(key_id).collect()
    }

    /// Seals `plaintext` under the current key, bound to `context` (the endpoint id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.current).into());
        let nonce: [u8; NONCE_LEN] = rand::random();
        let payload = Payload {
            msg: plaintext,
            aad: context,
        };
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .expect("XChaCha20-Poly1305 encryption of a short secret cannot fail");
        [nonce.as_slice(), &sealed].concat()
    }

    /// Opens what [`seal`](Self::seal) produced with the same `context`, under the key whose
    /// id is `sealed_by`; an empty id (secrets sealed before key ids were recorded) tries the
    /// current key, then the previous ones.
    pub fn open(
        &self,
        sealed_by: &str,
        sealed: &[u8],
        context: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::Truncated);
        }
        let mut keys = std::iter::once(&self.current).chain(&self.previous);
        if sealed_by.is_empty() {
            return keys
                .find_map(|key| open_with(key, sealed, context).ok())
                .ok_or(SealError::Unauthentic);
        }
        let key = keys
            .find(|key| key_id(key) == sealed_by)
            .ok_or_else(|| SealError::UnknownKey(sealed_by.chars().take(20).collect()))?;
        open_with(key, sealed, context)
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_bound_to_context() {
        let key = MasterKey::from_bytes([1; 32]);
        let id = key.id();
        let sealed = key.seal(b"secret bytes", b"ep_1");
        assert_eq!(key.open(&id, &sealed, b"ep_1").unwrap(), b"secret bytes");
        assert_eq!(key.open(&id, &sealed, b"ep_2"), Err(SealError::Unauthentic));
        let other = MasterKey::from_bytes([2; 32]);
        assert_eq!(
            other.open(&other.id(), &sealed, b"ep_1"),
            Err(SealError::Unauthentic)
        );
        assert_eq!(
            key.open(&id, &sealed[..10], b"ep_1"),
            Err(SealError::Truncated)
        );
        assert_ne!(
            key.seal(b"x", b"c"),
            key.seal(b"x", b"c"),
            "fresh nonce each time"
        );
    }

    #[test]
    fn a_rotated_key_still_opens_and_only_the_new_one_seals() {
        let old = MasterKey::from_bytes([1; 32]);
        let sealed_old = old.seal(b"s1", b"ep_1");
        let new = MasterKey::from_bytes([2; 32]).with_previous([old.clone()]);
        assert_ne!(new.id(), old.id());
        assert_eq!(new.previous_ids(), [old.id()]);
        assert_eq!(new.open(&old.id(), &sealed_old, b"ep_1").unwrap(), b"s1");
        // Secrets from before key ids were recorded: every configured key is tried.
        assert_eq!(new.open("", &sealed_old, b"ep_1").unwrap(), b"s1");
        let sealed_new = new.seal(b"s2", b"ep_1");
        assert_eq!(new.open(&new.id(), &sealed_new, b"ep_1").unwrap(), b"s2");
        assert_eq!(
            old.open(&new.id(), &sealed_new, b"ep_1"),
            Err(SealError::UnknownKey(new.id())),
            "the old key alone does not know the new one, and says so"
        );
        assert_eq!(
            old.open("", &sealed_new, b"ep_1"),
            Err(SealError::Unauthentic)
        );
        assert!(new.id().starts_with("mk_") && new.id().len() == 15);
        assert_eq!(
            MasterKey::from_bytes([2; 32]).id(),
            new.id(),
            "ids are stable"
        );
    }

    #[test]
    fn parses_base64_keys() {
        assert!(MasterKey::parse_base64(&B64.encode([9u8; 32])).is_some());
        assert!(MasterKey::parse_base64(&B64.encode([9u8; 16])).is_none());
        assert!(MasterKey::parse_base64("***").is_none());
        assert_eq!(
            format!("{:?}", MasterKey::from_bytes([0; 32])),
            "MasterKey(<redacted>)"
        );
    }
}
