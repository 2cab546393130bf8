//! The sign-in log.

use async_trait::async_trait;
use uuid::Uuid;

use super::portal::{FailureCount, MinuteCount};
use super::*;

/// The sign-in log: writing batches, reading with filters, the portal's aggregates,
/// retention.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait SignInLogStore: Send + Sync {
    /// Writes lines of the log (the facade's writer task calls this with batches).
    async fn write_sign_ins(&self, lines: &[(Uuid, Box<SignIn>)]) -> Result<()>;

    async fn sign_ins(&self, tenant_id: Uuid, limit: i64) -> Result<Vec<SignIn>>;

    /// Sign-in log lines matching `f`, newest first.
    async fn sign_ins_filtered(&self, tenant_id: Uuid, f: &SignInFilter) -> Result<Vec<SignIn>>;

    /// One line of the log by its id.
    async fn sign_in(&self, tenant_id: Uuid, id: i64) -> Result<Option<SignIn>>;

    /// Deletes each tenant's sign-in log lines older than its retention setting. Returns
    /// how many lines went.
    async fn purge_sign_ins(&self, now_ms: i64) -> Result<u64>;

    /// Sign-ins per minute and result since `since_ms`.
    async fn sign_ins_per_minute(&self, tenant_id: Uuid, since_ms: i64)
        -> Result<Vec<MinuteCount>>;

    /// Failed sign-ins since `since_ms` by AADSTS and Win32 code, most frequent first.
    async fn failures_by_reason(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<FailureCount>>;

    /// The latencies (ms) of the newest `limit` sign-ins since `since_ms`; only pass-through
    /// ones (answered by an agent) when `pass_through`.
    async fn sign_in_latencies(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        pass_through: bool,
        limit: i64,
    ) -> Result<Vec<i64>>;
}
