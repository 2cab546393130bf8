//! What the instances of one deployment share through the store: the deployment's settings
//! (its id, which names its subjects on the bus; the marker `migrate` leaves), the right to
//! serve the store, and directory-sync leases with an expiry.

use async_trait::async_trait;
use uuid::Uuid;

use super::Result;

/// The `meta` key of the deployment's id.
pub const DEPLOYMENT_ID: &str = "deployment_id";
/// The `meta` key `migrate` sets in a SQLite store it moved: the PostgreSQL store it went to
/// (without any password).
pub const MOVED_TO: &str = "moved_to";

/// How the instances of one deployment share a store.
#[async_trait]
pub trait InstanceStore: Send + Sync {
    /// A deployment setting (`meta`), if set.
    async fn meta(&self, key: &str) -> Result<Option<String>>;

    /// Sets a deployment setting, replacing its value.
    async fn set_meta(&self, key: &str, value: &str) -> Result<()>;

    /// Sets `key` to `value` unless it is set; returns the value it has now (the first one
    /// written wins when several instances race).
    async fn init_meta(&self, key: &str, value: &str) -> Result<String>;

    /// Takes the right to serve this store for the life of the process (or of the backend).
    /// `shared`: this instance has a bus, so other instances with a bus may serve too; else
    /// it must be the only one. Refused with [`super::StoreError::InUse`], whose message
    /// says what to do.
    async fn hold_serve_lock(&self, shared: bool) -> Result<()>;

    /// Claims, or renews, the directory-sync lease of a tenant's forest for `holder` (an
    /// instance) until `until_ms`: true when `holder` holds it now (it was free, expired at
    /// `now_ms`, or already its own). Exactly one of many concurrent claimants wins.
    async fn claim_sync_lease(
        &self,
        tenant_id: Uuid,
        forest: &str,
        holder: Uuid,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<bool>;

    /// Gives the lease back if `holder` holds it (its agent left, or it stops).
    async fn release_sync_lease(&self, tenant_id: Uuid, forest: &str, holder: Uuid)
        -> Result<()>;

    /// The deployment's id: made (random) on first use, the same ever after.
    async fn deployment_id(&self) -> Result<String> {
        self.init_meta(DEPLOYMENT_ID, &Uuid::new_v4().simple().to_string())
            .await
    }
}
