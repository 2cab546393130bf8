//! The admin API under `/{tenant}/admin/`, authenticated with access tokens from our own STS
//! (audience `passthru-admin`). The caller's role is read from the store on every request, so
//! a role change takes effect at once.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use passthru_proto::admin::{RegisterAgentRequest, RegisterAgentResponse, ADMIN_AUDIENCE};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::oauth_error::ApiError;
use crate::state::{unix_now, Shared};
use crate::store::{App, DomainKind, Tenant, User};
use crate::sts::BaseUrl;

/// Roles a user can hold.
pub const GLOBAL_ADMIN: &str = "GlobalAdministrator";
/// May register agents (and nothing else here).
pub const HYBRID_ADMIN: &str = "HybridIdentityAdministrator";

/// The message of `pta enable` with no active agent (the seed's wording, then what to do).
pub const NO_CONNECTORS: &str = "The enabling of the feature failed because there were no connectors available. \
You need at least one active authentication agent: register one with `passthru-agent register`, start it with `passthru-agent run`, \
check that `passthru-cloud admin agents list` shows it active, then enable again.";

/// Checks the bearer token and the caller's role for `tenant`.
pub async fn authorize(
    state: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    roles: &[&str],
) -> Result<(Tenant, User), ApiError> {
    let unauthorized = |d: &str| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", d);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("An access token is required (Authorization: Bearer ...)."))?;
    let claims = state
        .signer
        .verify_access(token, ADMIN_AUDIENCE)
        .map_err(|_| unauthorized("The access token is invalid or expired. Sign in again."))?;
    let t = state
        .store
        .tenant(tenant)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Tenant '{tenant}' not found.")))?;
    if claims.azp != passthru_proto::admin::ADMIN_CLIENT_ID {
        return Err(unauthorized(
            "This access token was not issued to the Passthru administration client.",
        ));
    }
    if claims.tid != t.id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "The access token was issued for another tenant.",
        ));
    }
    let user = state
        .store
        .user_by_id(t.id, claims.oid)
        .await?
        .ok_or_else(|| unauthorized("The signed-in user no longer exists."))?;
    if !roles.contains(&user.role.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!(
                "'{}' is not allowed to do this: it needs the role {}.",
                user.upn,
                roles.join(" or ")
            ),
        ));
    }
    Ok((t, user))
}

/// `POST /{tenant}/admin/agents/register`
pub async fn register_agent(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Json(req): Json<RegisterAgentRequest>,
) -> Result<Json<RegisterAgentResponse>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN, HYBRID_ADMIN]).await?;
    let hpke = B64
        .decode(req.hpke_public_key.as_bytes())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            ApiError::bad_request("hpke_public_key must be 32 bytes of X25519 public key, base64.")
        })?;
    if req.host.is_empty() || req.host.len() > 255 {
        return Err(ApiError::bad_request("host must be 1 to 255 characters."));
    }
    let agent_id = Uuid::new_v4();
    let issued = state
        .agent_ca
        .issue(
            &req.csr_pem,
            agent_id,
            t.id,
            time::OffsetDateTime::now_utc(),
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .store
        .add_agent(
            agent_id,
            t.id,
            &issued.fingerprint,
            issued.not_after,
            &hpke,
            &req.host,
            &req.version,
            unix_now(),
        )
        .await?;
    tracing::info!(tenant = %t.name, agent = %agent_id, host = %req.host, by = %admin.upn, "agent registered");
    Ok(Json(RegisterAgentResponse {
        agent_id,
        tenant_id: t.id,
        tenant_name: t.name,
        certificate_pem: issued.pem,
        agent_endpoint: base,
    }))
}

/// `GET /{tenant}/admin/agents`
pub async fn list_agents(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN, HYBRID_ADMIN]).await?;
    let connected = state.gateway.connected(t.id);
    let agents: Vec<Value> = state
        .store
        .agents(t.id)
        .await?
        .into_iter()
        .map(|a| {
            let live = connected.iter().find(|c| c.agent_id == a.id);
            json!({
                "id": a.id,
                "host": a.host,
                "version": a.version,
                "status": match live {
                    _ if a.revoked => "revoked",
                    Some(c) if c.draining => "draining",
                    Some(_) => "active",
                    None => "inactive",
                },
                "last_seen": a.last_seen,
                "source_ip": a.source_ip,
                "cert_expires_at": a.cert_expires_at,
                "forests": live.map(|c| c.upn_suffixes.clone()).unwrap_or_default(),
                "in_flight": live.map(|c| c.in_flight).unwrap_or(0),
                "requests_served": live.map(|c| c.served).unwrap_or(0),
                "revoked": a.revoked,
            })
        })
        .collect();
    Ok(Json(json!({ "agents": agents })))
}

/// The warning of removing the last active agent while PTA is on (the seed's wording).
pub const LAST_AGENT: &str =
    "Users will not be able to sign in unless you have other authentication agents installed.";

#[derive(Debug, Deserialize)]
pub struct RevokeBody {
    #[serde(default)]
    force: bool,
}

/// `POST /{tenant}/admin/agents/{id}/revoke`: the agent's certificate is refused at once and
/// its connections are closed. Revoking the last active agent while PTA is on needs `force`.
pub async fn revoke_agent(
    State(state): State<Shared>,
    Path((tenant, id)): Path<(String, Uuid)>,
    headers: HeaderMap,
    Json(body): Json<RevokeBody>,
) -> Result<Json<Value>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    let others_active = state
        .gateway
        .connected(t.id)
        .iter()
        .any(|c| c.agent_id != id && !c.draining);
    if t.pta_enabled && !others_active && !body.force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_agent",
            format!("{LAST_AGENT} Install and start another agent first, or repeat with --force."),
        ));
    }
    if !state.store.revoke_agent(t.id, id).await? {
        return Err(ApiError::not_found(format!(
            "No agent {id} in this tenant."
        )));
    }
    let closed = state.gateway.disconnect(t.id, id);
    tracing::warn!(tenant = %t.name, agent = %id, by = %admin.upn, closed, "agent revoked");
    Ok(Json(
        json!({ "id": id, "revoked": true, "connections_closed": closed }),
    ))
}

#[derive(Debug, Deserialize)]
pub struct DomainBody {
    name: String,
    /// Present for a federated domain: its identity provider (see `federation`).
    #[serde(default)]
    federated: Option<crate::federation::FederatedBody>,
}

fn valid_domain(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `POST /{tenant}/admin/domains`: adds a managed domain, or a federated one when the body
/// has `federated: {issuer, client_id, client_secret}`.
pub async fn add_domain(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(body): Json<DomainBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    let name = body.name.trim().to_ascii_lowercase();
    if !valid_domain(&name) {
        return Err(ApiError::bad_request(format!(
            "'{name}' is not a valid DNS domain name."
        )));
    }
    if let Some(f) = body.federated {
        return crate::federation::add_federated_domain(&state, &t, &name, f).await;
    }
    state
        .store
        .add_domain(t.id, &name, DomainKind::Managed, unix_now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "kind": "managed" })),
    ))
}

/// `GET /{tenant}/admin/domains`
pub async fn list_domains(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    Ok(Json(json!({ "domains": state.store.domains(t.id).await? })))
}

#[derive(Debug, Deserialize)]
pub struct AppBody {
    name: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    confidential: bool,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

/// A redirect URI is absolute, has no fragment, and uses https (http only for loopback, as
/// native apps do per RFC 8252).
pub fn valid_redirect_uri(uri: &str) -> Result<(), String> {
    let u = url::Url::parse(uri).map_err(|e| format!("'{uri}' is not an absolute URL: {e}"))?;
    if u.fragment().is_some() {
        return Err(format!("'{uri}' must not have a fragment"));
    }
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "'{uri}' must use https (http is allowed only for localhost)"
        )),
    }
}

/// `POST /{tenant}/admin/apps`: registers an app. A confidential app's secret is in this
/// answer and nowhere else: only its hash is stored.
pub async fn add_app(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(body): Json<AppBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 120 {
        return Err(ApiError::bad_request(
            "The app name must be 1 to 120 characters.",
        ));
    }
    if body.public == body.confidential {
        return Err(ApiError::bad_request(
            "Say whether the app is --public or --confidential (one of them).",
        ));
    }
    if body.redirect_uris.len() > 50 {
        return Err(ApiError::bad_request("At most 50 redirect URIs."));
    }
    for uri in &body.redirect_uris {
        valid_redirect_uri(uri).map_err(ApiError::bad_request)?;
    }
    let client_id = Uuid::new_v4().to_string();
    let secret = body.confidential.then(crate::issue::random_token);
    let app = App {
        client_id: client_id.clone(),
        tenant_id: t.id,
        name: name.to_string(),
        public: body.public,
        redirect_uris: body.redirect_uris.clone(),
        secret_hash: secret.as_deref().map(crate::issue::hash_secret),
    };
    state.store.add_app(&app, unix_now()).await?;
    let mut answer = json!({ "client_id": client_id, "name": name, "public": body.public, "redirect_uris": body.redirect_uris });
    if let Some(s) = secret {
        answer["client_secret"] = Value::String(s);
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

#[derive(Deserialize)]
pub struct UserBody {
    upn: String,
    password: Zeroizing<String>,
}

impl std::fmt::Debug for UserBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserBody")
            .field("upn", &self.upn)
            .finish_non_exhaustive()
    }
}

/// `POST /{tenant}/admin/users`: adds a cloud-only user.
pub async fn add_user(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(body): Json<UserBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    let upn = body.upn.trim().to_string();
    let Some((local, domain)) = upn.rsplit_once('@') else {
        return Err(ApiError::bad_request("The UPN must look like name@domain."));
    };
    if local.is_empty() {
        return Err(ApiError::bad_request("The UPN must look like name@domain."));
    }
    match state.store.domain(domain).await? {
        Some(d) if d.tenant_id == t.id => {}
        _ => {
            return Err(ApiError::bad_request(format!(
            "'{domain}' is not a domain of this tenant: add it with `domain add {domain}` first."
        )))
        }
    }
    if body.password.chars().count() < 8 {
        return Err(ApiError::bad_request(
            "The password must have at least 8 characters.",
        ));
    }
    let hash = crate::passwords::hash(body.password)
        .await
        .map_err(ApiError::internal)?;
    let id = state
        .store
        .add_cloud_user(t.id, &upn, &hash, "none", unix_now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "upn": upn, "source": "cloud" })),
    ))
}

/// `GET /{tenant}/admin/users`
pub async fn list_users(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    Ok(Json(json!({ "users": state.store.users(t.id).await? })))
}

fn pta_status(state: &Shared, t: &Tenant) -> Value {
    let connected = state.gateway.connected(t.id);
    json!({
        "enabled": t.pta_enabled,
        "active_agents": connected.iter().filter(|c| !c.draining).count(),
    })
}

/// `GET /{tenant}/admin/pta`
pub async fn get_pta(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    Ok(Json(pta_status(&state, &t)))
}

#[derive(Debug, Deserialize)]
pub struct PtaBody {
    enabled: bool,
}

/// `POST /{tenant}/admin/pta`: enables (needs an active agent) or disables PTA.
pub async fn set_pta(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(body): Json<PtaBody>,
) -> Result<Json<Value>, ApiError> {
    let (mut t, admin) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    if body.enabled && !state.gateway.connected(t.id).iter().any(|c| !c.draining) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_connectors",
            NO_CONNECTORS,
        ));
    }
    state.store.set_pta(t.id, body.enabled).await?;
    t.pta_enabled = body.enabled;
    tracing::info!(tenant = %t.name, enabled = body.enabled, by = %admin.upn, "pass-through authentication setting changed");
    Ok(Json(pta_status(&state, &t)))
}

/// `GET /{tenant}/admin/signins`
pub async fn list_sign_ins(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, &[GLOBAL_ADMIN]).await?;
    Ok(Json(
        json!({ "signins": state.store.sign_ins(t.id, 500).await? }),
    ))
}

#[cfg(test)]
mod tests {
    use super::valid_domain;

    #[test]
    fn domain_names() {
        assert!(valid_domain("corp.example.test"));
        assert!(!valid_domain("localhost"));
        assert!(!valid_domain("-bad.example"));
        assert!(!valid_domain("a..b"));
        assert!(!valid_domain("sp ace.example"));
    }
}
