//! Store rows of the OpenID Connect flows: pending authorization requests, authorization
//! codes, browser sessions and refresh tokens. Every secret (code, session id, refresh token)
//! is stored only as its SHA-256; every row expires.

use std::future::Future;

use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use super::{uuid_col, RefreshRecord, Result, Store};

/// An authorization request between `/authorize` and the end of the sign-in pages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthzRequest {
    /// Random id carried by the sign-in pages' forms.
    pub id: String,
    pub tenant_id: Uuid,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `query` or `form_post`.
    pub response_mode: String,
    pub prompt: Option<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// CSRF token every form of this request must echo.
    pub csrf: String,
    /// The name the user typed on the first page.
    pub username: Option<String>,
    /// Set when this sign-in approves a device code (RFC 8628) instead of answering an app.
    #[serde(default)]
    pub device_user_code: Option<String>,
    /// Set only when Active Directory answered 1330 (expired) or 1907 (must change) to this
    /// sign-in's right password: the one thing that lets this sign-in post a new password.
    #[serde(default)]
    pub password_change: Option<PasswordChangeGrant>,
}

/// What AD's 1330/1907 answer to a pending sign-in allows: changing the password of this
/// user, on the sign-in's change page, after the second factor when the user has one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PasswordChangeGrant {
    /// The cloud's record of the user AD answered for.
    pub user_id: Uuid,
    /// Their UPN (what the agent writes the password of).
    pub upn: String,
    /// Where the second factor stands.
    pub second_factor: ChangeSecondFactor,
}

/// The second factor of a sign-in that changes an expired password.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSecondFactor {
    /// The user has no second factor to prove first (none enrolled, or MFA off): the
    /// change comes first, then the sign-in's usual steps (an enrolment, say).
    NotAsked,
    /// The user must prove their second factor before the new password is written.
    Pending,
    /// Proved during this sign-in: after the change the sign-in completes.
    Proved,
}

/// An issued authorization code (stored as its hash; used once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub tenant_id: Uuid,
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: Uuid,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// A browser session (single sign-on across apps until logout or expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// A live token, now marked used: issue its successor in the same family.
    Fresh(RefreshRecord),
    /// A token that was already rotated: its whole family has been revoked.
    Reused,
    /// No such token (or expired and purged).
    Unknown,
}

/// Every table whose rows have an `expires_at` (Unix seconds), purged by
/// [`Store::purge_expired`].
pub(crate) const EXPIRING_TABLES: [&str; 10] = [
    "auth_codes",
    "sessions",
    "authz_requests",
    "refresh_tokens",
    "mfa_challenges",
    "device_codes",
    "password_reset_flows",
    "federation_states",
    "portal_logins",
    "portal_sessions",
];

/// The OpenID Connect state of a store: pending authorization requests, authorization codes,
/// single sign-on sessions and refresh tokens. Every backend implements it and passes
/// `store::conformance::oidc` (one-time codes, rotation and family revocation, expiry),
/// including under concurrency.
pub trait OidcStore: Send + Sync {
    /// Stores (or updates) a pending authorization request; a new one only while the tenant
    /// has fewer than the pending cap ([`StoreError::TooManyPending`] otherwise).
    fn put_authz(
        &self,
        r: &AuthzRequest,
        expires_at: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A live authorization request of `tenant_id`.
    fn authz(
        &self,
        tenant_id: Uuid,
        id: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<AuthzRequest>>> + Send;

    fn delete_authz(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Whether any app of the tenant registered `uri` (for post-logout redirects).
    fn redirect_uri_registered(
        &self,
        tenant_id: Uuid,
        uri: &str,
    ) -> impl Future<Output = Result<bool>> + Send;

    fn add_code(&self, code_hash: &str, c: &AuthCode) -> impl Future<Output = Result<()>> + Send;

    /// Removes and returns a code: a code works once, whatever happens next.
    fn take_code(&self, code_hash: &str) -> impl Future<Output = Result<Option<AuthCode>>> + Send;

    fn add_session(
        &self,
        id_hash: &str,
        s: &SessionRecord,
    ) -> impl Future<Output = Result<()>> + Send;

    fn session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<SessionRecord>>> + Send;

    fn delete_session(&self, id_hash: &str) -> impl Future<Output = Result<()>> + Send;

    fn add_refresh_token(
        &self,
        token_hash: &str,
        rec: &RefreshRecord,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Presents a refresh token: a live one is marked used (rotation); one already used
    /// revokes its whole family (a stolen token and its successors die together).
    fn use_refresh_token(
        &self,
        token_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<RefreshUse>> + Send;
}

impl OidcStore for Store {
    // ---- authorization requests

    /// Stores (or updates) a pending authorization request; a new one only while the tenant
    /// has fewer than the pending cap ([`StoreError::TooManyPending`] otherwise).
    async fn put_authz(&self, r: &AuthzRequest, expires_at: i64) -> Result<()> {
        let data = serde_json::to_string(r).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let cap = self.pending_cap();
        let done = sqlx::query(
            "INSERT OR REPLACE INTO authz_requests (id, tenant_id, data, expires_at)
             SELECT ?1, ?2, ?3, ?4
             WHERE EXISTS (SELECT 1 FROM authz_requests WHERE id = ?1)
                OR (SELECT COUNT(*) FROM authz_requests WHERE tenant_id = ?2) < ?5",
        )
        .bind(&r.id)
        .bind(r.tenant_id.to_string())
        .bind(data)
        .bind(expires_at)
        .bind(cap)
        .execute(&self.pool)
        .await?;
        super::inserted_under_cap(&done, "sign-ins", cap)
    }

    /// A live authorization request of `tenant_id`.
    async fn authz(&self, tenant_id: Uuid, id: &str, now: i64) -> Result<Option<AuthzRequest>> {
        let row = sqlx::query(
            "SELECT data FROM authz_requests WHERE id = ? AND tenant_id = ? AND expires_at > ?",
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
        sqlx::query("DELETE FROM authz_requests WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
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
        sqlx::query(
            "INSERT INTO auth_codes (code_hash, tenant_id, client_id, redirect_uri, user_id, scope, nonce, code_challenge, auth_time, expires_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
        let row = sqlx::query("DELETE FROM auth_codes WHERE code_hash = ? RETURNING *")
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
        sqlx::query("INSERT INTO sessions (id_hash, tenant_id, user_id, auth_time, expires_at) VALUES (?, ?, ?, ?, ?)")
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
        sqlx::query(
            "INSERT INTO refresh_tokens (token_hash, tenant_id, user_id, client_id, scope, expires_at, family, auth_time)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
            "UPDATE refresh_tokens SET used = used + 1 WHERE token_hash = ?
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
            sqlx::query("DELETE FROM refresh_tokens WHERE family = ?")
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

impl Store {
    /// Removes the expired rows of every table with an expiry: authorization codes, browser
    /// sessions, pending authorizations, refresh tokens, MFA challenges, device codes,
    /// password reset flows, federation and portal sign-ins in progress, portal sessions.
    /// Returns how many rows went.
    pub async fn purge_expired(&self, now: i64) -> Result<u64> {
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
}

#[cfg(test)]
impl Store {
    /// Rows of `table` (one of [`EXPIRING_TABLES`]).
    pub(crate) async fn count_rows(&self, table: &str) -> Result<i64> {
        let row = sqlx::query(&format!("SELECT COUNT(*) AS n FROM {table}"))
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("n")?)
    }
}
