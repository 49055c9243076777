//! A bounded memory of deliveries whose first attempt was already started, so a duplicate
//! event (the same event id twice in the events topic) does not deliver twice. Oldest claims
//! are forgotten first.
//!
//! Each id is remembered as the first 128 bits of its SHA-256, not as text: with hundreds of
//! thousands remembered (a backlog drain) two `String`s per id cost ~150 bytes, the digest
//! ~40 (measured in the dispatcher's RSS, benches/README.md). A collision would take about
//! 2^64 ids, which no memory of this size gets near.

use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};

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
    set: HashSet<u128>,
    order: VecDeque<u128>,
    capacity: usize,
}

impl Claims {
    /// An empty memory holding up to `capacity` ids.
    pub fn with_capacity(capacity: usize) -> Self {
        Self {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Claims `id`; false when it was claimed before (and not yet forgotten).
    pub fn claim(&mut self, id: &str) -> bool {
        let key = digest(id);
        if self.set.contains(&key) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.set.insert(key);
        self.order.push_back(key);
        true
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(&digest(id))
    }

    /// Ids remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
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
}
