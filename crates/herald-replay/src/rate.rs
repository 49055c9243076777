//! Rate limiting of re-drives: `--rate 50/s` (also `/m`, `/h`), evenly spaced, no bursts.

use crate::{Error, Result};
use std::time::Duration;
use tokio::time::Instant;

/// Parses `N/s`, `N/m`, `N/h` (or a bare `N`, per second) into re-drives per second.
pub fn parse_rate(text: &str) -> Result<f64> {
    let bad = || {
        Error::Invalid(format!(
            "invalid rate `{}`: expected N/s, N/m or N/h, from 1/h to 1000000/s (for example 50/s)",
            text.chars().take(40).collect::<String>()
        ))
    };
    let text = text.trim();
    let (number, per) = match text.split_once('/') {
        Some((n, unit)) => (n.trim(), unit.trim()),
        None => (text, "s"),
    };
    let seconds = match per {
        "s" | "sec" => 1.0,
        "m" | "min" => 60.0,
        "h" => 3_600.0,
        _ => return Err(bad()),
    };
    let n: f64 = number.parse().map_err(|_| bad())?;
    let per_second = n / seconds;
    // Bounded both ways: at least one an hour (a slower "rate" is a run that never ends, and
    // its spacing would overflow a duration), at most a million a second.
    if !per_second.is_finite() || !(1.0 / 3_600.0..=1_000_000.0).contains(&per_second) {
        return Err(bad());
    }
    Ok(per_second)
}

/// Spaces permits `1/rate` apart.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl RateLimiter {
    /// At most `per_second` permits a second; `None`: unlimited.
    pub fn new(per_second: Option<f64>) -> Self {
        Self {
            interval: per_second.map(|r| Duration::from_secs_f64(1.0 / r)),
            next: None,
        }
    }

    /// Waits for the next permit.
    pub async fn acquire(&mut self) {
        let Some(interval) = self.interval else {
            return;
        };
        let now = Instant::now();
        let at = self.next.map_or(now, |next| next.max(now));
        tokio::time::sleep_until(at).await;
        self.next = Some(at + interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rates() {
        assert_eq!(parse_rate("50/s").unwrap(), 50.0);
        assert_eq!(parse_rate("120/m").unwrap(), 2.0);
        assert_eq!(parse_rate("7").unwrap(), 7.0);
        assert_eq!(parse_rate("0.5/s").unwrap(), 0.5);
        assert_eq!(parse_rate("1/h").unwrap(), 1.0 / 3_600.0);
        for bad in [
            "",
            "0/s",
            "-1/s",
            "x/s",
            "5/d",
            "5/",
            "NaN/s",
            "inf/s",
            "1e-20/s",
            "0.5/h",
            "1e300/s",
            "2000000/s",
        ] {
            let err = parse_rate(bad).unwrap_err().to_string();
            assert!(err.contains("invalid rate"), "{bad}: {err}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn permits_are_spaced_evenly() {
        let mut limiter = RateLimiter::new(Some(10.0));
        let start = Instant::now();
        for _ in 0..11 {
            limiter.acquire().await;
        }
        // The first is immediate, the next ten each wait 100 ms.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
    }

    #[tokio::test(start_paused = true)]
    async fn unlimited_never_waits() {
        let mut limiter = RateLimiter::new(None);
        let start = Instant::now();
        for _ in 0..1_000 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
    }
}
