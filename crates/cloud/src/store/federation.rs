//! Store rows of federated domains: each federated domain's OpenID Connect identity provider
//! (issuer, our client id there and the client secret we authenticate with), the pending
//! round trips to it, and the users it signs in.
//!
//! The client secret is the tenant's credential at its identity provider (not a user's
//! password); it is stored because the token endpoint call needs it, sealed with the data
//! dir's key ([`SecretBox`], tenant and domain bound), and it never leaves this module except
//! to that call: [`FederationConfig`]'s `Debug` hides it and nothing serializes it.

use async_trait::async_trait;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{Result, User};
use crate::secret_box::SecretBox;

/// How a federated domain's users sign in: at `issuer`, where we are the client `client_id`.
#[derive(Clone)]
pub struct FederationConfig {
    pub domain: String,
    pub tenant_id: Uuid,
    /// The identity provider's issuer URL (`iss` of its ID tokens, exactly).
    pub issuer: String,
    pub client_id: String,
    /// Our client secret at the identity provider.
    pub client_secret: Zeroizing<String>,
}

impl std::fmt::Debug for FederationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationConfig")
            .field("domain", &self.domain)
            .field("tenant_id", &self.tenant_id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// One round trip to a federated domain's identity provider, between our redirect and its
/// callback. Stored under the SHA-256 of its `state`; taken (deleted) once.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FederationState {
    /// Our pending authorization request (the app's sign-in).
    pub authz_id: String,
    pub domain: String,
    /// The issuer the round trip was started for (must still be the domain's at the callback).
    pub issuer: String,
    pub nonce: String,
    /// PKCE verifier for the identity provider's token endpoint.
    pub code_verifier: String,
    /// SHA-256 of the browser-binding cookie set with the redirect.
    pub browser_hash: String,
    pub redirect_uri: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// The name the user typed.
    pub username: String,
}

impl std::fmt::Debug for FederationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationState")
            .field("authz_id", &self.authz_id)
            .field("domain", &self.domain)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// What an identity provider's ID token says about a user we sign in.
#[derive(Debug, Clone, Copy)]
pub struct FederatedUser<'a> {
    pub tenant_id: Uuid,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub upn: &'a str,
    pub display_name: Option<&'a str>,
    pub mail: Option<&'a str>,
}

/// What converting a domain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// It was federated and is now managed; its federation settings are gone.
    Converted,
    /// It was already managed: nothing changed.
    AlreadyManaged,
    /// It is the tenant's initial (cloud-only) domain, which cannot be converted.
    CloudDomain,
}

/// The stable object id of a federated user: derived from the tenant, the issuer and `sub`,
/// so the same person at the same identity provider is always the same user.
pub fn federated_object_id(tenant_id: Uuid, issuer: &str, subject: &str) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"passthru/federated-oid");
    h.update(tenant_id.as_bytes());
    h.update((issuer.len() as u64).to_be_bytes());
    h.update(issuer.as_bytes());
    h.update(subject.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Uuid::new_v8(b)
}

/// Federated domains in a store: their identity provider settings (the client secret sealed),
/// browser round trips in progress, and users keyed by issuer and subject. Every backend
/// implements it and passes `store::conformance::federation` (a round trip taken once among
/// many at once, tenants apart, conversion to managed).
#[async_trait]
pub trait FederationStore: Send + Sync {
    /// Adds a federated domain with its identity provider settings (one transaction).
    /// The domain waits for its proof of control (`verification_code`).
    async fn add_federated_domain(
        &self,
        cfg: &FederationConfig,
        verification_code: &str,
        now: i64,
        secrets: &SecretBox,
    ) -> Result<()>;

    /// The identity provider settings of a federated domain (its client secret opened).
    async fn federation(
        &self,
        domain: &str,
        secrets: &SecretBox,
    ) -> Result<Option<FederationConfig>>;

    /// Makes a federated domain of `tenant_id` managed: its federation settings and pending
    /// round trips are deleted, and its users sign in by pass-through authentication from
    /// their next sign-in on.
    async fn convert_to_managed(&self, tenant_id: Uuid, name: &str) -> Result<Conversion>;

    /// Records a round trip to an identity provider (and drops expired ones).
    async fn put_federation_state(
        &self,
        state_hash: &str,
        tenant_id: Uuid,
        s: &FederationState,
        expires_at: i64,
        now: i64,
    ) -> Result<()>;

    /// Removes and returns a live round trip of `tenant_id`: a state works once, whatever
    /// happens next.
    async fn take_federation_state(
        &self,
        state_hash: &str,
        tenant_id: Uuid,
        now: i64,
    ) -> Result<Option<FederationState>>;

    /// Creates or refreshes the record of a user signed in by a federated domain's identity
    /// provider. The record is keyed by (issuer, `sub`) through its object id, so the `oid`
    /// is stable; a stale federated record holding the same UPN is released.
    async fn upsert_federated_user(&self, u: &FederatedUser<'_>, now: i64) -> Result<User>;
}
