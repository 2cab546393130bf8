//! Federated domains: users of a federated domain sign in at the domain's own OpenID Connect
//! identity provider. The username page sends the browser there (code flow with PKCE, state
//! and nonce), `GET /{tenant}/federation/callback` redeems the code at the provider's token
//! endpoint and checks the ID token (signature against the provider's JWKS, issuer, audience,
//! nonce, lifetime), and the sign-in then finishes like a password sign-in: session cookie and
//! an authorization code for the app.
//!
//! The admin side is [`crate::admin_api::federated_domains`].
//!
//! Calls to the identity provider trust the system's roots plus the certificates of the file
//! named by `PASSTHRU_FEDERATION_CA_FILE` (read when the server starts), time out after 10 s,
//! follow no redirects, use no proxy and read at most 256 KiB. They reach public addresses
//! only (checked at connect time, [`crate::public_addr`]) unless `serve
//! --allow-private-federation`. Nothing here logs or shows the client secret, a code, or a
//! token. The upstream `email` claim becomes the user's mail only when it is in the
//! federated domain and the provider says it is verified ([`verified_mail`]).

use std::time::Instant;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Extension;
use passthru_proto::Aadsts;
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::browser_session::complete_sign_in;
use crate::clock::{unix_ms, unix_now};
use crate::http::cookie_value;
use crate::http::correlation_id;
use crate::http::ClientInfo;
use crate::issue::secrets_equal;
use crate::issue::{hash_secret, random_token};
use crate::pages::{error_page, fault_page};
use crate::state::Shared;
use crate::store::federation::{FederatedUser, FederationState};
use crate::store::{AuthzRequest, SignIn, StoreError, Tenant};

mod upstream;

pub use upstream::*;

/// How long a round trip to the identity provider may take, seconds.
const ROUND_TRIP_LIFETIME: i64 = 900;
/// The cookie binding a round trip to the browser that started it.
const BROWSER_COOKIE: &str = "passthru_federation";

/// The browser binding cookie of a tenant's federated sign-ins
/// (`__Host-passthru_federation.TENANT`).
fn browser_cookie(tenant: &str, value: &str, max_age: i64) -> HeaderValue {
    let name = crate::browser_policy::tenant_cookie(BROWSER_COOKIE, tenant);
    crate::browser_policy::host_cookie(&name, value, "Lax", max_age)
}

fn failure_page(code: Aadsts, corr: Uuid, detail: &str, status: StatusCode) -> Response {
    let mut r = error_page(code, corr, detail);
    *r.status_mut() = status;
    r
}

const UNREACHABLE: &str = "We couldn't complete the sign-in with your organization's identity provider. Try again; if it keeps happening, contact your administrator.";

/// Starts a federated sign-in from the username page: stores the round trip and sends the
/// browser to the domain's identity provider. `req` carries the typed username.
pub(crate) async fn start(
    state: &Shared,
    t: &Tenant,
    req: &AuthzRequest,
    domain: &str,
    base: &str,
    corr: Uuid,
) -> Response {
    let username = req.username.clone().unwrap_or_default();
    let cfg = match state.store.federation(domain, &state.mfa_box).await {
        Ok(Some(c)) if c.tenant_id == t.id => c,
        Ok(_) => {
            tracing::warn!(tenant = %t.name, %domain, "federated domain without identity provider settings");
            return error_page(
                Aadsts::NoPasswordInCloud,
                corr,
                "This domain signs in at its own identity provider, which isn't configured. Contact your administrator.",
            );
        }
        Err(e) => return fault_page(corr, e),
    };
    let d = match discover(&cfg.issuer).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(tenant = %t.name, %domain, issuer = %cfg.issuer, error = %e, correlation = %corr,
                "federated sign-in could not start");
            return error_page(Aadsts::ServerError, corr, UNREACHABLE);
        }
    };
    let now = unix_now();
    let up_state = random_token();
    let nonce = random_token();
    let verifier = random_token();
    let browser = random_token();
    let redirect_uri = format!("{base}/{}/federation/callback", t.name);
    let round_trip = FederationState {
        authz_id: req.id.clone(),
        domain: cfg.domain.clone(),
        issuer: cfg.issuer.clone(),
        nonce: nonce.clone(),
        code_verifier: verifier.clone(),
        browser_hash: hash_secret(&browser),
        redirect_uri: redirect_uri.clone(),
        token_endpoint: d.token_endpoint.clone(),
        jwks_uri: d.jwks_uri.clone(),
        username: username.clone(),
    };
    let stored = async {
        state
            .store
            .put_authz(req, now + ROUND_TRIP_LIFETIME)
            .await?;
        state
            .store
            .put_federation_state(
                &hash_secret(&up_state),
                t.id,
                &round_trip,
                now + ROUND_TRIP_LIFETIME,
                now,
            )
            .await
    };
    if let Err(e) = stored.await {
        if let Some(page) = crate::limits::pending_full_page(&e, corr) {
            return page;
        }
        return fault_page(corr, e);
    }
    let mut url = match url::Url::parse(&d.authorization_endpoint) {
        Ok(u) => u,
        Err(_) => return error_page(Aadsts::ServerError, corr, UNREACHABLE),
    };
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("client_id", &cfg.client_id)
            .append_pair("response_type", "code")
            .append_pair("redirect_uri", &redirect_uri)
            .append_pair("scope", UPSTREAM_SCOPE)
            .append_pair("state", &up_state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &pkce_challenge(&verifier))
            .append_pair("code_challenge_method", "S256")
            .append_pair("login_hint", &username);
        if req.prompt.as_deref() == Some("login") {
            q.append_pair("prompt", "login");
        }
    }
    tracing::info!(tenant = %t.name, %domain, issuer = %cfg.issuer, user = %username, correlation = %corr,
        "federated sign-in: sending the browser to the identity provider");
    let mut r = Redirect::to(url.as_str()).into_response();
    r.headers_mut().append(
        "set-cookie",
        browser_cookie(&t.name, &browser, ROUND_TRIP_LIFETIME),
    );
    r
}

/// Parameters of the identity provider's answer.
#[derive(Deserialize, Default)]
struct CallbackParams {
    code: Option<Zeroizing<String>>,
    state: Option<String>,
    error: Option<String>,
}

/// Writes the sign-in log entry of a federated sign-in.
#[allow(clippy::too_many_arguments)]
async fn log_sign_in(
    state: &Shared,
    t: &Tenant,
    username: &str,
    client_id: Option<&str>,
    failure: Option<Aadsts>,
    corr: Uuid,
    client: &ClientInfo,
    started: Instant,
) {
    let entry = SignIn {
        id: 0,
        time_ms: unix_ms(),
        username: username.to_string(),
        client_id: client_id.map(str::to_string),
        result: if failure.is_none() {
            "success".into()
        } else {
            "failure".into()
        },
        aadsts: failure.map(Aadsts::code),
        win32: None,
        agent_id: None,
        other_agents: Vec::new(),
        latency_ms: Some(started.elapsed().as_millis() as i64),
        correlation_id: corr.to_string(),
        client_ip: Some(client.addr.ip().to_string()),
    };
    if let Err(e) = state.store.log_sign_in(t.id, &entry).await {
        tracing::error!(error = %e, "could not write the sign-in log");
    }
    state.metrics.sign_in(t.id, &entry.result, entry.aadsts);
}

/// `GET /{tenant}/federation/callback`: the identity provider's answer.
pub async fn callback(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let corr = correlation_id(&headers);
    let started = Instant::now();
    let t = match state.store.tenant(&tenant).await {
        Ok(Some(t)) => t,
        _ => {
            return error_page(
                Aadsts::TenantNotFound,
                corr,
                "This organization was not found.",
            )
        }
    };
    let p: CallbackParams =
        serde_urlencoded::from_str(query.as_deref().unwrap_or("")).unwrap_or_default();
    let Some(up_state) = p
        .state
        .as_deref()
        .filter(|s| !s.is_empty() && s.len() <= 512)
    else {
        return refused(corr);
    };
    let st = match state
        .store
        .take_federation_state(&hash_secret(up_state), t.id, unix_now())
        .await
    {
        Ok(Some(st)) => st,
        Ok(None) => {
            // Unknown, used or expired: the browser's binding cookie (of a round trip that may
            // still be under way) is left alone.
            tracing::warn!(tenant = %t.name, correlation = %corr, "federation callback with an unknown, used or expired state");
            return refused(corr);
        }
        Err(e) => return fault_page(corr, e),
    };
    let mut r = finish_round_trip(&state, &t, &client, &p, st, &headers, corr, started).await;
    // The round trip is over, whatever happened: its binding cookie has done its job.
    r.headers_mut()
        .append("set-cookie", browser_cookie(&t.name, "", 0));
    r
}

fn refused(corr: Uuid) -> Response {
    failure_page(
        Aadsts::InvalidRequest,
        corr,
        "This sign-in has expired, was already completed, or didn't start in this browser. Go back to the application and sign in again.",
        StatusCode::FORBIDDEN,
    )
}

#[allow(clippy::too_many_arguments)]
async fn finish_round_trip(
    state: &Shared,
    t: &Tenant,
    client: &ClientInfo,
    p: &CallbackParams,
    st: FederationState,
    headers: &HeaderMap,
    corr: Uuid,
    started: Instant,
) -> Response {
    let refused = || refused(corr);
    let bound = cookie_value(
        headers,
        &crate::browser_policy::tenant_cookie(BROWSER_COOKIE, &t.name),
    )
    .is_some_and(|v| secrets_equal(hash_secret(&v), &st.browser_hash));
    if !bound {
        tracing::warn!(tenant = %t.name, correlation = %corr, "federation callback from a browser that did not start the sign-in");
        return refused();
    }
    let req = match state.store.authz(t.id, &st.authz_id, unix_now()).await {
        Ok(Some(r)) => r,
        _ => return refused(),
    };
    let fail = |code: Aadsts, detail: &str| {
        let detail = detail.to_string();
        let username = st.username.clone();
        let client_id = req.client_id.clone();
        async move {
            log_sign_in(
                state,
                t,
                &username,
                Some(&client_id),
                Some(code),
                corr,
                client,
                started,
            )
            .await;
            error_page(code, corr, &detail)
        }
    };
    if let Some(err) = &p.error {
        let err = tame(err);
        tracing::info!(tenant = %t.name, domain = %st.domain, error = %err, correlation = %corr,
            "the identity provider did not sign the user in");
        return fail(
            Aadsts::InvalidRequest,
            &format!("Your organization's identity provider didn't sign you in (it answered '{err}'). Go back to the application and try again."),
        )
        .await;
    }
    let Some(code) = p.code.as_ref().filter(|c| !c.is_empty()) else {
        return fail(
            Aadsts::InvalidRequest,
            "Your organization's identity provider answered without a code.",
        )
        .await;
    };
    let cfg = match state.store.federation(&st.domain, &state.mfa_box).await {
        Ok(Some(c)) if c.tenant_id == t.id && c.issuer == st.issuer => c,
        Ok(_) => {
            return fail(
                Aadsts::InvalidRequest,
                "Your domain's sign-in settings changed while you were signing in. Go back to the application and sign in again.",
            )
            .await
        }
        Err(e) => return fault_page(corr, e),
    };
    let checked = async {
        let id_token = redeem(&st, &cfg, code).await?;
        let jwks: Value = get_json(&st.jwks_uri).await?;
        verify_id_token(&id_token, &jwks, &cfg.issuer, &cfg.client_id, &st.nonce)
    };
    let claims = match checked.await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(tenant = %t.name, domain = %st.domain, issuer = %cfg.issuer, error = %e,
                correlation = %corr, "federated sign-in failed");
            return fail(Aadsts::InvalidGrant, UNREACHABLE).await;
        }
    };
    let suffix = format!("@{}", cfg.domain.to_ascii_lowercase());
    let upn = claims.principal_name().unwrap_or_default().to_string();
    let lower = upn.to_ascii_lowercase();
    if !(lower.ends_with(&suffix)
        && lower.len() > suffix.len()
        && !lower[..lower.len() - suffix.len()].contains('@'))
    {
        tracing::warn!(tenant = %t.name, domain = %cfg.domain, upn = %upn, correlation = %corr,
            "the identity provider signed in a user outside its domain");
        return fail(
            Aadsts::UserNotFound,
            &format!(
                "Your organization's identity provider signed you in as '{upn}', which isn't an account of {}. Sign in there with your {} account.",
                cfg.domain, cfg.domain
            ),
        )
        .await;
    }
    let user = match state
        .store
        .upsert_federated_user(
            &FederatedUser {
                tenant_id: t.id,
                issuer: &cfg.issuer,
                subject: &claims.sub,
                upn: &upn,
                display_name: claims.name.as_deref(),
                mail: verified_mail(&claims, &cfg.domain),
            },
            unix_now(),
        )
        .await
    {
        Ok(u) => u,
        Err(StoreError::Conflict(_)) => {
            return fail(
                Aadsts::InvalidRequest,
                &format!("An account named '{upn}' already exists in this organization and doesn't sign in at your identity provider. Contact your administrator."),
            )
            .await
        }
        Err(e) => return fault_page(corr, e),
    };
    log_sign_in(
        state,
        t,
        &user.upn,
        Some(&req.client_id),
        None,
        corr,
        client,
        started,
    )
    .await;
    tracing::info!(tenant = %t.name, user = %user.upn, issuer = %cfg.issuer, correlation = %corr, "federated sign-in succeeded");
    complete_sign_in(state, t, &req, user.id, corr).await
}

#[cfg(test)]
mod tests;
