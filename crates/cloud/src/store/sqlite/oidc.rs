//! SQLite: oidc.

use async_trait::async_trait;
use rusqlite::OptionalExtension;
use sqlx::Row;
use uuid::Uuid;

use super::inline;

use super::*;
use crate::store::oidc::*;
use crate::store::*;

#[async_trait]
impl OidcStore for SqliteStore {
    // ---- authorization requests

    /// Stores (or updates) a pending authorization request; a new one only while the tenant
    /// has fewer than the pending cap ([`StoreError::TooManyPending`] otherwise).
    async fn put_authz(&self, r: &AuthzRequest, expires_at: i64) -> Result<()> {
        let data = serde_json::to_string(r).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let cap = self.pending_cap();
        let (id, tenant) = (r.id.clone(), r.tenant_id.to_string());
        let written = self
            .inline
            .write(move |c| {
                c.prepare_cached(
                    "INSERT OR REPLACE INTO authz_requests (id, tenant_id, data, expires_at)
                     SELECT ?1, ?2, ?3, ?4
                     WHERE EXISTS (SELECT 1 FROM authz_requests WHERE id = ?1)
                        OR (SELECT COUNT(*) FROM authz_requests WHERE tenant_id = ?2) < ?5",
                )?
                .execute(rusqlite::params![id, tenant, data, expires_at, cap])
            })
            .await?;
        if written == 0 {
            return Err(StoreError::TooManyPending {
                what: "sign-ins",
                cap,
            });
        }
        Ok(())
    }

    /// A live authorization request of `tenant_id`.
    async fn authz(&self, tenant_id: Uuid, id: &str, now: i64) -> Result<Option<AuthzRequest>> {
        let (id, tenant) = (id.to_string(), tenant_id.to_string());
        let data = self
            .inline
            .read(move |c| {
                c.prepare_cached(
                    "SELECT data FROM authz_requests WHERE id = ? AND tenant_id = ? AND expires_at > ?",
                )?
                .query_row(rusqlite::params![id, tenant, now], |r| r.get::<_, String>(0))
                .optional()
            })
            .await?;
        Ok(data.and_then(|d| serde_json::from_str(&d).ok()))
    }

    async fn delete_authz(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.inline
            .write(move |c| {
                c.prepare_cached("DELETE FROM authz_requests WHERE id = ?")?
                    .execute([&id])
            })
            .await?;
        Ok(())
    }

    /// Whether any app of the tenant registered `uri` (for post-logout redirects).
    async fn redirect_uri_registered(&self, tenant_id: Uuid, uri: &str) -> Result<bool> {
        let rows = sqlx::query("SELECT redirect_uris FROM apps WHERE tenant_id = ?")
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
        let (hash, code) = (code_hash.to_string(), c.clone());
        self.inline
            .write(move |db| {
                db.prepare_cached(
                    "INSERT INTO auth_codes (code_hash, tenant_id, client_id, redirect_uri, user_id, scope, nonce, code_challenge, auth_time, expires_at)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )?
                .execute(rusqlite::params![
                    hash,
                    code.tenant_id.to_string(),
                    code.client_id,
                    code.redirect_uri,
                    code.user_id.to_string(),
                    code.scope,
                    code.nonce,
                    code.code_challenge,
                    code.auth_time,
                    code.expires_at,
                ])
            })
            .await?;
        Ok(())
    }

    /// Removes and returns a code: a code works once, whatever happens next.
    async fn take_code(&self, code_hash: &str) -> Result<Option<AuthCode>> {
        let hash = code_hash.to_string();
        self.inline
            .write(move |c| {
                c.prepare_cached("DELETE FROM auth_codes WHERE code_hash = ? RETURNING *")?
                    .query_row([&hash], |row| {
                        Ok(AuthCode {
                            tenant_id: inline::uuid(row, "tenant_id")?,
                            client_id: row.get("client_id")?,
                            redirect_uri: row.get("redirect_uri")?,
                            user_id: inline::uuid(row, "user_id")?,
                            scope: row.get("scope")?,
                            nonce: row.get("nonce")?,
                            code_challenge: row.get("code_challenge")?,
                            auth_time: row.get("auth_time")?,
                            expires_at: row.get("expires_at")?,
                        })
                    })
                    .optional()
            })
            .await
    }

    // ---- sessions

    async fn add_session(&self, id_hash: &str, s: &SessionRecord) -> Result<()> {
        let (hash, tenant, user) = (
            id_hash.to_string(),
            s.tenant_id.to_string(),
            s.user_id.to_string(),
        );
        let (auth_time, expires_at) = (s.auth_time, s.expires_at);
        self.inline
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO sessions (id_hash, tenant_id, user_id, auth_time, expires_at) VALUES (?, ?, ?, ?, ?)",
                )?
                .execute(rusqlite::params![hash, tenant, user, auth_time, expires_at])
            })
            .await?;
        Ok(())
    }

    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id_hash = ? AND expires_at > ?")
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
        sqlx::query("DELETE FROM sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // ---- refresh tokens

    async fn add_refresh_token(&self, token_hash: &str, rec: &RefreshRecord) -> Result<()> {
        let (hash, rec) = (token_hash.to_string(), rec.clone());
        self.inline
            .write(move |c| {
                c.prepare_cached(
                    "INSERT INTO refresh_tokens (token_hash, tenant_id, user_id, client_id, scope, expires_at, family, auth_time)
                     VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                )?
                .execute(rusqlite::params![
                    hash,
                    rec.tenant_id.to_string(),
                    rec.user_id.to_string(),
                    rec.client_id,
                    rec.scope,
                    rec.expires_at,
                    rec.family,
                    rec.auth_time,
                ])
            })
            .await?;
        Ok(())
    }

    /// Presents a refresh token: a live one is marked used (rotation); one already used
    /// revokes its whole family (a stolen token and its successors die together).
    async fn use_refresh_token(&self, token_hash: &str, now: i64) -> Result<RefreshUse> {
        let hash = token_hash.to_string();
        // One atomic statement marks the token used and tells how often it was presented;
        // a second presentation deletes the family in the same transaction.
        self.inline
            .write(move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let found = tx
                    .prepare_cached(
                        "UPDATE refresh_tokens SET used = used + 1 WHERE token_hash = ?
                         RETURNING tenant_id, user_id, client_id, scope, expires_at, family, auth_time, used",
                    )?
                    .query_row([&hash], |row| {
                        Ok((
                            RefreshRecord {
                                tenant_id: inline::uuid(row, "tenant_id")?,
                                user_id: inline::uuid(row, "user_id")?,
                                client_id: row.get("client_id")?,
                                scope: row.get("scope")?,
                                expires_at: row.get("expires_at")?,
                                family: row.get("family")?,
                                auth_time: row.get("auth_time")?,
                            },
                            row.get::<_, i64>("used")?,
                        ))
                    })
                    .optional()?;
                let Some((rec, used)) = found else {
                    return Ok(RefreshUse::Unknown);
                };
                if used > 1 {
                    tx.prepare_cached("DELETE FROM refresh_tokens WHERE family = ?")?
                        .execute([&rec.family])?;
                    tx.commit()?;
                    return Ok(RefreshUse::Reused);
                }
                tx.commit()?;
                if rec.expires_at <= now {
                    return Ok(RefreshUse::Unknown);
                }
                Ok(RefreshUse::Fresh(rec))
            })
            .await
    }
}
