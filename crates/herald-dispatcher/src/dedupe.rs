//! A bounded memory of deliveries whose first attempt was already started, so a duplicate
//! event (the same event id twice in the events topic) does not deliver twice. Oldest claims
//! are forgotten first.
//!
//! Each id is remembered as the first 128 bits of its SHA-256, not as text: with hundreds of
//! thousands remembered (a backlog drain) two `String`s per id cost ~150 bytes, the digest
//! far less (measured in the dispatcher's RSS, benches/README.md). A collision would take
//! about 2^64 ids, which no memory of this size gets near.
//!
//! The digests live once, in a ring in claim order; the hash table holds only their 4-byte
//! positions in it. A `HashSet<u128>` beside a `VecDeque<u128>` (before) kept every digest
//! twice, each table slot 17 bytes: 26 MB for 500,000 ids, against 14 MB here.

use hashbrown::HashTable;
use sha2::{Digest, Sha256};
use std::hash::BuildHasher;

/// The remembered form of an id.
fn digest(id: &str) -> u128 {
    let hash = Sha256::digest(id.as_bytes());
    let mut first = [0u8; 16];
    first.copy_from_slice(&hash[..16]);
    u128::from_le_bytes(first)
}

/// Delivery ids claimed by a first attempt, at most `capacity` of them.
#[derive(Debug)]
pub struct Claims {
    /// Digests in claim order, written round: once full, `next` is the oldest.
    ring: Vec<u128>,
    /// Where the next claim goes once the ring is full.
    next: usize,
    /// Positions in `ring`, found by their digest's hash.
    table: HashTable<u32>,
    /// Keyed per process, so ids chosen to collide in the table cannot be precomputed.
    hasher: std::collections::hash_map::RandomState,
    capacity: usize,
}

impl Claims {
    /// An empty memory holding up to `capacity` ids (at most `u32::MAX`).
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            ring: Vec::new(),
            next: 0,
            table: HashTable::new(),
            hasher: Default::default(),
            capacity: capacity.clamp(1, u32::MAX as usize),
        }
    }

    fn hash(&self, key: u128) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Claims `id`; false when it was claimed before (and not yet forgotten).
    pub fn claim(&mut self, id: &str) -> bool {
        let key = digest(id);
        if self.holds(key) {
            return false;
        }
        let position = if self.ring.len() < self.capacity {
            self.ring.push(key);
            self.ring.len() - 1
        } else {
            let position = self.next;
            self.next = (position + 1) % self.capacity;
            let oldest = self.ring[position];
            if let Ok(entry) = self
                .table
                .find_entry(self.hash(oldest), |&at| at as usize == position)
            {
                entry.remove();
            }
            self.ring[position] = key;
            position
        };
        let (ring, hasher) = (&self.ring, &self.hasher);
        self.table
            .insert_unique(hasher.hash_one(key), position as u32, |&at| {
                hasher.hash_one(ring[at as usize])
            });
        true
    }

    fn holds(&self, key: u128) -> bool {
        self.table
            .find(self.hash(key), |&at| self.ring[at as usize] == key)
            .is_some()
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: &str) -> bool {
        self.holds(digest(id))
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.ring.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_claim_fails_until_forgotten() {
        let mut claims = Claims::with_capacity(2);
        assert!(claims.claim("a"));
        assert!(!claims.claim("a"));
        assert!(claims.claim("b"));
        assert!(claims.claim("c")); // forgets "a"
        assert_eq!(claims.len(), 2);
        assert!(claims.claim("a"));
        assert!(!claims.claim("c"));
    }

    #[test]
    fn a_full_memory_forgets_exactly_the_oldest_claims_round_after_round() {
        let capacity = 1_000;
        let mut claims = Claims::with_capacity(capacity);
        for n in 0..10 * capacity {
            assert!(claims.claim(&format!("id-{n}")), "id-{n} is new");
            assert_eq!(claims.len(), (n + 1).min(capacity));
            if n >= capacity {
                assert!(!claims.contains(&format!("id-{}", n - capacity)));
            }
            let oldest_kept = (n + 1).saturating_sub(capacity);
            assert!(claims.contains(&format!("id-{oldest_kept}")));
        }
        // The last `capacity` ids are all remembered, the table holds nothing else.
        for n in 9 * capacity..10 * capacity {
            assert!(!claims.claim(&format!("id-{n}")), "id-{n} remembered");
        }
        assert_eq!(claims.table.len(), capacity);
    }
}
