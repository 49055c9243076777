//! A bounded memory of deliveries whose first attempt was already started, so a duplicate
//! event (the same event id twice in the events topic) does not deliver twice. Oldest claims
//! are forgotten first.

use std::collections::{HashSet, VecDeque};

/// Delivery ids claimed by a first attempt, at most `capacity` of them.
#[derive(Debug)]
pub struct Claims {
    set: HashSet<String>,
    order: VecDeque<String>,
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
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() == self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.set.remove(&oldest);
            }
        }
        self.set.insert(id.to_owned());
        self.order.push_back(id.to_owned());
        true
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
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
