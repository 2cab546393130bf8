//! Signed agent releases (`agent_releases`), per tenant: the package an administrator
//! uploaded and the signed manifest it came with, keyed by version. The cloud never verifies
//! the signature (the agents do, with the key pinned in them); it stores what the
//! administrator uploaded after checking that the package has the digest and size the
//! manifest names (`admin_api::releases`), and picks which one to offer
//! (`crate::agent_releases`).

use async_trait::async_trait;
use uuid::Uuid;

use super::Result;

/// A stored release, without its package.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReleaseInfo {
    /// The manifest's version.
    pub version: String,
    /// The manifest's platform (`x86_64-linux`).
    pub target: String,
    /// The package's SHA-256, lower-case hex.
    pub sha256: String,
    /// The package's size in bytes.
    pub size: i64,
    /// The oldest cloud version that may offer it.
    pub min_cloud_version: String,
    /// The signed manifest as uploaded (sent to agents as is).
    pub signed_manifest: String,
    /// When it was added, Unix seconds.
    pub added_at: i64,
    /// Who added it (UPN).
    pub added_by: String,
}

/// Tenants' agent releases in a store. Every backend implements it and passes
/// `store::conformance::releases` (one winner among concurrent adds of a version, packages
/// read back byte for byte, tenants apart).
#[async_trait]
pub trait ReleaseStore: Send + Sync {
    /// Adds a release with its package; [`super::StoreError::Conflict`] when the tenant has
    /// this version already (nothing is changed then).
    async fn add_release(
        &self,
        tenant_id: Uuid,
        release: &ReleaseInfo,
        package: &[u8],
    ) -> Result<()>;

    /// The tenant's releases, without their packages, oldest added first.
    async fn releases(&self, tenant_id: Uuid) -> Result<Vec<ReleaseInfo>>;

    /// The package of one release, if the tenant has that version.
    async fn release_package(&self, tenant_id: Uuid, version: &str) -> Result<Option<Vec<u8>>>;

    /// Removes one release; whether it was there.
    async fn remove_release(&self, tenant_id: Uuid, version: &str) -> Result<bool>;
}
