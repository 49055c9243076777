//! A replay or dead-letter request as its two faces spell it (the CLI's flags, the API's
//! JSON and query strings), parsed into the spec and filter the rest of the crate runs, and
//! a run described as JSON the same way for both.

use crate::filter::{format_instant, parse_endpoint, parse_replay_id};
use crate::rate::parse_rate;
use crate::{run, DlqFilter, Error, EventsFilter, ReplaySpec, Result, Selection, TimeRange};
use herald_core::ids::ReplayId;
use herald_core::run::RunState;
use herald_proto::v1;
use serde::Deserialize;
use serde_json::{json, Value};

/// What to replay and how: the body of `POST /v1/replays`, and what `herald replay dlq|events`
/// flags become.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayRequest {
    /// `dlq` or `events`.
    pub kind: String,
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    /// DLQ only.
    pub reason: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Events only.
    #[serde(default)]
    pub only_failed: bool,
    /// `50/s`, `600/m`.
    pub rate: Option<String>,
    pub max_count: Option<u64>,
    #[serde(default)]
    pub dry_run: bool,
    /// Client-chosen run id (`rpl_…`): makes the request idempotent.
    pub id: Option<String>,
}

impl ReplayRequest {
    /// The validated spec; time bounds such as `2h` count back from `now_ms`.
    pub fn spec(&self, now_ms: i64) -> Result<ReplaySpec> {
        let selection = match self.kind.as_str() {
            "dlq" => {
                if self.only_failed {
                    return Err(Error::Invalid(
                        "only_failed: applies to events replays only".into(),
                    ));
                }
                Selection::Dlq(self.dlq_query().filter(now_ms)?)
            }
            "events" => {
                if self.reason.is_some() {
                    return Err(Error::Invalid("reason: applies to dlq replays only".into()));
                }
                Selection::Events(EventsFilter {
                    endpoint: self.endpoint.as_deref().map(parse_endpoint).transpose()?,
                    event_type: self.event_type.clone(),
                    tenant: self.tenant.clone(),
                    range: TimeRange::parse(self.since.as_deref(), self.until.as_deref(), now_ms)?,
                    only_failed: self.only_failed,
                })
            }
            other => {
                return Err(Error::Invalid(format!(
                    "kind: `{other}` is neither `dlq` nor `events`"
                )))
            }
        };
        let spec = ReplaySpec {
            selection,
            rate_per_second: self.rate.as_deref().map(parse_rate).transpose()?,
            max_count: self.max_count,
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The client-chosen run id, if any, checked.
    pub fn run_id(&self) -> Result<Option<ReplayId>> {
        self.id.as_deref().map(parse_replay_id).transpose()
    }

    fn dlq_query(&self) -> DlqQuery {
        DlqQuery {
            endpoint: self.endpoint.clone(),
            event_type: self.event_type.clone(),
            tenant: self.tenant.clone(),
            reason: self.reason.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
        }
    }
}

/// Which dead letters: `herald dlq …` and `herald replay dlq` flags, `GET /v1/dead-letters`
/// query parameters.
#[derive(Debug, Clone, Default)]
pub struct DlqQuery {
    pub endpoint: Option<String>,
    pub event_type: Option<String>,
    pub tenant: Option<String>,
    pub reason: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

impl DlqQuery {
    /// The validated filter; time bounds such as `2h` count back from `now_ms`.
    pub fn filter(&self, now_ms: i64) -> Result<DlqFilter> {
        let filter = DlqFilter {
            endpoint: self.endpoint.as_deref().map(parse_endpoint).transpose()?,
            event_type: self.event_type.clone(),
            tenant: self.tenant.clone(),
            reason: self.reason.clone(),
            range: TimeRange::parse(self.since.as_deref(), self.until.as_deref(), now_ms)?,
        };
        filter.validate()?;
        Ok(filter)
    }
}

/// A run as JSON: `progress` is the share of planned re-drives done (1 once finished),
/// `scan_progress` the share of the source range read.
pub fn run_json(run: &v1::ReplayProgress) -> Value {
    let total = run.planned.max(1) as f64;
    json!({
        "id": run.id,
        "kind": run.kind,
        "state": run.state,
        "actor": run.actor,
        "spec": serde_json::from_str::<Value>(&run.spec_json).unwrap_or(Value::Null),
        "planned": run.planned,
        "redriven": run.redriven,
        "skipped": run.skipped,
        "scanned": run.scanned,
        "progress": if run.run_state() == Some(RunState::Finished) { 1.0 } else { (run.redriven as f64 / total).min(1.0) },
        "scan_progress": run::scan_ratio(run),
        "created_at": format_instant(run.created_at_ms),
        "updated_at": format_instant(run.updated_at_ms),
        "finished_at": (run.finished_at_ms > 0).then(|| format_instant(run.finished_at_ms)),
        "error": (!run.error.is_empty()).then(|| run.error.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn request(kind: &str) -> ReplayRequest {
        ReplayRequest {
            kind: kind.into(),
            since: Some("2h".into()),
            ..Default::default()
        }
    }

    #[test]
    fn a_dlq_request_becomes_a_dlq_spec_with_its_rate_and_window() {
        let mut input = request("dlq");
        input.rate = Some("600/m".into());
        input.reason = Some("exhausted".into());
        let spec = input.spec(NOW).unwrap();
        assert_eq!(spec.rate_per_second, Some(10.0));
        let Selection::Dlq(filter) = spec.selection else {
            panic!("not a dlq spec");
        };
        assert_eq!(filter.reason.as_deref(), Some("exhausted"));
        assert_eq!(filter.range.since_ms, Some(NOW - 2 * 3_600_000));
    }

    #[test]
    fn options_of_the_other_kind_are_refused_by_name() {
        let mut dlq = request("dlq");
        dlq.only_failed = true;
        assert!(dlq
            .spec(NOW)
            .unwrap_err()
            .to_string()
            .contains("only_failed"));
        let mut events = request("events");
        events.reason = Some("exhausted".into());
        assert!(events.spec(NOW).unwrap_err().to_string().contains("reason"));
        assert!(request("everything")
            .spec(NOW)
            .unwrap_err()
            .to_string()
            .contains("kind"));
    }

    #[test]
    fn bad_numbers_and_ids_are_invalid_input() {
        let mut input = request("dlq");
        input.rate = Some("1e-20/s".into());
        assert!(input.spec(NOW).unwrap_err().is_bad_input());
        input.rate = None;
        input.id = Some("nope".into());
        assert!(input.run_id().unwrap_err().is_bad_input());
        let bad_endpoint = DlqQuery {
            endpoint: Some("evt_1".into()),
            ..Default::default()
        };
        assert!(bad_endpoint.filter(NOW).is_err());
    }

    #[test]
    fn progress_counts_redrives_and_scan_progress_the_range() {
        let run = v1::ReplayProgress {
            id: "rpl_x".into(),
            state: "running".into(),
            planned: 4,
            redriven: 1,
            cursors: vec![v1::PartitionCursor {
                partition: 0,
                start_offset: 0,
                end_offset: 10,
                next_offset: 5,
            }],
            ..Default::default()
        };
        let json = run_json(&run);
        assert_eq!(json["progress"], 0.25);
        assert_eq!(json["scan_progress"], 0.5);
        let finished = v1::ReplayProgress {
            state: "finished".into(),
            ..run
        };
        assert_eq!(run_json(&finished)["progress"], 1.0);
    }
}
