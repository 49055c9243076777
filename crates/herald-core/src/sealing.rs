//! Endpoint secrets are stored sealed: XChaCha20-Poly1305 under a configured 32-byte master
//! key, with the endpoint id as associated data (a sealed secret cannot be moved to another
//! endpoint). Sealed form: 24-byte random nonce, then ciphertext and tag.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use std::fmt;

const NONCE_LEN: usize = 24;

/// The master key that seals endpoint secrets. `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

/// Why a sealed secret could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// Too short to hold a nonce and a tag.
    #[error("sealed secret is truncated")]
    Truncated,
    /// Wrong master key, wrong endpoint, or tampered bytes.
    #[error("sealed secret does not open with this master key")]
    Unauthentic,
}

impl MasterKey {
    /// Wraps 32 key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Parses base64 of exactly 32 bytes (how the key is configured).
    pub fn parse_base64(text: &str) -> Option<Self> {
        let bytes = B64.decode(text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// Seals `plaintext`, bound to `context` (the endpoint id).
    pub fn seal(&self, plaintext: &[u8], context: &[u8]) -> Vec<u8> {
        let cipher = XChaCha20Poly1305::new((&self.0).into());
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

    /// Opens what [`seal`](Self::seal) produced with the same `context`.
    pub fn open(&self, sealed: &[u8], context: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(SealError::Truncated);
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        XChaCha20Poly1305::new((&self.0).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| SealError::Unauthentic)
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
        let sealed = key.seal(b"secret bytes", b"ep_1");
        assert_eq!(key.open(&sealed, b"ep_1").unwrap(), b"secret bytes");
        assert_eq!(key.open(&sealed, b"ep_2"), Err(SealError::Unauthentic));
        assert_eq!(
            MasterKey::from_bytes([2; 32]).open(&sealed, b"ep_1"),
            Err(SealError::Unauthentic)
        );
        assert_eq!(key.open(&sealed[..10], b"ep_1"), Err(SealError::Truncated));
        assert_ne!(
            key.seal(b"x", b"c"),
            key.seal(b"x", b"c"),
            "fresh nonce each time"
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
