//! Ordered offset tracking: concurrent work on one partition never lets the committed offset
//! pass a record that is still being processed.
//!
//! Records are `begin`-ed in the order the consumer hands them out and `complete`-d in any
//! order. The position to store is always the lowest offset still in flight, or one past the
//! highest offset seen when nothing is in flight. A new assignment of the partition starts a
//! new generation; completions from an older generation are ignored. A begun record may also
//! be marked started: its work is running (the retry consumer begins records it only holds
//! until they are due, and a revocation waits for the started ones only).

use std::collections::{BTreeSet, HashMap, HashSet};

/// The tracker of one partition.
#[derive(Debug, Default, Clone)]
pub struct PartitionTracker {
    in_flight: BTreeSet<i64>,
    /// The begun records whose work is running (a subset of `in_flight`).
    started: HashSet<i64>,
    highest_seen: Option<i64>,
    stored: Option<i64>,
}

impl PartitionTracker {
    /// A record at `offset` was handed out for processing.
    pub fn begin(&mut self, offset: i64) {
        // Nothing before the first record handed out needs storing.
        self.stored.get_or_insert(offset);
        self.in_flight.insert(offset);
        self.highest_seen = Some(self.highest_seen.map_or(offset, |h| h.max(offset)));
    }

    /// The record at `offset` is done (its outcome is durable). Returns the new position to
    /// store (the next offset to consume) when it advanced.
    pub fn complete(&mut self, offset: i64) -> Option<i64> {
        if !self.in_flight.remove(&offset) {
            return None;
        }
        self.started.remove(&offset);
        let position = self.position()?;
        if self.stored.is_some_and(|stored| stored >= position) {
            return None;
        }
        self.stored = Some(position);
        Some(position)
    }

    /// The position that may be stored now: nothing below it is unfinished.
    pub fn position(&self) -> Option<i64> {
        match self.in_flight.first() {
            Some(lowest) => Some(*lowest),
            None => self.highest_seen.map(|h| h + 1),
        }
    }

    /// Records still in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Marks the begun record at `offset` as running; a record not in flight is ignored.
    pub fn start(&mut self, offset: i64) {
        if self.in_flight.contains(&offset) {
            self.started.insert(offset);
        }
    }

    /// Records in flight whose work is running.
    pub fn started(&self) -> usize {
        self.started.len()
    }
}

/// Trackers for every partition a consumer owns, keyed by (topic, partition).
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(String, i32), (u64, PartitionTracker)>,
    generation: u64,
}

/// A handle naming one begun record, to complete it later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    generation: u64,
}

impl OffsetTracker {
    /// Forgets every partition (after a rebalance): older tickets no longer count.
    pub fn reset(&mut self) {
        self.generation += 1;
        self.partitions.clear();
    }

    /// Begins a record and returns its ticket.
    pub fn begin(&mut self, topic: &str, partition: i32, offset: i64) -> Ticket {
        let generation = self.generation;
        let entry = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_insert_with(|| (generation, PartitionTracker::default()));
        entry.1.begin(offset);
        Ticket {
            topic: topic.to_owned(),
            partition,
            offset,
            generation: entry.0,
        }
    }

    /// Completes a ticket; returns the position to store for its partition when it advanced.
    pub fn complete(&mut self, ticket: &Ticket) -> Option<i64> {
        let (generation, tracker) = self
            .partitions
            .get_mut(&(ticket.topic.clone(), ticket.partition))?;
        if *generation != ticket.generation {
            return None;
        }
        tracker.complete(ticket.offset)
    }

    /// Marks a begun record as running (see [`PartitionTracker::start`]); a ticket of an
    /// older generation is ignored.
    pub fn start(&mut self, ticket: &Ticket) {
        if let Some((generation, tracker)) = self
            .partitions
            .get_mut(&(ticket.topic.clone(), ticket.partition))
        {
            if *generation == ticket.generation {
                tracker.start(ticket.offset);
            }
        }
    }

    /// Increases at every reset (rebalance): state tied to an assignment compares it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Records in flight across all partitions.
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|(_, t)| t.in_flight()).sum()
    }

    /// Records in flight in the partitions `wanted` accepts.
    pub fn in_flight_where(&self, wanted: impl Fn(&str, i32) -> bool) -> usize {
        self.sum_where(wanted, PartitionTracker::in_flight)
    }

    /// Records in flight and started in the partitions `wanted` accepts.
    pub fn started_where(&self, wanted: impl Fn(&str, i32) -> bool) -> usize {
        self.sum_where(wanted, PartitionTracker::started)
    }

    fn sum_where(
        &self,
        wanted: impl Fn(&str, i32) -> bool,
        count: impl Fn(&PartitionTracker) -> usize,
    ) -> usize {
        self.partitions
            .iter()
            .filter(|((topic, partition), _)| wanted(topic, *partition))
            .map(|(_, (_, t))| count(t))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn in_flight_counts_per_chosen_partitions() {
        let mut t = OffsetTracker::default();
        let a = t.begin("events", 0, 5);
        t.begin("events", 0, 6);
        t.begin("events", 1, 9);
        t.begin("other", 0, 1);
        assert_eq!(t.in_flight_where(|topic, p| topic == "events" && p == 0), 2);
        assert_eq!(t.in_flight_where(|topic, _| topic == "events"), 3);
        t.complete(&a);
        assert_eq!(t.in_flight_where(|topic, p| topic == "events" && p == 0), 1);
        assert_eq!(t.in_flight(), 3);
    }

    #[test]
    fn only_started_records_count_as_started_and_completion_clears_them() {
        let mut t = OffsetTracker::default();
        let held = t.begin("retry", 0, 3);
        let running = t.begin("retry", 0, 4);
        let other = t.begin("retry", 1, 8);
        t.start(&running);
        t.start(&other);
        let revoked = |topic: &str, p: i32| topic == "retry" && p == 0;
        assert_eq!(t.in_flight_where(revoked), 2);
        assert_eq!(
            t.started_where(revoked),
            1,
            "the held record is not running"
        );
        assert_eq!(t.complete(&running), None, "the held one is still lower");
        assert_eq!(t.started_where(revoked), 0);
        assert_eq!(t.in_flight_where(revoked), 1);
        t.reset();
        t.start(&held);
        assert_eq!(
            t.started_where(|_, _| true),
            0,
            "an old ticket starts nothing"
        );
        let mut p = PartitionTracker::default();
        p.start(1);
        assert_eq!(p.started(), 0, "a record not begun cannot start");
    }

    #[test]
    fn out_of_order_completion_waits_for_the_lowest() {
        let mut t = PartitionTracker::default();
        for offset in [10, 11, 12] {
            t.begin(offset);
        }
        assert_eq!(t.complete(12), None);
        assert_eq!(t.complete(11), None);
        assert_eq!(t.complete(10), Some(13));
        assert_eq!(t.complete(10), None, "double completion is ignored");
    }

    #[test]
    fn gaps_in_offsets_are_fine() {
        let mut t = PartitionTracker::default();
        t.begin(5);
        t.begin(9);
        assert_eq!(t.complete(5), Some(9));
        assert_eq!(t.complete(9), Some(10));
    }

    #[test]
    fn old_generation_tickets_are_ignored_after_reset() {
        let mut tracker = OffsetTracker::default();
        let old = tracker.begin("t", 0, 1);
        tracker.reset();
        let new = tracker.begin("t", 0, 1);
        assert_eq!(tracker.complete(&old), None);
        assert_eq!(tracker.complete(&new), Some(2));
    }

    proptest! {
        /// Model: records 0..n begun in order, completed in a random order. After every
        /// completion the stored position must equal the model's: the lowest offset not yet
        /// completed (or n when all are), and it never moves backwards.
        #[test]
        fn never_commits_past_unfinished_work(
            gaps in proptest::collection::vec(1i64..4, 1..60),
            order_seed in proptest::collection::vec(any::<u32>(), 60),
        ) {
            let offsets: Vec<i64> = gaps.iter().scan(0i64, |acc, g| { *acc += g; Some(*acc) }).collect();
            let mut tracker = OffsetTracker::default();
            let tickets: Vec<Ticket> = offsets.iter().map(|o| tracker.begin("t", 3, *o)).collect();
            let mut order: Vec<usize> = (0..offsets.len()).collect();
            order.sort_by_key(|i| order_seed[*i % order_seed.len()].wrapping_mul(*i as u32 + 1));
            let mut done = vec![false; offsets.len()];
            let mut last_stored: Option<i64> = None;
            for i in order {
                done[i] = true;
                let stored = tracker.complete(&tickets[i]);
                let model = match done.iter().position(|d| !d) {
                    Some(first_open) => offsets[first_open],
                    None => offsets.last().unwrap() + 1,
                };
                if let Some(pos) = stored {
                    prop_assert_eq!(pos, model);
                    prop_assert!(last_stored.is_none_or(|l| pos > l));
                    last_stored = Some(pos);
                }
                // whatever was stored never passes an unfinished record
                if let Some(l) = last_stored {
                    for (j, o) in offsets.iter().enumerate() {
                        if !done[j] { prop_assert!(*o >= l); }
                    }
                }
            }
            prop_assert_eq!(last_stored, Some(offsets.last().unwrap() + 1));
            prop_assert_eq!(tracker.in_flight(), 0);
        }
    }
}
