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
