//! Endpoint health: rolling counts, consecutive failures, and the transitions an operator
//! hears about (starts failing, recovers, disabled after failing continuously too long).
//! Pure bookkeeping; the dispatcher feeds it attempt results and acts on the transitions.

use crate::UnixMillis;

/// Width of one bucket of the rolling window.
const BUCKET_MS: i64 = 60_000;
/// Buckets kept: the rolling window is one hour.
const BUCKETS: usize = 60;

/// When an endpoint counts as failing and when it is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthPolicy {
    /// Consecutive failed attempts before the endpoint counts as failing (at least 1). One
    /// 503 among successes is noise, not an outage an operator must hear about.
    pub failing_after: u32,
    /// How long an endpoint may fail continuously, from the first failure of the run, before
    /// it is disabled (zero: never).
    pub disable_after_ms: i64,
}

impl Default for HealthPolicy {
    fn default() -> Self {
        Self {
            failing_after: 5,
            disable_after_ms: 5 * 86_400_000,
        }
    }
}

/// What changed with the latest attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Nothing an operator needs to hear about.
    None,
    /// The run of failures reached `failing_after`: the endpoint is now failing.
    StartedFailing,
    /// A success after the endpoint was failing: it recovered.
    Recovered,
    /// Failing continuously for longer than allowed: disable it.
    Disable,
}

/// Rolling health of one endpoint.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Health {
    /// Failures since the last success.
    pub consecutive_failures: u32,
    /// When the current run of failures started (None after a success).
    pub run_since: Option<UnixMillis>,
    /// Set once the run counts as failing: the run's start. This is what is persisted.
    pub failing_since: Option<UnixMillis>,
    pub last_success: Option<UnixMillis>,
    pub last_failure: Option<UnixMillis>,
    /// The latest failure's error, bounded by the caller.
    pub last_error: String,
    /// (bucket start, successes, failures), oldest first, within the last hour.
    window: Vec<(i64, u32, u32)>,
}

impl Health {
    /// Health that resumes a failing run known to have started at `since` (from the
    /// endpoint's persisted state after a restart).
    pub fn resumed(failing_since: Option<UnixMillis>) -> Self {
        Self {
            run_since: failing_since,
            failing_since,
            ..Self::default()
        }
    }

    /// Takes `failing_since` from the endpoint's persisted state after someone else changed
    /// it (an admin re-enabled it, another dispatcher declared it failing). `None` starts
    /// over: no run of failures, so the disable period counts from the next failure.
    pub fn adopt(&mut self, failing_since: Option<UnixMillis>) {
        if self.failing_since == failing_since {
            return;
        }
        self.failing_since = failing_since;
        self.run_since = failing_since;
        if failing_since.is_none() {
            self.consecutive_failures = 0;
        }
    }

    /// Records one attempt's result at `now`.
    pub fn record(
        &mut self,
        success: bool,
        now: UnixMillis,
        error: &str,
        policy: &HealthPolicy,
    ) -> Transition {
        self.count(success, now);
        if success {
            let was_failing = self.failing_since.is_some();
            self.consecutive_failures = 0;
            self.run_since = None;
            self.failing_since = None;
            self.last_success = Some(now);
            return if was_failing {
                Transition::Recovered
            } else {
                Transition::None
            };
        }
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_failure = Some(now);
        self.last_error = error.to_owned();
        let run_since = *self.run_since.get_or_insert(now);
        match self.failing_since {
            None if self.consecutive_failures >= policy.failing_after.max(1) => {
                self.failing_since = Some(run_since);
                Transition::StartedFailing
            }
            None => Transition::None,
            Some(since)
                if policy.disable_after_ms > 0 && now - since >= policy.disable_after_ms =>
            {
                Transition::Disable
            }
            Some(_) => Transition::None,
        }
    }

    /// (successes, failures) within the last hour before `now`.
    pub fn rolling(&self, now: UnixMillis) -> (u32, u32) {
        let oldest = bucket(now) - BUCKET_MS * (BUCKETS as i64 - 1);
        self.window
            .iter()
            .filter(|(start, _, _)| *start >= oldest)
            .fold((0, 0), |(s, f), (_, bs, bf)| (s + bs, f + bf))
    }

    /// Whether the endpoint is currently healthy (not failing; a short run of failures below
    /// `failing_after` still counts as healthy).
    pub fn is_healthy(&self) -> bool {
        self.failing_since.is_none()
    }

    fn count(&mut self, success: bool, now: UnixMillis) {
        let start = bucket(now);
        match self.window.last_mut() {
            Some((last, s, f)) if *last == start => {
                if success {
                    *s += 1;
                } else {
                    *f += 1;
                }
            }
            _ => self
                .window
                .push((start, u32::from(success), u32::from(!success))),
        }
        let oldest = start - BUCKET_MS * (BUCKETS as i64 - 1);
        self.window.retain(|(b, _, _)| *b >= oldest);
    }
}

fn bucket(now: UnixMillis) -> i64 {
    now - now.rem_euclid(BUCKET_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DAY: i64 = 86_400_000;

    fn policy(failing_after: u32, disable_after_ms: i64) -> HealthPolicy {
        HealthPolicy {
            failing_after,
            disable_after_ms,
        }
    }

    #[test]
    fn failing_then_recovering_reports_each_transition_once() {
        let p = policy(1, 5 * DAY);
        let mut h = Health::default();
        assert_eq!(h.record(true, 0, "", &p), Transition::None);
        assert_eq!(h.record(false, 10, "500", &p), Transition::StartedFailing);
        assert_eq!(h.record(false, 20, "timeout", &p), Transition::None);
        assert_eq!(h.consecutive_failures, 2);
        assert_eq!(h.failing_since, Some(10));
        assert_eq!(h.last_error, "timeout");
        assert_eq!(h.record(true, 30, "", &p), Transition::Recovered);
        assert!(h.is_healthy());
        assert_eq!(h.consecutive_failures, 0);
        assert_eq!(h.last_success, Some(30));
    }

    #[test]
    fn a_few_failures_among_successes_are_not_an_outage() {
        let p = policy(3, 5 * DAY);
        let mut h = Health::default();
        assert_eq!(h.record(false, 10, "500", &p), Transition::None);
        assert_eq!(h.record(false, 20, "500", &p), Transition::None);
        assert!(h.is_healthy(), "two failures are below failing_after");
        assert_eq!(
            h.record(true, 30, "", &p),
            Transition::None,
            "no recovery from nothing"
        );
        assert_eq!(h.run_since, None);
        assert_eq!(h.record(false, 40, "500", &p), Transition::None);
        assert_eq!(h.record(false, 50, "500", &p), Transition::None);
        assert_eq!(h.record(false, 60, "500", &p), Transition::StartedFailing);
        assert_eq!(
            h.failing_since,
            Some(40),
            "the run counts from its first failure"
        );
        assert!(!h.is_healthy());
    }

    #[test]
    fn continuous_failure_past_the_period_disables() {
        let p = policy(2, 5 * DAY);
        let mut h = Health::default();
        h.record(false, 0, "500", &p);
        assert_eq!(h.record(false, 1, "500", &p), Transition::StartedFailing);
        assert_eq!(h.record(false, 5 * DAY - 1, "500", &p), Transition::None);
        assert_eq!(h.record(false, 5 * DAY, "500", &p), Transition::Disable);
        let never = policy(1, 0);
        let mut h = Health::default();
        h.record(false, 0, "500", &never);
        assert_eq!(h.record(false, 100 * DAY, "500", &never), Transition::None);
    }

    #[test]
    fn a_resumed_run_keeps_its_start_across_restarts() {
        let p = policy(5, 5 * DAY);
        let mut h = Health::resumed(Some(0));
        assert!(!h.is_healthy());
        assert_eq!(h.record(false, 5 * DAY, "500", &p), Transition::Disable);
        let mut h = Health::resumed(Some(0));
        assert_eq!(h.record(true, DAY, "", &p), Transition::Recovered);
    }

    #[test]
    fn adopting_a_reset_starts_the_period_over() {
        let p = policy(1, 5 * DAY);
        let mut h = Health::default();
        assert_eq!(h.record(false, 0, "500", &p), Transition::StartedFailing);
        h.adopt(None); // re-enabled by an admin
        assert!(h.is_healthy());
        assert_eq!(
            h.record(false, 6 * DAY, "500", &p),
            Transition::StartedFailing
        );
        assert_eq!(h.failing_since, Some(6 * DAY), "not disabled at once");
        h.adopt(Some(DAY)); // another dispatcher saw it fail earlier
        assert_eq!(h.record(false, 6 * DAY + 1, "500", &p), Transition::Disable);
    }

    #[test]
    fn rolling_counts_forget_after_an_hour() {
        let p = policy(1, 0);
        let mut h = Health::default();
        h.record(true, 0, "", &p);
        h.record(false, 1, "x", &p);
        assert_eq!(h.rolling(1), (1, 1));
        h.record(true, 30 * 60_000, "", &p);
        assert_eq!(h.rolling(30 * 60_000), (2, 1));
        assert_eq!(h.rolling(61 * 60_000), (1, 0));
    }

    proptest! {
        #[test]
        fn counts_add_up_and_transitions_alternate(
            results in proptest::collection::vec(any::<bool>(), 1..200),
            failing_after in 1u32..6,
        ) {
            let p = policy(failing_after, 0);
            let mut h = Health::default();
            let mut failing = false;
            for (i, ok) in results.iter().enumerate() {
                let t = h.record(*ok, i as i64 * 1_000, "e", &p);
                match t {
                    Transition::StartedFailing => {
                        prop_assert!(!failing);
                        prop_assert_eq!(h.consecutive_failures, failing_after);
                        failing = true;
                    }
                    Transition::Recovered => { prop_assert!(failing); failing = false; }
                    Transition::None => {}
                    Transition::Disable => prop_assert!(false, "never disables with 0"),
                }
                prop_assert_eq!(failing, !h.is_healthy());
                prop_assert_eq!(failing, h.consecutive_failures >= failing_after);
            }
            let (s, f) = h.rolling(results.len() as i64 * 1_000);
            prop_assert_eq!(s as usize, results.iter().filter(|r| **r).count());
            prop_assert_eq!(f as usize, results.iter().filter(|r| !**r).count());
            let trailing = results.iter().rev().take_while(|r| !**r).count();
            prop_assert_eq!(h.consecutive_failures as usize, trailing);
            if trailing > 0 {
                prop_assert_eq!(h.run_since, Some((results.len() - trailing) as i64 * 1_000));
            }
        }
    }
}
