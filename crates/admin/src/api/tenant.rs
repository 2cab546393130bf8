//! Tenant-wide: pass-through authentication, settings, the sign-in log and signing keys.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

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
    pub value: SettingValue,
}

/// A setting's new value as sent: text, or a JSON number or boolean (taken as its text).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum SettingValue {
    Text(String),
    #[schema(value_type = f64)]
    Number(serde_json::Number),
    Bool(bool),
}

impl SettingValue {
    /// The value as text: a number as JSON writes it, a boolean as `true` or `false`.
    pub fn text(&self) -> String {
        match self {
            SettingValue::Text(s) => s.clone(),
            SettingValue::Number(n) => n.to_string(),
            SettingValue::Bool(b) => b.to_string(),
        }
    }
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

/// `GET /signins` (`format=json`): the log, newest first, and how many days it is kept.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignInList {
    pub signins: Vec<SignIn>,
    pub retention_days: u32,
}

/// One line of the sign-in log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignIn {
    /// Unix ms.
    pub time_ms: i64,
    /// The same time in RFC 3339.
    pub time: String,
    /// The sign-in name as entered.
    pub username: String,
    /// The application's client id.
    pub client_id: Option<String>,
    /// `success` or `failure`.
    pub result: String,
    /// The AADSTS code of a failure.
    pub aadsts: Option<u32>,
    /// The directory's Win32 code, for pass-through authentication.
    pub win32: Option<u32>,
    /// The agent that answered.
    pub agent_id: Option<Uuid>,
    /// Agents the request went to first that did not answer (connection ended, or stuck).
    pub other_agents: Vec<Uuid>,
    /// The agent's round trip, ms.
    pub latency_ms: Option<i64>,
    pub correlation_id: String,
    pub client_ip: Option<String>,
}

/// `GET /keys` and `POST /keys/rotate`: the token signing keys by key id.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SigningKeys {
    /// The ES256 key tokens are signed with now (access tokens, and ID tokens unless the
    /// app asks for RS256).
    pub current: Option<String>,
    /// The RS256 key ID tokens of the apps that ask for RS256 are signed with now (absent
    /// from servers before RS256).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_rs256: Option<String>,
    /// Every key in the tenant's JWKS (both algorithms).
    pub published: Vec<String>,
    /// How many retired keys stay published.
    pub max_retired: i64,
}
