//! A small read-through cache for rows read on every request (tenants, apps). Entries live
//! two seconds; writes made through this process clear the cache at once, other instances'
//! writes are seen within the lifetime. Only rows that exist are cached.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a cached row is trusted.
pub(crate) const TTL: Duration = Duration::from_secs(2);
/// Entries kept at most (the cache is cleared when it would grow past this).
const CAPACITY: usize = 10_000;

#[derive(Debug)]
pub(crate) struct TtlCache<V> {
    map: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub(crate) fn new() -> TtlCache<V> {
        TtlCache {
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, V)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn get(&self, key: &str) -> Option<V> {
        let map = self.lock();
        map.get(key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, v)| v.clone())
    }

    pub(crate) fn put(&self, key: String, value: V) {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert(key, (Instant::now(), value));
    }

    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_then_clears() {
        let c = TtlCache::new();
        assert_eq!(c.get("a"), None::<u32>);
        c.put("a".into(), 1);
        assert_eq!(c.get("a"), Some(1));
        c.clear();
        assert_eq!(c.get("a"), None);
    }
}
