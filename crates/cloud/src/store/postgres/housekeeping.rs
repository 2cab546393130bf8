//! PostgreSQL: housekeeping.

use async_trait::async_trait;
use sqlx::Row;

use super::*;
use crate::store::housekeeping::*;

#[async_trait]
impl HousekeepingStore for PgStore {
    async fn purge_expired(&self, now: i64) -> Result<u64> {
        let mut removed = 0;
        for table in EXPIRING_TABLES {
            removed += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1"))
                .bind(now)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }

    async fn count_rows(&self, table: &str) -> Result<i64> {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }

    fn set_pending_rows_per_tenant(&self, cap: i64) {
        self.pending_cap
            .store(cap.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// Closes the pool; a test store first drops its own schema (best effort).
    async fn close(&self) {
        // The serve lock goes with its connection.
        if let Some(conn) = self.serve_conn.lock().await.take() {
            let _ = sqlx::Connection::close(conn).await;
        }
        if let Some(schema) = &self.drop_schema_on_close {
            if let Err(e) = sqlx::raw_sql(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .execute(&self.pool)
                .await
            {
                tracing::warn!("the test schema {schema} stays: {e}");
            }
        }
        self.pool.close().await;
    }
}
