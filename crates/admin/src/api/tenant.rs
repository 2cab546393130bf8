//! The tenant's directory sync and groups, pass-through authentication, settings, sign-in
//! log and signing keys.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// `GET /groups`: a page of synced groups (the cloud's group records).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    #[schema(value_type = Vec<Object>)]
    pub groups: Vec<serde_json::Value>,
    pub next_skiptoken: Option<String>,
}

/// `GET /groups/{id}`: a synced group (the cloud's group record) with `members`, its direct
/// members.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = Object)]
pub struct Group(pub serde_json::Value);

/// `POST /sync/{forest}/run` (the body is optional): `full` reads everything again.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunSync {
    #[serde(default)]
    pub full: bool,
}

/// `GET /sync`: whether sign-in needs synced users, and each forest's state (the cloud's
/// record, with `users`, `groups` and the run in progress, `running`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    pub sync_required: bool,
    #[schema(value_type = Vec<Object>)]
    pub forests: Vec<serde_json::Value>,
}

/// `POST /sync/{forest}/run`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncRequested {
    pub forest: String,
    pub full: bool,
    pub requested: bool,
}

/// `POST /pta`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetPta {
    pub enabled: bool,
}

/// `GET /pta` and `POST /pta`: on or off, with agent counts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct PtaStatus {
    pub enabled: bool,
    /// Connected and taking work.
    pub active_agents: u64,
    pub draining_agents: u64,
    /// Not revoked.
    pub registered_agents: u64,
    /// Registered but not connected.
    pub inactive_agents: u64,
}

/// `PUT /settings/{key}`: the new value; a JSON number or boolean is taken as its text.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SetSetting {
    #[schema(value_type = String)]
    pub value: serde_json::Value,
}

/// `GET /settings` and `PUT /settings/{key}`: every setting.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Settings {
    pub settings: Vec<Setting>,
}

/// One setting with its value and what it accepts.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Setting {
    pub key: String,
    pub value: String,
    pub help: String,
}

/// `GET /signins`'s filters.
#[derive(Debug, Default, Clone, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SignInQuery {
    /// Only this user name.
    pub user: Option<String>,
    /// Only this result: `success`, `failure`, or an AADSTS code such as 50126.
    pub result: Option<String>,
    /// RFC 3339, a date, or a duration back from now (`15m`, `2h`, `7d`).
    pub since: Option<String>,
    /// Like `since`.
    pub until: Option<String>,
    /// At most this many lines.
    pub top: Option<i64>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// `GET /signins` (`format=json`): the log, newest first (the cloud's sign-in records, with
/// `time` in RFC 3339).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignInList {
    #[schema(value_type = Vec<Object>)]
    pub signins: Vec<serde_json::Value>,
    pub retention_days: u32,
}

/// `GET /keys` and `POST /keys/rotate`: the token signing keys by key id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SigningKeys {
    /// The key tokens are signed with now.
    pub current: Option<String>,
    /// Every key in the tenant's JWKS.
    pub published: Vec<String>,
    /// How many retired keys stay published.
    pub max_retired: i64,
}
