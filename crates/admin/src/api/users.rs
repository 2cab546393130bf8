//! Users: `/users...`.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;
use zeroize::Zeroizing;

/// A page of a list (`GET /users`, `GET /groups`): a search text, a page size (1 to 1000,
/// 100 when absent), and where the page starts (the previous page's `next_skiptoken`).
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only those whose name (for users: UPN, display name or mail) contains this.
    pub search: Option<String>,
    /// How many per page, 1 to 1000 (100 when absent).
    pub top: Option<i64>,
    /// Where the page starts: the previous page's `next_skiptoken`.
    pub skiptoken: Option<String>,
}

/// `POST /users`: a new cloud-only user in a verified domain of the tenant.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct NewUser {
    pub upn: String,
    /// At least 8 characters, at most 256 bytes.
    #[schema(value_type = String, format = Password, write_only)]
    pub password: Zeroizing<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("upn", &self.upn)
            .field("display_name", &self.display_name)
            .finish_non_exhaustive()
    }
}

/// `POST /users/{upn}/password`: a cloud-only user's new password.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct SetPassword {
    #[schema(value_type = String, format = Password, write_only)]
    pub password: Zeroizing<String>,
}

impl std::fmt::Debug for SetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetPassword").finish_non_exhaustive()
    }
}

/// `POST /users/{upn}/reset-password`: an administrator's reset; `must_change` applies to
/// on-premises users (Active Directory enforces it).
#[derive(Serialize, Deserialize, ToSchema)]
pub struct ResetPassword {
    #[schema(value_type = String, format = Password, write_only)]
    pub password: Zeroizing<String>,
    #[serde(default)]
    pub must_change: bool,
}

impl std::fmt::Debug for ResetPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResetPassword")
            .field("must_change", &self.must_change)
            .finish_non_exhaustive()
    }
}

/// `PUT /users/{upn}/writeback`: whether the user may use self-service password writeback.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetWriteback {
    pub allowed: bool,
}

/// `PUT /users/{upn}/mfa`: the user's own multi-factor policy.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetMfa {
    /// `default` (the tenant's `mfa` setting), `off`, `optional` or `required`.
    #[schema(examples("default", "off", "optional", "required"))]
    pub policy: String,
}

/// `PUT /users/{upn}/role`: an administrator role, or none.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetRole {
    /// `GlobalAdministrator`, `HybridIdentityAdministrator` or `none` (any case).
    #[schema(examples("GlobalAdministrator", "HybridIdentityAdministrator", "none"))]
    pub role: String,
}

/// A user as the API shows it. `mfa` only in `GET /users/{upn}` and `synced.groups` only
/// there too.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct User {
    pub id: Uuid,
    pub upn: String,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    /// `cloud` or `onprem`.
    pub source: String,
    pub immutable_id: Option<String>,
    pub role: String,
    /// False when an administrator blocked the user's sign-in in the cloud.
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub last_sign_in: Option<i64>,
    /// An on-premises user: only the role and the cloud sign-in block change here.
    pub read_only: bool,
    /// What directory sync last read for the user (`null`: never synced).
    pub synced: Option<SyncedUser>,
    pub writeback_allowed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<UserMfa>,
}

/// What directory sync last read for a user; times are RFC 3339.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncedUser {
    pub forest: String,
    pub object_guid: Uuid,
    pub distinguished_name: String,
    pub sam_account_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    pub account_enabled: bool,
    pub account_expires: Option<String>,
    pub when_changed: Option<String>,
    pub password_last_set: Option<String>,
    pub last_change: Option<String>,
    /// The synced groups the user is a direct member of (`GET /users/{upn}` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
}

/// A user's multi-factor state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserMfa {
    /// The user's own policy: `default`, `off`, `optional` or `required`.
    pub policy: String,
    /// The policy that applies (the tenant's when the user's is `default`).
    pub effective: String,
    pub enrolled: bool,
    pub recovery_codes_left: Option<i64>,
    /// Locked after wrong codes until then, Unix seconds.
    pub locked_until: Option<i64>,
}

/// `GET /users`: a page of users.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserList {
    pub users: Vec<User>,
    /// Give it as `skiptoken` for the next page; `null` on the last.
    pub next_skiptoken: Option<String>,
}

/// `POST /users/{upn}/unlock`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Unlocked {
    pub upn: String,
    /// Whether there was a lock or a count of wrong passwords to clear.
    pub unlocked: bool,
}

/// `POST /users/{upn}/password` and `POST /users/{upn}/reset-password`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PasswordSet {
    pub upn: String,
    pub password_set: bool,
    /// Reset only: `cloud` or `active_directory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub written_to: Option<String>,
    /// Reset in Active Directory only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub must_change: Option<bool>,
}

/// `PUT /users/{upn}/writeback`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct WritebackSet {
    pub upn: String,
    pub writeback_allowed: bool,
}

/// `PUT /users/{upn}/mfa`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaSet {
    pub upn: String,
    pub mfa: UserMfa,
}

/// `POST /users/{upn}/mfa/reset`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MfaReset {
    pub upn: String,
    /// Whether the user had an authenticator to remove.
    pub reset: bool,
    pub mfa: UserMfa,
}

/// `DELETE /users/{upn}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct UserDeleted {
    pub upn: String,
    pub deleted: bool,
}
