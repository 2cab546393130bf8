//! PostgreSQL: oidc.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::oidc::*;
use crate::store::*;

#[async_trait]
impl OidcStore for PgStore {
    // ---- authorization requests

    /// Stores (or updates) a pending authorization request; a new one only while the tenant
    /// has fewer than the pending cap ([`StoreError::TooManyPending`] otherwise).
    async fn put_authz(&self, r: &AuthzRequest, expires_at: i64) -> Result<()> {
        let data = serde_json::to_string(r).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let cap = self.pending_cap();
        // The count and the insert under the tenant's lock: parallel starts cannot all pass
        // the count.
        let mut tx = self.write_tx(Lock::Tenant(r.tenant_id)).await?;
        let done = sqlx::query(
            "INSERT INTO authz_requests (id, tenant_id, data, expires_at)
             SELECT $1, $2, $3, $4
             WHERE EXISTS (SELECT 1 FROM authz_requests WHERE id = $1)
                OR (SELECT COUNT(*) FROM authz_requests WHERE tenant_id = $2) < $5
             ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id,
                 data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(&r.id)
        .bind(r.tenant_id.to_string())
        .bind(data)
        .bind(expires_at)
        .bind(cap)
        .execute(&mut *tx)
        .await?;
        super::inserted_under_cap(&done, "sign-ins", cap)?;
        tx.commit().await?;
        Ok(())
    }

    /// A live authorization request of `tenant_id`.
    async fn authz(&self, tenant_id: Uuid, id: &str, now: i64) -> Result<Option<AuthzRequest>> {
        let row = sqlx::query(
            "SELECT data FROM authz_requests WHERE id = $1 AND tenant_id = $2 AND expires_at > $3",
        )
        .bind(id)
        .bind(tenant_id.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| r.try_get::<String, _>("data"))
            .transpose()?
            .and_then(|d| serde_json::from_str(&d).ok()))
    }

    async fn delete_authz(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM authz_requests WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Whether any app of the tenant registered `uri` (for post-logout redirects).
    async fn redirect_uri_registered(&self, tenant_id: Uuid, uri: &str) -> Result<bool> {
        let rows = sqlx::query("SELECT redirect_uris FROM apps WHERE tenant_id = $1")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().any(|r| {
            r.try_get::<String, _>("redirect_uris")
                .ok()
                .and_then(|j| serde_json::from_str::<Vec<String>>(&j).ok())
                .is_some_and(|uris| uris.iter().any(|u| u == uri))
        }))
    }

    // ---- authorization codes

    async fn add_code(&self, code_hash: &str, c: &AuthCode) -> Result<()> {
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, tenant_id, client_id, redirect_uri, user_id, scope, nonce, code_challenge, auth_time, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(code_hash)
        .bind(c.tenant_id.to_string())
        .bind(&c.client_id)
        .bind(&c.redirect_uri)
        .bind(c.user_id.to_string())
        .bind(&c.scope)
        .bind(&c.nonce)
        .bind(&c.code_challenge)
        .bind(c.auth_time)
        .bind(c.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Removes and returns a code: a code works once, whatever happens next.
    async fn take_code(&self, code_hash: &str) -> Result<Option<AuthCode>> {
        let row = sqlx::query("DELETE FROM auth_codes WHERE code_hash = $1 RETURNING *")
            .bind(code_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(AuthCode {
                tenant_id: uuid_col(&row, "tenant_id")?,
                client_id: row.try_get("client_id")?,
                redirect_uri: row.try_get("redirect_uri")?,
                user_id: uuid_col(&row, "user_id")?,
                scope: row.try_get("scope")?,
                nonce: row.try_get("nonce")?,
                code_challenge: row.try_get("code_challenge")?,
                auth_time: row.try_get("auth_time")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    // ---- sessions

    async fn add_session(&self, id_hash: &str, s: &SessionRecord) -> Result<()> {
        sqlx::query("INSERT INTO sessions (id_hash, tenant_id, user_id, auth_time, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(id_hash)
            .bind(s.tenant_id.to_string())
            .bind(s.user_id.to_string())
            .bind(s.auth_time)
            .bind(s.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id_hash = $1 AND expires_at > $2")
            .bind(id_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(SessionRecord {
                tenant_id: uuid_col(&row, "tenant_id")?,
                user_id: uuid_col(&row, "user_id")?,
                auth_time: row.try_get("auth_time")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_session(&self, id_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- refresh tokens

    async fn add_refresh_token(&self, token_hash: &str, rec: &RefreshRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, tenant_id, user_id, client_id, scope, expires_at, family, auth_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(token_hash)
        .bind(rec.tenant_id.to_string())
        .bind(rec.user_id.to_string())
        .bind(&rec.client_id)
        .bind(&rec.scope)
        .bind(rec.expires_at)
        .bind(&rec.family)
        .bind(rec.auth_time)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Presents a refresh token: a live one is marked used (rotation); one already used
    /// revokes its whole family (a stolen token and its successors die together).
    async fn use_refresh_token(&self, token_hash: &str, now: i64) -> Result<RefreshUse> {
        // One atomic statement marks the token used and tells how often it was presented:
        // no transaction round trips on the hot path.
        let row = sqlx::query(
            "UPDATE refresh_tokens SET used = used + 1 WHERE token_hash = $1
             RETURNING tenant_id, user_id, client_id, scope, expires_at, family, auth_time, used",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(RefreshUse::Unknown);
        };
        let rec = RefreshRecord {
            tenant_id: uuid_col(&row, "tenant_id")?,
            user_id: uuid_col(&row, "user_id")?,
            client_id: row.try_get("client_id")?,
            scope: row.try_get("scope")?,
            expires_at: row.try_get("expires_at")?,
            family: row.try_get("family")?,
            auth_time: row.try_get("auth_time")?,
        };
        if row.try_get::<i64, _>("used")? > 1 {
            sqlx::query("DELETE FROM refresh_tokens WHERE family = $1")
                .bind(&rec.family)
                .execute(&self.pool)
                .await?;
            return Ok(RefreshUse::Reused);
        }
        if rec.expires_at <= now {
            return Ok(RefreshUse::Unknown);
        }
        Ok(RefreshUse::Fresh(rec))
    }
}
