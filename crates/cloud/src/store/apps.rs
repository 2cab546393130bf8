//! Apps (OIDC clients).

use async_trait::async_trait;
use uuid::Uuid;

use super::*;

/// Apps (OIDC clients) of a tenant: client ids unique in the tenant, redirect URIs, the
/// groups claim (their secrets and certificates are in [`super::AppCredentialStore`]).
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Adds an app; a confidential app's `secret_hash`, when given, becomes its first
    /// credential (see [`super::AppCredentialStore`]), without an expiry.
    async fn add_app(&self, app: &App, now: i64) -> Result<()>;

    async fn app(&self, tenant_id: Uuid, client_id: &str) -> Result<Option<App>>;

    /// The tenant's apps by name.
    async fn apps(&self, tenant_id: Uuid) -> Result<Vec<App>>;

    /// Replaces an app's redirect URIs.
    async fn set_app_redirect_uris(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        uris: &[String],
    ) -> Result<()>;

    /// Turns the groups claim of an app's tokens on or off.
    async fn set_app_groups_claim(&self, tenant_id: Uuid, client_id: &str, on: bool) -> Result<()>;

    /// Deletes an app with its credentials, refresh tokens, codes and pending device codes.
    async fn delete_app(&self, tenant_id: Uuid, client_id: &str) -> Result<()>;
}
