//! Device authorization grant rows (RFC 8628): the device code is stored as its hash, the
//! user code in clear (it is short-lived and only useful with a sign-in).

use async_trait::async_trait;

use uuid::Uuid;

use super::Result;

/// A pending or approved device authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceCode {
    pub tenant_id: Uuid,
    pub client_id: String,
    pub scope: String,
    pub user_code: String,
    pub expires_at: i64,
    pub interval_secs: i64,
    pub last_poll: i64,
    /// Set once a user signed in and approved.
    pub approved: Option<(Uuid, i64)>,
}

/// The device authorization grant's rows in a store: a device code (by its hash) and its
/// user code, pending until a user approves it, redeemed once. Every backend implements it
/// and passes `store::conformance::device` (one approval among many at once, one redemption).
#[async_trait]
pub trait DeviceStore: Send + Sync {
    /// Stores a new device authorization while the tenant has fewer than the pending cap
    /// ([`super::StoreError::TooManyPending`] otherwise).
    async fn add_device_code(&self, device_hash: &str, d: &DeviceCode) -> Result<()>;

    /// A live, not yet approved device authorization by its user code.
    async fn pending_device_by_user_code(
        &self,
        tenant_id: Uuid,
        user_code: &str,
        now: i64,
    ) -> Result<Option<DeviceCode>>;

    /// Records the user who approved a pending device authorization.
    async fn approve_device(
        &self,
        tenant_id: Uuid,
        user_code: &str,
        user_id: Uuid,
        auth_time: i64,
    ) -> Result<bool>;

    /// A poll by the device: returns the row (with the previous poll time) and records this
    /// poll; an approved row is removed, so its tokens are issued once.
    async fn poll_device(&self, device_hash: &str, now: i64) -> Result<Option<DeviceCode>>;
}
