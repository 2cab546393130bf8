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
/// The `meta` key of the check value of the key that seals the deployment's secrets
/// (`SecretBox::key_check`): instances with another key are refused.
pub const KEY_CHECK: &str = "key_check";

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
    async fn release_sync_lease(&self, tenant_id: Uuid, forest: &str, holder: Uuid) -> Result<()>;

    /// Takes one of an account's places for a password check in flight, shared by every
    /// instance: granted only while the account is not locked at `now` (seconds) and its
    /// places not lapsed at `now_ms` plus its failures in the window stay under
    /// `threshold`, all read in the one atomic step that takes it. A failing check records
    /// its failure before it gives its place back, so checks in flight and failures on record
    /// never pass the threshold together. A place not given back (its instance died) lapses
    /// at `expires_ms`. Returns the place, or `None` (all taken, or locked).
    async fn take_check_place(
        &self,
        tenant_id: Uuid,
        account: &str,
        threshold: u32,
        now: i64,
        now_ms: i64,
        expires_ms: i64,
    ) -> Result<Option<Uuid>>;

    /// Gives a place of [`InstanceStore::take_check_place`] back.
    async fn give_back_check_place(&self, place: Uuid) -> Result<()>;

    /// Removes places that lapsed at `now_ms`. Returns how many went.
    async fn purge_check_places(&self, now_ms: i64) -> Result<u64>;

    /// The deployment's id: made (random) on first use, the same ever after.
    async fn deployment_id(&self) -> Result<String> {
        self.init_meta(DEPLOYMENT_ID, &Uuid::new_v4().simple().to_string())
            .await
    }
}
