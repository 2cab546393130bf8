//! Signing in to the portal: the portal is a client of our own STS. A page without a session
//! redirects to `/authorize` (code flow, PKCE S256, state, nonce; the verifier and nonce are
//! kept server-side under the state's hash, the state itself in a short-lived cookie); the
//! callback redeems the code in-process, checks state, PKCE and nonce, and starts a portal
//! session (random id in a `Secure; HttpOnly; SameSite=Strict` cookie, only its SHA-256
//! stored, 8 hours at most).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout;
use super::PORTAL_CLIENT_ID;
use crate::clock::unix_now;
use crate::http::cookie_value;
use crate::issue::{hash_secret, random_token, secrets_equal};
use crate::state::Shared;
use crate::store::portal::{PortalLogin, PortalSession};
use crate::store::{App, Tenant, User};
use crate::sts::BaseUrl;
use crate::token::pkce_s256;

/// The session cookie (`__Host-passthru_portal.TENANT`).
pub const SESSION_COOKIE: &str = "passthru_portal";
/// The cookie holding the `state` of a sign-in in progress
/// (`__Host-passthru_portal_login.TENANT`).
const LOGIN_COOKIE: &str = "passthru_portal_login";
/// Portal sessions end this long after sign-in, seconds (absolute, never extended).
pub const SESSION_LIFETIME: i64 = 8 * 3600;
/// A sign-in must come back to the callback within this many seconds.
const LOGIN_LIFETIME: i64 = 900;

/// The portal client as `/authorize` sees it: public (PKCE required), one redirect URI.
pub fn client_app(t: &Tenant, base: &str) -> App {
    App {
        client_id: PORTAL_CLIENT_ID.to_string(),
        tenant_id: t.id,
        name: "Passthru administration portal".into(),
        public: true,
        redirect_uris: vec![callback_uri(t, base)],
        secret_hash: None,
        groups_claim: false,
        ..Default::default()
    }
}

fn callback_uri(t: &Tenant, base: &str) -> String {
    format!("{base}/{}/portal/callback", t.name)
}

/// Who is signed in, and their session.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub t: Tenant,
    pub user: User,
    pub session: PortalSession,
}

impl Ctx {
    /// Whether the signed-in user's role is one of `roles`.
    pub fn may(&self, roles: &[&str]) -> bool {
        roles.contains(&self.user.role.as_str())
    }
}

/// A portal cookie of the tenant of `path` (`/TENANT/portal`): one name per tenant, since a
/// `__Host-` cookie's path is `/`.
fn cookie(name: &str, value: &str, path: &str, same_site: &str, max_age: i64) -> HeaderValue {
    let tenant = path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default();
    crate::browser_policy::host_cookie(
        &crate::browser_policy::tenant_cookie(name, tenant),
        value,
        same_site,
        max_age,
    )
}

fn portal_path(t: &Tenant) -> String {
    format!("/{}/portal", t.name)
}

/// The tenant of a portal path, or the portal's not-found page.
pub async fn tenant(state: &Shared, name: &str) -> Result<Tenant, Response> {
    match state.store.tenant(name).await {
        Ok(Some(t)) => Ok(t),
        Ok(None) => Err(layout::message(
            StatusCode::NOT_FOUND,
            "Not found",
            "This organization was not found.",
        )),
        Err(e) => Err(server_error(e)),
    }
}

/// The portal's page for a store failure.
pub(crate) fn server_error(e: impl Into<crate::oauth_error::Fault>) -> Response {
    let f = e.into();
    tracing::error!(error = %f, "portal: server fault");
    layout::message(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The service failed; try again.",
    )
}

/// Sends the browser to our STS to sign in to the portal.
pub async fn start_login(state: &Shared, t: &Tenant, base: &str) -> Response {
    let now = unix_now();
    let state_value = random_token();
    let login = PortalLogin {
        tenant_id: t.id,
        verifier: random_token(),
        nonce: random_token(),
    };
    if let Err(e) = state
        .store
        .put_portal_login(
            &hash_secret(&state_value),
            &login,
            now + LOGIN_LIFETIME,
            now,
        )
        .await
    {
        if let Some(page) = crate::limits::pending_full_page(&e, uuid::Uuid::new_v4()) {
            return page;
        }
        return server_error(e);
    }
    let query = url::form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", PORTAL_CLIENT_ID)
        .append_pair("response_type", "code")
        .append_pair("response_mode", "query")
        .append_pair("redirect_uri", &callback_uri(t, base))
        .append_pair("scope", "openid profile")
        .append_pair("state", &state_value)
        .append_pair("nonce", &login.nonce)
        .append_pair("code_challenge", &pkce_s256(&login.verifier))
        .append_pair("code_challenge_method", "S256")
        .finish();
    let mut r = Redirect::to(&format!("/{}/oauth2/v2.0/authorize?{query}", t.name)).into_response();
    // Lax, not Strict: the way back may pass through a federated domain's identity provider.
    r.headers_mut().append(
        "set-cookie",
        cookie(
            LOGIN_COOKIE,
            &state_value,
            &portal_path(t),
            "Lax",
            LOGIN_LIFETIME,
        ),
    );
    layout::secure(&mut r, "'none'");
    r
}

fn signed_out_cookie(t: &Tenant) -> HeaderValue {
    cookie(SESSION_COOKIE, "", &portal_path(t), "Strict", 0)
}

/// The signed-in user of a portal request whose role is one of `roles`; otherwise the
/// answer to send: a redirect to sign in (no session, or the user was blocked or deleted,
/// which also ends the session) or the 403 page.
pub async fn signed_in(
    state: &Shared,
    tenant_name: &str,
    base: &str,
    headers: &HeaderMap,
    roles: &[&str],
) -> Result<Ctx, Response> {
    let t = tenant(state, tenant_name).await?;
    if t.name != tenant_name {
        // One path (and so one cookie path) per tenant: its name.
        return Err(Redirect::to(&format!("{}/", portal_path(&t))).into_response());
    }
    let Some(sid) = cookie_value(
        headers,
        &crate::browser_policy::tenant_cookie(SESSION_COOKIE, &t.name),
    )
    .filter(|s| !s.is_empty()) else {
        return Err(start_login(state, &t, base).await);
    };
    let sid_hash = hash_secret(&sid);
    let session = match state.store.portal_session(&sid_hash, unix_now()).await {
        Ok(Some(s)) if s.tenant_id == t.id => s,
        Ok(_) => return Err(start_login(state, &t, base).await),
        Err(e) => return Err(server_error(e)),
    };
    let user = match state.store.user_by_id(t.id, session.user_id).await {
        Ok(Some(u)) if u.enabled => u,
        Ok(_) => {
            tracing::info!(tenant = %t.name, user = %session.user_id, "portal: the user was blocked or deleted; signed out");
            if let Err(e) = state
                .store
                .delete_portal_sessions_of(t.id, session.user_id)
                .await
            {
                return Err(server_error(e));
            }
            let mut r = start_login(state, &t, base).await;
            r.headers_mut().append("set-cookie", signed_out_cookie(&t));
            return Err(r);
        }
        Err(e) => return Err(server_error(e)),
    };
    let ctx = Ctx { t, user, session };
    if !ctx.may(roles) {
        return Err(forbidden(&ctx, roles));
    }
    Ok(ctx)
}

/// The 403 page: signed in, but the role does not allow this page.
pub fn forbidden(ctx: &Ctx, roles: &[&str]) -> Response {
    let body = html! {
        h1 { "You don't have access to this page" }
        p class="error" role="alert" id="error" {
            (ctx.user.upn) " has the role " (ctx.user.role) "; this page needs the role " (roles.join(" or ")) "."
        }
        p {
            "Ask a Global Administrator of " (ctx.t.name)
            " to give you a role, or sign out and sign in with another account."
        }
    };
    layout::page(StatusCode::FORBIDDEN, ctx, "", "Access denied", body)
}

/// Parameters the STS sends back to the callback.
#[derive(Debug, Deserialize)]
pub struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
    error_description: Option<String>,
}

fn callback_failed(t: &Tenant, why: &str) -> Response {
    let body = html! {
        h1 { "Sign-in to the portal failed" }
        p class="error" role="alert" id="error" { (why) }
        p { a href={ (portal_path(t)) "/" } { "Sign in again" } }
    };
    let mut r = layout::bare(StatusCode::BAD_REQUEST, "Sign-in failed", body, None);
    r.headers_mut().append(
        "set-cookie",
        cookie(LOGIN_COOKIE, "", &portal_path(t), "Lax", 0),
    );
    r
}

/// `GET /{tenant}/portal/callback`: redeems the code in-process and starts the session.
pub async fn callback(
    State(state): State<Shared>,
    Path(tenant_name): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(p): Query<CallbackParams>,
) -> Response {
    let t = match tenant(&state, &tenant_name).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    if let Some(e) = &p.error {
        return callback_failed(
            &t,
            &format!("{e}: {}", p.error_description.as_deref().unwrap_or("")),
        );
    }
    let (Some(code), Some(state_value)) = (p.code.as_deref(), p.state.as_deref()) else {
        return callback_failed(&t, "The answer of the sign-in service is incomplete.");
    };
    let expired = "This sign-in has expired or did not start in this browser.";
    let cookie_state = cookie_value(
        &headers,
        &crate::browser_policy::tenant_cookie(LOGIN_COOKIE, &t.name),
    )
    .unwrap_or_default();
    if cookie_state.is_empty() || !secrets_equal(&cookie_state, state_value) {
        return callback_failed(&t, expired);
    }
    let now = unix_now();
    let login = match state
        .store
        .take_portal_login(&hash_secret(state_value), now)
        .await
    {
        Ok(Some(l)) if l.tenant_id == t.id => l,
        Ok(_) => return callback_failed(&t, expired),
        Err(e) => return server_error(e),
    };
    let c = match state.store.take_code(&hash_secret(code)).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return callback_failed(&t, "The authorization code was already used or is unknown.")
        }
        Err(e) => return server_error(e),
    };
    let pkce_ok = c
        .code_challenge
        .as_deref()
        .is_some_and(|ch| secrets_equal(pkce_s256(&login.verifier), ch));
    let nonce_ok = c
        .nonce
        .as_deref()
        .is_some_and(|n| secrets_equal(n, &login.nonce));
    if c.expires_at < now
        || c.tenant_id != t.id
        || c.client_id != PORTAL_CLIENT_ID
        || c.redirect_uri != callback_uri(&t, &base)
        || !pkce_ok
        || !nonce_ok
    {
        tracing::warn!(tenant = %t.name, "portal: a code failed its checks (expiry, client, redirect URI, PKCE or nonce)");
        return callback_failed(&t, "The authorization code did not pass its checks.");
    }
    match state.store.user_by_id(t.id, c.user_id).await {
        Ok(Some(u)) if u.enabled => {
            tracing::info!(tenant = %t.name, user = %u.upn, "portal: signed in");
        }
        Ok(_) => return callback_failed(&t, "This account is blocked or no longer exists."),
        Err(e) => return server_error(e),
    }
    let sid = random_token();
    let session = PortalSession {
        tenant_id: t.id,
        user_id: c.user_id,
        csrf: random_token(),
        auth_time: c.auth_time,
        expires_at: now + SESSION_LIFETIME,
    };
    if let Err(e) = state
        .store
        .add_portal_session(&hash_secret(&sid), &session, now)
        .await
    {
        return server_error(e);
    }
    // A page of ours moves on to the dashboard (a meta refresh, not a redirect), so that the
    // SameSite=Strict cookie is sent even when the sign-in passed through another site.
    let home = format!("{}/", portal_path(&t));
    let body = html! {
        h1 { "Signed in" }
        p { a id="continue" href=(home) { "Continue to the portal" } }
    };
    let mut r = layout::bare(StatusCode::OK, "Signed in", body, Some(&home));
    let h = r.headers_mut();
    h.append(
        "set-cookie",
        cookie(
            SESSION_COOKIE,
            &sid,
            &portal_path(&t),
            "Strict",
            SESSION_LIFETIME,
        ),
    );
    h.append(
        "set-cookie",
        cookie(LOGIN_COOKIE, "", &portal_path(&t), "Lax", 0),
    );
    r
}

/// The sign-out form.
#[derive(Debug, Deserialize)]
pub struct SignOutForm {
    csrf: String,
}

/// `POST /{tenant}/portal/signout`: ends the portal session and the STS's single sign-on
/// session (this form carries the session's CSRF token), then shows the signed-out page,
/// so the next visit asks for the password again.
pub async fn sign_out(
    State(state): State<Shared>,
    Path(tenant_name): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    axum::Form(f): axum::Form<SignOutForm>,
) -> Response {
    let ctx = match signed_in(
        &state,
        &tenant_name,
        &base,
        &headers,
        crate::admin_api::ops::ROLES,
    )
    .await
    {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !secrets_equal(&ctx.session.csrf, &f.csrf) {
        return layout::message(
            StatusCode::FORBIDDEN,
            "Form expired",
            "This form was not ours or has expired (wrong CSRF token). Reload the page and try again.",
        );
    }
    if let Some(sid) = cookie_value(
        &headers,
        &crate::browser_policy::tenant_cookie(SESSION_COOKIE, &ctx.t.name),
    ) {
        if let Err(e) = state.store.delete_portal_session(&hash_secret(&sid)).await {
            return server_error(e);
        }
    }
    let sso = crate::browser_session::end_sso_session(&state, &headers).await;
    tracing::info!(tenant = %ctx.t.name, user = %ctx.user.upn, "portal: signed out");
    let mut r = (
        StatusCode::SEE_OTHER,
        [("location", format!("/{}/oauth2/v2.0/logout", ctx.t.name))],
    )
        .into_response();
    r.headers_mut()
        .append("set-cookie", signed_out_cookie(&ctx.t));
    r.headers_mut().append("set-cookie", sso);
    layout::secure(&mut r, "'none'");
    r
}
