//! Tenants and their settings.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;

/// Tenants: creating, finding by name or id, settings and the pass-through switch. Tenant
/// names are unique, case-insensitively.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait TenantStore: Send + Sync {
    async fn create_tenant(&self, id: Uuid, name: &str, now: i64) -> Result<()>;

    /// Stores a tenant's settings (only those that differ from the defaults are kept).
    async fn save_settings(
        &self,
        tenant_id: Uuid,
        settings: &crate::model::settings::Settings,
    ) -> Result<()>;

    /// Finds a tenant by its name or its id.
    async fn tenant(&self, name_or_id: &str) -> Result<Option<Tenant>>;

    async fn set_pta(&self, tenant_id: Uuid, enabled: bool) -> Result<()>;
}
