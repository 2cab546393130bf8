//! The records the cloud keeps: tenants, domains, users, apps, agents, sign-ins and refresh
//! tokens, as plain values. The store reads and writes them; everything above uses them.

use serde::Serialize;
use uuid::Uuid;

/// The role that may do everything in a tenant; a tenant always keeps one enabled holder.
pub const GLOBAL_ADMIN: &str = "GlobalAdministrator";
/// Manages the hybrid side: agents, pass-through, domains and federation; reads the sign-in log.
pub const HYBRID_ADMIN: &str = "HybridIdentityAdministrator";

/// A tenant.
#[derive(Debug, Clone, Serialize)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub pta_enabled: bool,
    pub settings: crate::model::settings::Settings,
}

/// How a domain's users sign in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DomainKind {
    /// The tenant's initial domain: cloud-only users with cloud passwords.
    Cloud,
    /// On-premises users, checked by pass-through authentication.
    Managed,
    /// Users sign in at the domain's own identity provider.
    Federated,
}

impl DomainKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DomainKind::Cloud => "cloud",
            DomainKind::Managed => "managed",
            DomainKind::Federated => "federated",
        }
    }
    pub(crate) fn parse(s: &str) -> DomainKind {
        match s {
            "managed" => DomainKind::Managed,
            "federated" => DomainKind::Federated,
            _ => DomainKind::Cloud,
        }
    }
}

/// A domain of a tenant. Only a verified domain takes part in sign-in.
#[derive(Debug, Clone, Serialize)]
pub struct Domain {
    pub name: String,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub kind: DomainKind,
    /// Whether the tenant proved control of the domain (DNS TXT record).
    pub verified: bool,
    /// The value of the TXT record that proves control.
    #[serde(skip)]
    pub verification_code: Option<String>,
}

/// A user as the cloud knows it (never with a password; `password_hash` only for cloud-only
/// users, and never serialized).
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub upn: String,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    #[serde(skip)]
    pub password_hash: Option<String>,
    /// `cloud` or `onprem`.
    pub source: String,
    pub immutable_id: Option<String>,
    pub role: String,
    /// False when an administrator blocked the user's sign-in in the cloud.
    pub enabled: bool,
    pub created_at: i64,
    pub updated_at: Option<i64>,
    pub last_sign_in: Option<i64>,
    /// What directory sync last read for this user (`None`: never synced).
    pub sync: Option<SyncedAttributes>,
    /// Whether the user may change and reset their on-premises password here
    /// (self-service password writeback).
    pub writeback_allowed: bool,
}

impl User {
    /// Whether directory sync knows this user.
    pub fn is_synced(&self) -> bool {
        self.sync.is_some()
    }
}

/// What a successful pass-through sign-in tells the cloud about an on-premises user.
#[derive(Debug, Clone, Copy)]
pub struct OnpremUser<'a> {
    pub tenant_id: Uuid,
    /// The cloud object id (derived from the anchor).
    pub id: Uuid,
    /// The source anchor (objectGUID).
    pub immutable_id: &'a str,
    pub upn: &'a str,
    pub display_name: Option<&'a str>,
    pub mail: Option<&'a str>,
}

/// A registered application.
#[derive(Debug, Clone, Default, Serialize)]
pub struct App {
    pub client_id: String,
    #[serde(skip)]
    pub tenant_id: Uuid,
    pub name: String,
    pub public: bool,
    pub redirect_uris: Vec<String>,
    /// When adding a confidential app: the SHA-256 of its first secret, which
    /// [`crate::store::AppStore::add_app`] stores as its first credential. Apps read from the
    /// store have none: their secrets are their credentials
    /// ([`crate::store::AppCredentialStore`]). Never serialized.
    #[serde(skip)]
    pub secret_hash: Option<String>,
    /// Whether its tokens carry the user's groups (object ids of synced groups, nested
    /// membership included), like Azure's `groupMembershipClaims`.
    #[serde(default)]
    pub groups_claim: bool,
    /// A single-page app: a public client whose redirect URIs are browser origins (CORS on
    /// the token endpoint, discovery and JWKS; refresh tokens that live 24 hours).
    #[serde(default)]
    pub spa: bool,
    /// How its ID tokens are signed: `ES256` (the default) or `RS256`.
    pub id_token_alg: String,
    /// The API it exposes: `api://NAME` (unique in the tenant), when it exposes one.
    pub identifier_uri: Option<String>,
    /// The delegated scopes of its API (short names, as tokens carry them in `scp`).
    pub api_scopes: Vec<String>,
    /// The app roles it defines (assignable to users, groups and apps; tokens carry them in
    /// `roles`).
    pub app_roles: Vec<String>,
}

impl App {
    /// The ID-token algorithm to use: what the app asked for, ES256 for anything unknown.
    pub fn id_token_alg(&self) -> &str {
        if self.id_token_alg == "RS256" {
            "RS256"
        } else {
            "ES256"
        }
    }
}

/// Who an app role is assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PrincipalKind {
    User,
    Group,
    App,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PrincipalKind::User => "user",
            PrincipalKind::Group => "group",
            PrincipalKind::App => "app",
        }
    }

    pub fn parse(s: &str) -> Option<PrincipalKind> {
        match s {
            "user" => Some(PrincipalKind::User),
            "group" => Some(PrincipalKind::Group),
            "app" => Some(PrincipalKind::App),
            _ => None,
        }
    }
}

/// An app role of a resource app assigned to a user (object id), a synced group (object
/// id) or an app (client id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleAssignment {
    pub resource_client_id: String,
    pub role: String,
    pub principal_kind: PrincipalKind,
    pub principal_id: String,
    pub created_at: i64,
}

/// A registered authentication agent.
#[derive(Debug, Clone, Serialize)]
pub struct AgentRecord {
    pub id: Uuid,
    #[serde(skip)]
    pub tenant_id: Uuid,
    #[serde(skip)]
    pub cert_fingerprint: String,
    pub cert_expires_at: i64,
    #[serde(skip)]
    pub hpke_public_key: Vec<u8>,
    pub host: String,
    pub version: String,
    pub registered_at: i64,
    pub last_seen: Option<i64>,
    pub source_ip: Option<String>,
    pub revoked: bool,
    /// The UPN suffixes the agent announced when it last connected.
    pub upn_suffixes: Vec<String>,
    /// The certificate issued at a renewal, until the agent first connects with it.
    #[serde(skip)]
    pub next_cert_fingerprint: Option<String>,
    /// That certificate's notAfter, Unix seconds.
    #[serde(skip)]
    pub next_cert_expires_at: Option<i64>,
}

/// One line of the sign-in log.
#[derive(Debug, Clone, Serialize)]
pub struct SignIn {
    /// Assigned by the store when the line is written (0 before), increasing.
    pub id: i64,
    pub time_ms: i64,
    pub username: String,
    pub client_id: Option<String>,
    pub result: String,
    pub aadsts: Option<u32>,
    pub win32: Option<u32>,
    pub agent_id: Option<Uuid>,
    /// Agents the request went to first that did not answer (connection ended, or stuck).
    pub other_agents: Vec<Uuid>,
    pub latency_ms: Option<i64>,
    pub correlation_id: String,
    pub client_ip: Option<String>,
}

/// A refresh token's row (the token itself is stored only as its SHA-256).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub client_id: String,
    pub scope: String,
    pub expires_at: i64,
    /// Every token rotated from the same sign-in shares a family; reuse of a rotated token
    /// revokes the whole family.
    pub family: String,
    /// When the user last entered credentials (OIDC `auth_time`).
    pub auth_time: i64,
}

/// What sync last read for a user, as `user show` presents it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct SyncedAttributes {
    /// The forest it came from.
    pub forest: String,
    pub object_guid: Uuid,
    pub dn: String,
    pub sam_account_name: Option<String>,
    pub given_name: Option<String>,
    pub surname: Option<String>,
    /// Enabled in AD (userAccountControl).
    pub enabled: bool,
    /// accountExpires, Unix seconds (None: never).
    pub account_expires: Option<i64>,
    /// whenChanged in AD, Unix seconds.
    pub when_changed: Option<i64>,
    /// pwdLastSet in AD, Unix seconds (None: must change, or not read yet).
    #[serde(default)]
    pub password_last_set: Option<i64>,
    /// When the cloud last recorded a change from sync, Unix seconds.
    #[serde(default)]
    pub last_change: i64,
}
