//! Client authentication at the token endpoint. A public client (and the first-party admin
//! client) has nothing to prove. A confidential client proves itself with one of its
//! credentials ([`crate::store::AppCredentialStore`]):
//! - a client secret, in the form (`client_secret_post`) or HTTP Basic
//!   (`client_secret_basic`): accepted when it is any of the app's secrets that is not
//!   expired (several at once, so a secret is replaced without an outage);
//! - a client assertion (`private_key_jwt`, RFC 7523: `client_assertion_type` =
//!   [`assertion::JWT_BEARER`] and `client_assertion`), a JWT signed with the private key of
//!   one of the app's certificates: [`assertion::verify`].
//!
//! Credentials are read from the store on every request (never cached), so a removed one
//! stops working at once, on every instance.

pub(crate) mod assertion;
pub(crate) mod certificate;
#[cfg(test)]
pub(crate) mod test_keys;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod unit_tests;

use axum::http::HeaderMap;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use passthru_proto::admin::ADMIN_CLIENT_ID;
use passthru_proto::Aadsts;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::clock::unix_now;
use crate::issue::{hash_secret, secrets_equal};
use crate::oauth_error::OAuthError;
use crate::state::Shared;
use crate::store::app_credentials::{AppCredential, CredentialKey};
use crate::store::Tenant;

/// A client that proved who it is (or a public client, which has nothing to prove).
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub id: String,
    pub confidential: bool,
}

/// What a token request presents about its client.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Presented<'a> {
    pub client_id: Option<&'a str>,
    pub client_secret: Option<&'a Zeroizing<String>>,
    pub assertion_type: Option<&'a str>,
    pub assertion: Option<&'a str>,
}

/// Where the request was made: what an assertion's `aud` may name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Endpoint<'a> {
    /// The cloud's base URL.
    pub base: &'a str,
    pub tenant: &'a Tenant,
    /// The tenant as the request's path named it (name or id, as typed).
    pub tenant_in_path: &'a str,
}

impl Endpoint<'_> {
    /// The token endpoint URLs an assertion's `aud` may be: by tenant id (the discovery
    /// document's), as the path named the tenant, and by tenant name.
    pub(crate) fn audiences(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(3);
        for t in [
            self.tenant.id.to_string(),
            self.tenant_in_path.to_string(),
            self.tenant.name.clone(),
        ] {
            let url = format!("{}/{t}/oauth2/v2.0/token", self.base);
            if !out.contains(&url) {
                out.push(url);
            }
        }
        out
    }
}

/// The client id and secret of an `Authorization: Basic` header (`client_secret_basic`).
pub(crate) fn basic_auth(headers: &HeaderMap) -> Option<(String, Zeroizing<String>)> {
    let v = headers
        .get("authorization")?
        .to_str()
        .ok()?
        .strip_prefix("Basic ")?;
    let raw = Zeroizing::new(B64.decode(v.trim()).ok()?);
    let text = std::str::from_utf8(&raw).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_string(), Zeroizing::new(secret.to_string())))
}

fn missing(name: &str, corr: Uuid) -> OAuthError {
    OAuthError::new(Aadsts::MissingParameter, corr).with_detail(format!(
        "The request body must contain the following parameter: '{name}'."
    ))
}

/// Authenticates the client of a token request.
pub(crate) async fn authenticate_client(
    state: &Shared,
    endpoint: Endpoint<'_>,
    presented: Presented<'_>,
    headers: &HeaderMap,
    corr: Uuid,
) -> Result<Client, OAuthError> {
    let tenant = endpoint.tenant;
    let basic = basic_auth(headers);
    let client_id = presented
        .client_id
        .map(str::to_string)
        .or_else(|| basic.as_ref().map(|(id, _)| id.clone()))
        .or_else(|| presented.assertion.and_then(assertion::unverified_subject))
        .ok_or_else(|| missing("client_id", corr))?
        .to_ascii_lowercase();
    if client_id == ADMIN_CLIENT_ID {
        return Ok(Client {
            id: client_id,
            confidential: false,
        });
    }
    let app = match state.store.app(tenant.id, &client_id).await {
        Ok(Some(app)) => app,
        Ok(None) => {
            return Err(
                OAuthError::new(Aadsts::UnknownClient, corr).with_detail(format!(
                    "Application '{client_id}' was not found in tenant '{}'.",
                    tenant.name
                )),
            )
        }
        Err(e) => return Err(OAuthError::fault(corr, e)),
    };
    if app.public {
        return Ok(Client {
            id: client_id,
            confidential: false,
        });
    }
    let secret = presented
        .client_secret
        .cloned()
        .or_else(|| basic.map(|(_, s)| s));
    let credentials = || async {
        state
            .store
            .app_credentials(tenant.id, &client_id)
            .await
            .map_err(|e| OAuthError::fault(corr, e))
    };
    if presented.assertion.is_some() || presented.assertion_type.is_some() {
        if secret.is_some() {
            return Err(OAuthError::new(Aadsts::InvalidRequest, corr).with_detail(
                "Give one client credential: client_secret or client_assertion, not both.",
            ));
        }
        if presented.assertion_type != Some(assertion::JWT_BEARER) {
            return Err(
                OAuthError::new(Aadsts::InvalidRequest, corr).with_detail(format!(
                    "client_assertion_type must be '{}'.",
                    assertion::JWT_BEARER
                )),
            );
        }
        let jwt = presented
            .assertion
            .ok_or_else(|| missing("client_assertion", corr))?;
        let audiences = endpoint.audiences();
        let expected = assertion::Expected {
            client_id: &client_id,
            audiences: &audiences,
            now: unix_now(),
        };
        let verified = assertion::verify(jwt, &expected, &credentials().await?)
            .map_err(|e| OAuthError::new(e.aadsts(), corr).with_detail(e.to_string()))?;
        tracing::debug!(tenant = %tenant.name, client = %client_id, credential = %verified.credential_id,
            correlation = %corr, "client authenticated with a certificate");
        return Ok(Client {
            id: client_id,
            confidential: true,
        });
    }
    let secret = secret.ok_or_else(|| OAuthError::new(Aadsts::ClientAuthMissing, corr))?;
    match secret_check(&hash_secret(&secret), &credentials().await?, unix_now()) {
        SecretCheck::Valid(id) => {
            tracing::debug!(tenant = %tenant.name, client = %client_id, credential = %id,
                correlation = %corr, "client authenticated with a secret");
            Ok(Client {
                id: client_id,
                confidential: true,
            })
        }
        SecretCheck::Expired => Err(OAuthError::new(Aadsts::ExpiredClientSecret, corr)),
        SecretCheck::Wrong => Err(OAuthError::new(Aadsts::InvalidClientSecret, corr)),
    }
}

/// What a presented secret is among an app's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SecretCheck {
    /// One of its secrets, valid now (its id).
    Valid(Uuid),
    /// One of its secrets, expired (or not yet valid).
    Expired,
    /// None of its secrets.
    Wrong,
}

/// Compares `hash` (of the presented secret) with every secret of `credentials`, each in
/// constant time and all of them whatever matched first.
pub(crate) fn secret_check(hash: &str, credentials: &[AppCredential], now: i64) -> SecretCheck {
    let mut valid = None;
    let mut expired = false;
    for c in credentials {
        let CredentialKey::Secret { hash: stored } = &c.key else {
            continue;
        };
        if secrets_equal(hash.as_bytes(), stored.as_bytes()) {
            if c.valid_at(now) {
                valid = valid.or(Some(c.id));
            } else {
                expired = true;
            }
        }
    }
    match (valid, expired) {
        (Some(id), _) => SecretCheck::Valid(id),
        (None, true) => SecretCheck::Expired,
        (None, false) => SecretCheck::Wrong,
    }
}
