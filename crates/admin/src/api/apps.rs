//! Applications: `/apps...`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /apps`: a new application; a confidential one gets a secret, shown once.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewApp {
    pub name: String,
    #[serde(default)]
    pub public: bool,
    #[serde(default)]
    pub confidential: bool,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// A single-page app (a public client whose redirect URIs are browser origins).
    #[serde(default)]
    pub spa: bool,
    /// `ES256` (the default) or `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_alg: Option<String>,
}

/// `PUT /apps/{client_id}/id-token-alg`: how the app's ID tokens are signed.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetIdTokenAlg {
    /// `ES256` or `RS256`.
    pub alg: String,
}

/// `PUT /apps/{client_id}/api`: the API the app exposes, replaced whole.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ExposeApi {
    /// `api://NAME` (or an https URL), unique in the tenant; `null` stops exposing an API.
    pub identifier_uri: Option<String>,
    /// Delegated scope names (`read`), as access tokens carry them in `scp`.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// App role names (`Orders.Admin`), as tokens carry them in `roles`.
    #[serde(default)]
    pub app_roles: Vec<String>,
}

/// `POST /apps/{client_id}/role-assignments`: assigns one of the app's roles to exactly
/// one of a user (UPN or object id), a synced group (name or object id) or an app (client id).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AssignRole {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
}

/// One app role assignment.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleAssignment {
    pub role: String,
    /// `user`, `group` or `app`.
    pub principal_kind: String,
    /// The user's or group's object id, or the app's client id.
    pub principal_id: String,
    /// The UPN, group name or app name, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal_name: Option<String>,
}

/// `GET /apps/{client_id}/role-assignments`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoleAssignmentList {
    pub assignments: Vec<RoleAssignment>,
}

/// `PUT /apps/{client_id}/redirect-uris`: the whole new list.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetRedirectUris {
    pub redirect_uris: Vec<String>,
}

/// `PUT /apps/{client_id}/groups-claim`: whether the app's tokens carry the user's groups.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetGroupsClaim {
    pub enabled: bool,
}

/// An application. `POST /apps` answers without `confidential` and `groups_claim`; its
/// answer and `POST /apps/{client_id}/secret`'s carry the secret, shown this once.
#[derive(Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct App {
    pub client_id: String,
    pub name: String,
    pub public: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidential: Option<bool>,
    pub redirect_uris: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_claim: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(format = Password)]
    pub client_secret: Option<String>,
    /// A single-page app.
    #[serde(default)]
    pub spa: bool,
    /// `ES256` or `RS256`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_alg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identifier_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub app_roles: Vec<String>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("public", &self.public)
            .field("redirect_uris", &self.redirect_uris)
            .field("groups_claim", &self.groups_claim)
            .field("spa", &self.spa)
            .field("id_token_alg", &self.id_token_alg)
            .field("identifier_uri", &self.identifier_uri)
            .field("api_scopes", &self.api_scopes)
            .field("app_roles", &self.app_roles)
            .finish_non_exhaustive()
    }
}

/// `GET /apps`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppList {
    pub apps: Vec<App>,
}

/// `DELETE /apps/{client_id}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AppDeleted {
    pub client_id: String,
    pub deleted: bool,
}
