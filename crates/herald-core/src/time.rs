//! Instants as people type them on the CLI and in query strings, and back: RFC 3339
//! (`2026-03-01T09:00:00Z`, offsets and fractions allowed), a duration before now (`2h`,
//! `90m`, `1h30m`, `3d`), `now`, or milliseconds since the epoch (12 digits or more).
//! Callers word their own errors (which field, which forms they document).

use crate::UnixMillis;

/// The instant `text` names, counting durations back from `now` (saturating); `None` when
/// it is none of the forms.
pub fn parse_instant(text: &str, now: UnixMillis) -> Option<UnixMillis> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("now") {
        return Some(now);
    }
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(at.timestamp_millis());
    }
    if text.len() >= 12 && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    let ago = crate::duration::parse(text).ok()?;
    Some(now.saturating_sub(ago.as_millis().min(i64::MAX as u128) as i64))
}

/// `at` as RFC 3339 in UTC with milliseconds (the number itself when out of chrono's range).
pub fn format_instant(at: UnixMillis) -> String {
    chrono::DateTime::from_timestamp_millis(at)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|| at.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_772_355_600_000; // 2026-03-01T09:00:00Z

    #[test]
    fn every_form_and_back() {
        assert_eq!(parse_instant("2h", NOW), Some(NOW - 7_200_000));
        assert_eq!(parse_instant(" now ", NOW), Some(NOW));
        assert_eq!(parse_instant("2026-03-01T09:00:00Z", 0), Some(NOW));
        assert_eq!(parse_instant("2026-03-01T10:00:00+01:00", 0), Some(NOW));
        assert_eq!(parse_instant("1772355600000", 0), Some(NOW));
        assert_eq!(format_instant(NOW), "2026-03-01T09:00:00.000Z");
        for bad in [
            "",
            "yesterday",
            "12345",
            "2h and a bit",
            "2026-13-01T00:00:00Z",
        ] {
            assert_eq!(parse_instant(bad, NOW), None, "{bad}");
        }
        assert_eq!(parse_instant("4000000000d", i64::MIN + 5), Some(i64::MIN));
    }
}
