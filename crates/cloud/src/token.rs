//! `POST /{tenant}/oauth2/v2.0/token`: the password, authorization code (+ PKCE), refresh
//! token (rotation with reuse detection) and client credentials grants, with client
//! authentication for confidential apps (a secret in the form or HTTP Basic, or a client
//! assertion signed with a certificate: [`crate::client_auth`]).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use passthru_proto::Aadsts;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::client_auth::{authenticate_client, basic_auth, Endpoint, Presented};
use crate::clock::unix_now;
use crate::http::correlation_id;
use crate::http::ClientInfo;
use crate::issue::secrets_equal;
use crate::issue::{app_token, hash_secret, user_tokens, Grant};
use crate::oauth_error::OAuthError;
use crate::signin::{check_password_and_mfa, Attempt};
use crate::state::Shared;
use crate::store::oidc::RefreshUse;
use crate::store::Tenant;
use crate::sts::{load_tenant, BaseUrl};

/// The token request form. Secrets are zeroized when the form is dropped.
#[derive(Deserialize, Default)]
pub(crate) struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    client_secret: Option<Zeroizing<String>>,
    client_assertion_type: Option<String>,
    client_assertion: Option<Zeroizing<String>>,
    username: Option<String>,
    password: Option<Zeroizing<String>>,
    scope: Option<String>,
    refresh_token: Option<Zeroizing<String>>,
    code: Option<Zeroizing<String>>,
    redirect_uri: Option<String>,
    code_verifier: Option<Zeroizing<String>>,
    device_code: Option<Zeroizing<String>>,
    client_info: Option<String>,
}

/// The token request form of a body, `None` when it is not a valid form.
pub(crate) fn parse_token_form(body: &[u8]) -> Option<TokenForm> {
    serde_urlencoded::from_bytes(body).ok()
}

fn missing(name: &str, corr: Uuid) -> OAuthError {
    OAuthError::new(Aadsts::MissingParameter, corr).with_detail(format!(
        "The request body must contain the following parameter: '{name}'."
    ))
}

fn server_error(e: impl Into<crate::oauth_error::Fault>, corr: Uuid) -> OAuthError {
    OAuthError::fault(corr, e)
}

/// Codes and refresh tokens of a single-page app are redeemed by the browser, cross-origin
/// (with an `Origin` among its redirect URIs' origins); those of any other app never are.
async fn check_origin(
    state: &Shared,
    tenant: &Tenant,
    client_id: &str,
    headers: &HeaderMap,
    corr: Uuid,
) -> Result<(), OAuthError> {
    let origin = headers.get("origin").and_then(|v| v.to_str().ok());
    let spa = match state.store.app(tenant.id, client_id).await {
        Ok(app) => app.filter(|a| a.spa),
        Err(e) => return Err(server_error(e, corr)),
    };
    match (spa, origin) {
        (Some(app), Some(origin)) => {
            let registered = app
                .redirect_uris
                .iter()
                .filter_map(|u| crate::store::origin_of(u))
                .any(|o| o == origin);
            if registered {
                Ok(())
            } else {
                Err(OAuthError::new(Aadsts::SpaCrossOriginOnly, corr).with_detail(format!(
                    "The origin '{origin}' is not the origin of a redirect URI of this single-page app."
                )))
            }
        }
        (Some(_), None) => Err(OAuthError::new(Aadsts::SpaCrossOriginOnly, corr)),
        (None, Some(_)) => Err(OAuthError::new(Aadsts::CrossOriginNotSpa, corr)),
        (None, None) => Ok(()),
    }
}

/// PKCE S256: BASE64URL(SHA256(verifier)) == challenge.
pub fn pkce_s256(verifier: &str) -> String {
    B64URL.encode(Sha256::digest(verifier.as_bytes()))
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub async fn token(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client_info): Extension<ClientInfo>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let corr = correlation_id(&headers);
    // Parse from a copy we can wipe; the form's secrets are zeroized on drop.
    let raw = Zeroizing::new(body.to_vec());
    drop(body);
    let form = parse_token_form(&raw).ok_or_else(|| {
        OAuthError::new(Aadsts::InvalidRequest, corr)
            .with_detail("The request body is not a valid form.")
    })?;
    drop(raw);
    let tenant_in_path = tenant;
    let tenant = if crate::sts::is_multi_tenant(&tenant_in_path) {
        let client_id = form
            .client_id
            .clone()
            .or_else(|| basic_auth(&headers).map(|(id, _)| id))
            .or_else(|| {
                form.client_assertion
                    .as_deref()
                    .and_then(|a| crate::client_auth::assertion::unverified_subject(a))
            });
        let username = (form.grant_type.as_deref() == Some("password"))
            .then_some(form.username.as_deref())
            .flatten();
        crate::sts::resolve_multi_tenant(&state, client_id.as_deref(), username, corr).await?
    } else {
        load_tenant(&state, &tenant_in_path, corr).await?
    };
    let grant = form
        .grant_type
        .clone()
        .ok_or_else(|| missing("grant_type", corr))?;
    let endpoint = Endpoint {
        base: &base,
        tenant: &tenant,
        tenant_in_path: &tenant_in_path,
    };
    let presented = Presented {
        client_id: form.client_id.as_deref(),
        client_secret: form.client_secret.as_ref(),
        assertion_type: form.client_assertion_type.as_deref(),
        assertion: form.client_assertion.as_deref().map(String::as_str),
    };
    let client = authenticate_client(&state, endpoint, presented, &headers, corr).await?;
    let want_client_info = form.client_info.as_deref() == Some("1");
    match grant.as_str() {
        "password" => {
            let username = form
                .username
                .as_deref()
                .ok_or_else(|| missing("username", corr))?;
            let password = form
                .password
                .clone()
                .ok_or_else(|| missing("password", corr))?;
            let scope = form
                .scope
                .clone()
                .unwrap_or_else(|| "openid profile".into());
            let attempt = Attempt {
                tenant: &tenant,
                username,
                client_id: Some(&client.id),
                client_ip: Some(client_info.addr.ip().to_string()),
                correlation_id: corr,
            };
            let checked = check_password_and_mfa(&state, &attempt, password).await?;
            let user = checked.user;
            crate::mfa::password_grant_allowed(&state, &tenant, &user, checked.mfa, corr).await?;
            let g = Grant {
                base: &base,
                tenant: &tenant,
                user: &user,
                client_id: &client.id,
                scope: &scope,
                nonce: None,
                auth_time: unix_now(),
                want_client_info,
                family: None,
                refresh_expires_at: None,
                correlation_id: corr,
            };
            user_tokens(&state, &g).await
        }
        "authorization_code" => {
            let code = form.code.as_deref().ok_or_else(|| missing("code", corr))?;
            let redirect_uri = form
                .redirect_uri
                .as_deref()
                .ok_or_else(|| missing("redirect_uri", corr))?;
            let used = || OAuthError::new(Aadsts::ExpiredOrUsedGrant, corr);
            check_origin(&state, &tenant, &client.id, &headers, corr).await?;
            let c = state
                .store
                .take_code(&hash_secret(code))
                .await
                .map_err(|e| server_error(e, corr))?
                .ok_or_else(used)?;
            if c.expires_at < unix_now() {
                return Err(used());
            }
            if c.tenant_id != tenant.id
                || c.client_id != client.id
                || c.redirect_uri != redirect_uri
            {
                return Err(OAuthError::new(Aadsts::InvalidGrant, corr));
            }
            match (&c.code_challenge, form.code_verifier.as_deref()) {
                (Some(challenge), Some(verifier)) => {
                    if !secrets_equal(pkce_s256(verifier).as_bytes(), challenge.as_bytes()) {
                        return Err(OAuthError::new(Aadsts::PkceMismatch, corr));
                    }
                }
                (Some(_), None) => return Err(missing("code_verifier", corr)),
                (None, _) if !client.confidential => {
                    return Err(OAuthError::new(Aadsts::PkceRequired, corr))
                }
                (None, _) => {}
            }
            let user = state
                .store
                .user_by_id(tenant.id, c.user_id)
                .await
                .map_err(|e| server_error(e, corr))?
                .ok_or_else(used)?;
            let g = Grant {
                base: &base,
                tenant: &tenant,
                user: &user,
                client_id: &client.id,
                scope: &c.scope,
                nonce: c.nonce.as_deref(),
                auth_time: c.auth_time,
                want_client_info,
                family: None,
                refresh_expires_at: None,
                correlation_id: corr,
            };
            user_tokens(&state, &g).await
        }
        "refresh_token" => {
            let rt = form
                .refresh_token
                .as_deref()
                .ok_or_else(|| missing("refresh_token", corr))?;
            let invalid = || OAuthError::new(Aadsts::ExpiredOrUsedGrant, corr);
            check_origin(&state, &tenant, &client.id, &headers, corr).await?;
            let rec = match state
                .store
                .use_refresh_token(&hash_secret(rt), unix_now())
                .await
                .map_err(|e| server_error(e, corr))?
            {
                RefreshUse::Fresh(rec) => rec,
                RefreshUse::Reused => {
                    tracing::warn!(tenant = %tenant.name, client = %client.id, correlation = %corr,
                        "a rotated refresh token was presented again: its whole family is revoked");
                    return Err(invalid().with_detail("The refresh token was already used; every token of this sign-in has been revoked."));
                }
                RefreshUse::Unknown => return Err(invalid()),
            };
            if rec.tenant_id != tenant.id || rec.client_id != client.id {
                return Err(OAuthError::new(Aadsts::InvalidGrant, corr));
            }
            // A refresh may narrow the scopes, never widen them.
            let scope = match form.scope.as_deref() {
                Some(asked) => {
                    let granted: Vec<&str> = rec.scope.split_whitespace().collect();
                    if asked.split_whitespace().all(|s| granted.contains(&s)) {
                        asked.to_string()
                    } else {
                        return Err(OAuthError::new(Aadsts::InvalidScope, corr)
                            .with_detail("A refresh cannot add scopes that were not granted."));
                    }
                }
                None => rec.scope.clone(),
            };
            let user = state
                .store
                .user_by_id(tenant.id, rec.user_id)
                .await
                .map_err(|e| server_error(e, corr))?
                .ok_or_else(invalid)?;
            let g = Grant {
                base: &base,
                tenant: &tenant,
                user: &user,
                client_id: &client.id,
                scope: &scope,
                nonce: None,
                auth_time: rec.auth_time,
                want_client_info,
                family: Some(rec.family.clone()),
                refresh_expires_at: Some(rec.expires_at),
                correlation_id: corr,
            };
            user_tokens(&state, &g).await
        }
        "client_credentials" => {
            if !client.confidential {
                return Err(
                    OAuthError::new(Aadsts::ClientAuthMissing, corr).with_detail(
                        "Only confidential applications can use the client credentials grant.",
                    ),
                );
            }
            let scope = form
                .scope
                .as_deref()
                .ok_or_else(|| missing("scope", corr))?;
            let resource = crate::resource::app_only(&state, &tenant, scope, corr).await?;
            app_token(&state, &base, &tenant, &client.id, &resource, corr).await
        }
        // MSAL sends the short form, which Entra accepts too.
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => {
            let device_code = form
                .device_code
                .as_deref()
                .ok_or_else(|| missing("device_code", corr))?;
            crate::device::redeem(
                &state,
                &base,
                &tenant,
                &client.id,
                device_code,
                want_client_info,
                corr,
            )
            .await
        }
        other => Err(OAuthError::new(Aadsts::UnsupportedGrantType, corr)
            .with_detail(format!("The grant type '{other}' is not supported."))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_matches_rfc7636_example() {
        // RFC 7636, appendix B.
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }
}
