//! Shapes shared by the admin API and its clients (the `passthru-cloud admin` CLI and
//! `passthru-agent register`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Client id of the first-party public client that the admin CLI and the agent's `register`
/// use to get an admin access token (password grant, or device code grant and refresh token
/// grant). Known to every tenant's token service without being one of its apps.
pub const ADMIN_CLIENT_ID: &str = "5f6b2c1e-7a43-4d8e-9b0c-3e2f1a9d4c70";

/// The name the sign-in pages show for [`ADMIN_CLIENT_ID`].
pub const ADMIN_CLIENT_NAME: &str = "Passthru administration";

/// Scope to ask for an access token to the admin API.
pub const ADMIN_SCOPE: &str = "passthru-admin/.default";

/// Audience of access tokens for the admin API.
pub const ADMIN_AUDIENCE: &str = "passthru-admin";

/// `POST /{tenant}/admin/agents/register` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct RegisterAgentRequest {
    /// PKCS#10 CSR for the agent's TLS client key (the cloud sets the subject itself).
    pub csr_pem: String,
    /// The agent's HPKE (X25519) public key, base64.
    pub hpke_public_key: String,
    pub host: String,
    pub version: String,
}

/// `POST /{tenant}/admin/agents/register` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct RegisterAgentResponse {
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    /// The client certificate issued by the cloud's private agent CA, PEM.
    pub certificate_pem: String,
    /// Base URL the agent dials (`https://host:port`); the agent appends
    /// [`crate::wire::connect_path`] and switches the scheme to `wss`.
    pub agent_endpoint: String,
}

/// Error body of every admin API route.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub error: String,
    pub error_description: String,
}
