//! Store rows of the OpenID Connect flows: pending authorization requests, authorization
//! codes, browser sessions and refresh tokens. Every secret (code, session id, refresh token)
//! is stored only as its SHA-256; every row expires.

use async_trait::async_trait;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{RefreshRecord, Result};

/// An authorization request between `/authorize` and the end of the sign-in pages.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AuthzRequest {
    /// Random id carried by the sign-in pages' forms.
    pub id: String,
    pub tenant_id: Uuid,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    /// PKCE S256 challenge.
    pub code_challenge: Option<String>,
    /// `query` or `form_post`.
    pub response_mode: String,
    pub prompt: Option<String>,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// CSRF token every form of this request must echo.
    pub csrf: String,
    /// The name the user typed on the first page.
    pub username: Option<String>,
    /// Set when this sign-in approves a device code (RFC 8628) instead of answering an app.
    #[serde(default)]
    pub device_user_code: Option<String>,
    /// Set only when Active Directory answered 1330 (expired) or 1907 (must change) to this
    /// sign-in's right password: the one thing that lets this sign-in post a new password.
    #[serde(default)]
    pub password_change: Option<PasswordChangeGrant>,
}

/// What AD's 1330/1907 answer to a pending sign-in allows: changing the password of this
/// user, on the sign-in's change page, after the second factor when the user has one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PasswordChangeGrant {
    /// The cloud's record of the user AD answered for.
    pub user_id: Uuid,
    /// Their UPN (what the agent writes the password of).
    pub upn: String,
    /// Where the second factor stands.
    pub second_factor: ChangeSecondFactor,
}

/// The second factor of a sign-in that changes an expired password.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ChangeSecondFactor {
    /// The user has no second factor to prove first (none enrolled, or MFA off): the
    /// change comes first, then the sign-in's usual steps (an enrolment, say).
    NotAsked,
    /// The user must prove their second factor before the new password is written.
    Pending,
    /// Proved during this sign-in: after the change the sign-in completes.
    Proved,
}

/// An issued authorization code (stored as its hash; used once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthCode {
    pub tenant_id: Uuid,
    pub client_id: String,
    pub redirect_uri: String,
    pub user_id: Uuid,
    pub scope: String,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// A browser session (single sign-on across apps until logout or expiry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    pub tenant_id: Uuid,
    pub user_id: Uuid,
    pub auth_time: i64,
    pub expires_at: i64,
}

/// What presenting a refresh token found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshUse {
    /// A live token, now marked used: issue its successor in the same family.
    Fresh(RefreshRecord),
    /// A token that was already rotated: its whole family has been revoked.
    Reused,
    /// No such token (or expired and purged).
    Unknown,
}

/// The OpenID Connect state of a store: pending authorization requests, authorization codes,
/// single sign-on sessions and refresh tokens. Every backend implements it and passes
/// `store::conformance::oidc` (one-time codes, rotation and family revocation, expiry),
/// including under concurrency.
#[async_trait]
pub trait OidcStore: Send + Sync {
    /// Stores (or updates) a pending authorization request; a new one only while the tenant
    /// has fewer than the pending cap ([`StoreError::TooManyPending`] otherwise).
    async fn put_authz(&self, r: &AuthzRequest, expires_at: i64) -> Result<()>;

    /// A live authorization request of `tenant_id`.
    async fn authz(&self, tenant_id: Uuid, id: &str, now: i64) -> Result<Option<AuthzRequest>>;

    async fn delete_authz(&self, id: &str) -> Result<()>;

    /// Whether any app of the tenant registered `uri` (for post-logout redirects).
    async fn redirect_uri_registered(&self, tenant_id: Uuid, uri: &str) -> Result<bool>;

    async fn add_code(&self, code_hash: &str, c: &AuthCode) -> Result<()>;

    /// Removes and returns a code: a code works once, whatever happens next.
    async fn take_code(&self, code_hash: &str) -> Result<Option<AuthCode>>;

    async fn add_session(&self, id_hash: &str, s: &SessionRecord) -> Result<()>;

    async fn session(&self, id_hash: &str, now: i64) -> Result<Option<SessionRecord>>;

    async fn delete_session(&self, id_hash: &str) -> Result<()>;

    async fn add_refresh_token(&self, token_hash: &str, rec: &RefreshRecord) -> Result<()>;

    /// Presents a refresh token: a live one is marked used (rotation); one already used
    /// revokes its whole family (a stolen token and its successors die together).
    async fn use_refresh_token(&self, token_hash: &str, now: i64) -> Result<RefreshUse>;
}
