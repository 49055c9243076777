//! What to replay: time bounds (`2h` ago or RFC 3339), the filters of each replay kind, and
//! their validation. Pure: no I/O, `now` is passed in.

use crate::{Error, Result};
use herald_core::ids::{EndpointId, ReplayId};
use herald_core::outcome::DeadReason;
use herald_core::UnixMillis;
use herald_proto::v1;
use serde::{Deserialize, Serialize};

/// Parses a time bound: RFC 3339 (`2026-03-01T09:00:00Z`, `…+01:00`, fractions allowed), a
/// relative duration meaning "that long before now" (`2h`, `90m`, `1h30m`, `3d`), `now`, or
/// milliseconds since the epoch.
pub fn parse_instant(text: &str, now: UnixMillis) -> Result<UnixMillis> {
    herald_core::time::parse_instant(text, now).ok_or_else(|| invalid_instant(text.trim()))
}

fn invalid_instant(text: &str) -> Error {
    Error::Invalid(format!(
        "invalid time `{}`: use RFC 3339 (2026-03-01T09:00:00Z) or a duration before now (2h, 90m, 1h30m, 3d)",
        text.chars().take(60).collect::<String>()
    ))
}

pub use herald_core::time::format_instant;

/// A half-open time range `[since, until)` in ms since the epoch; either side may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeRange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since_ms: Option<UnixMillis>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until_ms: Option<UnixMillis>,
}

impl TimeRange {
    /// Parses `--since`/`--until` texts; an inverted or empty range is an error.
    pub fn parse(since: Option<&str>, until: Option<&str>, now: UnixMillis) -> Result<Self> {
        let range = Self {
            since_ms: since.map(|s| parse_instant(s, now)).transpose()?,
            until_ms: until.map(|u| parse_instant(u, now)).transpose()?,
        };
        range.validate()?;
        Ok(range)
    }

    /// Refuses `since >= until`.
    pub fn validate(&self) -> Result<()> {
        if let (Some(since), Some(until)) = (self.since_ms, self.until_ms) {
            if since >= until {
                return Err(Error::Invalid(format!(
                    "inverted time range: since {} is not before until {}",
                    format_instant(since),
                    format_instant(until)
                )));
            }
        }
        Ok(())
    }

    /// Whether `at` lies in the range.
    pub fn contains(&self, at: UnixMillis) -> bool {
        self.since_ms.is_none_or(|s| at >= s) && self.until_ms.is_none_or(|u| at < u)
    }
}

/// Which dead letters to look at or re-drive. Every field narrows the selection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqFilter {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointId>,
    /// An event type or a prefix filter ending in `*` (`stock.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// `exhausted`, `endpoint_gone`, `endpoint_disabled`, `endpoint_deleted`,
    /// `payload_rejected`, `destination_forbidden`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the delivery was parked (`dead_at_ms`).
    #[serde(default, flatten)]
    pub range: TimeRange,
}

impl DlqFilter {
    /// Checks the values (the reason name, the event-type filter, the range).
    pub fn validate(&self) -> Result<()> {
        if let Some(reason) = &self.reason {
            if DeadReason::parse(reason).is_none() {
                return Err(Error::Invalid(format!(
                    "unknown reason `{reason}`: use exhausted, endpoint_gone, endpoint_disabled, endpoint_deleted, payload_rejected or destination_forbidden"
                )));
            }
        }
        if let Some(filter) = &self.event_type {
            herald_core::endpoint::validate_filters(std::slice::from_ref(filter))
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        self.range.validate()
    }

    /// Whether `letter` is selected.
    pub fn matches(&self, letter: &v1::DeadLetter) -> bool {
        let task = letter.task.as_ref();
        let event = task.and_then(|t| t.event.as_ref());
        let endpoint = task.map_or("", |t| t.endpoint_id.as_str());
        let event_type = event.map_or("", |e| e.event_type.as_str());
        let tenant = event.map_or("", |e| e.tenant.as_str());
        self.endpoint
            .as_ref()
            .is_none_or(|e| e.as_str() == endpoint)
            && self
                .event_type
                .as_deref()
                .is_none_or(|f| herald_core::event::filter_matches(f, event_type))
            && self.tenant.as_deref().is_none_or(|t| t == tenant)
            && self.reason.as_deref().is_none_or(|r| r == letter.reason)
            && self.range.contains(letter.dead_at_ms)
    }
}

/// Which events of the events topic to deliver again, and to whom.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsFilter {
    /// Only this endpoint; none: every endpoint subscribed to each event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<EndpointId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// When ingest accepted the event (`accepted_at_ms`). `since` is required.
    #[serde(flatten)]
    pub range: TimeRange,
    /// Only deliveries that did not succeed (no `delivered` attempt in the attempts topic).
    #[serde(default)]
    pub only_failed: bool,
}

impl EventsFilter {
    /// Checks the values; `since` is required (the events topic is long).
    pub fn validate(&self) -> Result<()> {
        if self.range.since_ms.is_none() {
            return Err(Error::Invalid(
                "events replay needs a start: pass --since (RFC 3339 or a duration such as 2h)"
                    .into(),
            ));
        }
        if let Some(filter) = &self.event_type {
            herald_core::endpoint::validate_filters(std::slice::from_ref(filter))
                .map_err(|e| Error::Invalid(e.to_string()))?;
        }
        self.range.validate()
    }

    /// Whether the event itself is selected (endpoints are matched separately).
    pub fn matches(&self, event: &v1::EventEnvelope) -> bool {
        self.range.contains(event.accepted_at_ms)
            && self
                .event_type
                .as_deref()
                .is_none_or(|f| herald_core::event::filter_matches(f, &event.event_type))
            && self.tenant.as_deref().is_none_or(|t| t == event.tenant)
    }
}

/// One replay request, as given by the CLI or the API and stored in the run record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Selection {
    /// Re-drive dead letters.
    Dlq(DlqFilter),
    /// Deliver a time range of the events topic again.
    Events(EventsFilter),
}

/// A replay request: what, how fast, how many.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplaySpec {
    #[serde(flatten)]
    pub selection: Selection,
    /// Re-drives per second; none: as fast as the broker takes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_second: Option<f64>,
    /// Stop after this many re-drives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_count: Option<u64>,
}

impl ReplaySpec {
    /// The tenant the spec is limited to (empty: every tenant).
    pub fn tenant(&self) -> &str {
        let tenant = match &self.selection {
            Selection::Dlq(f) => &f.tenant,
            Selection::Events(f) => &f.tenant,
        };
        tenant.as_deref().unwrap_or("")
    }

    /// `dlq` or `events`.
    pub fn kind(&self) -> &'static str {
        match self.selection {
            Selection::Dlq(_) => "dlq",
            Selection::Events(_) => "events",
        }
    }

    /// Checks every value.
    pub fn validate(&self) -> Result<()> {
        if let Some(rate) = self.rate_per_second {
            if !rate.is_finite() || rate <= 0.0 {
                return Err(Error::Invalid("rate: must be a positive number".into()));
            }
        }
        if self.max_count == Some(0) {
            return Err(Error::Invalid("max count: must be at least 1".into()));
        }
        match &self.selection {
            Selection::Dlq(filter) => filter.validate(),
            Selection::Events(filter) => filter.validate(),
        }
    }

    /// The endpoint the selection names, if any (checked to exist before anything runs).
    pub fn endpoint(&self) -> Option<&EndpointId> {
        match &self.selection {
            Selection::Dlq(f) => f.endpoint.as_ref(),
            Selection::Events(f) => f.endpoint.as_ref(),
        }
    }
}

/// Parses an endpoint id given on the command line or in a query.
pub fn parse_endpoint(text: &str) -> Result<EndpointId> {
    EndpointId::parse(text.trim()).map_err(|e| Error::Invalid(e.to_string()))
}

/// Parses a replay id given on the command line or in a request.
pub fn parse_replay_id(text: &str) -> Result<ReplayId> {
    ReplayId::parse(text.trim()).map_err(|e| Error::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_772_355_600_000; // 2026-03-01T09:00:00Z

    #[test]
    fn a_duration_longer_than_time_itself_saturates() {
        assert_eq!(
            parse_instant("4000000000d", i64::MIN + 5).unwrap(),
            i64::MIN
        );
    }

    #[test]
    fn relative_and_absolute_instants() {
        assert_eq!(parse_instant("2h", NOW).unwrap(), NOW - 7_200_000);
        assert_eq!(parse_instant("1h30m", NOW).unwrap(), NOW - 5_400_000);
        assert_eq!(parse_instant("now", NOW).unwrap(), NOW);
        assert_eq!(parse_instant("2026-03-01T09:00:00Z", NOW).unwrap(), NOW);
        assert_eq!(
            parse_instant("2026-03-01T10:00:00.250+01:00", NOW).unwrap(),
            NOW + 250
        );
        assert_eq!(parse_instant("1772355600000", NOW).unwrap(), NOW);
        assert_eq!(format_instant(NOW + 5), "2026-03-01T09:00:00.005Z");
    }

    #[test]
    fn malformed_instants_say_what_is_accepted() {
        for bad in [
            "",
            "2x",
            "yesterday",
            "2026-03-01",
            "-2h",
            "2026-13-01T00:00:00Z",
        ] {
            let err = parse_instant(bad, NOW).unwrap_err().to_string();
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }

    #[test]
    fn inverted_and_empty_ranges_are_refused() {
        let err = TimeRange::parse(Some("1h"), Some("2h"), NOW).unwrap_err();
        assert!(err.to_string().contains("inverted time range"), "{err}");
        assert!(TimeRange::parse(Some("now"), Some("now"), NOW).is_err());
        let ok = TimeRange::parse(Some("2h"), Some("1h"), NOW).unwrap();
        assert!(ok.contains(NOW - 7_200_000), "since is inclusive");
        assert!(!ok.contains(NOW - 3_600_000), "until is exclusive");
        assert!(TimeRange::parse(None, None, NOW).unwrap().contains(0));
    }

    fn letter(endpoint: &str, kind: &str, tenant: &str, reason: &str, at: i64) -> v1::DeadLetter {
        v1::DeadLetter {
            task: Some(v1::DeliveryTask {
                event: Some(v1::EventEnvelope {
                    id: "evt_1".into(),
                    event_type: kind.into(),
                    tenant: tenant.into(),
                    ..Default::default()
                }),
                endpoint_id: endpoint.into(),
                ..Default::default()
            }),
            reason: reason.into(),
            dead_at_ms: at,
            ..Default::default()
        }
    }

    #[test]
    fn dlq_filter_narrows_on_every_field() {
        let l = letter("ep_a", "stock.moved", "acme", "exhausted", NOW);
        assert!(DlqFilter::default().matches(&l));
        let by = |f: DlqFilter| f.matches(&l);
        assert!(by(DlqFilter {
            endpoint: Some(parse_endpoint("ep_a").unwrap()),
            event_type: Some("stock.*".into()),
            tenant: Some("acme".into()),
            reason: Some("exhausted".into()),
            range: TimeRange {
                since_ms: Some(NOW),
                until_ms: Some(NOW + 1)
            },
        }));
        assert!(!by(DlqFilter {
            endpoint: Some(parse_endpoint("ep_b").unwrap()),
            ..Default::default()
        }));
        assert!(!by(DlqFilter {
            event_type: Some("invoice.*".into()),
            ..Default::default()
        }));
        assert!(!by(DlqFilter {
            tenant: Some("globex".into()),
            ..Default::default()
        }));
        assert!(!by(DlqFilter {
            reason: Some("endpoint_gone".into()),
            ..Default::default()
        }));
        assert!(!by(DlqFilter {
            range: TimeRange {
                since_ms: Some(NOW + 1),
                until_ms: None
            },
            ..Default::default()
        }));
    }

    #[test]
    fn specs_validate_and_round_trip_as_json() {
        let spec = ReplaySpec {
            selection: Selection::Events(EventsFilter {
                endpoint: Some(parse_endpoint("ep_x").unwrap()),
                range: TimeRange {
                    since_ms: Some(1),
                    until_ms: Some(2),
                },
                only_failed: true,
                ..Default::default()
            }),
            rate_per_second: Some(5.0),
            max_count: None,
        };
        spec.validate().unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert!(json.contains("\"kind\":\"events\""), "{json}");
        assert_eq!(serde_json::from_str::<ReplaySpec>(&json).unwrap(), spec);

        let no_start = ReplaySpec {
            selection: Selection::Events(EventsFilter::default()),
            rate_per_second: None,
            max_count: None,
        };
        assert!(no_start
            .validate()
            .unwrap_err()
            .to_string()
            .contains("--since"));
        let bad_reason = ReplaySpec {
            selection: Selection::Dlq(DlqFilter {
                reason: Some("tired".into()),
                ..Default::default()
            }),
            rate_per_second: None,
            max_count: None,
        };
        assert!(bad_reason.validate().unwrap_err().is_bad_input());
        assert!(parse_endpoint("evt_1").is_err());
        assert!(parse_replay_id("rpl_ok").is_ok());
    }
}
