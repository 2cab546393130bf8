//! SQLite: housekeeping.

use async_trait::async_trait;
use sqlx::Row;

use super::*;
use crate::store::housekeeping::*;

#[async_trait]
impl HousekeepingStore for SqliteStore {
    async fn purge_expired(&self, now: i64) -> Result<u64> {
        let mut removed = 0;
        for table in EXPIRING_TABLES {
            removed += sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= ?"))
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

    async fn close(&self) {
        self.inline.close();
        self.pool.close().await;
    }
}
