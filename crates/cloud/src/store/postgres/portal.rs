//! PostgreSQL: portal.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::portal::*;

#[async_trait]
impl PortalStore for PgStore {
    /// Records a portal sign-in in progress under the SHA-256 of its `state`; expired ones go.
    async fn put_portal_login(
        &self,
        state_hash: &str,
        login: &PortalLogin,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM portal_logins WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let cap = self.pending_cap();
        // The count and the insert under the tenant's lock: parallel starts cannot all pass
        // the count.
        let mut tx = self.write_tx(Lock::Tenant(login.tenant_id)).await?;
        let done = sqlx::query(
            "INSERT INTO portal_logins (state_hash, tenant_id, verifier, nonce, expires_at)
             SELECT $1, $2, $3, $4, $5
             WHERE (SELECT COUNT(*) FROM portal_logins WHERE tenant_id = $2) < $6",
        )
        .bind(state_hash)
        .bind(login.tenant_id.to_string())
        .bind(&login.verifier)
        .bind(&login.nonce)
        .bind(expires_at)
        .bind(cap)
        .execute(&mut *tx)
        .await?;
        super::inserted_under_cap(&done, "portal sign-ins", cap)?;
        tx.commit().await?;
        Ok(())
    }

    /// Takes (once) a live portal sign-in by the SHA-256 of its `state`.
    async fn take_portal_login(&self, state_hash: &str, now: i64) -> Result<Option<PortalLogin>> {
        let row = sqlx::query(
            "DELETE FROM portal_logins WHERE state_hash = $1 AND expires_at > $2 RETURNING *",
        )
        .bind(state_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(PortalLogin {
                tenant_id: uuid_col(&row, "tenant_id")?,
                verifier: row.try_get("verifier")?,
                nonce: row.try_get("nonce")?,
            })
        })
        .transpose()
    }

    /// Starts a portal session under the SHA-256 of its cookie; expired ones go.
    async fn add_portal_session(&self, id_hash: &str, s: &PortalSession, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO portal_sessions (id_hash, tenant_id, user_id, csrf, auth_time, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id_hash)
        .bind(s.tenant_id.to_string())
        .bind(s.user_id.to_string())
        .bind(&s.csrf)
        .bind(s.auth_time)
        .bind(s.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A live portal session by the SHA-256 of its cookie.
    async fn portal_session(&self, id_hash: &str, now: i64) -> Result<Option<PortalSession>> {
        let row =
            sqlx::query("SELECT * FROM portal_sessions WHERE id_hash = $1 AND expires_at > $2")
                .bind(id_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|row| {
            Ok(PortalSession {
                tenant_id: uuid_col(&row, "tenant_id")?,
                user_id: uuid_col(&row, "user_id")?,
                csrf: row.try_get("csrf")?,
                auth_time: row.try_get("auth_time")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Ends a portal session.
    async fn delete_portal_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every portal session of a user (blocked or deleted).
    async fn delete_portal_sessions_of(&self, tenant_id: Uuid, user_id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id.to_string())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
