//! PostgreSQL: writeback.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::lockout::{account_key, fold_name};
use crate::store::writeback::*;

#[async_trait]
impl WritebackStore for PgStore {
    /// Allows or forbids a user's self-service password writeback. `false` when no such
    /// user exists.
    async fn set_writeback_allowed(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        allowed: bool,
        now: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE users SET writeback_allowed = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
        )
        .bind(i64::from(allowed))
        .bind(now)
        .bind(tenant_id.to_string())
        .bind(user_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// After a reset: the user's sessions, refresh tokens and codes end, and smart lockout
    /// forgets their wrong passwords (the new password is known to be right).
    async fn password_was_reset(&self, tenant_id: Uuid, user_id: Uuid, upn: &str) -> Result<()> {
        // Deletes only (no read decides them): no lock beyond the rows'.
        let mut tx = self.pool.begin().await?;
        Self::end_sessions(&mut tx, tenant_id, user_id).await?;
        // The account's smart lockout count, and any kept under the folded UPN.
        sqlx::query("DELETE FROM sign_in_lockouts WHERE tenant_id = $1 AND username IN ($2::citext, $3::citext)")
            .bind(tenant_id.to_string())
            .bind(account_key(Some(user_id), upn))
            .bind(fold_name(upn))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts a reset flow for a user; `id_hash` is the hash of the flow's id (the id itself
    /// is only in the user's browser).
    async fn start_reset_flow(
        &self,
        id_hash: &str,
        flow: &ResetFlow,
        expires_at: i64,
    ) -> Result<()> {
        let cap = self.pending_cap();
        // The count and the insert under the tenant's lock: parallel starts cannot all pass
        // the count.
        let mut tx = self.write_tx(Lock::Tenant(flow.tenant_id)).await?;
        let done = sqlx::query(
            "INSERT INTO password_reset_flows (id_hash, tenant_id, user_id, csrf, verified, wrong_codes, expires_at)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE (SELECT COUNT(*) FROM password_reset_flows WHERE tenant_id = $2) < $8",
        )
        .bind(id_hash)
        .bind(flow.tenant_id.to_string())
        .bind(flow.user_id.to_string())
        .bind(&flow.csrf)
        .bind(i64::from(flow.verified))
        .bind(i64::from(flow.wrong_codes))
        .bind(expires_at)
        .bind(cap)
        .execute(&mut *tx)
        .await?;
        super::inserted_under_cap(&done, "password resets", cap)?;
        tx.commit().await?;
        Ok(())
    }

    /// A live reset flow of the tenant.
    async fn reset_flow(
        &self,
        tenant_id: Uuid,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<ResetFlow>> {
        let row = sqlx::query(
            "SELECT * FROM password_reset_flows WHERE id_hash = $1 AND tenant_id = $2 AND expires_at > $3",
        )
        .bind(id_hash)
        .bind(tenant_id.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<ResetFlow> {
            Ok(ResetFlow {
                tenant_id: uuid_col(&r, "tenant_id")?,
                user_id: uuid_col(&r, "user_id")?,
                csrf: r.try_get("csrf")?,
                verified: r.try_get::<i64, _>("verified")? != 0,
                wrong_codes: u32::try_from(r.try_get::<i64, _>("wrong_codes")?).unwrap_or(u32::MAX),
            })
        })
        .transpose()
    }

    /// Records the outcome of a code check in a flow: verified, or one more wrong code.
    async fn reset_flow_code(&self, id_hash: &str, verified: bool) -> Result<()> {
        let sql = if verified {
            "UPDATE password_reset_flows SET verified = 1 WHERE id_hash = $1"
        } else {
            "UPDATE password_reset_flows SET wrong_codes = wrong_codes + 1 WHERE id_hash = $1"
        };
        sqlx::query(sql).bind(id_hash).execute(&self.pool).await?;
        Ok(())
    }

    /// Ends a flow (done, or given up), and any expired ones.
    async fn end_reset_flow(&self, id_hash: &str, now: i64) -> Result<()> {
        sqlx::query("DELETE FROM password_reset_flows WHERE id_hash = $1 OR expires_at <= $2")
            .bind(id_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
