//! Store-wide upkeep: purging expired rows, the pending-row cap, closing.

use async_trait::async_trait;

use super::Result;

/// Store-wide upkeep every backend offers.
#[async_trait]
pub trait HousekeepingStore: Send + Sync {
    /// Removes the expired rows of every table with an expiry: authorization codes, browser
    /// sessions, pending authorizations, refresh tokens, MFA challenges, device codes,
    /// password reset flows, federation and portal sign-ins in progress, portal sessions.
    /// Returns how many rows went.
    async fn purge_expired(&self, now: i64) -> Result<u64>;

    /// Rows of `table` (one of [`EXPIRING_TABLES`]).
    async fn count_rows(&self, table: &str) -> Result<i64>;

    /// Sets how many pending rows (sign-ins in progress) a tenant may have in each table;
    /// a start past it fails with [`super::StoreError::TooManyPending`].
    fn set_pending_rows_per_tenant(&self, cap: i64);

    /// Closes the backend's connections (after the facade wrote its queued log lines).
    async fn close(&self);
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
