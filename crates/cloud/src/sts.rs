//! The security token service: OpenID Connect discovery, the JWKS, the token endpoint and
//! MSAL's user realm discovery, at the Microsoft identity platform v2.0 paths.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use passthru_proto::admin::{ADMIN_AUDIENCE, ADMIN_CLIENT_ID, ADMIN_SCOPE};
use passthru_proto::Aadsts;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::oauth_error::OAuthError;
use crate::server::ClientInfo;
use crate::signin::{check_password, Attempt};
use crate::state::{unix_now, Shared};
use crate::store::{DomainKind, RefreshRecord, Tenant, User};
use crate::tokens::TOKEN_LIFETIME_SECS;

/// Lifetime of refresh tokens, seconds (90 days, as Azure's default).
const REFRESH_LIFETIME_SECS: i64 = 90 * 24 * 3600;

/// The base URL clients used to reach us (`https://host[:port]`), from the HTTP/2 authority
/// or the HTTP/1 Host header. Anything that is not a plain host[:port] falls back to
/// `localhost`, so a forged header cannot inject text into issued URLs.
#[derive(Debug, Clone)]
pub struct BaseUrl(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for BaseUrl {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        let from_uri = parts.uri.authority().map(|a| a.as_str().to_string());
        let from_header = parts
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        let host = from_uri
            .or(from_header)
            .filter(|h| {
                !h.is_empty()
                    && h.len() <= 255
                    && h.chars().all(|c| {
                        c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']')
                    })
            })
            .unwrap_or_else(|| "localhost".into());
        Ok(BaseUrl(format!("https://{host}")))
    }
}

/// `iss` of every token of a tenant.
pub fn issuer(base: &str, tenant: &Tenant) -> String {
    format!("{base}/{}/v2.0", tenant.id)
}

pub fn correlation_id(headers: &HeaderMap) -> Uuid {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::new_v4)
}

async fn load_tenant(state: &Shared, name: &str, corr: Uuid) -> Result<Tenant, OAuthError> {
    match state.store.tenant(name).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(OAuthError::new(Aadsts::TenantNotFound, corr)
            .with_detail(format!("Tenant '{name}' not found."))),
        Err(e) => {
            tracing::error!(error = %e, "store failure");
            Err(OAuthError::new(Aadsts::ServerError, corr))
        }
    }
}

/// `GET /{tenant}/v2.0/.well-known/openid-configuration`
pub async fn discovery(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    let t = load_tenant(&state, &tenant, correlation_id(&headers)).await?;
    let tid = t.id;
    let doc = json!({
        "issuer": issuer(&base, &t),
        "authorization_endpoint": format!("{base}/{tid}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/{tid}/oauth2/v2.0/token"),
        "jwks_uri": format!("{base}/{tid}/discovery/v2.0/keys"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query", "form_post"],
        "grant_types_supported": ["password", "refresh_token"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["ES256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "oid", "tid",
            "preferred_username", "name", "email", "ver"],
        "tenant_region_scope": null,
        "cloud_instance_name": "passthru",
    });
    Ok(([("cache-control", "max-age=300")], Json(doc)).into_response())
}

/// `GET /{tenant}/discovery/v2.0/keys`
pub async fn keys(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OAuthError> {
    load_tenant(&state, &tenant, correlation_id(&headers)).await?;
    Ok(Json(json!({ "keys": state.signer.jwks() })).into_response())
}

/// `GET /common/userrealm/{username}?api-version=1.0`: MSAL's home realm discovery.
pub async fn user_realm(State(state): State<Shared>, Path(username): Path<String>) -> Response {
    let domain = username.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    let kind = match state.store.domain(domain).await {
        Ok(Some(d)) => Some(d.kind),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "store failure");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let account_type = match kind {
        Some(DomainKind::Federated) => "Federated",
        Some(_) => "Managed",
        None => "Unknown",
    };
    Json(json!({
        "ver": "1.0",
        "account_type": account_type,
        "domain_name": domain.to_ascii_lowercase(),
        "cloud_instance_name": "passthru",
        "cloud_audience_urn": "urn:federation:passthru",
    }))
    .into_response()
}

/// The token request form. The password is zeroized when the form is dropped.
#[derive(Deserialize, Default)]
struct TokenForm {
    grant_type: Option<String>,
    client_id: Option<String>,
    username: Option<String>,
    password: Option<Zeroizing<String>>,
    scope: Option<String>,
    refresh_token: Option<Zeroizing<String>>,
    client_info: Option<String>,
}

/// `POST /{tenant}/oauth2/v2.0/token`
pub async fn token(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let corr = correlation_id(&headers);
    // Parse from a copy we can wipe; the form's secrets are zeroized on drop.
    let raw = Zeroizing::new(body.to_vec());
    drop(body);
    let form: TokenForm = serde_urlencoded::from_bytes(&raw).map_err(|_| {
        OAuthError::new(Aadsts::InvalidRequest, corr)
            .with_detail("The request body is not a valid form.")
    })?;
    drop(raw);
    let tenant = load_tenant(&state, &tenant, corr).await?;
    let missing = |name: &str| {
        OAuthError::new(Aadsts::MissingParameter, corr).with_detail(format!(
            "The request body must contain the following parameter: '{name}'."
        ))
    };
    let client_id = form
        .client_id
        .as_deref()
        .ok_or_else(|| missing("client_id"))?
        .to_ascii_lowercase();
    let grant = form
        .grant_type
        .as_deref()
        .ok_or_else(|| missing("grant_type"))?;
    if client_id != ADMIN_CLIENT_ID {
        match state.store.app(tenant.id, &client_id).await {
            Ok(Some(app)) if app.public => {}
            Ok(Some(_)) => {
                return Err(OAuthError::new(Aadsts::UnauthorizedClient, corr)
                    .with_detail("Confidential clients cannot use this grant yet."))
            }
            Ok(None) => {
                return Err(
                    OAuthError::new(Aadsts::UnknownClient, corr).with_detail(format!(
                        "Application '{client_id}' was not found in tenant '{}'.",
                        tenant.name
                    )),
                )
            }
            Err(e) => {
                tracing::error!(error = %e, "store failure");
                return Err(OAuthError::new(Aadsts::ServerError, corr));
            }
        }
    }
    let scope = form
        .scope
        .clone()
        .unwrap_or_else(|| "openid profile".into());
    let want_client_info = form.client_info.as_deref() == Some("1");
    match grant {
        "password" => {
            let username = form
                .username
                .as_deref()
                .ok_or_else(|| missing("username"))?;
            let password = form.password.clone().ok_or_else(|| missing("password"))?;
            let attempt = Attempt {
                tenant: &tenant,
                username,
                client_id: Some(&client_id),
                client_ip: Some(client.addr.ip().to_string()),
                correlation_id: corr,
            };
            let user = check_password(&state, &attempt, password).await?;
            issue(
                &state,
                &base,
                &tenant,
                &user,
                &client_id,
                &scope,
                want_client_info,
                corr,
            )
            .await
        }
        "refresh_token" => {
            let rt = form
                .refresh_token
                .as_deref()
                .ok_or_else(|| missing("refresh_token"))?;
            let invalid = || {
                OAuthError::new(Aadsts::InvalidCredentials, corr)
                    .with_detail("The refresh token is invalid, expired or already used.")
            };
            let rec = state
                .store
                .take_refresh_token(&hash_token(rt))
                .await
                .map_err(|_| OAuthError::new(Aadsts::ServerError, corr))?
                .ok_or_else(invalid)?;
            if rec.tenant_id != tenant.id
                || rec.client_id != client_id
                || rec.expires_at < unix_now()
            {
                return Err(invalid());
            }
            let user = state
                .store
                .user_by_id(tenant.id, rec.user_id)
                .await
                .map_err(|_| OAuthError::new(Aadsts::ServerError, corr))?
                .ok_or_else(invalid)?;
            issue(
                &state,
                &base,
                &tenant,
                &user,
                &client_id,
                &rec.scope,
                want_client_info,
                corr,
            )
            .await
        }
        other => Err(OAuthError::new(Aadsts::UnsupportedGrantType, corr)
            .with_detail(format!("The grant type '{other}' is not supported."))),
    }
}

fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn pairwise_sub(oid: Uuid, client_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(oid.as_bytes());
    h.update(client_id.as_bytes());
    B64URL.encode(&h.finalize()[..24])
}

#[allow(clippy::too_many_arguments)]
async fn issue(
    state: &Shared,
    base: &str,
    tenant: &Tenant,
    user: &User,
    client_id: &str,
    scope: &str,
    want_client_info: bool,
    corr: Uuid,
) -> Result<Response, OAuthError> {
    let scopes: Vec<&str> = scope.split_whitespace().collect();
    let now = unix_now();
    let exp = now + TOKEN_LIFETIME_SECS;
    let iss = issuer(base, tenant);
    let sub = pairwise_sub(user.id, client_id);
    let name = user
        .display_name
        .clone()
        .unwrap_or_else(|| user.upn.clone());
    let admin = scopes.contains(&ADMIN_SCOPE);
    let resource_scopes: Vec<&str> = scopes
        .iter()
        .copied()
        .filter(|s| !matches!(*s, "openid" | "profile" | "email" | "offline_access"))
        .collect();
    let aud = if admin {
        ADMIN_AUDIENCE.to_string()
    } else {
        client_id.to_string()
    };
    let server_error = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "token issuance failed");
        OAuthError::new(Aadsts::ServerError, corr)
    };
    let access = state
        .signer
        .sign(&json!({
            "iss": iss, "aud": aud, "sub": sub, "oid": user.id, "tid": tenant.id,
            "exp": exp, "iat": now, "nbf": now, "azp": client_id,
            "scp": resource_scopes.join(" "), "preferred_username": user.upn,
            "name": name, "ver": "2.0", "uti": Uuid::new_v4().simple().to_string(),
        }))
        .map_err(|e| server_error(&e))?;
    let mut body = json!({
        "token_type": "Bearer",
        "scope": if resource_scopes.is_empty() { scopes.join(" ") } else { resource_scopes.join(" ") },
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": access,
    });
    if scopes.contains(&"openid") {
        let mut id_claims = json!({
            "iss": iss, "aud": client_id, "sub": sub, "oid": user.id, "tid": tenant.id,
            "exp": exp, "iat": now, "nbf": now, "preferred_username": user.upn,
            "name": name, "ver": "2.0",
        });
        if scopes.contains(&"email") {
            if let (Some(mail), Some(obj)) = (&user.mail, id_claims.as_object_mut()) {
                obj.insert("email".into(), Value::String(mail.clone()));
            }
        }
        let id_token = state
            .signer
            .sign(&id_claims)
            .map_err(|e| server_error(&e))?;
        body["id_token"] = Value::String(id_token);
    }
    if scopes.contains(&"offline_access") {
        let mut raw = [0u8; 32];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
        let rt = B64URL.encode(raw);
        let rec = RefreshRecord {
            tenant_id: tenant.id,
            user_id: user.id,
            client_id: client_id.to_string(),
            scope: scope.to_string(),
            expires_at: now + REFRESH_LIFETIME_SECS,
        };
        state
            .store
            .add_refresh_token(&hash_token(&rt), &rec)
            .await
            .map_err(|e| server_error(&e))?;
        body["refresh_token"] = Value::String(rt);
    }
    if want_client_info {
        let ci = json!({ "uid": user.id, "utid": tenant.id });
        body["client_info"] = Value::String(B64URL.encode(ci.to_string()));
    }
    Ok((
        [("cache-control", "no-store"), ("pragma", "no-cache")],
        Json(body),
    )
        .into_response())
}
