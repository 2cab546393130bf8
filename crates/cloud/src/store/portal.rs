//! Store rows of the administration portal: sign-ins in progress (state, PKCE verifier,
//! nonce), sessions (only the SHA-256 of the cookie is kept), and the dashboard's
//! aggregates over the sign-in log.

use async_trait::async_trait;

use uuid::Uuid;

use super::Result;

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
#[async_trait]
pub trait PortalStore: Send + Sync {
    /// Records a portal sign-in in progress under the SHA-256 of its `state`; expired ones go.
    async fn put_portal_login(
        &self,
        state_hash: &str,
        login: &PortalLogin,
        expires_at: i64,
        now: i64,
    ) -> Result<()>;

    /// Takes (once) a live portal sign-in by the SHA-256 of its `state`.
    async fn take_portal_login(&self, state_hash: &str, now: i64) -> Result<Option<PortalLogin>>;

    /// Starts a portal session under the SHA-256 of its cookie; expired ones go.
    async fn add_portal_session(&self, id_hash: &str, s: &PortalSession, now: i64) -> Result<()>;

    /// A live portal session by the SHA-256 of its cookie.
    async fn portal_session(&self, id_hash: &str, now: i64) -> Result<Option<PortalSession>>;

    /// Ends a portal session.
    async fn delete_portal_session(&self, id_hash: &str) -> Result<()>;

    /// Ends every portal session of a user (blocked or deleted).
    async fn delete_portal_sessions_of(&self, tenant_id: Uuid, user_id: Uuid) -> Result<()>;
}

#[cfg(test)]
mod tests {
    use crate::store::SignIn;
    use crate::store::*;
    use uuid::Uuid;

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
