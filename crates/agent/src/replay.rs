//! The replay cache: request ids already answered, each kept until its request's deadline
//! (plus a margin) has passed. After that a replay is refused as expired anyway.

use std::collections::{BTreeSet, HashMap};

use uuid::Uuid;

/// How long past its deadline an id is remembered (covers a clock stepped backwards).
pub const RETENTION_MARGIN_MS: u64 = 60_000;
/// Most ids remembered at once.
pub const DEFAULT_CAPACITY: usize = 200_000;

/// Request ids seen, with the time after which they may be forgotten.
#[derive(Debug)]
pub struct ReplayCache {
    forget_at: HashMap<Uuid, u64>,
    by_time: BTreeSet<(u64, Uuid)>,
    capacity: usize,
}

impl ReplayCache {
    /// An empty cache holding at most `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> ReplayCache {
        ReplayCache {
            forget_at: HashMap::new(),
            by_time: BTreeSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.forget_at.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.forget_at.is_empty()
    }

    fn prune(&mut self, now_ms: u64) {
        while let Some(&(at, id)) = self.by_time.first() {
            if at >= now_ms {
                break;
            }
            self.by_time.remove(&(at, id));
            self.forget_at.remove(&id);
        }
    }

    /// Whether `id` was seen (forgetting what has expired at `now_ms` first).
    pub fn contains(&mut self, id: Uuid, now_ms: u64) -> bool {
        self.prune(now_ms);
        self.forget_at.contains_key(&id)
    }

    /// Remembers `id` until `expires_at_ms` plus the margin. Returns `false` when it was
    /// already there (a replay). When full, the ids closest to being forgotten go first.
    pub fn insert(&mut self, id: Uuid, expires_at_ms: u64, now_ms: u64) -> bool {
        self.prune(now_ms);
        if self.forget_at.contains_key(&id) {
            return false;
        }
        while self.forget_at.len() >= self.capacity {
            let Some((at, old)) = self.by_time.pop_first() else {
                break;
            };
            self.forget_at.remove(&old);
            tracing::warn!(
                forgotten_until = at,
                "the replay cache is full; forgetting the oldest request id early"
            );
        }
        let at = expires_at_ms.saturating_add(RETENTION_MARGIN_MS);
        self.forget_at.insert(id, at);
        self.by_time.insert((at, id));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_deadline_plus_margin() {
        let mut cache = ReplayCache::new(10);
        let id = Uuid::new_v4();
        assert!(!cache.contains(id, 1_000));
        assert!(cache.insert(id, 5_000, 1_000));
        assert!(!cache.insert(id, 5_000, 1_001));
        assert!(cache.contains(id, 5_000 + RETENTION_MARGIN_MS));
        assert!(!cache.contains(id, 5_001 + RETENTION_MARGIN_MS));
        assert!(cache.is_empty());
    }

    #[test]
    fn bounded() {
        let mut cache = ReplayCache::new(3);
        let ids: Vec<Uuid> = (0..5).map(|_| Uuid::new_v4()).collect();
        for (i, id) in ids.iter().enumerate() {
            assert!(cache.insert(*id, 10_000 + i as u64, 0));
        }
        assert_eq!(cache.len(), 3);
        assert!(!cache.contains(ids[0], 0));
        assert!(!cache.contains(ids[1], 0));
        assert!(cache.contains(ids[4], 0));
    }
}
