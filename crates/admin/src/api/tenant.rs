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
    /// Only this AADSTS code.
    pub aadsts: Option<u32>,
    /// Only this app (client id).
    pub app: Option<String>,
    /// Only lines answered by this agent (id).
    pub agent: Option<String>,
    /// Only this client address.
    pub client_ip: Option<String>,
    /// Only this correlation id.
    pub correlation_id: Option<String>,
    /// At most this many lines.
    pub top: Option<i64>,
    /// The `next_skiptoken` of the previous page: the lines after it.
    pub skiptoken: Option<String>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// `GET /signins` (`format=json`): the log, newest first, and how many days it is kept.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SignInList {
    pub signins: Vec<SignIn>,
    pub retention_days: u32,
    /// Pass as `skiptoken` for the next page; absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_skiptoken: Option<String>,
}

/// `GET /signins/{id}`: one line with what its codes mean and what to do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignInDetail {
    pub signin: SignIn,
    /// The AADSTS code's sentence.
    pub aadsts_text: Option<String>,
    /// The Win32 code's meaning.
    pub win32_text: Option<String>,
    /// What an administrator does about the Win32 code.
    pub win32_action: Option<String>,
}

/// `GET /audit`: query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// RFC 3339, a date, or a duration back from now (`15m`, `2h`, `7d`).
    pub since: Option<String>,
    /// Like `since`.
    pub until: Option<String>,
    /// Only changes made by this administrator (UPN).
    pub actor: Option<String>,
    /// Only this operation (`disableUser`, `addDomain`, ...).
    pub operation: Option<String>,
    /// Only changes whose target path contains this text.
    pub target: Option<String>,
    /// At most this many entries (1 to 1000, default 100).
    pub top: Option<i64>,
    /// The `next_skiptoken` of the previous page.
    pub skiptoken: Option<String>,
    /// `json` (the default) or `csv`.
    pub format: Option<String>,
}

/// One administrative change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339.
    pub time: String,
    pub time_ms: i64,
    pub actor_id: Uuid,
    pub actor: String,
    pub client_ip: Option<String>,
    /// `api`, `cli` or `portal`.
    pub via: String,
    pub operation: String,
    /// The path under `/{tenant}/admin` it acted on.
    pub target: String,
    /// The HTTP status it was answered with (2xx: done).
    pub status: u16,
    pub correlation_id: String,
    /// The request (JSON, secrets removed).
    pub request: Option<serde_json::Value>,
    /// The target before and after (JSON, secrets removed).
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// `GET /audit`: a page of the audit log, newest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    pub retention_days: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_skiptoken: Option<String>,
}

/// One line of the sign-in log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SignIn {
    /// The line's id (`GET /signins/{id}`).
    #[serde(default)]
    pub id: i64,
    /// Unix ms.
    pub time_ms: i64,
    /// The same time in RFC 3339.
    pub time: String,
    /// The sign-in name as entered.
    pub username: String,
    /// The application's client id.
    pub client_id: Option<String>,
    /// The application's name, when it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// `success` or `failure`.
    pub result: String,
    /// The AADSTS code of a failure.
    pub aadsts: Option<u32>,
    /// The directory's Win32 code, for pass-through authentication.
    pub win32: Option<u32>,
    /// The agent that answered.
    pub agent_id: Option<Uuid>,
    /// That agent's host name, when it is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_host: Option<String>,
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
