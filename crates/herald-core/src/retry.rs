//! The retry schedule: when a failed delivery is tried again, and which delay tier holds it.
//!
//! After attempt `n` fails (attempts count from 1), the nominal wait is `steps[n-1]`; past the
//! last step the delivery is dead. The wait is jittered by ±`jitter`, raised to `throttle_floor`
//! for throttling answers (429, 408, timeouts), and a `Retry-After` hint is honoured within
//! `[step, 2 × step]` (and never below the floor when throttled).
//!
//! Tiers: every distinct step and the throttle floor get a topic. A waiting task is placed in
//! the tier with the largest delay not above `1.25 ×` its own wait, so every task in a tier
//! waits roughly that tier's delay and the head of a tier partition is (nearly) always the
//! earliest due. That keeps the consumer's pause-until-head-is-due loop honest.

use std::time::Duration;

/// The longest a task waits in a tier when it is deferred (not attempted) again and again:
/// how late, at worst, a delivery to an endpoint that stopped hanging is made.
pub const MAX_DEFERRAL: Duration = Duration::from_secs(300);

/// How retries are spaced. Built once from config and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    steps: Vec<Duration>,
    jitter: f64,
    throttle_floor: Duration,
    tiers: Vec<Duration>,
}

/// Why an attempt failed, as far as the schedule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// An ordinary failure (5xx, most 4xx, connection errors, redirects).
    Ordinary,
    /// The receiver asked us to slow down or did not answer in time (429, 408, timeout).
    Throttled,
}

impl RetryPolicy {
    /// Validates and builds a policy.
    pub fn new(steps: Vec<Duration>, jitter: f64, throttle_floor: Duration) -> crate::Result<Self> {
        if steps.iter().any(Duration::is_zero) {
            return Err(crate::Error::InvalidSchedule("steps must be positive"));
        }
        if !(0.0..=0.5).contains(&jitter) {
            return Err(crate::Error::InvalidSchedule(
                "jitter must be between 0 and 0.5",
            ));
        }
        if throttle_floor.is_zero() {
            return Err(crate::Error::InvalidSchedule(
                "throttle floor must be positive",
            ));
        }
        let mut tiers: Vec<Duration> = steps.clone();
        tiers.push(throttle_floor);
        tiers.sort();
        tiers.dedup();
        Ok(Self {
            steps,
            jitter,
            throttle_floor,
            tiers,
        })
    }

    /// Herald's production defaults: 5s, 5m, 30m, 2h, 5h, 10h, 10h; ±20 %; 60 s floor.
    pub fn production() -> Self {
        let h = |n: u64| Duration::from_secs(n * 3_600);
        let steps = vec![
            Duration::from_secs(5),
            Duration::from_secs(300),
            Duration::from_secs(1_800),
            h(2),
            h(5),
            h(10),
            h(10),
        ];
        Self::new(steps, 0.2, Duration::from_secs(60)).expect("defaults are valid")
    }

    /// The schedule steps, in order.
    pub fn steps(&self) -> &[Duration] {
        &self.steps
    }

    /// The jitter fraction.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }

    /// The minimum wait after a throttling answer.
    pub fn throttle_floor(&self) -> Duration {
        self.throttle_floor
    }

    /// The most attempts a delivery gets: the first plus one per step.
    pub fn max_attempts(&self) -> u32 {
        self.steps.len() as u32 + 1
    }

    /// The distinct delays that have a tier topic, shortest first.
    pub fn tiers(&self) -> &[Duration] {
        &self.tiers
    }

    /// The wait after attempt `attempt` (1-based) failed, or `None` when the budget is spent.
    /// `jitter_unit` is a uniform sample from `[0, 1)`, passed in so this stays pure.
    pub fn next_delay(
        &self,
        attempt: u32,
        kind: FailureKind,
        retry_after: Option<Duration>,
        jitter_unit: f64,
    ) -> Option<Duration> {
        let step = *self.steps.get(attempt.checked_sub(1)? as usize)?;
        let factor = 1.0 + self.jitter * (2.0 * jitter_unit.clamp(0.0, 1.0) - 1.0);
        let mut delay = step.mul_f64(factor);
        if let Some(hint) = retry_after {
            delay = hint.clamp(step, step * 2);
        }
        if kind == FailureKind::Throttled {
            delay = delay.max(self.throttle_floor);
        }
        Some(delay)
    }

    /// The tier (index into [`tiers`](Self::tiers)) that holds a task deferred for the
    /// `deferrals`-th time in a row (0: first) without an attempt, because its endpoint had no
    /// free slot and was failing or stalled. Each deferral in a row waits in the next tier up,
    /// to the longest no longer than [`MAX_DEFERRAL`] (or the shortest tier if even that one
    /// is longer): a hanging endpoint's backlog then cycles through the tiers a few times an
    /// hour instead of every few seconds. The wait is the tier's own delay, so the tier's
    /// partitions stay in due order.
    pub fn deferral_tier(&self, deferrals: u32) -> usize {
        let longest = self
            .tiers
            .iter()
            .rposition(|tier| *tier <= MAX_DEFERRAL)
            .unwrap_or(0);
        (deferrals as usize).min(longest)
    }

    /// The tier (index into [`tiers`](Self::tiers)) that holds a task waiting `delay`.
    pub fn tier_for(&self, delay: Duration) -> usize {
        let limit = delay.mul_f64(1.25);
        self.tiers
            .iter()
            .rposition(|tier| *tier <= limit)
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn production_defaults() {
        let p = RetryPolicy::production();
        assert_eq!(p.max_attempts(), 8);
        assert_eq!(p.tiers().len(), 7); // 5s, 60s, 5m, 30m, 2h, 5h, 10h
        assert_eq!(
            p.next_delay(1, FailureKind::Ordinary, None, 0.5),
            Some(secs(5))
        );
        assert_eq!(
            p.next_delay(7, FailureKind::Ordinary, None, 0.5),
            Some(secs(36_000))
        );
        assert_eq!(p.next_delay(8, FailureKind::Ordinary, None, 0.5), None);
        assert_eq!(p.next_delay(0, FailureKind::Ordinary, None, 0.5), None);
    }

    #[test]
    fn throttled_waits_at_least_the_floor_in_its_own_tier() {
        let p = RetryPolicy::production();
        let d = p.next_delay(1, FailureKind::Throttled, None, 0.0).unwrap();
        assert_eq!(d, secs(60));
        assert_eq!(p.tiers()[p.tier_for(d)], secs(60));
    }

    #[test]
    fn retry_after_is_clamped_to_step_and_twice_step() {
        let p = RetryPolicy::production();
        let o = FailureKind::Ordinary;
        assert_eq!(p.next_delay(2, o, Some(secs(1)), 0.9), Some(secs(300)));
        assert_eq!(p.next_delay(2, o, Some(secs(450)), 0.9), Some(secs(450)));
        assert_eq!(p.next_delay(2, o, Some(secs(9_999)), 0.9), Some(secs(600)));
    }

    #[test]
    fn deferrals_in_a_row_climb_the_tiers_up_to_five_minutes() {
        let p = RetryPolicy::production(); // tiers 5s, 60s, 5m, 30m, 2h, 5h, 10h
        let waits: Vec<_> = (0..6).map(|n| p.tiers()[p.deferral_tier(n)]).collect();
        assert_eq!(
            waits,
            [
                secs(5),
                secs(60),
                secs(300),
                secs(300),
                secs(300),
                secs(300)
            ]
        );
        let short = RetryPolicy::new(vec![secs(1), secs(2)], 0.0, secs(1)).unwrap();
        assert_eq!(short.tiers()[short.deferral_tier(9)], secs(2));
        let long = RetryPolicy::new(vec![secs(3_600)], 0.0, secs(600)).unwrap();
        assert_eq!(
            long.tiers()[long.deferral_tier(9)],
            secs(600),
            "the shortest tier when every tier is longer than the cap"
        );
    }

    #[test]
    fn rejects_bad_policies() {
        assert!(RetryPolicy::new(vec![Duration::ZERO], 0.2, secs(1)).is_err());
        assert!(RetryPolicy::new(vec![secs(1)], 0.9, secs(1)).is_err());
        assert!(RetryPolicy::new(vec![secs(1)], 0.2, Duration::ZERO).is_err());
        assert!(RetryPolicy::new(vec![], 0.2, secs(1)).is_ok()); // no retries: straight to DLQ
    }

    proptest! {
        #[test]
        fn jitter_stays_within_bounds(attempt in 1u32..8, unit in 0.0f64..1.0) {
            let p = RetryPolicy::production();
            let step = p.steps()[attempt as usize - 1];
            let d = p.next_delay(attempt, FailureKind::Ordinary, None, unit).unwrap();
            prop_assert!(d >= step.mul_f64(0.8) && d <= step.mul_f64(1.2));
        }

        #[test]
        fn retry_after_within_step_and_double(attempt in 1u32..8, hint in 0u64..100_000, unit in 0.0f64..1.0) {
            let p = RetryPolicy::production();
            let step = p.steps()[attempt as usize - 1];
            let d = p.next_delay(attempt, FailureKind::Ordinary, Some(secs(hint)), unit).unwrap();
            prop_assert!(d >= step && d <= step * 2);
        }

        #[test]
        fn throttled_never_below_floor(attempt in 1u32..8, hint in proptest::option::of(0u64..100_000), unit in 0.0f64..1.0) {
            let p = RetryPolicy::production();
            let d = p.next_delay(attempt, FailureKind::Throttled, hint.map(secs), unit).unwrap();
            prop_assert!(d >= p.throttle_floor());
        }

        #[test]
        fn a_tier_never_holds_a_task_much_shorter_than_its_delay(
            attempt in 1u32..8, unit in 0.0f64..1.0, throttled in any::<bool>()
        ) {
            let p = RetryPolicy::production();
            let kind = if throttled { FailureKind::Throttled } else { FailureKind::Ordinary };
            let d = p.next_delay(attempt, kind, None, unit).unwrap();
            let tier = p.tiers()[p.tier_for(d)];
            prop_assert!(tier <= d.mul_f64(1.25));
            // and the next tier up would have been too long
            if let Some(next) = p.tiers().get(p.tier_for(d) + 1) {
                prop_assert!(*next > d.mul_f64(1.25));
            }
        }
    }
}
