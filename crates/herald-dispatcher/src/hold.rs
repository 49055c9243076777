//! Tasks held back until they are due, per retry-tier partition.
//!
//! A tier partition is (nearly) ordered by due time, so once its head is not due the whole
//! partition waits: the consumer pauses it and keeps the head (plus anything already fetched
//! behind it) here, in offset order. Nothing is seeked or re-fetched, so nothing can be
//! skipped; the partition resumes when its queue is empty. Memory is bounded by what the
//! client had fetched before the pause took effect.

use herald_kafka::tracker::Ticket;
use herald_proto::v1;
use std::collections::{HashMap, VecDeque};

/// A partition: (topic, partition number).
pub type Partition = (String, i32);

/// One held task with the ticket that completes its offset.
pub struct Held {
    pub ticket: Ticket,
    pub task: v1::DeliveryTask,
}

/// Held tasks of every paused partition.
#[derive(Default)]
pub struct Holding {
    queues: HashMap<Partition, VecDeque<Held>>,
}

/// What the consumer must do after offering a task.
pub enum Offer {
    /// Due and nothing held before it: deliver now.
    Deliver(Box<Held>),
    /// Held; the partition was not paused yet and must be paused now.
    HeldPause,
    /// Held behind earlier tasks of an already paused partition.
    Held,
}

impl Holding {
    /// Offers a task fetched from `partition`; it is held when it is not due or when its
    /// partition already holds earlier tasks (order is kept).
    pub fn offer(&mut self, partition: &Partition, held: Held, now_ms: i64) -> Offer {
        if let Some(queue) = self.queues.get_mut(partition) {
            queue.push_back(held);
            return Offer::Held;
        }
        if held.task.due_at_ms <= now_ms {
            return Offer::Deliver(Box::new(held));
        }
        self.queues
            .insert(partition.clone(), VecDeque::from([held]));
        Offer::HeldPause
    }

    /// The earliest due time of any partition's head, in epoch milliseconds.
    pub fn next_due_ms(&self) -> Option<i64> {
        self.queues
            .values()
            .filter_map(|q| q.front().map(|h| h.task.due_at_ms))
            .min()
    }

    /// Takes every task that is due at the head of its partition, in order, and returns the
    /// partitions whose queues emptied (to resume).
    pub fn take_due(&mut self, now_ms: i64) -> (Vec<Held>, Vec<Partition>) {
        let mut due = Vec::new();
        let mut emptied = Vec::new();
        for (partition, queue) in &mut self.queues {
            while queue.front().is_some_and(|h| h.task.due_at_ms <= now_ms) {
                due.extend(queue.pop_front());
            }
            if queue.is_empty() {
                emptied.push(partition.clone());
            }
        }
        for partition in &emptied {
            self.queues.remove(partition);
        }
        (due, emptied)
    }

    /// Drops everything (after a rebalance: the tickets are void and the new assignment
    /// starts from the committed offsets). Returns the partitions that were paused.
    pub fn clear(&mut self) -> Vec<Partition> {
        self.queues.drain().map(|(p, _)| p).collect()
    }

    /// Tasks held across all partitions.
    pub fn len(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_kafka::tracker::OffsetTracker;

    fn held(tracker: &mut OffsetTracker, offset: i64, due: i64) -> Held {
        Held {
            ticket: tracker.begin("t", 0, offset),
            task: v1::DeliveryTask {
                due_at_ms: due,
                delivery_id: offset.to_string(),
                ..Default::default()
            },
        }
    }

    fn p() -> Partition {
        ("t".to_owned(), 0)
    }

    #[test]
    fn due_task_with_nothing_held_is_delivered_at_once() {
        let mut t = OffsetTracker::default();
        let mut h = Holding::default();
        let offer = h.offer(&p(), held(&mut t, 0, 100), 100);
        assert!(matches!(offer, Offer::Deliver(d) if d.ticket.offset == 0));
        assert!(h.is_empty());
    }

    #[test]
    fn later_tasks_wait_behind_a_held_head_even_when_due() {
        let mut t = OffsetTracker::default();
        let mut h = Holding::default();
        assert!(matches!(
            h.offer(&p(), held(&mut t, 0, 500), 100),
            Offer::HeldPause
        ));
        assert!(matches!(
            h.offer(&p(), held(&mut t, 1, 50), 100),
            Offer::Held
        ));
        assert!(matches!(
            h.offer(&p(), held(&mut t, 2, 900), 100),
            Offer::Held
        ));
        assert_eq!(h.next_due_ms(), Some(500));
        let (due, emptied) = h.take_due(499);
        assert!(due.is_empty() && emptied.is_empty());
        let (due, emptied) = h.take_due(500);
        let ids: Vec<_> = due.iter().map(|d| d.task.delivery_id.as_str()).collect();
        assert_eq!(
            ids,
            ["0", "1"],
            "in offset order, stopping at the first not due"
        );
        assert!(emptied.is_empty());
        assert_eq!(h.next_due_ms(), Some(900));
        let (due, emptied) = h.take_due(1_000);
        assert_eq!(due.len(), 1);
        assert_eq!(emptied, vec![p()]);
        assert!(h.is_empty());
    }

    #[test]
    fn partitions_are_independent_and_clear_returns_paused_ones() {
        let mut t = OffsetTracker::default();
        let mut h = Holding::default();
        h.offer(&p(), held(&mut t, 0, 500), 0);
        let other = ("t".to_owned(), 1);
        assert!(matches!(
            h.offer(&other, held(&mut t, 7, 0), 0),
            Offer::Deliver(_)
        ));
        h.offer(&other, held(&mut t, 8, 300), 0);
        assert_eq!(h.next_due_ms(), Some(300));
        assert_eq!(h.len(), 2);
        let mut cleared = h.clear();
        cleared.sort();
        assert_eq!(cleared, vec![p(), other]);
        assert!(h.is_empty());
    }
}
