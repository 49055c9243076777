//! Browsing the dead-letter topic: list with filters and cursor pagination, show one
//! delivery, and stats, each entry with whether (and by which run) it was re-driven. Each
//! is one pass over the topic that keeps only what it returns (a page of at most 1,000
//! entries, counts), so a large dead-letter topic costs time, not memory.

use crate::filter::{format_instant, DlqFilter};
use crate::state::RunsView;
use crate::{Error, Result};
use herald_kafka::page::{Position, Positioned};
use herald_kafka::scan::{self, Scanner};
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

impl Positioned for Entry {
    fn position(&self) -> Position {
        (self.letter.dead_at_ms, self.partition, self.offset)
    }
}

impl Entry {
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
        if let Some(record) = &self.letter.undecodable {
            // A record of the events topic that was not a valid event: where it is, and why.
            out["undecodable"] = json!({
                "topic": record.topic, "partition": record.partition, "offset": record.offset,
                "error": record.error, "timestamp": format_instant(record.timestamp_ms),
                "bytes": record.value.len(),
            });
        }
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

/// Hands every dead letter that `filter` selects to `visit`, in topic order. Nothing is
/// kept here: callers keep what they need (a page, counts), so memory does not grow with
/// the size of the dead-letter topic.
pub async fn scan_each(
    kafka: &KafkaConfig,
    runs: &RunsView,
    filter: &DlqFilter,
    mut visit: impl FnMut(Entry),
) -> Result<()> {
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
    while let Some(record) = scanner.next().await? {
        let Ok(letter) = herald_proto::decode::<v1::DeadLetter>("dead letter", &record.payload)
        else {
            continue;
        };
        if filter.matches(&letter) {
            visit(Entry {
                partition: record.partition,
                offset: record.offset,
                redriven: runs.marker(record.partition, record.offset),
                letter,
            });
        }
    }
    Ok(())
}

/// The dead letters of one delivery (usually one; more when it was parked again).
pub async fn find(kafka: &KafkaConfig, runs: &RunsView, delivery_id: &str) -> Result<Vec<Entry>> {
    let mut found = Vec::new();
    scan_each(kafka, runs, &DlqFilter::default(), |entry| {
        if entry
            .letter
            .task
            .as_ref()
            .is_some_and(|t| t.delivery_id == delivery_id)
        {
            found.push(entry);
        }
    })
    .await?;
    found.sort_by_key(Entry::position);
    Ok(found)
}

/// One page of what `filter` selects, with the stats of everything it selects.
pub async fn list(
    kafka: &KafkaConfig,
    runs: &RunsView,
    filter: &DlqFilter,
    status: Status,
    limit: usize,
    cursor: Option<&str>,
) -> Result<(Page, Stats)> {
    let mut pager = Pager::new(status, limit, cursor)?;
    let mut stats = Stats::default();
    scan_each(kafka, runs, filter, |entry| {
        stats.add(&entry);
        pager.offer(entry);
    })
    .await?;
    Ok((pager.finish(), stats.finish()))
}

/// A page of dead letters.
pub type Page = herald_kafka::page::Page<Entry>;

/// Builds the page after a cursor of the entries `status` admits (the total counts those).
pub struct Pager {
    status: Status,
    inner: herald_kafka::page::Pager<Entry>,
}

impl Pager {
    /// A page of at most `limit` (1–1000) entries of `status` after `cursor`.
    pub fn new(status: Status, limit: usize, cursor: Option<&str>) -> Result<Self> {
        let inner = herald_kafka::page::Pager::new(limit, cursor).map_err(Error::Invalid)?;
        Ok(Self { status, inner })
    }

    /// Considers one entry.
    pub fn offer(&mut self, entry: Entry) {
        if self.status.admits(&entry) {
            self.inner.offer(entry);
        }
    }

    /// The page, its next cursor (when more follow) and the total admitted.
    pub fn finish(self) -> Page {
        self.inner.finish()
    }
}

/// Selects the page after `cursor` of at most `limit` entries.
pub fn paginate(
    entries: Vec<Entry>,
    status: Status,
    limit: usize,
    cursor: Option<&str>,
) -> Result<Page> {
    let mut pager = Pager::new(status, limit, cursor)?;
    for entry in entries {
        pager.offer(entry);
    }
    Ok(pager.finish())
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
    #[serde(skip)]
    oldest_ms: Option<i64>,
    #[serde(skip)]
    newest_ms: Option<i64>,
}

impl Stats {
    /// Counts one entry.
    pub fn add(&mut self, entry: &Entry) {
        self.total += 1;
        if entry.redriven.is_some() {
            self.redriven += 1;
            return;
        }
        self.pending += 1;
        let task = entry.letter.task.as_ref();
        let endpoint = task.map(|t| t.endpoint_id.clone()).unwrap_or_default();
        let event_type = task
            .and_then(|t| t.event.as_ref())
            .map(|e| e.event_type.clone())
            .unwrap_or_default();
        *self.by_endpoint.entry(endpoint).or_default() += 1;
        *self.by_event_type.entry(event_type).or_default() += 1;
        *self
            .by_reason
            .entry(entry.letter.reason.clone())
            .or_default() += 1;
        let at = entry.letter.dead_at_ms;
        self.oldest_ms = Some(self.oldest_ms.map_or(at, |o| o.min(at)));
        self.newest_ms = Some(self.newest_ms.map_or(at, |n| n.max(at)));
    }

    /// Fills in the formatted times.
    pub fn finish(mut self) -> Self {
        self.oldest_pending = self.oldest_ms.map(format_instant);
        self.newest_pending = self.newest_ms.map(format_instant);
        self
    }
}

/// Stats over `entries`.
pub fn stats(entries: &[Entry]) -> Stats {
    let mut stats = Stats::default();
    for entry in entries {
        stats.add(entry);
    }
    stats.finish()
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
    fn pages_from_entries_in_any_order_walk_every_entry_once_in_position_order() {
        // Entries arrive partition by partition, not in dead_at order; equal times tie-break
        // on partition and offset.
        let mut entries = Vec::new();
        for i in 0..97_i64 {
            let mut e = entry((i * 7919) % 50, i, i % 5 == 0);
            e.partition = (i % 3) as i32;
            entries.push(e);
        }
        let mut expected: Vec<(i64, i32, i64)> = entries
            .iter()
            .filter(|e| e.redriven.is_none())
            .map(Entry::position)
            .collect();
        expected.sort();
        let mut walked = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = paginate(entries.clone(), Status::Pending, 10, cursor.as_deref()).unwrap();
            assert_eq!(page.total, expected.len());
            assert!(page.entries.len() <= 10);
            walked.extend(page.entries.iter().map(Entry::position));
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(walked, expected);
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
