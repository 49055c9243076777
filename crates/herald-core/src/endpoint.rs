//! Subscribed endpoints: where deliveries go, which events they want, and how they are signed.

use crate::event::{filter_matches, validate_filter};
use crate::ids::EndpointId;
use crate::signing::Secret;
use crate::UnixMillis;

/// The most event-type filters one endpoint may have.
pub const MAX_FILTERS: usize = 64;
/// The longest URL accepted.
pub const MAX_URL_LEN: usize = 2_048;

/// A signing secret with the moment it stops being used (`None`: current secret).
#[derive(Debug, Clone, PartialEq)]
pub struct SigningKey {
    pub secret: Secret,
    pub expires_at: Option<UnixMillis>,
}

/// What a delivery's body is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PayloadFormat {
    /// The producer's payload, byte for byte (the default).
    #[default]
    Raw,
    /// The Standard Webhooks payload recommendation: `{"type", "timestamp", "data"}`, with
    /// the producer's payload as `data`, so a receiver can tell the event type and time
    /// without knowing each producer's payload.
    Standard,
}

impl PayloadFormat {
    /// Every format.
    pub const ALL: [PayloadFormat; 2] = [Self::Raw, Self::Standard];

    /// The name in the API and on the wire (`raw`, `standard`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Standard => "standard",
        }
    }

    /// The format a name means; the wire's empty string is `raw`.
    pub fn parse(text: &str) -> crate::Result<Self> {
        if text.is_empty() {
            return Ok(Self::Raw);
        }
        Self::ALL
            .into_iter()
            .find(|f| f.as_str() == text)
            .ok_or_else(|| crate::Error::UnknownPayloadFormat(text.chars().take(20).collect()))
    }
}

/// An endpoint as every service's in-memory view holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub id: EndpointId,
    pub url: String,
    pub description: String,
    /// Event-type filters; empty means every event type.
    pub event_types: Vec<String>,
    /// Only events of this tenant (empty: every tenant).
    pub tenant: String,
    pub enabled: bool,
    /// Why it was disabled (empty while enabled).
    pub disabled_reason: String,
    /// Current secret first; rotated-out secrets stay until they expire.
    pub signing_keys: Vec<SigningKey>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    /// When the current run of failed deliveries started (None while healthy).
    pub failing_since: Option<UnixMillis>,
    /// The body deliveries carry.
    pub payload_format: PayloadFormat,
    /// Most delivery requests a second to this endpoint (`None`: as fast as its concurrency
    /// allows). Deliveries over it wait their turn: a throttled delivery is not a failure.
    pub rate_limit: Option<u32>,
    /// The tenant's operational endpoint: it receives Herald's own events about the
    /// tenant's endpoints and deliveries (see [`crate::event::OPERATIONAL_TYPES`]), and
    /// nothing else.
    pub operational: bool,
}

/// Most signing secrets an endpoint holds at once (the current one and those still
/// overlapping after rotations); every delivery carries one signature per secret.
pub const MAX_SIGNING_KEYS: usize = 4;

/// Longest endpoint description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1_024;

impl Endpoint {
    /// A new endpoint at `url`, created at `now`: enabled, healthy, subscribed to every
    /// event type of every tenant, with no description, signing with `secret` alone.
    pub fn new(id: EndpointId, url: String, secret: Secret, now: UnixMillis) -> Self {
        Self {
            id,
            url,
            description: String::new(),
            event_types: Vec::new(),
            tenant: String::new(),
            enabled: true,
            disabled_reason: String::new(),
            signing_keys: vec![SigningKey {
                secret,
                expires_at: None,
            }],
            created_at: now,
            updated_at: now,
            failing_since: None,
            payload_format: PayloadFormat::Raw,
            rate_limit: None,
            operational: false,
        }
    }

    /// Rotates to `secret` at `now`: it signs from now on, and every earlier secret still in
    /// effect keeps signing until `now + overlap_ms` at the latest. Expired secrets are
    /// dropped, and beyond [`MAX_SIGNING_KEYS`] the ones closest to expiring go first, so
    /// rotating again and again never piles secrets (and signatures) up.
    pub fn rotate_secret(&mut self, secret: Secret, now: UnixMillis, overlap_ms: i64) {
        let until = now + overlap_ms;
        let mut previous: Vec<SigningKey> = std::mem::take(&mut self.signing_keys)
            .into_iter()
            .filter(|k| k.expires_at.is_none_or(|at| at > now))
            .map(|mut k| {
                k.expires_at = Some(k.expires_at.map_or(until, |at| at.min(until)));
                k
            })
            .collect();
        previous.sort_by_key(|k| std::cmp::Reverse(k.expires_at));
        previous.truncate(MAX_SIGNING_KEYS - 1);
        self.signing_keys = std::iter::once(SigningKey {
            secret,
            expires_at: None,
        })
        .chain(previous)
        .collect();
        self.updated_at = now;
    }

    /// Enables or disables by an operator's hand at `now`. Re-enabling clears the reason and
    /// starts the failure period over; disabling records the reason `manual`, also over an
    /// automatic one (an operator decided).
    pub fn set_enabled_by_operator(&mut self, enabled: bool, now: UnixMillis) {
        if enabled && !self.enabled {
            self.failing_since = None;
        }
        self.disabled_reason = if enabled {
            String::new()
        } else {
            "manual".into()
        };
        self.enabled = enabled;
        self.updated_at = now;
    }

    /// Disables automatically at `now` for `reason` (`failing`, `gone`). False, and nothing
    /// changed, when it is already disabled: the first reason stands.
    pub fn disable_automatically(&mut self, reason: &str, now: UnixMillis) -> bool {
        if !self.enabled {
            return false;
        }
        self.enabled = false;
        self.disabled_reason = reason.to_owned();
        self.updated_at = now;
        true
    }

    /// Records whether the endpoint is failing (since when) at `now`. False, and nothing
    /// changed, when the record already says so.
    pub fn set_failing_since(&mut self, since: Option<UnixMillis>, now: UnixMillis) -> bool {
        if since.is_some() == self.failing_since.is_some() {
            return false;
        }
        self.failing_since = since;
        self.updated_at = now;
        true
    }

    /// Whether this endpoint wants events of `event_type` from `tenant`; `operational`:
    /// whether the event is one of Herald's own (those go to operational endpoints only).
    pub fn subscribes_to(&self, event_type: &str, tenant: &str, operational: bool) -> bool {
        self.operational == operational
            && (self.tenant.is_empty() || self.tenant == tenant)
            && (self.event_types.is_empty()
                || self
                    .event_types
                    .iter()
                    .any(|f| filter_matches(f, event_type)))
    }

    /// The secrets to sign with at `now`: the current one and any not yet expired.
    pub fn active_secrets(&self, now: UnixMillis) -> Vec<&Secret> {
        self.signing_keys
            .iter()
            .filter(|key| key.expires_at.is_none_or(|at| at > now))
            .map(|key| &key.secret)
            .collect()
    }
}

/// Checks a destination URL: `http` or `https`, with a host, no credentials, bounded length.
/// Whether the address it resolves to is allowed is decided at connect time.
pub fn validate_url(url: &str) -> crate::Result<()> {
    let bad = |why: &str| crate::Error::InvalidUrl(why.to_owned());
    if url.len() > MAX_URL_LEN {
        return Err(bad("longer than 2048 characters"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| bad("scheme must be http or https"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() {
        return Err(bad("missing host"));
    }
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not allowed"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("contains whitespace or control characters"));
    }
    Ok(())
}

/// An endpoint URL as records and logs may show it: scheme, host and path, without the query
/// or fragment (tokens often ride there) or any userinfo.
pub fn redacted_url(url: &str) -> String {
    let cut = url.find(['?', '#']).unwrap_or(url.len());
    let (base, rest) = url.split_at(cut);
    let base = match base.split_once("://") {
        Some((scheme, tail)) => {
            let (authority, path) = tail.split_at(tail.find('/').unwrap_or(tail.len()));
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}{path}")
        }
        None => base.to_owned(),
    };
    if rest.is_empty() {
        base
    } else {
        format!("{base}?…")
    }
}

/// Checks a list of event-type filters.
pub fn validate_filters(filters: &[String]) -> crate::Result<()> {
    if filters.len() > MAX_FILTERS {
        return Err(crate::Error::InvalidEventType(format!(
            "{} filters (at most {MAX_FILTERS})",
            filters.len()
        )));
    }
    filters.iter().try_for_each(|f| validate_filter(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(filters: &[&str], tenant: &str) -> Endpoint {
        Endpoint {
            failing_since: None,
            id: EndpointId::parse("ep_1").unwrap(),
            url: "https://example.com/hook".into(),
            description: String::new(),
            event_types: filters.iter().map(|s| s.to_string()).collect(),
            tenant: tenant.into(),
            enabled: true,
            disabled_reason: String::new(),
            signing_keys: vec![],
            created_at: 0,
            updated_at: 0,
            payload_format: PayloadFormat::Raw,
            rate_limit: None,
            operational: false,
        }
    }

    #[test]
    fn redacted_urls_keep_where_and_drop_tokens() {
        assert_eq!(
            redacted_url("https://hooks.example.com/in/acme?token=s3cr3t#x"),
            "https://hooks.example.com/in/acme?…"
        );
        assert_eq!(redacted_url("http://user:pw@h:8080/p"), "http://h:8080/p");
        assert_eq!(redacted_url("https://h"), "https://h");
        assert_eq!(redacted_url("https://h?a=1"), "https://h?…");
    }

    #[test]
    fn operators_and_the_dispatcher_change_state_by_the_same_rules() {
        let mut ep = endpoint(&[], "");
        assert!(ep.set_failing_since(Some(10), 11));
        assert!(!ep.set_failing_since(Some(12), 13), "already failing: kept");
        assert_eq!(ep.failing_since, Some(10));
        assert!(ep.disable_automatically("failing", 20));
        assert!(
            !ep.disable_automatically("gone", 21),
            "the first reason stands"
        );
        assert_eq!(
            (ep.enabled, ep.disabled_reason.as_str()),
            (false, "failing")
        );
        // An operator re-enables: the failure period starts over.
        ep.set_enabled_by_operator(true, 30);
        assert_eq!(
            (ep.enabled, ep.disabled_reason.as_str(), ep.failing_since),
            (true, "", None)
        );
        ep.set_enabled_by_operator(false, 40);
        assert_eq!((ep.enabled, ep.disabled_reason.as_str()), (false, "manual"));
        assert_eq!(ep.updated_at, 40);
        // Disabling again by hand keeps it manual; an automatic disable of a disabled
        // endpoint does nothing.
        ep.set_enabled_by_operator(false, 50);
        assert_eq!(ep.disabled_reason, "manual");
        assert!(!ep.disable_automatically("failing", 60));
        assert!(!ep.set_failing_since(None, 70) && ep.failing_since.is_none());
    }

    #[test]
    fn subscription_by_type_and_tenant() {
        assert!(endpoint(&[], "").subscribes_to("a.b", "t1", false));
        assert!(endpoint(&["stock.*"], "").subscribes_to("stock.moved", "", false));
        assert!(!endpoint(&["stock.*"], "").subscribes_to("invoice.paid", "", false));
        assert!(endpoint(&["a", "b"], "t1").subscribes_to("b", "t1", false));
        assert!(!endpoint(&["a", "b"], "t1").subscribes_to("b", "t2", false));
        // Herald's own events reach operational endpoints only, and nothing else does.
        assert!(!endpoint(&[], "").subscribes_to("endpoint.failing", "t1", true));
        let mut ops = endpoint(&[], "t1");
        ops.operational = true;
        assert!(ops.subscribes_to("endpoint.failing", "t1", true));
        assert!(!ops.subscribes_to("endpoint.failing", "t2", true));
        assert!(!ops.subscribes_to("stock.moved", "t1", false));
    }

    #[test]
    fn rotated_secrets_sign_until_they_expire() {
        let mut ep = endpoint(&[], "");
        let (new, old) = (Secret::generate(), Secret::generate());
        ep.signing_keys = vec![
            SigningKey {
                secret: new.clone(),
                expires_at: None,
            },
            SigningKey {
                secret: old.clone(),
                expires_at: Some(1_000),
            },
        ];
        assert_eq!(ep.active_secrets(999), vec![&new, &old]);
        assert_eq!(ep.active_secrets(1_000), vec![&new]);
    }

    #[test]
    fn urls() {
        assert!(validate_url("https://example.com/hook?x=1").is_ok());
        assert!(validate_url("http://127.0.0.1:8080/").is_ok());
        assert!(validate_url("ftp://example.com").is_err());
        assert!(validate_url("https://").is_err());
        assert!(validate_url("https://user:pw@example.com").is_err());
        assert!(validate_url("https://exa mple.com").is_err());
        assert!(validate_url(&format!("https://e.com/{}", "a".repeat(2_048))).is_err());
    }

    #[test]
    fn rotation_overlaps_then_caps_the_secrets() {
        let mut endpoint = Endpoint::new(
            crate::ids::EndpointId::generate(1),
            "https://a.example/hook".into(),
            Secret::generate(),
            1,
        );
        let first = endpoint.signing_keys[0].secret.clone();
        endpoint.rotate_secret(Secret::generate(), 1_000, 500);
        assert_eq!(endpoint.signing_keys.len(), 2);
        assert_eq!(endpoint.signing_keys[1].secret, first);
        assert_eq!(endpoint.signing_keys[1].expires_at, Some(1_500));
        assert_eq!(endpoint.updated_at, 1_000);
        // Ten rotations within the overlap: never more than MAX_SIGNING_KEYS, newest kept.
        let mut newest = Vec::new();
        for i in 0..10 {
            let secret = Secret::generate();
            newest.push(secret.clone());
            endpoint.rotate_secret(secret, 1_100 + i, 10_000);
        }
        assert_eq!(endpoint.signing_keys.len(), MAX_SIGNING_KEYS);
        let kept: Vec<&Secret> = endpoint.signing_keys.iter().map(|k| &k.secret).collect();
        let expected: Vec<&Secret> = newest.iter().rev().take(MAX_SIGNING_KEYS).collect();
        assert_eq!(kept, expected);
        // Past every overlap: the expired ones are dropped; the one just replaced expires now.
        endpoint.rotate_secret(Secret::generate(), 100_000, 0);
        assert_eq!(endpoint.signing_keys.len(), 2);
        assert_eq!(endpoint.signing_keys[1].expires_at, Some(100_000));
    }
}
