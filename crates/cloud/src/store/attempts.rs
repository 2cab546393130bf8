//! Fixed-window attempt counters: how many times something keyed by a user or a client
//! address was tried in the current window. A bump is one conditional statement (an upsert
//! that refuses once the limit is reached), so parallel requests cannot all pass a check made
//! before the count is written. Rows whose window is over are purged.

use async_trait::async_trait;

use super::Result;

/// What a bump gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// Counted; this many in the window so far, this one included.
    Counted(i64),
    /// The limit is reached: refused, and not counted. The window ends then (Unix seconds).
    Refused { retry_at: i64 },
}

/// Fixed-window attempt counters in a store (the rate limits of self-service password reset
/// per user and per client address). Every backend implements it and passes
/// `store::conformance::attempts` (exactly the limit counted among hundreds at once).
#[async_trait]
pub trait AttemptStore: Send + Sync {
    /// Counts one attempt of `key` in `scope` unless `limit` attempts were already counted
    /// in the window of `window_secs` that started with the first of them.
    async fn bump_attempts(
        &self,
        scope: &str,
        key: &str,
        limit: i64,
        window_secs: i64,
        now: i64,
    ) -> Result<Bump>;

    /// Removes counters whose window (of at most `max_window_secs`) is over.
    async fn purge_attempts(&self, now: i64, max_window_secs: i64) -> Result<u64>;
}
