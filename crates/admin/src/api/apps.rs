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
#[derive(Clone, Serialize, Deserialize, ToSchema)]
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
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("client_id", &self.client_id)
            .field("name", &self.name)
            .field("public", &self.public)
            .field("redirect_uris", &self.redirect_uris)
            .field("groups_claim", &self.groups_claim)
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
