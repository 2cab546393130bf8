//! Directory sync in the store: applying an agent's batches (users, groups, membership,
//! deletions), ending a run (reconciliation, watermark), and each forest's sync state.
//!
//! Synced objects are keyed by objectGUID within the tenant; a user's cloud object id derives
//! from its source anchor (ms-DS-ConsistencyGuid, else objectGUID), the same id a pass-through
//! sign-in gives, so a user who signed in before the first sync keeps its id.
//!
//! About 600 lines: applying a batch is one transaction over users, groups, membership and
//! deletions, whose rules read best side by side; the group queries are in `groups.rs`.

use async_trait::async_trait;
use passthru_proto::sync::{SyncBatch, SyncDone, SyncUser, Watermark};
use serde::Serialize;

pub use crate::model::records::SyncedAttributes;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Result;

/// The stable object id of an on-premises user or group: derived from the tenant and the
/// source anchor.
pub fn onprem_object_id(tenant_id: Uuid, anchor: Uuid) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"passthru/oid");
    h.update(tenant_id.as_bytes());
    h.update(anchor.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Uuid::new_v8(b)
}

/// A forest's sync state.
#[derive(Debug, Clone, Serialize)]
pub struct SyncForestState {
    pub forest: String,
    /// The agent holding the lease (the one that syncs), if any.
    pub holder_agent_id: Option<Uuid>,
    pub lease_since: Option<i64>,
    #[serde(skip)]
    pub watermark: Option<Watermark>,
    pub interval_seconds: u64,
    pub last_full_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub last_error: Option<String>,
    /// Objects read by the last successful run.
    pub last_objects: Option<i64>,
    /// Objects in the forest at the last full import.
    pub full_total: Option<i64>,
    /// Objects the last runs could not apply, and why (a UPN taken by a cloud user, ...).
    pub conflicts: Vec<String>,
}

/// What applying a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub users: u64,
    pub groups: u64,
    pub deleted: u64,
    /// Objects not applied, and why.
    pub conflicts: Vec<String>,
    /// UPNs of users whose password was changed in AD since the last run.
    pub password_changed: Vec<String>,
}

/// The UPN a synced user gets: its userPrincipalName, else the implicit one
/// (sAMAccountName@the domain's DNS name, from the DN's DC= parts).
pub fn effective_upn(u: &SyncUser) -> Option<String> {
    if let Some(upn) = u.user_principal_name.as_deref().map(str::trim) {
        if upn.contains('@') && !upn.starts_with('@') {
            return Some(upn.to_string());
        }
    }
    implicit_upn(u)
}

/// A synced user's implicit UPN: sAMAccountName@the domain's DNS name (from the DN's DC=
/// parts), which AD accepts in a bind whatever the userPrincipalName.
pub fn implicit_upn(u: &SyncUser) -> Option<String> {
    let sam = u.sam_account_name.as_deref()?.trim();
    let domain: Vec<String> =
        u.dn.split(',')
            .filter_map(|rdn| {
                let (k, v) = rdn.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("dc")
                    .then(|| v.trim().to_lowercase())
            })
            .collect();
    (!sam.is_empty() && !domain.is_empty()).then(|| format!("{sam}@{}", domain.join(".")))
}

/// Directory synchronisation: batches applied per forest with watermarks, runs finished or
/// failed, the sync holder lease.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Applies one batch of a run in one transaction.
    async fn apply_sync_batch(
        &self,
        tenant_id: Uuid,
        forest: &str,
        batch: &SyncBatch,
        now: i64,
    ) -> Result<Applied>;

    /// Ends a run: when it mentioned every object, removes the forest's objects it did not
    /// mention; records the watermark. Returns how many objects were removed.
    async fn finish_sync_run(
        &self,
        tenant_id: Uuid,
        forest: &str,
        done: &SyncDone,
        conflicts: &[String],
        now: i64,
    ) -> Result<u64>;

    /// Records a failed run (the watermark stays).
    async fn sync_run_failed(
        &self,
        tenant_id: Uuid,
        forest: &str,
        error: &str,
        now: i64,
    ) -> Result<()>;

    /// Creates the forest's sync state if new, and records its interval.
    async fn ensure_sync_forest(
        &self,
        tenant_id: Uuid,
        forest: &str,
        interval_seconds: u64,
    ) -> Result<()>;

    /// Gives the forest's lease to `agent` (or to nobody).
    async fn set_sync_holder(
        &self,
        tenant_id: Uuid,
        forest: &str,
        agent: Option<Uuid>,
        now: i64,
    ) -> Result<()>;

    /// Every synced forest of a tenant.
    async fn sync_forests(&self, tenant_id: Uuid) -> Result<Vec<SyncForestState>>;

    /// The synced users whose mail is `mail` (for sign-in with the mail address).
    async fn synced_users_by_mail(&self, tenant_id: Uuid, mail: &str) -> Result<Vec<super::User>>;

    /// The object ids of the groups a user belongs to, directly or through nested groups
    /// (at most `limit`).
    async fn user_group_ids(
        &self,
        tenant_id: Uuid,
        object_guid: &str,
        limit: i64,
    ) -> Result<Vec<Uuid>>;
}
