//! Domains: claims, proof of control, removal.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;

/// Domains of tenants. A name is unique across the service; only a verified domain is found
/// by [`DomainStore::domain`], which sign-in uses.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait DomainStore: Send + Sync {
    /// Adds a domain: verified (the tenant's initial domain, or one the operator vouches for
    /// with data-dir access) or waiting for the proof `verification_code`.
    async fn add_domain(
        &self,
        tenant_id: Uuid,
        name: &str,
        kind: DomainKind,
        verification_code: Option<&str>,
        now: i64,
    ) -> Result<()>;

    /// A verified domain by name, in any tenant (domain names are unique across the
    /// service). Sign-in looks domains up here, so an unverified one does not exist for it.
    async fn domain(&self, name: &str) -> Result<Option<Domain>>;

    async fn domains(&self, tenant_id: Uuid) -> Result<Vec<Domain>>;

    /// A domain by name whether verified or not.
    async fn domain_any(&self, name: &str) -> Result<Option<Domain>>;

    /// Marks a domain verified.
    async fn set_domain_verified(&self, tenant_id: Uuid, name: &str) -> Result<()>;

    /// How many users have a UPN in `name`.
    async fn domain_user_count(&self, tenant_id: Uuid, name: &str) -> Result<i64>;

    /// Removes a domain (and its federation settings). The caller checks it is unused.
    async fn remove_domain(&self, tenant_id: Uuid, name: &str) -> Result<()>;

    /// Removes claims on domains that were never verified within `max_age_secs`, so an
    /// abandoned claim does not keep the name from its real owner.
    async fn purge_unverified_domains(&self, now: i64, max_age_secs: i64) -> Result<u64>;
}
