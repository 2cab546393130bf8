//! An application's credentials: `/apps/{client_id}/credentials...`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Days a new client secret lives unless asked otherwise (Entra's recommended 180 days).
pub const DEFAULT_SECRET_DAYS: u32 = 180;
/// The most days a client secret may live (Entra's longest choice, 24 months).
pub const MAX_SECRET_DAYS: u32 = 730;

/// `POST /apps/{client_id}/credentials/secrets`: a new client secret beside the others.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct NewSecret {
    /// Days until it expires: 1 to 730, 180 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// The answer to `POST /apps/{client_id}/credentials/secrets`: the secret, shown this once.
#[derive(Clone, Serialize, Deserialize, ToSchema)]
pub struct SecretAdded {
    /// The credential's id (to remove it).
    pub id: Uuid,
    #[schema(format = Password)]
    pub secret: String,
    /// Its first characters, as listings show it.
    pub hint: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl std::fmt::Debug for SecretAdded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretAdded")
            .field("id", &self.id)
            .field("hint", &self.hint)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// `POST /apps/{client_id}/credentials/certificates`: a certificate the app signs client
/// assertions with. Its expiry is its notAfter.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct NewCertificate {
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`); never its private key.
    pub certificate: String,
}

/// One credential of an application (never a secret or its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Credential {
    pub id: Uuid,
    /// `secret` or `certificate`.
    pub kind: String,
    /// A secret's first characters (none for a secret from before credentials had hints).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// A certificate's SHA-1 thumbprint, upper-case hex (MSAL's `thumbprint`; the `x5t` of
    /// its assertions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint: Option<String>,
    /// A certificate's SHA-256 thumbprint, upper-case hex (MSAL's `thumbprintSha256`; the
    /// `x5t#S256` of its assertions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thumbprint_sha256: Option<String>,
    /// A certificate's subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    /// Not valid before (a certificate's notBefore), Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<i64>,
    /// Unix seconds; absent: never expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    /// Whether it is expired now (it no longer authenticates the app).
    pub expired: bool,
}

/// `GET /apps/{client_id}/credentials`: oldest first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialList {
    pub client_id: String,
    pub credentials: Vec<Credential>,
}

/// `DELETE /apps/{client_id}/credentials/{id}` (and `.../secrets/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CredentialRemoved {
    pub client_id: String,
    pub id: Uuid,
    pub removed: bool,
}
