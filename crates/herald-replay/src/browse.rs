//! Browsing the dead-letter topic: list with filters and cursor pagination, show one
//! delivery, and stats, each entry with whether (and by which run) it was re-driven.

use crate::filter::{format_instant, DlqFilter};
use crate::scan::{self, Scanner};
use crate::state::RunsView;
use crate::{Error, Result};
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// One dead letter where it lies in the topic.
#[derive(Debug, Clone)]
pub struct Entry {
    pub partition: i32,
    pub offset: i64,
    pub letter: v1::DeadLetter,
    /// The marker of the run that re-drove it, if any.
    pub redriven: Option<v1::RedriveMarker>,
}

impl Entry {
    fn position(&self) -> (i64, i32, i64) {
        (self.letter.dead_at_ms, self.partition, self.offset)
    }

    /// The JSON shape of the API and `herald dlq … --json`.
    pub fn to_json(&self, detailed: bool) -> Value {
        let task = self.letter.task.clone().unwrap_or_default();
        let event = task.event.clone().unwrap_or_default();
        let failure = |s: &Option<v1::AttemptSummary>| {
            s.as_ref().map(|s| {
                json!({"attempt": s.attempt, "status": s.status, "class": s.result_class,
                       "error": s.error, "at": format_instant(s.started_at_ms)})
            })
        };
        let mut out = json!({
            "delivery_id": task.delivery_id,
            "event_id": event.id,
            "endpoint_id": task.endpoint_id,
            "event_type": event.event_type,
            "tenant": event.tenant,
            "reason": self.letter.reason,
            "dead_at": format_instant(self.letter.dead_at_ms),
            "dead_at_ms": self.letter.dead_at_ms,
            "attempts": task.next_attempt,
            "last_failure": failure(&task.last_failure),
            "replayed_by": task.replay_id.is_empty().then_some(()).map_or(Some(task.replay_id.clone()), |_| None),
            "status": if self.redriven.is_some() { "redriven" } else { "pending" },
            "redriven_by": self.redriven.as_ref().map(|m| m.replay_id.clone()),
            "position": {"partition": self.partition, "offset": self.offset},
        });
        if detailed {
            out["first_failure"] = json!(failure(&task.first_failure));
            out["attempt_log"] = json!(task
                .attempts
                .iter()
                .map(|s| failure(&Some(s.clone())))
                .collect::<Vec<_>>());
            out["accepted_at"] = json!(format_instant(event.accepted_at_ms));
            out["payload"] = json!(String::from_utf8_lossy(&event.payload));
            out["attempts_topic"] = json!(self.letter.attempts_topic);
        }
        out
    }
}

/// Which entries by re-drive status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Status {
    /// Not re-driven yet: the backlog.
    #[default]
    Pending,
    Redriven,
    All,
}

impl Status {
    /// `pending`, `redriven`, `all`.
    pub fn parse(text: &str) -> Result<Self> {
        match text {
            "pending" => Ok(Self::Pending),
            "redriven" => Ok(Self::Redriven),
            "all" => Ok(Self::All),
            other => Err(Error::Invalid(format!(
                "unknown status `{other}`: use pending, redriven or all"
            ))),
        }
    }

    fn admits(self, entry: &Entry) -> bool {
        match self {
            Self::Pending => entry.redriven.is_none(),
            Self::Redriven => entry.redriven.is_some(),
            Self::All => true,
        }
    }
}

/// Reads every dead letter that `filter` selects (oldest first).
pub async fn scan(kafka: &KafkaConfig, runs: &RunsView, filter: &DlqFilter) -> Result<Vec<Entry>> {
    filter.validate()?;
    let topic = kafka.topics().dlq();
    let consumer = scan::reader(kafka, "herald-dlq-browse")?;
    let mut ranges = scan::watermarks(&consumer, &topic).await?;
    if let Some(since) = filter.range.since_ms {
        let partitions: Vec<i32> = ranges.keys().copied().collect();
        for (p, start) in scan::offsets_for_time(&consumer, &topic, &partitions, since).await? {
            if let Some(range) = ranges.get_mut(&p) {
                range.0 = start.unwrap_or(range.1).max(range.0);
            }
        }
    }
    let mut scanner = Scanner::open(kafka, &topic, &ranges)?;
    let mut entries = Vec::new();
    while let Some(record) = scanner.next().await? {
        let Ok(letter) = herald_proto::decode::<v1::DeadLetter>("dead letter", &record.payload)
        else {
            continue;
        };
        if filter.matches(&letter) {
            entries.push(Entry {
                partition: record.partition,
                offset: record.offset,
                redriven: runs.marker(record.partition, record.offset),
                letter,
            });
        }
    }
    entries.sort_by_key(Entry::position);
    Ok(entries)
}

/// A page of entries and the cursor of the next page.
#[derive(Debug)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next_cursor: Option<String>,
    /// Entries matching the filter and status in the whole topic.
    pub total: usize,
}

fn encode_cursor(entry: &Entry) -> String {
    let (at, p, o) = entry.position();
    format!("{at}.{p}.{o}")
}

fn decode_cursor(text: &str) -> Result<(i64, i32, i64)> {
    let bad = || {
        Error::Invalid(format!(
            "invalid cursor `{text}`: pass next_cursor unchanged"
        ))
    };
    let mut parts = text.split('.');
    let (Some(at), Some(p), Some(o), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    Ok((
        at.parse().map_err(|_| bad())?,
        p.parse().map_err(|_| bad())?,
        o.parse().map_err(|_| bad())?,
    ))
}

/// Selects the page after `cursor` of at most `limit` entries.
pub fn paginate(
    entries: Vec<Entry>,
    status: Status,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page> {
    if !(1..=1_000).contains(&limit) {
        return Err(Error::Invalid("limit: must be between 1 and 1000".into()));
    }
    let after = cursor.map(decode_cursor).transpose()?;
    let admitted: Vec<Entry> = entries.into_iter().filter(|e| status.admits(e)).collect();
    let total = admitted.len();
    let mut rest = admitted
        .into_iter()
        .filter(|e| after.is_none_or(|a| e.position() > a));
    let page: Vec<Entry> = rest.by_ref().take(limit).collect();
    let next_cursor = match (rest.next(), page.last()) {
        (Some(_), Some(last)) => Some(encode_cursor(last)),
        _ => None,
    };
    Ok(Page {
        entries: page,
        next_cursor,
        total,
    })
}

/// Counts of what is parked.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub total: u64,
    pub pending: u64,
    pub redriven: u64,
    /// Pending only.
    pub by_endpoint: BTreeMap<String, u64>,
    pub by_event_type: BTreeMap<String, u64>,
    pub by_reason: BTreeMap<String, u64>,
    pub oldest_pending: Option<String>,
    pub newest_pending: Option<String>,
}

/// Stats over `entries`.
pub fn stats(entries: &[Entry]) -> Stats {
    let mut stats = Stats::default();
    let mut pending_times = Vec::new();
    for entry in entries {
        stats.total += 1;
        if entry.redriven.is_some() {
            stats.redriven += 1;
            continue;
        }
        stats.pending += 1;
        let task = entry.letter.task.clone().unwrap_or_default();
        let event_type = task.event.map(|e| e.event_type).unwrap_or_default();
        *stats.by_endpoint.entry(task.endpoint_id).or_default() += 1;
        *stats.by_event_type.entry(event_type).or_default() += 1;
        *stats
            .by_reason
            .entry(entry.letter.reason.clone())
            .or_default() += 1;
        pending_times.push(entry.letter.dead_at_ms);
    }
    stats.oldest_pending = pending_times.iter().min().map(|t| format_instant(*t));
    stats.newest_pending = pending_times.iter().max().map(|t| format_instant(*t));
    stats
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(at: i64, offset: i64, redriven: bool) -> Entry {
        Entry {
            partition: 0,
            offset,
            letter: v1::DeadLetter {
                task: Some(v1::DeliveryTask {
                    endpoint_id: "ep_a".into(),
                    ..Default::default()
                }),
                reason: "exhausted".into(),
                dead_at_ms: at,
                ..Default::default()
            },
            redriven: redriven.then(v1::RedriveMarker::default),
        }
    }

    #[test]
    fn pages_follow_the_cursor_without_gaps_or_repeats() {
        let entries: Vec<Entry> = (0..7).map(|i| entry(100 + i, i, i == 3)).collect();
        let first = paginate(entries.clone(), Status::Pending, 4, None).unwrap();
        assert_eq!(first.total, 6);
        let offsets: Vec<i64> = first.entries.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, vec![0, 1, 2, 4]);
        let cursor = first.next_cursor.unwrap();
        let second = paginate(entries.clone(), Status::Pending, 4, Some(&cursor)).unwrap();
        let offsets: Vec<i64> = second.entries.iter().map(|e| e.offset).collect();
        assert_eq!(offsets, vec![5, 6]);
        assert!(second.next_cursor.is_none());
        assert!(paginate(entries.clone(), Status::All, 0, None).is_err());
        assert!(paginate(entries, Status::All, 5, Some("x.y")).is_err());
    }

    #[test]
    fn stats_count_pending_by_endpoint_and_reason() {
        let entries = vec![entry(1, 0, false), entry(2, 1, true), entry(3, 2, false)];
        let s = stats(&entries);
        assert_eq!((s.total, s.pending, s.redriven), (3, 2, 1));
        assert_eq!(s.by_endpoint["ep_a"], 2);
        assert_eq!(s.by_reason["exhausted"], 2);
        assert_eq!(
            s.oldest_pending.as_deref(),
            Some("1970-01-01T00:00:00.001Z")
        );
        assert!(Status::parse("nope").is_err());
    }
}
