//! Rate limits as arithmetic on milliseconds: a token bucket (what an API key may send) and
//! evenly spaced turns (how fast one endpoint is delivered to). Callers own the clock.

use crate::UnixMillis;

/// Most events (or requests) a second any limit may name.
pub const MAX_RATE_PER_SEC: u32 = 1_000_000;

/// Checks a configured rate: 1 to [`MAX_RATE_PER_SEC`] a second.
pub fn validate_rate(per_sec: u32) -> crate::Result<u32> {
    if (1..=MAX_RATE_PER_SEC).contains(&per_sec) {
        Ok(per_sec)
    } else {
        Err(crate::Error::InvalidRate(per_sec))
    }
}

/// Why a bucket cannot give what was asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shortfall {
    /// The tokens are there after this many milliseconds (at least 1).
    WaitMs(u64),
    /// More than the bucket ever holds: the request must be split.
    TooLarge { capacity: u32 },
}

/// `rate` tokens a second, at most `capacity` saved up. Starts full.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    rate: u32,
    capacity: u32,
    tokens: f64,
    at_ms: UnixMillis,
}

impl TokenBucket {
    /// A full bucket at `now`.
    pub fn full(rate: u32, capacity: u32, now: UnixMillis) -> Self {
        let rate = rate.max(1);
        let capacity = capacity.max(1);
        Self {
            rate,
            capacity,
            tokens: f64::from(capacity),
            at_ms: now,
        }
    }

    /// Tokens a second.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Most tokens saved up.
    pub fn capacity(&self) -> u32 {
        self.capacity
    }

    fn refill(&mut self, now: UnixMillis) {
        if now > self.at_ms {
            let earned = (now - self.at_ms) as f64 * f64::from(self.rate) / 1_000.0;
            self.tokens = (self.tokens + earned).min(f64::from(self.capacity));
            self.at_ms = now;
        }
    }

    /// Takes `n` tokens at `now`, or says when they would be there (taking nothing).
    pub fn take(&mut self, n: u32, now: UnixMillis) -> Result<(), Shortfall> {
        if n > self.capacity {
            return Err(Shortfall::TooLarge {
                capacity: self.capacity,
            });
        }
        self.refill(now);
        let n = f64::from(n);
        if self.tokens >= n {
            self.tokens -= n;
            return Ok(());
        }
        let missing = n - self.tokens;
        let wait = (missing * 1_000.0 / f64::from(self.rate)).ceil() as u64;
        Err(Shortfall::WaitMs(wait.max(1)))
    }
}

/// Evenly spaced turns, `1 / rate` apart, for one receiver: no bursts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turns {
    /// The earliest free turn (fractional milliseconds, so high rates stay exact).
    next_ms: f64,
}

impl Turns {
    /// Reserves the next free turn at `rate` a second: `now` when the receiver has been idle
    /// long enough, else the turn after the last one reserved.
    pub fn reserve(&mut self, rate: u32, now: UnixMillis) -> UnixMillis {
        let interval = 1_000.0 / f64::from(rate.max(1));
        let turn = self.next_ms.max(now as f64);
        self.next_ms = turn + interval;
        turn.ceil() as UnixMillis
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let mut bucket = TokenBucket::full(10, 20, 0);
        assert_eq!(bucket.take(20, 0), Ok(()), "the whole burst at once");
        assert_eq!(bucket.take(1, 0), Err(Shortfall::WaitMs(100)));
        assert_eq!(bucket.take(5, 0), Err(Shortfall::WaitMs(500)));
        assert_eq!(bucket.take(1, 100), Ok(()), "one token after 100 ms");
        assert_eq!(bucket.take(1, 150), Err(Shortfall::WaitMs(50)));
        // Idle for a long time: never more than the capacity saved up.
        assert_eq!(bucket.take(20, 60_000), Ok(()));
        assert_eq!(bucket.take(1, 60_000), Err(Shortfall::WaitMs(100)));
    }

    #[test]
    fn a_refused_take_takes_nothing() {
        let mut bucket = TokenBucket::full(1, 3, 0);
        bucket.take(2, 0).unwrap();
        assert!(bucket.take(3, 0).is_err());
        assert_eq!(
            bucket.take(1, 0),
            Ok(()),
            "the one token left is still there"
        );
    }

    #[test]
    fn more_than_the_capacity_is_never_given() {
        let mut bucket = TokenBucket::full(100, 50, 0);
        assert_eq!(
            bucket.take(51, 1_000_000),
            Err(Shortfall::TooLarge { capacity: 50 })
        );
    }

    #[test]
    fn a_clock_going_back_earns_nothing() {
        let mut bucket = TokenBucket::full(10, 10, 1_000);
        bucket.take(10, 1_000).unwrap();
        assert!(bucket.take(1, 500).is_err());
        assert_eq!(bucket.take(1, 1_100), Ok(()));
    }

    #[test]
    fn turns_are_spaced_and_an_idle_receiver_goes_at_once() {
        let mut turns = Turns::default();
        assert_eq!(turns.reserve(4, 1_000), 1_000);
        assert_eq!(turns.reserve(4, 1_000), 1_250);
        assert_eq!(turns.reserve(4, 1_010), 1_500);
        // Idle past the reserved turns: the next one is now.
        assert_eq!(turns.reserve(4, 9_000), 9_000);
        // High rates stay exact: 1000 turns at 2000/s span 500 ms.
        let mut fast = Turns::default();
        let last = (0..1_000).map(|_| fast.reserve(2_000, 0)).last().unwrap();
        assert_eq!(last, 500);
    }

    #[test]
    fn rates_are_bounded() {
        assert!(validate_rate(0).is_err());
        assert!(validate_rate(MAX_RATE_PER_SEC + 1).is_err());
        assert_eq!(validate_rate(50), Ok(50));
    }
}
