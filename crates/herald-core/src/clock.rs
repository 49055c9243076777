//! Time as a dependency. Services read "now" through a [`Clock`] handed to them at start,
//! so a test can pin it ([`ManualClock`]) and check what depends on it: key expiry, secret
//! overlaps, retry due times, signature timestamps, replay windows.
//!
//! Time that must agree with the broker (the views' freshness checks, leases, the retry
//! tiers' pauses) stays on the system clock in the crates that talk to the broker.

use crate::UnixMillis;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Where "now" comes from.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> UnixMillis;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> UnixMillis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// Sets the time.
    pub fn set(&self, now: UnixMillis) {
        self.0.store(now, Ordering::SeqCst);
    }

    /// Moves the time forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> UnixMillis {
        self.0.load(Ordering::SeqCst)
    }
}

/// A clock to hand around (cheap to clone).
#[derive(Clone)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Arc::new(SystemClock))
    }

    /// A manual clock at `start`, and the handle that moves it.
    pub fn manual(start: UnixMillis) -> (Self, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock(AtomicI64::new(start)));
        (Self(clock.clone()), clock)
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> UnixMillis {
        self.0.now_ms()
    }
}

impl std::fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedClock(now_ms = {})", self.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let (clock, hand) = SharedClock::manual(1_000);
        let copy = clock.clone();
        assert_eq!(clock.now_ms(), 1_000);
        hand.advance(250);
        assert_eq!(copy.now_ms(), 1_250);
        hand.set(5);
        assert_eq!(clock.now_ms(), 5);
    }

    #[test]
    fn the_system_clock_is_after_2020() {
        assert!(SharedClock::system().now_ms() > 1_577_836_800_000);
    }
}
