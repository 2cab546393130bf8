//! Password writeback in the store: the per-user "writeback allowed" flag, what happens
//! after a password was written (sessions end, the smart lockout counter is forgotten), and
//! self-service reset flows. No password is stored, in any form.

use async_trait::async_trait;

use uuid::Uuid;

use super::Result;

/// A self-service reset under way: who is resetting, and whether they proved their second
/// factor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetFlow {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub csrf: String,
    pub verified: bool,
    pub wrong_codes: u32,
}

/// Password writeback's state in a store: which users may change or reset their password from
/// the cloud, when a password was last reset, and self-service reset flows in progress. Every
/// backend implements it and passes `store::conformance::writeback`.
#[async_trait]
pub trait WritebackStore: Send + Sync {
    /// Allows or forbids a user's self-service password writeback. `false` when no such
    /// user exists.
    async fn set_writeback_allowed(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        allowed: bool,
        now: i64,
    ) -> Result<bool>;

    /// After a reset: the user's sessions, refresh tokens and codes end, and smart lockout
    /// forgets their wrong passwords (the new password is known to be right).
    async fn password_was_reset(&self, tenant_id: Uuid, user_id: Uuid, upn: &str) -> Result<()>;

    /// Starts a reset flow for a user; `id_hash` is the hash of the flow's id (the id itself
    /// is only in the user's browser).
    async fn start_reset_flow(
        &self,
        id_hash: &str,
        flow: &ResetFlow,
        expires_at: i64,
    ) -> Result<()>;

    /// A live reset flow of the tenant.
    async fn reset_flow(
        &self,
        tenant_id: Uuid,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<ResetFlow>>;

    /// Records the outcome of a code check in a flow: verified, or one more wrong code.
    async fn reset_flow_code(&self, id_hash: &str, verified: bool) -> Result<()>;

    /// Ends a flow (done, or given up), and any expired ones.
    async fn end_reset_flow(&self, id_hash: &str, now: i64) -> Result<()>;
}
