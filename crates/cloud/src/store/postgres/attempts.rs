//! PostgreSQL: attempts.

use async_trait::async_trait;

use super::*;
use crate::store::attempts::*;

#[async_trait]
impl AttemptStore for PgStore {
    /// Counts one attempt of `key` in `scope` unless `limit` attempts were already counted
    /// in the window of `window_secs` that started with the first of them.
    async fn bump_attempts(
        &self,
        scope: &str,
        key: &str,
        limit: i64,
        window_secs: i64,
        now: i64,
    ) -> Result<Bump> {
        let counted: Option<i64> = sqlx::query_scalar(
            "INSERT INTO attempt_counters AS c (scope, key, window_start, count) VALUES ($1, $2, $3, 1)
             ON CONFLICT (scope, key) DO UPDATE SET
                 count = CASE WHEN c.window_start <= $3 - $4 THEN 1 ELSE c.count + 1 END,
                 window_start = CASE WHEN c.window_start <= $3 - $4 THEN $3 ELSE c.window_start END
             WHERE c.window_start <= $3 - $4 OR c.count < $5
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
            "SELECT window_start FROM attempt_counters WHERE scope = $1 AND key = $2",
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
    async fn purge_attempts(&self, now: i64, max_window_secs: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM attempt_counters WHERE window_start <= $1")
            .bind(now.saturating_sub(max_window_secs))
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
