//! PostgreSQL: deployment settings, the serve lock (a session advisory lock on a connection
//! of its own, held by the process: shared by instances with a bus, exclusive without), sync
//! leases, and smart lockout's places shared by every instance.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::PgStore;
use crate::store::instances::InstanceStore;
use crate::store::{Result, StoreError};

/// The seed of the serve lock's advisory key (hashed with the database and schema).
const SERVE_LOCK: i64 = 0x7074_7365_7276_6531;

#[async_trait]
impl InstanceStore for PgStore {
    async fn meta(&self, key: &str) -> Result<Option<String>> {
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
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
            "INSERT INTO meta (key, value) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn init_meta(&self, key: &str, value: &str) -> Result<String> {
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        let row = sqlx::query("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("value")?)
    }

    async fn hold_serve_lock(&self, shared: bool) -> Result<()> {
        let conn = self.take_serve_lock(shared).await?;
        *self.serve_conn.lock().await = Some(conn);
        // PostgreSQL restarted: the lock went with the connection. Take it again on a new
        // one, so that an instance started meanwhile is still refused (and say so if one
        // slipped in). Ends when the store is closed.
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RELOCK_CHECK).await;
                let mut held = store.serve_conn.lock().await;
                let Some(conn) = held.as_mut() else {
                    return;
                };
                if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
                    continue;
                }
                match store.take_serve_lock(shared).await {
                    Ok(conn) => {
                        tracing::info!("the PostgreSQL store came back: this instance holds its serve lock again");
                        *held = Some(conn);
                    }
                    Err(StoreError::InUse(m)) => {
                        tracing::error!("after PostgreSQL came back, the serve lock could not be taken again: {m}");
                    }
                    // Still down: the next check tries again.
                    Err(_) => {}
                }
            }
        });
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
        // One statement: the row's lock orders concurrent claimants; the WHERE is evaluated
        // against the row as the winner left it.
        let done = sqlx::query(
            "INSERT INTO sync_leases (tenant_id, forest, holder, until_ms) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id, forest) DO UPDATE SET holder = $3, until_ms = $4
             WHERE sync_leases.holder = $3 OR sync_leases.until_ms <= $5",
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
        sqlx::query("DELETE FROM sync_leases WHERE tenant_id = $1 AND forest = $2 AND holder = $3")
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
        // One round trip: the function takes the account's advisory lock, then inserts under
        // the threshold with a snapshot taken after the lock (migration 2 explains why).
        let taken: bool =
            sqlx::query_scalar("SELECT passthru_take_check_place($1, $2, $3, $4, $5, $6, $7, $8)")
                .bind(id.to_string())
                .bind(tenant_id.to_string())
                .bind(account)
                .bind(expires_ms)
                .bind(now)
                .bind(now_ms)
                .bind(now - crate::store::lockout::FAILURE_WINDOW_SECS)
                .bind(i64::from(threshold.max(1)))
                .fetch_one(&self.pool)
                .await?;
        Ok(taken.then_some(id))
    }

    async fn give_back_check_place(&self, place: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM lockout_places WHERE id = $1")
            .bind(place.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn purge_check_places(&self, now_ms: i64) -> Result<u64> {
        let r = sqlx::query("DELETE FROM lockout_places WHERE expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected())
    }
}

/// How often an instance checks that the connection holding its serve lock is alive.
const RELOCK_CHECK: std::time::Duration = std::time::Duration::from_secs(5);

impl PgStore {
    /// Takes the serve lock on a connection of its own, out of the pool, for the life of the
    /// process: the lock goes with it, at exit or kill -9 (the server sees the connection
    /// close).
    async fn take_serve_lock(&self, shared: bool) -> Result<sqlx::PgConnection> {
        let mut conn = self.pool.acquire().await?.detach();
        // Keyed by the database and schema: deployments in other databases never collide.
        let sql = if shared {
            "SELECT pg_try_advisory_lock_shared(hashtextextended(current_database() || '/' || current_schema(), $1))"
        } else {
            "SELECT pg_try_advisory_lock(hashtextextended(current_database() || '/' || current_schema(), $1))"
        };
        let got: bool = sqlx::query_scalar(sql)
            .bind(SERVE_LOCK)
            .fetch_one(&mut conn)
            .await?;
        if !got {
            let url = &self.url_redacted;
            return Err(StoreError::InUse(if shared {
                format!("an instance without --bus already serves the PostgreSQL store {url}: restart it with --bus nats://HOST:PORT (the bus this instance names) before starting more instances")
            } else {
                format!("another passthru-cloud instance already serves the PostgreSQL store {url}. Every instance of a deployment needs --bus nats://HOST:PORT (the same NATS server for all), so that sign-ins reach the agents connected to any of them: start this one, and restart the others, with --bus")
            }));
        }
        Ok(conn)
    }
}
