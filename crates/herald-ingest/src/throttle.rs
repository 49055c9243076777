//! Per-key ingest rate limits: a token bucket per API key in this process, `rate` events a
//! second with two seconds' worth saved up. Over it, the request is refused whole (429 with
//! `Retry-After`): nothing of it was accepted, so a retry after the wait is safe.

use herald_core::ids::KeyId;
use herald_core::throttle::{Shortfall, TokenBucket};
use herald_core::UnixMillis;
use herald_http::ApiError;
use herald_kafka::keys::Principal;
use std::collections::HashMap;
use std::sync::Mutex;

/// Seconds' worth of events a bucket saves up.
const BURST_SECONDS: u32 = 2;

/// The buckets of every key that sent events to this process.
#[derive(Debug)]
pub struct KeyLimits {
    /// Events a second for keys that do not name their own rate (0: unlimited).
    default_rate: u32,
    buckets: Mutex<HashMap<KeyId, TokenBucket>>,
}

impl KeyLimits {
    /// Buckets for keys limited to `default_rate` events a second unless they say otherwise.
    pub fn new(default_rate: u32) -> Self {
        Self {
            default_rate,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// The rate that applies to `principal` (`None`: unlimited).
    pub fn rate_of(&self, principal: &Principal) -> Option<u32> {
        Some(principal.rate_per_sec.unwrap_or(self.default_rate)).filter(|r| *r > 0)
    }

    /// Takes `events` from `principal`'s bucket at `now`, or answers 429.
    pub fn admit(
        &self,
        principal: &Principal,
        events: u32,
        now: UnixMillis,
    ) -> Result<(), ApiError> {
        let Some(rate) = self.rate_of(principal) else {
            return Ok(());
        };
        let capacity = rate.saturating_mul(BURST_SECONDS);
        let taken = {
            let mut buckets = self.buckets.lock().expect("key limits lock");
            let bucket = buckets
                .entry(principal.key_id.clone())
                .or_insert_with(|| TokenBucket::full(rate, capacity, now));
            if bucket.rate() != rate {
                // The key's rate changed: start over at the new one.
                *bucket = TokenBucket::full(rate, capacity, now);
            }
            bucket.take(events, now)
        };
        let shortfall = match taken {
            Ok(()) => return Ok(()),
            Err(shortfall) => shortfall,
        };
        metrics::counter!("herald_ingest_throttled_total", "key_id" => principal.key_id.to_string())
            .increment(1);
        metrics::counter!("herald_ingest_throttled_events_total", "key_id" => principal.key_id.to_string())
            .increment(u64::from(events));
        let limit = format!(
            "API key {} may send {rate} events a second (bursts of up to {capacity})",
            principal.key_id
        );
        Err(match shortfall {
            Shortfall::WaitMs(ms) => ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("{limit}; nothing was accepted, retry after {ms} ms"),
            )
            .retry_after(ms.div_ceil(1_000)),
            Shortfall::TooLarge { capacity } => ApiError::new(
                axum::http::StatusCode::TOO_MANY_REQUESTS,
                "batch_exceeds_burst",
                format!(
                    "{limit}; a batch of {events} events can never fit, send at most {capacity} at once"
                ),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    fn principal(rate_per_sec: Option<u32>) -> Principal {
        Principal {
            key_id: KeyId::generate(1),
            scopes: vec![],
            tenant: String::new(),
            rate_per_sec,
        }
    }

    #[test]
    fn a_key_over_its_rate_gets_429_with_retry_after() {
        let limits = KeyLimits::new(1_000);
        let key = principal(Some(5));
        for _ in 0..10 {
            limits.admit(&key, 1, 0).unwrap();
        }
        let err = limits.admit(&key, 1, 0).unwrap_err();
        assert_eq!(err.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(err.code, "rate_limited");
        assert_eq!(err.retry_after_s, Some(1), "200 ms rounds up to 1 s");
        assert!(err.message.contains("5 events a second"), "{}", err.message);
        limits.admit(&key, 1, 200).unwrap();
    }

    #[test]
    fn keys_have_their_own_buckets_and_the_default_applies_when_unset() {
        let limits = KeyLimits::new(1);
        let (a, b) = (principal(None), principal(None));
        limits.admit(&a, 2, 0).unwrap();
        assert!(limits.admit(&a, 1, 0).is_err());
        limits.admit(&b, 2, 0).unwrap();
    }

    #[test]
    fn unlimited_keys_and_an_unlimited_default_are_never_throttled() {
        let limits = KeyLimits::new(0);
        let key = principal(None);
        assert_eq!(limits.rate_of(&key), None);
        for _ in 0..10_000 {
            limits.admit(&key, 100, 0).unwrap();
        }
        let limits = KeyLimits::new(10);
        let key = principal(Some(0));
        limits.admit(&key, 10_000, 0).unwrap();
    }

    #[test]
    fn a_batch_larger_than_the_burst_is_told_to_split() {
        let limits = KeyLimits::new(5);
        let err = limits.admit(&principal(None), 11, 0).unwrap_err();
        assert_eq!(err.code, "batch_exceeds_burst");
        assert_eq!(err.retry_after_s, None);
        assert!(err.message.contains("at most 10"), "{}", err.message);
    }

    #[test]
    fn a_changed_rate_starts_a_fresh_bucket() {
        let limits = KeyLimits::new(1_000);
        let mut key = principal(Some(1));
        limits.admit(&key, 2, 0).unwrap();
        assert!(limits.admit(&key, 1, 0).is_err());
        key.rate_per_sec = Some(50);
        limits.admit(&key, 100, 0).unwrap();
    }
}
