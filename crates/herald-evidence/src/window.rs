//! Time windows of a query (`since`, `until`: RFC 3339 or a duration ago such as `2h`) and
//! the offsets of a topic they cover.

use crate::{Error, Result};
use herald_kafka::scan::{self, Ranges};
use herald_kafka::KafkaConfig;

/// `[since, until)` in ms since the epoch; either side open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

impl Window {
    /// Parses `since`/`until`, counting durations back from `now_ms`; the error names the
    /// field.
    pub fn parse(since: Option<&str>, until: Option<&str>, now_ms: i64) -> Result<Self> {
        let window = Self {
            since_ms: since.map(|t| instant("since", t, now_ms)).transpose()?,
            until_ms: until.map(|t| instant("until", t, now_ms)).transpose()?,
        };
        if let (Some(a), Some(b)) = (window.since_ms, window.until_ms) {
            if a >= b {
                return Err(Error::Invalid("since: must be before until".into()));
            }
        }
        Ok(window)
    }

    /// Whether `at_ms` falls inside.
    pub fn contains(&self, at_ms: i64) -> bool {
        self.since_ms.is_none_or(|s| at_ms >= s) && self.until_ms.is_none_or(|u| at_ms < u)
    }

    /// The offsets of `topic` whose record timestamps may fall inside (with `slack_ms` on
    /// both sides: a record is written a little after the time it carries).
    pub async fn ranges(&self, kafka: &KafkaConfig, topic: &str, slack_ms: i64) -> Result<Ranges> {
        let consumer = scan::reader(kafka, "herald-evidence")?;
        let mut ranges = scan::watermarks(&consumer, topic).await?;
        let partitions: Vec<i32> = ranges.keys().copied().collect();
        if let Some(since) = self.since_ms {
            let starts =
                scan::offsets_for_time(&consumer, topic, &partitions, since - slack_ms).await?;
            for (p, start) in starts {
                if let Some(range) = ranges.get_mut(&p) {
                    range.0 = start.unwrap_or(range.1).max(range.0);
                }
            }
        }
        if let Some(until) = self.until_ms {
            let ends =
                scan::offsets_for_time(&consumer, topic, &partitions, until + slack_ms).await?;
            for (p, end) in ends {
                if let (Some(range), Some(end)) = (ranges.get_mut(&p), end) {
                    range.1 = end.min(range.1).max(range.0);
                }
            }
        }
        Ok(ranges)
    }
}

fn instant(field: &str, text: &str, now_ms: i64) -> Result<i64> {
    herald_core::time::parse_instant(text, now_ms).ok_or_else(|| {
        Error::Invalid(format!(
            "{field}: `{}` is neither RFC 3339 (2026-03-01T09:00:00Z) nor a duration ago (2h)",
            text.trim().chars().take(40).collect::<String>()
        ))
    })
}

pub use herald_core::time::format_instant;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_duration_longer_than_time_itself_saturates() {
        // Found by the `text` fuzz target: the subtraction overflowed.
        let window = Window::parse(Some("4000000000d"), None, i64::MIN + 5).unwrap();
        assert_eq!(window.since_ms, Some(i64::MIN));
    }

    #[test]
    fn windows_parse_both_forms_and_refuse_the_rest_by_name() {
        let now = 1_800_000_000_000;
        let w = Window::parse(Some("2h"), Some("2027-01-15T08:00:00Z"), now).unwrap();
        assert_eq!(w.since_ms, Some(now - 7_200_000));
        let until = chrono::DateTime::parse_from_rfc3339("2027-01-15T08:00:00Z").unwrap();
        assert_eq!(w.until_ms, Some(until.timestamp_millis()));
        assert!(w.contains(now - 1) && !w.contains(now - 7_200_001));
        let err = Window::parse(Some("yesterday"), None, now)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("since:"), "{err}");
        assert!(
            Window::parse(Some("1h"), Some("2h"), now).is_err(),
            "inverted"
        );
        assert_eq!(format_instant(0), "1970-01-01T00:00:00.000Z");
    }
}
