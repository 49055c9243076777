//! Pages over a topic scan with bounded memory: entries are offered in any order, at most
//! `limit + 1` are kept (the earliest by position), and the cursor of the next page is the
//! position of the last entry shown. A position is (time, partition, offset): unique per
//! record and stable, so pages never skip or repeat an entry while the topic grows.

use std::collections::BinaryHeap;

/// Where an entry sits: its time (ms), partition and offset.
pub type Position = (i64, i32, i64);

/// An entry that knows its position.
pub trait Positioned {
    fn position(&self) -> Position;
}

/// A page of entries and the cursor of the next page.
#[derive(Debug)]
pub struct Page<T> {
    pub entries: Vec<T>,
    pub next_cursor: Option<String>,
    /// Entries offered (everything the filter selected, on every page).
    pub total: usize,
}

/// Builds the page after a cursor.
pub struct Pager<T: Positioned> {
    limit: usize,
    after: Option<Position>,
    /// Max-heap on position: the latest candidate is dropped first.
    best: BinaryHeap<ByPosition<T>>,
    total: usize,
}

struct ByPosition<T>(T);

impl<T: Positioned> PartialEq for ByPosition<T> {
    fn eq(&self, other: &Self) -> bool {
        self.0.position() == other.0.position()
    }
}
impl<T: Positioned> Eq for ByPosition<T> {}
impl<T: Positioned> PartialOrd for ByPosition<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T: Positioned> Ord for ByPosition<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.position().cmp(&other.0.position())
    }
}

/// The largest page.
pub const MAX_LIMIT: usize = 1_000;

impl<T: Positioned> Pager<T> {
    /// A page of at most `limit` (1–1000) entries after `cursor`; the error names the field.
    pub fn new(limit: usize, cursor: Option<&str>) -> Result<Self, String> {
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(format!("limit: must be between 1 and {MAX_LIMIT}"));
        }
        Ok(Self {
            limit,
            after: cursor.map(decode_cursor).transpose()?,
            best: BinaryHeap::new(),
            total: 0,
        })
    }

    /// Considers one entry.
    pub fn offer(&mut self, entry: T) {
        self.total += 1;
        if self.after.is_some_and(|a| entry.position() <= a) {
            return;
        }
        self.best.push(ByPosition(entry));
        if self.best.len() > self.limit + 1 {
            self.best.pop();
        }
    }

    /// The page, its next cursor (when more follow) and the total offered.
    pub fn finish(self) -> Page<T> {
        let mut entries: Vec<T> = self
            .best
            .into_sorted_vec()
            .into_iter()
            .map(|b| b.0)
            .collect();
        let more = entries.len() > self.limit;
        entries.truncate(self.limit);
        let next_cursor = if more {
            entries.last().map(|e| encode_cursor(e.position()))
        } else {
            None
        };
        Page {
            entries,
            next_cursor,
            total: self.total,
        }
    }
}

fn encode_cursor((at, p, o): Position) -> String {
    format!("{at}.{p}.{o}")
}

fn decode_cursor(text: &str) -> Result<Position, String> {
    let bad =
        || format!("cursor: `{text}` is not a cursor this API gave; pass next_cursor unchanged");
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone, PartialEq)]
    struct At(Position);
    impl Positioned for At {
        fn position(&self) -> Position {
            self.0
        }
    }

    fn walk(entries: &[At], limit: usize) -> Vec<At> {
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut pager = Pager::new(limit, cursor.as_deref()).unwrap();
            for e in entries.iter().rev() {
                pager.offer(e.clone());
            }
            let page = pager.finish();
            assert_eq!(page.total, entries.len());
            seen.extend(page.entries);
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return seen,
            }
        }
    }

    proptest! {
        #[test]
        fn pages_walk_every_entry_once_in_position_order(
            mut positions in proptest::collection::btree_set((0i64..50, 0i32..3, 0i64..40), 0..60),
            limit in 1usize..7,
        ) {
            let entries: Vec<At> = std::mem::take(&mut positions).into_iter().map(At).collect();
            prop_assert_eq!(walk(&entries, limit), entries);
        }
    }

    #[test]
    fn bad_limits_and_cursors_name_the_field() {
        assert!(Pager::<At>::new(0, None)
            .err()
            .unwrap()
            .starts_with("limit:"));
        assert!(Pager::<At>::new(1_001, None).is_err());
        for bad in ["", "1.2", "a.b.c", "1.2.3.4"] {
            assert!(Pager::<At>::new(10, Some(bad))
                .err()
                .unwrap()
                .starts_with("cursor:"));
        }
        assert!(Pager::<At>::new(10, Some("5.1.9")).is_ok());
    }
}
