//! Apps (OIDC clients).

use async_trait::async_trait;
use uuid::Uuid;

use super::*;

/// Apps (OIDC clients) of a tenant: client ids unique in the tenant, redirect URIs, secret
/// hashes, the groups claim.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait AppStore: Send + Sync {
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

    /// Replaces a confidential app's secret hash; the old secret stops working at once.
    async fn set_app_secret_hash(&self, tenant_id: Uuid, client_id: &str, hash: &str)
        -> Result<()>;

    /// Deletes an app with its refresh tokens, codes, pending device codes and the app
    /// role assignments it is the resource or the principal of.
    async fn delete_app(&self, tenant_id: Uuid, client_id: &str) -> Result<()>;

    /// An app by client id, whatever its tenant (client ids are unique across the service):
    /// how `/organizations` finds the tenant.
    async fn app_anywhere(&self, client_id: &str) -> Result<Option<App>>;

    /// The app of the tenant whose API has this identifier URI.
    async fn app_by_identifier_uri(&self, tenant_id: Uuid, uri: &str) -> Result<Option<App>>;

    /// Marks an app as a single-page app (or not).
    async fn set_app_spa(&self, tenant_id: Uuid, client_id: &str, spa: bool) -> Result<()>;

    /// Sets the algorithm of an app's ID tokens (`ES256` or `RS256`).
    async fn set_app_id_token_alg(&self, tenant_id: Uuid, client_id: &str, alg: &str)
        -> Result<()>;

    /// Replaces the API an app exposes: identifier URI (unique in the tenant: `Conflict`
    /// otherwise), scope names and app role names. Assignments of roles no longer defined
    /// are deleted with it.
    async fn set_app_api(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        identifier_uri: Option<&str>,
        scopes: &[String],
        roles: &[String],
    ) -> Result<()>;

    /// The redirect URIs of single-page apps: of one tenant, or of every tenant (`None`).
    async fn spa_redirect_uris(&self, tenant_id: Option<Uuid>) -> Result<Vec<String>>;

    /// Assigns a role of a resource app (idempotent).
    async fn assign_app_role(&self, tenant_id: Uuid, a: &RoleAssignment) -> Result<()>;

    /// Removes an assignment; `NotFound` when there was none.
    async fn unassign_app_role(&self, tenant_id: Uuid, a: &RoleAssignment) -> Result<()>;

    /// A resource app's role assignments, by role then principal.
    async fn app_role_assignments(
        &self,
        tenant_id: Uuid,
        resource_client_id: &str,
    ) -> Result<Vec<RoleAssignment>>;

    /// The roles of a resource app held by any of these principals (deduplicated, sorted).
    async fn roles_of(
        &self,
        tenant_id: Uuid,
        resource_client_id: &str,
        principals: &[(PrincipalKind, String)],
    ) -> Result<Vec<String>>;
}
