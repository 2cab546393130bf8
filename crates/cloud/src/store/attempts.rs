//! Fixed-window attempt counters: how many times something keyed by a user or a client
//! address was tried in the current window. A bump is one conditional statement (an upsert
//! that refuses once the limit is reached), so parallel requests cannot all pass a check made
//! before the count is written. Rows whose window is over are purged.

use super::{Result, Store};

/// What a bump gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bump {
    /// Counted; this many in the window so far, this one included.
    Counted(i64),
    /// The limit is reached: refused, and not counted. The window ends then (Unix seconds).
    Refused { retry_at: i64 },
}

impl Store {
    /// Counts one attempt of `key` in `scope` unless `limit` attempts were already counted
    /// in the window of `window_secs` that started with the first of them.
    pub async fn bump_attempts(
        &self,
        scope: &str,
        key: &str,
        limit: i64,
        window_secs: i64,
        now: i64,
    ) -> Result<Bump> {
        let counted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO attempt_counters (scope, key, window_start, count) VALUES (?1, ?2, ?3, 1)
             ON CONFLICT (scope, key) DO UPDATE SET
                 count = CASE WHEN window_start <= ?3 - ?4 THEN 1 ELSE count + 1 END,
                 window_start = CASE WHEN window_start <= ?3 - ?4 THEN ?3 ELSE window_start END
             WHERE window_start <= ?3 - ?4 OR count < ?5
             RETURNING count",
        )
        .bind(scope)
        .bind(key)
        .bind(now)
        .bind(window_secs)
        .bind(limit)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(n) = counted {
            return Ok(Bump::Counted(n));
        }
        let start: Option<i64> = sqlx::query_scalar(
            "SELECT window_start FROM attempt_counters WHERE scope = ? AND key = ?",
        )
        .bind(scope)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Bump::Refused {
            retry_at: start.unwrap_or(now).saturating_add(window_secs),
        })
    }

    /// Removes counters whose window (of at most `max_window_secs`) is over.
    pub async fn purge_attempts(&self, now: i64, max_window_secs: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM attempt_counters WHERE window_start <= ?")
            .bind(now.saturating_sub(max_window_secs))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

#[cfg(test)]
mod tests {
    use super::Bump;
    use crate::store::{test_store, DomainKind};

    #[tokio::test]
    async fn a_window_counts_to_its_limit_then_refuses_until_it_ends() -> anyhow::Result<()> {
        let (s, dir, _) = test_store("attempts", "corp.test", DomainKind::Managed).await?;
        for n in 1..=3 {
            assert_eq!(
                s.bump_attempts("x", "k", 3, 60, 100).await?,
                Bump::Counted(n)
            );
        }
        assert_eq!(
            s.bump_attempts("x", "k", 3, 60, 159).await?,
            Bump::Refused { retry_at: 160 }
        );
        assert_eq!(
            s.bump_attempts("x", "other", 3, 60, 159).await?,
            Bump::Counted(1)
        );
        assert_eq!(
            s.bump_attempts("y", "k", 3, 60, 159).await?,
            Bump::Counted(1)
        );
        // A new window.
        assert_eq!(
            s.bump_attempts("x", "k", 3, 60, 160).await?,
            Bump::Counted(1)
        );
        assert_eq!(s.purge_attempts(159 + 60, 60).await?, 2);
        assert_eq!(s.purge_attempts(160 + 60, 60).await?, 1);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    /// Hundreds of parallel bumps of one key: exactly the limit is counted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_bumps_count_exactly_the_limit() -> anyhow::Result<()> {
        let (s, dir, _) = test_store("attempts-par", "corp.test", DomainKind::Managed).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..300 {
            let s = s.clone();
            tasks.spawn(async move { s.bump_attempts("x", "k", 5, 3600, 1000).await });
        }
        let mut counted = 0;
        while let Some(r) = tasks.join_next().await {
            if let Bump::Counted(_) = r?? {
                counted += 1;
            }
        }
        assert_eq!(counted, 5);
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
