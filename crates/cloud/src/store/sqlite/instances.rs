//! SQLite: deployment settings, the serve lock (a lock file beside the store, held by the
//! process), and sync leases.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::SqliteStore;
use crate::store::instances::InstanceStore;
use crate::store::{Result, StoreError};

#[async_trait]
impl InstanceStore for SqliteStore {
    async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("value")?),
            None => None,
        })
    }

    async fn set_meta(&self, key: &str, value: &str) -> Result<()> {
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES (?, ?)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn init_meta(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM meta WHERE key = ?")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }

    async fn hold_serve_lock(&self, _shared: bool) -> Result<()> {
        // One SQLite file is one instance's, bus or not: the lock file is held, exclusively,
        // until the process ends (the kernel drops it even after kill -9).
        let Some(db) = &self.path else {
            return Ok(());
        };
        let mut name = db.as_os_str().to_owned();
        name.push(".serve-lock");
        let path = std::path::PathBuf::from(name);
        let path = &path;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| {
                StoreError::InUse(format!(
                    "cannot open the lock file {}: {e}; check the data dir's permissions",
                    path.display()
                ))
            })?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::InUse(format!(
                    "another passthru-cloud instance already serves the SQLite store {}. Two instances cannot share one SQLite store: stop the other one, or move the deployment to PostgreSQL (`passthru-cloud migrate --data-dir DIR --to postgres://USER@HOST/DB`) and run every instance with --bus nats://HOST:PORT",
                    db.display()
                )))
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(StoreError::InUse(format!(
                    "cannot lock {}: {e}; check the data dir's file system supports locks",
                    path.display()
                )))
            }
        }
        let mut held = self.serve_lock.lock().unwrap_or_else(|p| p.into_inner());
        *held = Some(file);
        Ok(())
    }

    async fn claim_sync_lease(
        &self,
        tenant_id: Uuid,
        forest: &str,
        holder: Uuid,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool> {
        // One statement: insert, or take over a lease that expired or is already ours.
        let done = sqlx::query(
            "INSERT INTO sync_leases (tenant_id, forest, holder, until_ms) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (tenant_id, forest) DO UPDATE SET holder = ?3, until_ms = ?4
             WHERE sync_leases.holder = ?3 OR sync_leases.until_ms <= ?5",
        )
        .bind(tenant_id.to_string())
        .bind(forest)
        .bind(holder.to_string())
        .bind(until_ms)
        .bind(now_ms)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_sync_lease(&self, tenant_id: Uuid, forest: &str, holder: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM sync_leases WHERE tenant_id = ? AND forest = ? AND holder = ?")
            .bind(tenant_id.to_string())
            .bind(forest)
            .bind(holder.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_check_place(
        &self,
        tenant_id: Uuid,
        account: &str,
        threshold: u32,
        now: i64,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<Uuid>> {
        let id = Uuid::new_v4();
        // One statement: SQLite's writer lock makes the read and the insert one step.
        let done = sqlx::query(
            "INSERT INTO lockout_places (id, tenant_id, account, expires_ms)
             SELECT ?1, ?2, ?3, ?4
             WHERE NOT EXISTS (SELECT 1 FROM sign_in_lockouts
                               WHERE tenant_id = ?2 AND username = ?3 AND locked_until > ?5)
               AND (SELECT COUNT(*) FROM lockout_places
                    WHERE tenant_id = ?2 AND account = ?3 AND expires_ms > ?6)
                 + COALESCE((SELECT CASE WHEN last_failure_at >= ?7 THEN failures ELSE 0 END
                             FROM sign_in_lockouts WHERE tenant_id = ?2 AND username = ?3), 0)
                 < ?8",
        )
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(account)
        .bind(expires_ms)
        .bind(now)
        .bind(now_ms)
        .bind(now - crate::store::lockout::FAILURE_WINDOW_SECS)
        .bind(i64::from(threshold.max(1)))
        .execute(&self.pool)
        .await?;
        Ok((done.rows_affected() == 1).then_some(id))
    }

    async fn give_back_check_place(&self, place: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM lockout_places WHERE id = ?")
            .bind(place.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_check_places(&self, now_ms: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM lockout_places WHERE expires_ms <= ?")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}
