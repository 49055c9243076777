//! API keys: `hk_<id>_<secret>`, shown once, stored as a SHA-256 hash, with narrow scopes.

use crate::ids::KeyId;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::fmt;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    EventsWrite,
    EndpointsRead,
    EndpointsWrite,
    KeysAdmin,
    ReplayRun,
    DeliveriesRead,
    AuditRead,
}

impl Scope {
    /// Every scope, in a stable order.
    pub const ALL: [Scope; 7] = [
        Scope::EventsWrite,
        Scope::EndpointsRead,
        Scope::EndpointsWrite,
        Scope::KeysAdmin,
        Scope::ReplayRun,
        Scope::DeliveriesRead,
        Scope::AuditRead,
    ];

    /// The scope's name as written in keys and errors (`events:write`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::EventsWrite => "events:write",
            Scope::EndpointsRead => "endpoints:read",
            Scope::EndpointsWrite => "endpoints:write",
            Scope::KeysAdmin => "keys:admin",
            Scope::ReplayRun => "replay:run",
            Scope::DeliveriesRead => "deliveries:read",
            Scope::AuditRead => "audit:read",
        }
    }

    /// Parses a scope name.
    pub fn parse(text: &str) -> crate::Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| crate::Error::UnknownScope(text.chars().take(40).collect()))
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A presented or freshly minted key. `Debug` hides the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyToken {
    pub id: KeyId,
    secret: String,
}

impl ApiKeyToken {
    /// Mints a new key with the given id.
    pub fn generate(id: KeyId) -> Self {
        let secret = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        Self { id, secret }
    }

    /// Parses `hk_<id body>_<secret>` as presented in `Authorization: Bearer …`.
    pub fn parse(text: &str) -> crate::Result<Self> {
        let rest = text
            .strip_prefix("hk_")
            .ok_or(crate::Error::MalformedApiKey)?;
        let (body, secret) = rest.split_once('_').ok_or(crate::Error::MalformedApiKey)?;
        if secret.len() < 16 || secret.len() > 128 || !secret.is_ascii() {
            return Err(crate::Error::MalformedApiKey);
        }
        let id = KeyId::parse(&format!("key_{body}")).map_err(|_| crate::Error::MalformedApiKey)?;
        Ok(Self {
            id,
            secret: secret.to_owned(),
        })
    }

    /// The full token text, shown once to whoever created it.
    pub fn expose(&self) -> String {
        let body = &self.id.as_str()[KeyId::PREFIX.len() + 1..];
        format!("hk_{body}_{}", self.secret)
    }

    /// The hex SHA-256 of the full token: the only form Herald stores.
    pub fn hash(&self) -> String {
        hash_token(&self.expose())
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyToken({}, <redacted>)", self.id)
    }
}

/// Hex SHA-256 of a token's text.
pub fn hash_token(token: &str) -> String {
    // Written out in one buffer: this runs for every authenticated request, and a `format!`
    // per byte was 32 allocations each time (benches/README.md, session 15).
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(token.as_bytes());
    let mut out = String::with_capacity(digest.len() * 2);
    for byte in digest {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 15)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_lower_case_hex_sha256() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn token_round_trip() {
        let token = ApiKeyToken::generate(KeyId::generate(1));
        let text = token.expose();
        assert!(text.starts_with("hk_"));
        let parsed = ApiKeyToken::parse(&text).unwrap();
        assert_eq!(parsed, token);
        assert_eq!(parsed.hash(), hash_token(&text));
        assert!(!format!("{token:?}").contains(&text[30..]));
    }

    #[test]
    fn malformed_tokens() {
        for bad in [
            "",
            "hk_",
            "hk_abc",
            "sk_ABC_secretsecretsecret",
            "hk_a b_secretsecretsecret",
            "hk_ABC_short",
        ] {
            assert_eq!(
                ApiKeyToken::parse(bad),
                Err(crate::Error::MalformedApiKey),
                "{bad}"
            );
        }
    }

    #[test]
    fn scopes_round_trip() {
        for scope in Scope::ALL {
            assert_eq!(Scope::parse(scope.as_str()).unwrap(), scope);
        }
        assert!(Scope::parse("events:delete").is_err());
    }
}
