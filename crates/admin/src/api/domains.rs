//! Domains: `/domains...`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use zeroize::Zeroizing;

/// The only kind a domain can be converted to (`ConvertDomain::to`).
pub const MANAGED: &str = "managed";

/// `POST /domains`: a managed domain, or a federated one with its identity provider.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NewDomain {
    pub name: String,
    /// Present for a federated domain: its OpenID Connect identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federated: Option<FederatedIdp>,
}

/// A federated domain's OpenID Connect identity provider, and this service's client there.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct FederatedIdp {
    /// An absolute https URL without query, fragment or user info (see [`valid_issuer`]).
    pub issuer: String,
    pub client_id: String,
    #[schema(value_type = String, format = Password, write_only)]
    pub client_secret: Zeroizing<String>,
}

impl std::fmt::Debug for FederatedIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederatedIdp")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// `POST /domains/{name}/convert`: what the federated domain becomes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ConvertDomain {
    /// Only `managed`: its users sign in by pass-through authentication.
    #[schema(examples("managed"))]
    pub to: String,
}

/// A domain of the tenant.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Domain {
    pub name: String,
    pub verified: bool,
    /// `cloud` (the tenant's initial domain), `managed` or `federated`.
    pub kind: String,
    /// While not verified: the DNS record that proves control of the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification: Option<DnsProof>,
    /// A federated domain just added: its identity provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `GET /domains/{name}` only: how many users have a UPN in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<i64>,
}

/// The TXT record to publish to prove control of a domain.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DnsProof {
    /// Always `TXT`.
    #[serde(rename = "type")]
    pub record_type: String,
    pub name: String,
    pub value: String,
    pub ttl: u32,
    /// What to do next, in a sentence.
    pub next: String,
}

/// `GET /domains`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainList {
    pub domains: Vec<Domain>,
}

/// `DELETE /domains/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainRemoved {
    pub name: String,
    pub removed: bool,
}

/// `POST /domains/{name}/convert`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct DomainConverted {
    pub name: String,
    pub kind: String,
    /// When false, the domain's users cannot sign in until pass-through authentication is on.
    pub pta_enabled: bool,
}

/// Whether `url` has no control or white-space character: the URL parser drops those (C0
/// controls and spaces at the ends, tabs and newlines anywhere), so it would check other text
/// than the one kept, compared and logged.
fn no_hidden_text(url: &str) -> bool {
    !url.chars().any(|c| c.is_control() || c.is_whitespace())
}

/// Checks an issuer URL an administrator gives: absolute https, a host, no query, fragment
/// or user info, no control or white-space character. Returns it trimmed (it must then equal
/// the provider's `iss` exactly). The CLI checks it before sending, the cloud when it gets it.
pub fn valid_issuer(issuer: &str) -> Result<String, String> {
    let issuer = issuer.trim();
    if !no_hidden_text(issuer) {
        return Err(format!(
            "the issuer {issuer:?} holds a control or white-space character: give the URL alone"
        ));
    }
    let u = url::Url::parse(issuer)
        .map_err(|e| format!("the issuer '{issuer}' is not an absolute URL: {e}"))?;
    if u.scheme() != "https" {
        return Err(format!(
            "the issuer '{issuer}' must be an https URL (identity providers are only reached over HTTPS)"
        ));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err(format!("the issuer '{issuer}' has no host"));
    }
    if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() {
        return Err(format!(
            "the issuer '{issuer}' must not have a query, a fragment or user info"
        ));
    }
    Ok(issuer.to_string())
}
