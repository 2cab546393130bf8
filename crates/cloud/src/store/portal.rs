//! Store rows of the administration portal: sign-ins in progress (state, PKCE verifier,
//! nonce), sessions (only the SHA-256 of the cookie is kept), and the dashboard's
//! aggregates over the sign-in log.

use std::future::Future;

use sqlx::Row;
use uuid::Uuid;

use super::{uuid_col, Result, Store};

/// A portal sign-in in progress, kept from the redirect to `/authorize` to the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalLogin {
    pub tenant_id: Uuid,
    /// The PKCE code verifier (its S256 challenge went to `/authorize`).
    pub verifier: String,
    /// The nonce sent to `/authorize`; the code must carry it back.
    pub nonce: String,
}

/// A signed-in portal session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalSession {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    /// The CSRF token of the session's forms.
    pub csrf: String,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// Sign-ins of one minute with one result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MinuteCount {
    /// Unix minute (`time_ms / 60000`).
    pub minute: i64,
    pub result: String,
    pub count: i64,
}

/// Failed sign-ins with one reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    pub aadsts: Option<u32>,
    pub win32: Option<u32>,
    pub count: i64,
}

/// The portal's sign-ins in progress and sessions in a store. Every backend implements it and
/// passes `store::conformance::portal` (a sign-in state taken once among many at once,
/// sessions bound to their tenant and expiring, a user's sessions ended together).
pub trait PortalStore: Send + Sync {
    /// Records a portal sign-in in progress under the SHA-256 of its `state`; expired ones go.
    fn put_portal_login(
        &self,
        state_hash: &str,
        login: &PortalLogin,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Takes (once) a live portal sign-in by the SHA-256 of its `state`.
    fn take_portal_login(
        &self,
        state_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<PortalLogin>>> + Send;

    /// Starts a portal session under the SHA-256 of its cookie; expired ones go.
    fn add_portal_session(
        &self,
        id_hash: &str,
        s: &PortalSession,
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// A live portal session by the SHA-256 of its cookie.
    fn portal_session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> impl Future<Output = Result<Option<PortalSession>>> + Send;

    /// Ends a portal session.
    fn delete_portal_session(&self, id_hash: &str) -> impl Future<Output = Result<()>> + Send;

    /// Ends every portal session of a user (blocked or deleted).
    fn delete_portal_sessions_of(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
    ) -> impl Future<Output = Result<()>> + Send;
}

impl PortalStore for Store {
    /// Records a portal sign-in in progress under the SHA-256 of its `state`; expired ones go.
    async fn put_portal_login(
        &self,
        state_hash: &str,
        login: &PortalLogin,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM portal_logins WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let cap = self.pending_cap();
        let done = sqlx::query(
            "INSERT INTO portal_logins (state_hash, tenant_id, verifier, nonce, expires_at)
             SELECT ?1, ?2, ?3, ?4, ?5
             WHERE (SELECT COUNT(*) FROM portal_logins WHERE tenant_id = ?2) < ?6",
        )
        .bind(state_hash)
        .bind(login.tenant_id.to_string())
        .bind(&login.verifier)
        .bind(&login.nonce)
        .bind(expires_at)
        .bind(cap)
        .execute(&self.pool)
        .await?;
        super::inserted_under_cap(&done, "portal sign-ins", cap)
    }

    /// Takes (once) a live portal sign-in by the SHA-256 of its `state`.
    async fn take_portal_login(&self, state_hash: &str, now: i64) -> Result<Option<PortalLogin>> {
        let row = sqlx::query(
            "DELETE FROM portal_logins WHERE state_hash = ? AND expires_at > ? RETURNING *",
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
        sqlx::query("DELETE FROM portal_sessions WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO portal_sessions (id_hash, tenant_id, user_id, csrf, auth_time, expires_at) VALUES (?, ?, ?, ?, ?, ?)",
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
        let row = sqlx::query("SELECT * FROM portal_sessions WHERE id_hash = ? AND expires_at > ?")
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
        sqlx::query("DELETE FROM portal_sessions WHERE id_hash = ?")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends every portal session of a user (blocked or deleted).
    async fn delete_portal_sessions_of(&self, tenant_id: Uuid, user_id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM portal_sessions WHERE tenant_id = ? AND user_id = ?")
            .bind(tenant_id.to_string())
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Store {
    /// Sign-ins per minute and result since `since_ms`.
    pub async fn sign_ins_per_minute(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
    ) -> Result<Vec<MinuteCount>> {
        self.flush_sign_ins().await;
        let rows = sqlx::query(
            "SELECT time_ms / 60000 AS minute, result, COUNT(*) AS n FROM signins
             WHERE tenant_id = ? AND time_ms >= ?
             GROUP BY minute, result ORDER BY minute, result",
        )
        .bind(tenant_id.to_string())
        .bind(since_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(MinuteCount {
                    minute: r.try_get("minute")?,
                    result: r.try_get("result")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Failed sign-ins since `since_ms` by AADSTS and Win32 code, most frequent first.
    pub async fn failures_by_reason(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<FailureCount>> {
        self.flush_sign_ins().await;
        let rows = sqlx::query(
            "SELECT aadsts, win32, COUNT(*) AS n FROM signins
             WHERE tenant_id = ? AND time_ms >= ? AND result <> 'success'
             GROUP BY aadsts, win32 ORDER BY n DESC, aadsts LIMIT ?",
        )
        .bind(tenant_id.to_string())
        .bind(since_ms)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(FailureCount {
                    aadsts: r.try_get::<Option<i64>, _>("aadsts")?.map(|c| c as u32),
                    win32: r.try_get::<Option<i64>, _>("win32")?.map(|c| c as u32),
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// The latencies (ms) of the newest `limit` sign-ins since `since_ms`; only pass-through
    /// ones (answered by an agent) when `pass_through`.
    pub async fn sign_in_latencies(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        pass_through: bool,
        limit: i64,
    ) -> Result<Vec<i64>> {
        self.flush_sign_ins().await;
        let rows = sqlx::query(
            "SELECT latency_ms FROM signins
             WHERE tenant_id = ? AND time_ms >= ? AND latency_ms IS NOT NULL
               AND (? = 0 OR agent_id IS NOT NULL)
             ORDER BY time_ms DESC LIMIT ?",
        )
        .bind(tenant_id.to_string())
        .bind(since_ms)
        .bind(pass_through as i64)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<i64, _>("latency_ms")?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SignIn;

    #[tokio::test]
    async fn sign_in_aggregates() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-portal-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let s = Store::open(&dir.join("t.db"), true).await?;
        let tid = Uuid::new_v4();
        let line = |t: i64, ok: bool, code: Option<u32>, agent: bool| SignIn {
            time_ms: t,
            username: "u@x".into(),
            client_id: None,
            result: if ok { "success" } else { "failure" }.into(),
            aadsts: code,
            win32: None,
            agent_id: agent.then(Uuid::new_v4),
            other_agents: Vec::new(),
            latency_ms: Some(t / 1000),
            correlation_id: "c".into(),
            client_ip: None,
        };
        for l in [
            line(60_000, true, None, true),
            line(61_000, false, Some(50126), false),
            line(62_000, false, Some(50126), true),
            line(120_000, false, Some(50053), false),
        ] {
            s.log_sign_in(tid, &l).await?;
        }
        let per = s.sign_ins_per_minute(tid, 0).await?;
        assert_eq!(per.len(), 3, "{per:?}");
        assert_eq!(per[0].minute, 1);
        assert_eq!((per[0].result.as_str(), per[0].count), ("failure", 2));
        let f = s.failures_by_reason(tid, 0, 10).await?;
        assert_eq!((f[0].aadsts, f[0].count), (Some(50126), 2));
        assert_eq!(f.len(), 2);
        assert_eq!(s.sign_in_latencies(tid, 0, true, 10).await?.len(), 2);
        assert_eq!(s.sign_in_latencies(tid, 0, false, 10).await?.len(), 4);
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
