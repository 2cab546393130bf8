//! Minting tokens: ID token, access token, rotating refresh token and MSAL's `client_info`.
//! ES256 throughout (see docs/architecture.md for why).

use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use passthru_proto::admin::{ADMIN_AUDIENCE, ADMIN_CLIENT_ID, ADMIN_SCOPE};
use passthru_proto::Aadsts;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::clock::unix_now;
use crate::oauth_error::{Fault, OAuthError};
use crate::state::Shared;
use crate::store::{App, RefreshRecord, Tenant, User};
use crate::sts::issuer;
use crate::tokens::TOKEN_LIFETIME_SECS;

/// Lifetime of refresh tokens, seconds (90 days, as Azure's default).
pub const REFRESH_LIFETIME_SECS: i64 = 90 * 24 * 3600;

pub use crate::resource::OIDC_SCOPES;

/// SHA-256 of a bearer secret (code, refresh token, session id, client secret), hex.
pub fn hash_secret(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Compares two secrets (tokens, hashes, CSRF values) in constant time.
pub fn secrets_equal(a: impl AsRef<[u8]>, b: impl AsRef<[u8]>) -> bool {
    use subtle::ConstantTimeEq as _;
    a.as_ref().ct_eq(b.as_ref()).into()
}

/// 32 random bytes, base64url: codes, refresh tokens, session ids, client secrets.
pub fn random_token() -> String {
    let mut raw = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
    B64URL.encode(raw)
}

fn pairwise_sub(oid: Uuid, client_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(oid.as_bytes());
    h.update(client_id.as_bytes());
    B64URL.encode(&h.finalize()[..24])
}

/// What a successful grant is about.
#[derive(Debug, Clone)]
pub struct Grant<'a> {
    pub base: &'a str,
    pub tenant: &'a Tenant,
    pub user: &'a User,
    pub client_id: &'a str,
    pub scope: &'a str,
    pub nonce: Option<&'a str>,
    /// When the user last entered credentials.
    pub auth_time: i64,
    pub want_client_info: bool,
    /// The refresh token family to continue (rotation), or a new one.
    pub family: Option<String>,
    /// When the family being continued ends (a single-page app's refresh tokens keep the
    /// first one's expiry).
    pub refresh_expires_at: Option<i64>,
    pub correlation_id: Uuid,
}

/// Most group ids a token carries; beyond, it says `hasgroups` instead (as Azure does).
const MAX_GROUPS_IN_TOKEN: i64 = 200;

/// Lifetime of a single-page app's refresh tokens, seconds: 24 hours from the sign-in,
/// never extended by rotation (as Entra does for tokens a browser holds).
pub const SPA_REFRESH_LIFETIME_SECS: i64 = 24 * 3600;

/// The user's groups for the token, when the app asked for them (`None`: no claim).
async fn groups_claim(
    state: &Shared,
    g: &Grant<'_>,
    app: Option<&App>,
) -> Result<Option<Vec<Uuid>>, crate::store::StoreError> {
    if !app.is_some_and(|a| a.groups_claim) {
        return Ok(None);
    }
    let Some(sync) = &g.user.sync else {
        return Ok(Some(Vec::new()));
    };
    let ids = state
        .store
        .user_group_ids(
            g.tenant.id,
            &sync.object_guid.to_string(),
            MAX_GROUPS_IN_TOKEN + 1,
        )
        .await?;
    Ok(Some(ids))
}

/// Adds `groups` (or `hasgroups` when there are too many) to a token's claims.
fn add_groups(claims: &mut Value, groups: Option<&Vec<Uuid>>) {
    let (Some(groups), Some(obj)) = (groups, claims.as_object_mut()) else {
        return;
    };
    if groups.len() as i64 > MAX_GROUPS_IN_TOKEN {
        obj.insert("hasgroups".into(), Value::Bool(true));
    } else {
        obj.insert("groups".into(), json!(groups));
    }
}

/// The `sid` claim: the sign-in session, the same for every token of one sign-in (every app
/// signed in through one browser session, every refresh of a password grant), derived from
/// the user and the time they entered credentials; never the session cookie.
pub(crate) fn session_id(tenant_id: Uuid, user_id: Uuid, auth_time: i64) -> String {
    let mut h = Sha256::new();
    h.update(b"passthru/sid");
    h.update(tenant_id.as_bytes());
    h.update(user_id.as_bytes());
    h.update(auth_time.to_be_bytes());
    let digest = h.finalize();
    let mut raw = [0u8; 16];
    raw.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(raw)
        .into_uuid()
        .to_string()
}

/// The `login_hint` claim: an opaque value an app may send back as `login_hint` (to sign
/// the same account in again, or out) that names the account without the app parsing it.
pub(crate) fn login_hint_claim(user: &User) -> String {
    B64URL.encode(json!({ "v": 1, "upn": user.upn }).to_string())
}

/// The user name a `login_hint` names: one this cloud issued as a claim, or a plain name.
pub(crate) fn login_hint_username(hint: &str) -> String {
    let decoded = B64URL
        .decode(hint.trim())
        .ok()
        .and_then(|raw| serde_json::from_slice::<Value>(&raw).ok())
        .and_then(|v| v["upn"].as_str().map(str::to_string));
    decoded.unwrap_or_else(|| hint.to_string())
}

/// The claims about the user that ID and access tokens share (profile and email).
fn profile_claims(obj: &mut serde_json::Map<String, Value>, user: &User, scopes: &[&str]) {
    if let Some(sync) = &user.sync {
        if let Some(given) = &sync.given_name {
            obj.insert("given_name".into(), Value::String(given.clone()));
        }
        if let Some(family) = &sync.surname {
            obj.insert("family_name".into(), Value::String(family.clone()));
        }
    }
    if let (true, Some(mail)) = (scopes.contains(&"email"), &user.mail) {
        obj.insert("email".into(), Value::String(mail.clone()));
        // The address comes from the directory (sync) or an administrator, never from the
        // user: it is verified in the sense OpenID Connect means.
        obj.insert("email_verified".into(), Value::Bool(true));
    }
}

/// The token response for a user grant.
pub async fn user_tokens(state: &Shared, g: &Grant<'_>) -> Result<Response, OAuthError> {
    let scopes: Vec<&str> = g.scope.split_whitespace().collect();
    let now = unix_now();
    let exp = now + TOKEN_LIFETIME_SECS;
    let iss = issuer(g.base, g.tenant);
    let user = g.user;
    if !user.enabled {
        return Err(OAuthError::new(Aadsts::AccountDisabled, g.correlation_id)
            .with_detail("An administrator blocked this account's sign-in in the cloud."));
    }
    if let Some(s) = &user.sync {
        // A refresh token outliving an account that expired in AD (a disable ends the user's
        // tokens when sync sees it).
        if !s.enabled || s.account_expires.is_some_and(|t| t <= now) {
            return Err(OAuthError::new(Aadsts::AccountDisabled, g.correlation_id)
                .with_detail("The account is disabled or expired in the on-premises directory."));
        }
    }
    let sub = pairwise_sub(user.id, g.client_id);
    let name = user
        .display_name
        .clone()
        .unwrap_or_else(|| user.upn.clone());
    let admin = scopes.contains(&ADMIN_SCOPE);
    if admin && g.client_id != ADMIN_CLIENT_ID {
        return Err(
            OAuthError::new(Aadsts::InvalidScope, g.correlation_id).with_detail(
                "Only the Passthru administration client may ask for the admin API scope.",
            ),
        );
    }
    let server_error =
        |e: &dyn std::fmt::Display| OAuthError::fault(g.correlation_id, Fault::other(e));
    let resource = if admin {
        None
    } else {
        crate::resource::delegated(state, g.tenant, g.scope, g.correlation_id).await?
    };
    let app = state
        .store
        .app(g.tenant.id, g.client_id)
        .await
        .map_err(|e| server_error(&e))?;
    // Bare scope names (no resource) stay in `scp` of a token for the app itself.
    let bare_scopes: Vec<&str> = scopes
        .iter()
        .copied()
        .filter(|s| !OIDC_SCOPES.contains(s) && !s.contains('/'))
        .collect();
    let (aud, scp, granted, roles) = match &resource {
        _ if admin => (
            ADMIN_AUDIENCE.to_string(),
            ADMIN_SCOPE.to_string(),
            vec![ADMIN_SCOPE.to_string()],
            Vec::new(),
        ),
        Some(r) => {
            let roles =
                crate::resource::user_roles(state, g.tenant, &r.app, user, g.correlation_id)
                    .await?;
            (
                r.app.client_id.clone(),
                r.scopes.join(" "),
                r.full_scopes(),
                roles,
            )
        }
        None => (
            g.client_id.to_string(),
            bare_scopes.join(" "),
            bare_scopes.iter().map(|s| s.to_string()).collect(),
            Vec::new(),
        ),
    };
    let groups = groups_claim(state, g, app.as_ref())
        .await
        .map_err(|e| server_error(&e))?;
    // The keys this grant signs with: ES256 (access token) and the app's ID-token algorithm.
    let id_alg = app
        .as_ref()
        .map_or("ES256", App::id_token_alg)
        .parse::<crate::tokens::SigningAlg>()
        .unwrap_or_default();
    let keys = state
        .signer
        .keys_for(g.tenant.id, id_alg)
        .await
        .map_err(|e| server_error(&e))?;
    let sid = session_id(g.tenant.id, user.id, g.auth_time);
    let mut access_claims = json!({
        "iss": iss, "aud": aud, "sub": sub, "oid": user.id, "tid": g.tenant.id,
        "exp": exp, "iat": now, "nbf": now, "azp": g.client_id, "azpacr": "0",
        "scp": scp, "preferred_username": user.upn,
        "name": name, "ver": "2.0", "sid": sid, "uti": Uuid::new_v4().simple().to_string(),
    });
    if let Some(obj) = access_claims.as_object_mut() {
        if !roles.is_empty() {
            obj.insert("roles".into(), json!(roles));
        }
        profile_claims(obj, user, &scopes);
    }
    add_groups(&mut access_claims, groups.as_ref());
    let access = keys.sign(&access_claims).map_err(|e| server_error(&e))?;
    let oidc_granted: Vec<&str> = scopes
        .iter()
        .copied()
        .filter(|s| OIDC_SCOPES.contains(s))
        .collect();
    let response_scope = if granted.is_empty() {
        oidc_granted.join(" ")
    } else {
        granted.join(" ")
    };
    let mut body = json!({
        "token_type": "Bearer",
        "scope": response_scope,
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": access,
    });
    if scopes.contains(&"openid") {
        let mut claims = json!({
            "iss": iss, "aud": g.client_id, "sub": sub, "oid": user.id, "tid": g.tenant.id,
            "exp": exp, "iat": now, "nbf": now, "auth_time": g.auth_time,
            "preferred_username": user.upn, "name": name, "ver": "2.0", "sid": sid,
            "login_hint": login_hint_claim(user),
        });
        if let Some(obj) = claims.as_object_mut() {
            if let Some(n) = g.nonce {
                obj.insert("nonce".into(), Value::String(n.to_string()));
            }
            profile_claims(obj, user, &scopes);
        }
        add_groups(&mut claims, groups.as_ref());
        let id_token = keys
            .sign_with(id_alg, &claims)
            .map_err(|e| server_error(&e))?;
        body["id_token"] = Value::String(id_token);
    }
    if scopes.contains(&"offline_access") {
        let rt = random_token();
        let spa = app.as_ref().is_some_and(|a| a.spa);
        let expires_at = match (spa, g.refresh_expires_at) {
            // A single-page app's family ends 24 h after it began, however often rotated.
            (true, Some(family_end)) => family_end.min(now + SPA_REFRESH_LIFETIME_SECS),
            (true, None) => now + SPA_REFRESH_LIFETIME_SECS,
            (false, _) => now + REFRESH_LIFETIME_SECS,
        };
        let rec = RefreshRecord {
            tenant_id: g.tenant.id,
            user_id: user.id,
            client_id: g.client_id.to_string(),
            scope: g.scope.to_string(),
            expires_at,
            family: g
                .family
                .clone()
                .unwrap_or_else(|| Uuid::new_v4().to_string()),
            auth_time: g.auth_time,
        };
        state
            .store
            .add_refresh_token(&hash_secret(&rt), &rec)
            .await
            .map_err(|e| server_error(&e))?;
        body["refresh_token"] = Value::String(rt);
        if spa {
            body["refresh_token_expires_in"] = json!(expires_at - now);
        }
    }
    if g.want_client_info {
        let ci = json!({ "uid": user.id, "utid": g.tenant.id });
        body["client_info"] = Value::String(B64URL.encode(ci.to_string()));
    }
    Ok(no_store(Json(body)))
}

/// The token response of the client credentials grant (the app acts as itself): `aud` is
/// the resource app, `roles` the app roles of that resource assigned to the caller.
pub async fn app_token(
    state: &Shared,
    base: &str,
    tenant: &Tenant,
    client_id: &str,
    resource: &crate::resource::Resource,
    corr: Uuid,
) -> Result<Response, OAuthError> {
    let now = unix_now();
    let exp = now + TOKEN_LIFETIME_SECS;
    let server_error = |e: &dyn std::fmt::Display| OAuthError::fault(corr, Fault::other(e));
    let roles = crate::resource::app_roles(state, tenant, &resource.app, client_id, corr).await?;
    let keys = state
        .signer
        .keys_for(tenant.id, crate::tokens::SigningAlg::Es256)
        .await
        .map_err(|e| server_error(&e))?;
    let mut claims = json!({
        "iss": issuer(base, tenant), "aud": resource.app.client_id, "sub": client_id,
        "oid": client_id, "tid": tenant.id, "azp": client_id, "azpacr": "1", "idtyp": "app",
        "exp": exp, "iat": now, "nbf": now, "ver": "2.0", "uti": Uuid::new_v4().simple().to_string(),
    });
    if let (false, Some(obj)) = (roles.is_empty(), claims.as_object_mut()) {
        obj.insert("roles".into(), json!(roles));
    }
    let access = keys.sign(&claims).map_err(|e| server_error(&e))?;
    Ok(no_store(Json(json!({
        "token_type": "Bearer",
        "expires_in": TOKEN_LIFETIME_SECS,
        "ext_expires_in": TOKEN_LIFETIME_SECS,
        "access_token": access,
    }))))
}

fn no_store(body: impl IntoResponse) -> Response {
    (
        [("cache-control", "no-store"), ("pragma", "no-cache")],
        body,
    )
        .into_response()
}
