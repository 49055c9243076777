//! Per-endpoint delivery rate limits: deliveries to an endpoint with a `rate_limit` go out
//! evenly spaced, one turn every `1 / rate`. A delivery whose turn is near waits for it in
//! memory; one whose turn is further than the patience keeps its turn and waits in a retry
//! tier until then. Either way no attempt is spent: a throttled delivery is not a failure
//! and never reaches the dead-letter topic.

use herald_core::ids::EndpointId;
use herald_core::throttle::Turns;
use herald_core::UnixMillis;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// What a delivery does about its endpoint's rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pace {
    /// Its turn is now.
    Go,
    /// Its turn comes after this wait (within the patience): wait, then go.
    Wait(Duration),
    /// Its turn is at this moment, beyond the patience: wait for it in a retry tier.
    Later(UnixMillis),
}

/// The turns of every rate-limited endpoint in this process.
#[derive(Debug)]
pub struct Pacing {
    /// The longest a delivery waits for its turn in memory.
    patience: Duration,
    turns: Mutex<HashMap<EndpointId, Turns>>,
}

impl Pacing {
    /// No turns taken yet.
    pub fn new(patience: Duration) -> Self {
        Self {
            patience,
            turns: Mutex::new(HashMap::new()),
        }
    }

    /// The pace of one delivery to `endpoint`, limited to `rate` a second, at `now`.
    /// `reserved` is a turn the delivery already holds (from an earlier [`Pace::Later`]).
    pub fn pace(
        &self,
        endpoint: &EndpointId,
        rate: u32,
        reserved: Option<UnixMillis>,
        now: UnixMillis,
    ) -> Pace {
        let turn = reserved.unwrap_or_else(|| {
            self.turns
                .lock()
                .expect("pacing lock")
                .entry(endpoint.clone())
                .or_default()
                .reserve(rate, now)
        });
        let wait = turn - now;
        if wait <= 0 {
            Pace::Go
        } else if wait as u128 <= self.patience.as_millis() {
            Pace::Wait(Duration::from_millis(wait as u64))
        } else {
            Pace::Later(turn)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_spaced_then_sent_to_wait_in_a_tier_with_their_turn() {
        let pacing = Pacing::new(Duration::from_secs(1));
        let (a, b) = (EndpointId::generate(1), EndpointId::generate(2));
        assert_eq!(pacing.pace(&a, 2, None, 10_000), Pace::Go);
        assert_eq!(
            pacing.pace(&a, 2, None, 10_000),
            Pace::Wait(Duration::from_millis(500))
        );
        assert_eq!(
            pacing.pace(&a, 2, None, 10_000),
            Pace::Wait(Duration::from_secs(1))
        );
        assert_eq!(pacing.pace(&a, 2, None, 10_000), Pace::Later(11_500));
        assert_eq!(pacing.pace(&b, 2, None, 10_000), Pace::Go, "its own turns");
        // The delivery sent away comes back at its turn and goes without taking another.
        assert_eq!(pacing.pace(&a, 2, Some(11_500), 11_500), Pace::Go);
        assert_eq!(
            pacing.pace(&a, 2, None, 11_500),
            Pace::Wait(Duration::from_millis(500)),
            "after the turns already taken"
        );
    }

    #[test]
    fn a_reserved_turn_that_comes_back_early_waits_the_rest() {
        let pacing = Pacing::new(Duration::from_secs(1));
        let a = EndpointId::generate(1);
        assert_eq!(
            pacing.pace(&a, 1, Some(5_300), 5_000),
            Pace::Wait(Duration::from_millis(300))
        );
    }
}
