//! PostgreSQL: device.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::device::*;

#[async_trait]
impl DeviceStore for PgStore {
    /// Stores a new device authorization while the tenant has fewer than the pending cap
    /// ([`super::StoreError::TooManyPending`] otherwise).
    async fn add_device_code(&self, device_hash: &str, d: &DeviceCode) -> Result<()> {
        let cap = self.pending_cap();
        // The count and the insert under the tenant's lock: parallel starts cannot all pass
        // the count.
        let mut tx = self.write_tx(Lock::Tenant(d.tenant_id)).await?;
        let done = sqlx::query(
            "INSERT INTO device_codes (device_hash, user_code, tenant_id, client_id, scope, expires_at, interval_secs)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE (SELECT COUNT(*) FROM device_codes WHERE tenant_id = $3) < $8",
        )
        .bind(device_hash)
        .bind(&d.user_code)
        .bind(d.tenant_id.to_string())
        .bind(&d.client_id)
        .bind(&d.scope)
        .bind(d.expires_at)
        .bind(d.interval_secs)
        .bind(cap)
        .execute(&mut *tx)
        .await
        .map_err(|e| super::conflict(e, "user code".into()))?;
        super::inserted_under_cap(&done, "device code sign-ins", cap)?;
        tx.commit().await?;
        Ok(())
    }

    /// A live, not yet approved device authorization by its user code.
    async fn pending_device_by_user_code(
        &self,
        tenant_id: Uuid,
        user_code: &str,
        now: i64,
    ) -> Result<Option<DeviceCode>> {
        let row = sqlx::query(
            "SELECT * FROM device_codes WHERE user_code = $1 AND tenant_id = $2 AND expires_at > $3 AND user_id IS NULL",
        )
        .bind(user_code)
        .bind(tenant_id.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(row_to_device).transpose()
    }

    /// Records the user who approved a pending device authorization.
    async fn approve_device(
        &self,
        tenant_id: Uuid,
        user_code: &str,
        user_id: Uuid,
        auth_time: i64,
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE device_codes SET user_id = $1, auth_time = $2 WHERE user_code = $3 AND tenant_id = $4 AND user_id IS NULL",
        )
        .bind(user_id.to_string())
        .bind(auth_time)
        .bind(user_code)
        .bind(tenant_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// A poll by the device: returns the row (with the previous poll time) and records this
    /// poll; an approved row is removed, so its tokens are issued once.
    async fn poll_device(&self, device_hash: &str, now: i64) -> Result<Option<DeviceCode>> {
        // The row's lock (FOR UPDATE): a parallel poll waits, then finds the approved row
        // gone.
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT * FROM device_codes WHERE device_hash = $1 FOR UPDATE")
            .bind(device_hash)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(d) = row.as_ref().map(row_to_device).transpose()? else {
            return Ok(None);
        };
        if d.approved.is_some() || d.expires_at <= now {
            sqlx::query("DELETE FROM device_codes WHERE device_hash = $1")
                .bind(device_hash)
                .execute(&mut *tx)
                .await?;
        } else {
            sqlx::query("UPDATE device_codes SET last_poll = $1 WHERE device_hash = $2")
                .bind(now)
                .bind(device_hash)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(Some(d))
    }
}

pub(super) fn row_to_device(row: &sqlx::postgres::PgRow) -> Result<DeviceCode> {
    let user: Option<String> = row.try_get("user_id")?;
    let auth_time: Option<i64> = row.try_get("auth_time")?;
    Ok(DeviceCode {
        tenant_id: uuid_col(row, "tenant_id")?,
        client_id: row.try_get("client_id")?,
        scope: row.try_get("scope")?,
        user_code: row.try_get("user_code")?,
        expires_at: row.try_get("expires_at")?,
        interval_secs: row.try_get("interval_secs")?,
        last_poll: row.try_get("last_poll")?,
        approved: match (user.and_then(|u| Uuid::parse_str(&u).ok()), auth_time) {
            (Some(u), Some(t)) => Some((u, t)),
            _ => None,
        },
    })
}
