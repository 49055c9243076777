//! Human durations: `250ms`, `5s`, `30m`, `2h`, `3d`, and compound forms such as `1h30m`.
//! Used by config files, `HERALD_*` variables and the CLI, and for topic names of retry tiers.

use std::time::Duration;

/// Parses a human duration such as `5s`, `1h30m` or `250ms`.
pub fn parse(text: &str) -> crate::Result<Duration> {
    let err = || crate::Error::InvalidDuration(text.chars().take(40).collect());
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(err());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(err());
        }
        let value: u64 = rest[..digits].parse().map_err(|_| err())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = match &rest[..unit_len] {
            "ms" => Duration::from_millis(1),
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3_600),
            "d" => Duration::from_secs(86_400),
            _ => return Err(err()),
        };
        rest = &rest[unit_len..];
        let part = unit
            .checked_mul(u32::try_from(value).map_err(|_| err())?)
            .ok_or_else(err)?;
        total = total.checked_add(part).ok_or_else(err)?;
    }
    Ok(total)
}

/// Formats a duration in the largest whole unit that represents it exactly: `5s`, `30m`, `10h`,
/// `1500ms`. This is also how retry tier topics are named.
pub fn format(duration: Duration) -> String {
    let millis = duration.as_millis();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if millis > 0 && millis.is_multiple_of(size) {
            return format!("{}{unit}", millis / size);
        }
    }
    format!("{millis}ms")
}

/// Serde adapter for `Duration` fields written as human durations.
pub mod serde_human {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes `5s`.
    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&super::format(*value))
    }

    /// Reads `5s`.
    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Serde adapter for `Option<Duration>` fields written as human durations (absent: `None`;
/// pair it with `#[serde(default, skip_serializing_if = "Option::is_none")]`).
pub mod serde_human_option {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes `5s`, or nothing.
    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => serializer.serialize_str(&super::format(*duration)),
            None => serializer.serialize_none(),
        }
    }

    /// Reads `5s`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(deserializer)?;
        text.map(|text| super::parse(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// Serde adapter for `Vec<Duration>` fields written as lists of human durations.
pub mod serde_human_vec {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    /// Writes `["5s", "5m"]`.
    pub fn serialize<S: Serializer>(value: &[Duration], serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(value.iter().map(|d| super::format(*d)))
    }

    /// Reads `["5s", "5m"]` or `"5s,5m"`.
    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Vec<Duration>, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            List(Vec<String>),
            Text(String),
        }
        let items = match Form::deserialize(deserializer)? {
            Form::List(items) => items,
            Form::Text(text) => text.split(',').map(str::to_owned).collect(),
        };
        items
            .iter()
            .map(|item| super::parse(item).map_err(serde::de::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_compounds() {
        assert_eq!(parse("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse("30m").unwrap(), Duration::from_secs(1_800));
        assert_eq!(parse("1h30m").unwrap(), Duration::from_secs(5_400));
        assert_eq!(parse("3d").unwrap(), Duration::from_secs(259_200));
    }

    #[test]
    fn rejects_garbage() {
        for bad in ["", "5", "s", "5x", "-5s", "5 s", "1.5h", "99999999999999s"] {
            assert!(parse(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn formats_in_largest_exact_unit() {
        assert_eq!(format(Duration::from_secs(5)), "5s");
        assert_eq!(format(Duration::from_secs(36_000)), "10h");
        assert_eq!(format(Duration::from_millis(100)), "100ms");
        assert_eq!(format(Duration::from_millis(1_500)), "1500ms");
        assert_eq!(
            parse(&format(Duration::from_secs(7_200)))
                .unwrap()
                .as_secs(),
            7_200
        );
    }
}
