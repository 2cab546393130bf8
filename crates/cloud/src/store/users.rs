//! Users: cloud-only and synchronised, roles, flags.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;

/// Users of a tenant: cloud-only ones (with an argon2id hash) and on-premises ones (never a
/// hash). A UPN is unique in its tenant; the last enabled Global Administrator cannot be
/// demoted, blocked or deleted ([`super::StoreError::LastGlobalAdmin`]).
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Adds a cloud-only user with an argon2id hash.
    async fn add_cloud_user(
        &self,
        tenant_id: Uuid,
        upn: &str,
        password_hash: &str,
        role: &str,
        now: i64,
    ) -> Result<Uuid>;

    async fn user_by_upn(&self, tenant_id: Uuid, upn: &str) -> Result<Option<User>>;

    async fn user_by_id(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<User>>;

    /// Creates or refreshes the record of an on-premises user after a successful pass-through
    /// sign-in. The record is keyed by the source anchor, so the `oid` is stable.
    async fn upsert_onprem_user(&self, u: &OnpremUser<'_>, now: i64) -> Result<User>;

    async fn touch_sign_in(&self, user_id: Uuid, now: i64) -> Result<()>;

    async fn users(&self, tenant_id: Uuid) -> Result<Vec<User>>;

    /// Users in UPN order after `after`, `top` at a time, optionally those whose UPN,
    /// display name or mail contains `search` (case-insensitive).
    async fn users_page(
        &self,
        tenant_id: Uuid,
        search: Option<&str>,
        after: Option<&str>,
        top: i64,
    ) -> Result<UserPage>;

    /// Sets a cloud-only user's display name.
    async fn set_display_name(&self, tenant_id: Uuid, id: Uuid, name: &str) -> Result<()>;

    /// Replaces a cloud-only user's password hash and, in the same transaction, ends their
    /// sessions, refresh tokens and unredeemed codes.
    async fn set_password_hash(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        hash: &str,
        now: i64,
    ) -> Result<()>;

    /// Blocks (and signs out everywhere) or unblocks a user.
    async fn set_user_enabled(
        &self,
        tenant_id: Uuid,
        id: Uuid,
        enabled: bool,
        now: i64,
    ) -> Result<()>;

    /// Gives a user a role (`none` for no role). Refused ([`StoreError::LastGlobalAdmin`],
    /// nothing changed) when it would leave the tenant without an enabled Global
    /// Administrator, however many changes run at once.
    async fn set_user_role(&self, tenant_id: Uuid, id: Uuid, role: &str, now: i64) -> Result<()>;

    /// How many enabled users hold `role` in the tenant.
    async fn count_role(&self, tenant_id: Uuid, role: &str) -> Result<i64>;

    /// Deletes a user with their sessions, refresh tokens and codes (refused, nothing
    /// changed, when it would leave the tenant without an enabled Global Administrator).
    async fn delete_user(&self, tenant_id: Uuid, id: Uuid) -> Result<()>;
}
