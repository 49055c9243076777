//! Replay state in `replays.v1` (compacted): run records (`run/<id>`), re-drive markers
//! (`dlq/<partition>/<offset>`) and the replay lock (`lock`, see [`crate::lock`]), folded
//! into a live view, plus the writes that keep it and the audit trail.

use crate::Result;
use herald_kafka::view::{Apply, View};
use herald_kafka::KafkaConfig;
use herald_proto::v1;
use std::collections::HashMap;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Key of a run record.
pub fn run_key(id: &str) -> String {
    format!("run/{id}")
}

/// Key of the marker of the dead letter at `partition`/`offset`.
pub fn marker_key(partition: i32, offset: i64) -> String {
    format!("dlq/{partition}/{offset}")
}

fn parse_marker_key(key: &str) -> Option<(i32, i64)> {
    let (partition, offset) = key.strip_prefix("dlq/")?.split_once('/')?;
    Some((partition.parse().ok()?, offset.parse().ok()?))
}

/// Every run and every marker.
#[derive(Debug, Default)]
pub struct RunsState {
    pub runs: HashMap<String, v1::ReplayProgress>,
    pub markers: HashMap<(i32, i64), v1::RedriveMarker>,
    /// Who holds the replay lock (possibly expired).
    pub lock: Option<v1::ReplayLock>,
}

fn fold() -> Apply<RunsState> {
    Arc::new(|state: &mut RunsState, key: &[u8], value: Option<&[u8]>| {
        let key = String::from_utf8_lossy(key);
        let value = value.filter(|v| !v.is_empty());
        if let Some(id) = key.strip_prefix("run/") {
            match value.map(|v| herald_proto::decode::<v1::ReplayProgress>("replay run", v)) {
                None => {
                    state.runs.remove(id);
                }
                Some(Ok(run)) => {
                    // Keep the most advanced record (local writes may arrive before older ones).
                    let newer = state
                        .runs
                        .get(id)
                        .is_none_or(|old| run.updated_at_ms >= old.updated_at_ms);
                    if newer {
                        state.runs.insert(id.to_owned(), run);
                    }
                }
                Some(Err(err)) => tracing::warn!(%key, error = %err, "Unreadable replay run."),
            }
        } else if key == crate::lock::LOCK_KEY {
            match value.map(|v| herald_proto::decode::<v1::ReplayLock>("replay lock", v)) {
                None => state.lock = None,
                Some(Ok(record)) => state.lock = crate::lock::fold(state.lock.as_ref(), &record),
                Some(Err(err)) => tracing::warn!(%key, error = %err, "Unreadable replay lock."),
            }
        } else if let Some(position) = parse_marker_key(&key) {
            match value.map(|v| herald_proto::decode::<v1::RedriveMarker>("marker", v)) {
                None => {
                    state.markers.remove(&position);
                }
                Some(Ok(marker)) => {
                    state.markers.insert(position, marker);
                }
                Some(Err(err)) => tracing::warn!(%key, error = %err, "Unreadable marker."),
            }
        }
    })
}

/// The live view of `replays.v1`.
#[derive(Clone)]
pub struct RunsView {
    view: View<RunsState>,
}

impl RunsView {
    /// Starts following the replays topic.
    pub fn spawn(kafka: &KafkaConfig, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let view = View::spawn(kafka, kafka.topics().replays(), fold(), tasks, shutdown);
        Self { view }
    }

    /// Waits until the view caught up with the topic.
    pub async fn wait_ready(&self, timeout: std::time::Duration) -> Result<()> {
        Ok(self.view.wait_ready(timeout).await?)
    }

    /// One run.
    pub fn get(&self, id: &str) -> Option<v1::ReplayProgress> {
        self.view.read(|s| s.runs.get(id).cloned())
    }

    /// Every run, newest first.
    pub fn list(&self) -> Vec<v1::ReplayProgress> {
        let mut runs: Vec<_> = self.view.read(|s| s.runs.values().cloned().collect());
        runs.sort_by(|a, b| b.created_at_ms.cmp(&a.created_at_ms).then(b.id.cmp(&a.id)));
        runs
    }

    /// The marker of one dead letter, if it was re-driven.
    pub fn marker(&self, partition: i32, offset: i64) -> Option<v1::RedriveMarker> {
        self.view
            .read(|s| s.markers.get(&(partition, offset)).cloned())
    }

    /// The replay lock as the log decided it so far (possibly expired).
    pub fn lock(&self) -> Option<v1::ReplayLock> {
        self.view.read(|s| s.lock.clone())
    }

    pub(crate) fn apply_local(&self, key: &str, value: &[u8]) {
        self.view.apply_local(key.as_bytes(), Some(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::Message;

    #[test]
    fn fold_keeps_runs_and_markers_apart() {
        let apply = fold();
        let mut state = RunsState::default();
        let run = v1::ReplayProgress {
            id: "rpl_1".into(),
            updated_at_ms: 5,
            redriven: 3,
            ..Default::default()
        };
        apply(&mut state, b"run/rpl_1", Some(&run.encode_to_vec()));
        let older = v1::ReplayProgress {
            updated_at_ms: 4,
            ..run.clone()
        };
        apply(&mut state, b"run/rpl_1", Some(&older.encode_to_vec()));
        assert_eq!(state.runs["rpl_1"].redriven, 3, "older record ignored");
        let marker = v1::RedriveMarker {
            replay_id: "rpl_1".into(),
            ..Default::default()
        };
        apply(&mut state, b"dlq/2/17", Some(&marker.encode_to_vec()));
        assert_eq!(state.markers[&(2, 17)].replay_id, "rpl_1");
        apply(&mut state, b"dlq/2/17", None);
        assert!(state.markers.is_empty());
        apply(&mut state, b"garbage", Some(b"x"));
        assert_eq!(state.runs.len(), 1);
        assert_eq!(parse_marker_key(&marker_key(-1, 9)), Some((-1, 9)));
    }
}
