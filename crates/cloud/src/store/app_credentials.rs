//! App credentials: the secrets and certificates a confidential app proves itself with at the
//! token endpoint, several at once, each with its own expiry, so that a secret or a
//! certificate can be replaced without an outage (add the new one, move the app to it, remove
//! the old one).
//!
//! A secret is kept as its SHA-256 (`issue::hash_secret`; secrets are 256 random bits, so a
//! fast hash is enough) and the first characters of it as a hint; a certificate as its
//! SubjectPublicKeyInfo (what assertions are verified with), its SHA-1 and SHA-256
//! thumbprints (the `x5t` and `x5t#S256` that name it in an assertion's header) and its
//! subject. Before migration 17 (SQLite) / 6 (PostgreSQL) an app had one secret in
//! `apps.secret_hash`; the migration moved each into this table (without an expiry, as it
//! had none) and cleared the column, which nothing reads any more.

use async_trait::async_trait;
use uuid::Uuid;

use super::Result;

/// The most credentials (secrets and certificates together, expired ones included) an app
/// may have, as in Entra ID; an 11th is refused with
/// [`super::StoreError::TooManyCredentials`].
pub const MAX_CREDENTIALS_PER_APP: usize = 10;

/// What proves the app: a secret's hash, or a certificate's public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialKey {
    /// A client secret: its SHA-256, hex.
    Secret { hash: String },
    /// A certificate.
    Certificate(CertificateKey),
}

/// A certificate credential: what the cloud keeps of the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateKey {
    /// SHA-1 of the certificate's DER, lower-case hex: the `x5t` of an assertion's header.
    pub sha1: String,
    /// SHA-256 of the certificate's DER, lower-case hex: the `x5t#S256`.
    pub sha256: String,
    /// The certificate's SubjectPublicKeyInfo, DER: what assertions are verified with.
    pub public_key: Vec<u8>,
    /// The certificate's subject (RFC 4514), for people.
    pub subject: String,
}

/// One credential of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppCredential {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub client_id: String,
    pub key: CredentialKey,
    /// The first characters of a secret, shown so that people can tell secrets apart (as
    /// Entra does); none for a certificate or a secret from before credentials existed.
    pub hint: Option<String>,
    pub created_at: i64,
    /// Not valid before (a certificate's notBefore), Unix seconds.
    pub starts_at: Option<i64>,
    /// Not valid from (a certificate's notAfter, a secret's expiry), Unix seconds; none: never
    /// expires.
    pub expires_at: Option<i64>,
}

impl AppCredential {
    /// `"secret"` or `"certificate"`, as stored.
    pub fn kind(&self) -> &'static str {
        match self.key {
            CredentialKey::Secret { .. } => "secret",
            CredentialKey::Certificate(_) => "certificate",
        }
    }

    /// Whether it may prove the app at `now`: started, and not expired.
    pub fn valid_at(&self, now: i64) -> bool {
        self.starts_at.is_none_or(|s| s <= now) && self.expires_at.is_none_or(|e| now < e)
    }
}

/// The credentials of confidential apps. Every backend implements it and passes
/// `store::conformance::app_credentials` (the cap under many parallel adds, removal of one
/// credential only, secrets replaced together, credentials gone with their app).
#[async_trait]
pub trait AppCredentialStore: Send + Sync {
    /// Adds a credential to its app. Refused with [`super::StoreError::NotFound`] when the
    /// tenant has no such app, [`super::StoreError::TooManyCredentials`] when the app has
    /// [`MAX_CREDENTIALS_PER_APP`] already (the count and the insert are one step: parallel
    /// adds cannot pass the cap), [`super::StoreError::Conflict`] when the app has this
    /// certificate already.
    async fn add_app_credential(&self, c: &AppCredential) -> Result<()>;

    /// An app's credentials, expired ones included, oldest first.
    async fn app_credentials(&self, tenant_id: Uuid, client_id: &str)
        -> Result<Vec<AppCredential>>;

    /// Removes one credential of an app ([`super::StoreError::NotFound`] when the app has no
    /// credential `id`); it stops working at once.
    async fn remove_app_credential(&self, tenant_id: Uuid, client_id: &str, id: Uuid)
        -> Result<()>;

    /// Replaces every secret of `c`'s app with `c` (a secret) in one step: the old secrets
    /// stop working at once, the certificates stay. [`super::StoreError::NotFound`] when the
    /// tenant has no such app.
    async fn replace_app_secrets(&self, c: &AppCredential) -> Result<()>;
}

/// The first credential of a confidential app added with a `secret_hash` (no hint: only the
/// hash is known; no expiry, as `app add`'s secrets have always had none).
pub(crate) fn first_secret(app: &super::App, now: i64) -> Option<AppCredential> {
    let hash = app.secret_hash.as_ref().filter(|_| !app.public)?;
    Some(AppCredential {
        id: Uuid::new_v4(),
        tenant_id: app.tenant_id,
        client_id: app.client_id.clone(),
        key: CredentialKey::Secret { hash: hash.clone() },
        hint: None,
        created_at: now,
        starts_at: None,
        expires_at: None,
    })
}
