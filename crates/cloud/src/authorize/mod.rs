//! The browser flow: `/{tenant}/oauth2/v2.0/authorize` (response_type=code, PKCE S256,
//! state, nonce, prompt, login_hint, max_age, response_mode query|fragment|form_post), the sign-in
//! pages (username first, then home realm discovery, then password), the single sign-on
//! session cookie, logout and userinfo.

use axum::body::Bytes;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::{Extension, Json};
use passthru_proto::Aadsts;
use serde::Deserialize;
use serde_json::json;
use zeroize::Zeroizing;

use crate::browser_session::{
    app_error, current_session, end_sso_session, expired, finish, pending, session_cookie,
    session_with_id, tenant_or_page, REQUEST_LIFETIME,
};
use crate::clock::unix_now;
use crate::http::correlation_id;
use crate::http::ClientInfo;
use crate::issue::{hash_secret, random_token};
use crate::pages::{error_page, fault_page, hidden, info_page, password_page, username_page};
use crate::signin::{check_password, Attempt};
use crate::state::Shared;
use crate::store::{AuthzRequest, DomainKind, SessionRecord, Tenant};
use crate::sts::{issuer, BaseUrl};

/// Parameters of an authorization request.
#[derive(Debug, Deserialize, Default)]
pub struct AuthorizeParams {
    client_id: Option<String>,
    redirect_uri: Option<String>,
    response_type: Option<String>,
    response_mode: Option<String>,
    scope: Option<String>,
    state: Option<String>,
    nonce: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    prompt: Option<String>,
    login_hint: Option<String>,
    max_age: Option<String>,
}

/// `GET|POST /{tenant}/oauth2/v2.0/authorize`
pub async fn authorize(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    method: Method,
    RawQuery(query): RawQuery,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let corr = correlation_id(&headers);
    let parsed = if method == Method::POST {
        serde_urlencoded::from_bytes::<AuthorizeParams>(&body)
    } else {
        serde_urlencoded::from_str::<AuthorizeParams>(query.as_deref().unwrap_or(""))
    };
    let Ok(p) = parsed else {
        return error_page(
            Aadsts::InvalidRequest,
            corr,
            "The sign-in request is malformed.",
        );
    };
    let found = if crate::sts::is_multi_tenant(&tenant) {
        // The organizations authority: the app's tenant (the user signs in to it).
        match p.client_id.as_deref() {
            Some(client_id) => match state.store.app_anywhere(client_id).await {
                Ok(Some(app)) => state.store.tenant(&app.tenant_id.to_string()).await,
                other => other.map(|_| None),
            },
            None => Ok(None),
        }
    } else {
        state.store.tenant(&tenant).await
    };
    let t = match found {
        Ok(Some(t)) => t,
        Ok(None) => {
            return error_page(
                Aadsts::TenantNotFound,
                corr,
                &format!("Tenant '{tenant}' was not found."),
            )
        }
        Err(e) => return fault_page(corr, e),
    };
    // Until the redirect URI is known to be registered, errors stay on our pages.
    let Some(client_id) = p.client_id.as_deref().map(str::to_ascii_lowercase) else {
        return error_page(
            Aadsts::MissingParameter,
            corr,
            "The request must contain client_id.",
        );
    };
    let app = match state.store.app(t.id, &client_id).await {
        // The built-in portal client: exactly its own callback, always with PKCE.
        _ if client_id == crate::portal::PORTAL_CLIENT_ID => {
            crate::portal::auth::client_app(&t, &base)
        }
        Ok(Some(a)) => a,
        _ => {
            return error_page(
                Aadsts::UnknownClient,
                corr,
                &format!("Application '{client_id}' was not found in this organization."),
            )
        }
    };
    let redirect_uri = match (&p.redirect_uri, app.redirect_uris.as_slice()) {
        (Some(r), uris) if uris.iter().any(|u| u == r) => r.clone(),
        (None, [only]) => only.clone(),
        (Some(r), _) => {
            return error_page(
                Aadsts::RedirectUriMismatch,
                corr,
                &format!("'{r}' is not a registered redirect URI of this application."),
            )
        }
        (None, _) => {
            return error_page(
                Aadsts::MissingParameter,
                corr,
                "The request must contain redirect_uri.",
            )
        }
    };
    let response_mode = match p.response_mode.as_deref() {
        None | Some("query") => "query",
        Some("form_post") => "form_post",
        Some("fragment") => "fragment",
        Some(_) => {
            return error_page(
                Aadsts::InvalidRequest,
                corr,
                "response_mode must be query, fragment or form_post.",
            )
        }
    };
    let mut req = AuthzRequest {
        id: random_token(),
        tenant_id: t.id,
        client_id: client_id.clone(),
        redirect_uri,
        scope: p.scope.clone().unwrap_or_else(|| "openid".into()),
        state: p.state.clone(),
        nonce: p.nonce.clone(),
        code_challenge: None,
        response_mode: response_mode.into(),
        prompt: p.prompt.clone(),
        max_age: None,
        login_hint: p
            .login_hint
            .as_deref()
            .map(crate::issue::login_hint_username),
        csrf: random_token(),
        username: None,
        device_user_code: None,
        password_change: None,
    };
    // From here on, errors go back to the (registered) redirect URI.
    if p.response_type.as_deref() != Some("code") {
        return app_error(
            &req,
            "unsupported_response_type",
            Aadsts::InvalidRequest,
            corr,
        );
    }
    match (
        p.code_challenge.as_deref(),
        p.code_challenge_method.as_deref(),
    ) {
        (Some(c), Some("S256")) if (43..=128).contains(&c.len()) => {
            req.code_challenge = Some(c.to_string())
        }
        (Some(_), _) => return app_error(&req, "invalid_request", Aadsts::PkceRequired, corr),
        (None, _) if app.public => {
            return app_error(&req, "invalid_request", Aadsts::PkceRequired, corr)
        }
        (None, _) => {}
    }
    match p.max_age.as_deref().map(str::parse::<i64>) {
        None => {}
        Some(Ok(n)) if n >= 0 => req.max_age = Some(n),
        Some(_) => return app_error(&req, "invalid_request", Aadsts::InvalidRequest, corr),
    }
    if !matches!(
        req.prompt.as_deref(),
        None | Some("login" | "none" | "select_account" | "consent")
    ) {
        return app_error(&req, "invalid_request", Aadsts::InvalidRequest, corr);
    }
    // Single sign-on.
    let session = current_session(&state, &t, &headers).await;
    let fresh_enough =
        |s: &SessionRecord| req.max_age.is_none_or(|m| unix_now() - s.auth_time <= m);
    let reuse = !matches!(req.prompt.as_deref(), Some("login" | "select_account"));
    if let Some(s) = session.filter(|s| reuse && fresh_enough(s)) {
        return finish(&state, &req, s.user_id, s.auth_time, corr).await;
    }
    if req.prompt.as_deref() == Some("none") {
        return app_error(&req, "login_required", Aadsts::LoginRequired, corr);
    }
    if let Err(e) = state
        .store
        .put_authz(&req, unix_now() + REQUEST_LIFETIME)
        .await
    {
        if let Some(page) = crate::limits::pending_full_page(&e, corr) {
            return page;
        }
        return fault_page(corr, e);
    }
    username_page(
        &t.name,
        &req.id,
        &req.csrf,
        req.login_hint.as_deref().unwrap_or(""),
        None,
    )
}

/// The username form.
#[derive(Debug, Deserialize)]
pub struct UsernameForm {
    req: String,
    csrf: String,
    username: String,
}

/// `POST /{tenant}/login`: home realm discovery for the typed name.
pub async fn login_username(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    axum::Form(f): axum::Form<UsernameForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let t = match tenant_or_page(&state, &tenant, corr).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Some(mut req) = pending(&state, &t, &f.req, &f.csrf).await else {
        return expired(corr);
    };
    // A name typed again starts over: a password change AD allowed before does not carry.
    req.password_change = None;
    let username = f.username.trim().to_string();
    let domain = username
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    let known_user = matches!(state.store.user_by_upn(t.id, &username).await, Ok(Some(_)));
    let kind = match state.store.domain(&domain).await {
        Ok(Some(d)) if d.tenant_id == t.id => Some(d.kind),
        _ => None,
    };
    match (known_user, kind) {
        // A federated domain's users (known or not yet) sign in at its identity provider.
        (_, Some(DomainKind::Federated)) => {
            req.username = Some(username.clone());
            return crate::federation::start(&state, &t, &req, &domain, &base, corr).await;
        }
        (true, _) | (false, Some(DomainKind::Managed)) => {}
        _ => {
            return username_page(
                &t.name,
                &req.id,
                &req.csrf,
                &username,
                Some((Aadsts::UserNotFound, corr)),
            )
        }
    }
    req.username = Some(username.clone());
    if let Err(e) = state
        .store
        .put_authz(&req, unix_now() + REQUEST_LIFETIME)
        .await
    {
        return fault_page(corr, e);
    }
    password_page(
        &t.name,
        &req.id,
        &req.csrf,
        &username,
        &req.redirect_uri,
        None,
        crate::password_reset::available(&state, &t, &username).await,
    )
}

/// The password form. The password is zeroized when the form is dropped.
#[derive(Deserialize)]
pub struct PasswordForm {
    req: String,
    csrf: String,
    password: Zeroizing<String>,
}

impl std::fmt::Debug for PasswordForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordForm")
            .field("req", &self.req)
            .finish_non_exhaustive()
    }
}

/// `POST /{tenant}/login/password`: checks the password, starts the session, answers the app.
pub async fn login_password(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<PasswordForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let t = match tenant_or_page(&state, &tenant, corr).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let Some(req) = pending(&state, &t, &f.req, &f.csrf).await else {
        return expired(corr);
    };
    let Some(username) = req.username.clone() else {
        return expired(corr);
    };
    let attempt = Attempt {
        tenant: &t,
        username: &username,
        client_id: Some(&req.client_id),
        client_ip: Some(client.addr.ip().to_string()),
        correlation_id: corr,
    };
    let user = match check_password(&state, &attempt, f.password).await {
        Ok(u) => u,
        Err(e) if e.code == Aadsts::PasswordChangeRequired => {
            // AD said the password is right but expired or to be changed: with writeback,
            // the user updates it here and the sign-in continues.
            if let Some(page) =
                crate::password_change::offer_after_sign_in(&state, &t, &req, &username, corr).await
            {
                return page;
            }
            return password_page(
                &t.name,
                &req.id,
                &req.csrf,
                &username,
                &req.redirect_uri,
                Some((e.code, corr)),
                crate::password_reset::available(&state, &t, &username).await,
            );
        }
        Err(e) => {
            return password_page(
                &t.name,
                &req.id,
                &req.csrf,
                &username,
                &req.redirect_uri,
                Some((e.code, corr)),
                crate::password_reset::available(&state, &t, &username).await,
            )
        }
    };
    crate::mfa::continue_sign_in(&state, &t, &req, &user, corr).await
}

/// Parameters of a logout (OpenID Connect RP-initiated logout).
#[derive(Debug, Deserialize)]
pub struct LogoutParams {
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
    id_token_hint: Option<String>,
}

/// The confirmation form of a logout.
#[derive(Debug, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

/// The CSRF token of the logout confirmation: bound to the session it ends.
fn logout_csrf(sid: &str) -> String {
    hash_secret(&format!("csrf:logout:{sid}"))
}

/// Where a logout goes: back to `uri` (with `state`) when `registered`, else our
/// signed-out page.
fn after_logout(uri: Option<&str>, st: Option<&str>, registered: bool) -> Response {
    let signed_out = || {
        info_page(
            "You signed out",
            "You have signed out of your account. It's a good idea to close all browser windows.",
        )
    };
    let Some(uri) = uri.filter(|_| registered) else {
        return signed_out();
    };
    let Ok(mut u) = url::Url::parse(uri) else {
        return signed_out();
    };
    if let Some(s) = st {
        u.query_pairs_mut().append_pair("state", s);
    }
    Redirect::to(u.as_str()).into_response()
}

/// Whether `uri` is a registered redirect URI of one of the tenant's apps (`client`: of that
/// app only).
async fn logout_uri_registered(
    state: &Shared,
    t: &Tenant,
    uri: &str,
    client: Option<&str>,
) -> bool {
    match client {
        Some(c) => {
            matches!(state.store.app(t.id, c).await, Ok(Some(a)) if a.redirect_uris.iter().any(|r| r == uri))
        }
        None => state
            .store
            .redirect_uri_registered(t.id, uri)
            .await
            .unwrap_or(false),
    }
}

/// `GET /{tenant}/oauth2/v2.0/logout`: a cross-site GET must not sign anyone out. With an
/// `id_token_hint` that we issued to one of the tenant's apps for the signed-in user, the
/// session ends and the browser goes back to `post_logout_redirect_uri` when that app
/// registered it. Otherwise, while a session is live, a confirmation page asks the user
/// (a POST form with a CSRF token bound to the session); without a session there is
/// nothing to end.
pub async fn logout(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(p): Query<LogoutParams>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Response {
    let corr = correlation_id(&headers);
    let t = match tenant_or_page(&state, &tenant, corr).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let uri = p.post_logout_redirect_uri.as_deref();
    let Some((session, sid)) = session_with_id(&state, &t, &headers).await else {
        let registered = match uri {
            Some(u) => logout_uri_registered(&state, &t, u, None).await,
            None => false,
        };
        let mut r = after_logout(uri, p.state.as_deref(), registered);
        r.headers_mut().append("set-cookie", session_cookie("", 0));
        return r;
    };
    let keys = state.signer.keys(t.id).await.ok();
    let hinted = p
        .id_token_hint
        .as_deref()
        .zip(keys.as_ref())
        .and_then(|(h, keys)| keys.verify_user_token(h, &issuer(&base, &t)).ok())
        .filter(|c| c.tid == t.id && c.oid == session.user_id);
    if let Some(claims) = hinted {
        let registered = match uri {
            Some(u) => logout_uri_registered(&state, &t, u, Some(&claims.aud)).await,
            None => false,
        };
        let cookie = end_sso_session(&state, &headers).await;
        tracing::info!(tenant = %t.name, user = %session.user_id, "signed out (RP-initiated, id_token_hint)");
        let mut r = after_logout(uri, p.state.as_deref(), registered);
        r.headers_mut().append("set-cookie", cookie);
        return r;
    }
    let who = match state.store.user_by_id(t.id, session.user_id).await {
        Ok(Some(u)) => u.upn,
        _ => String::new(),
    };
    let body = maud::html! {
        h1 { "Sign out?" }
        p class="who" id="who" { (who) }
        p { "Do you want to sign out of your account? You will need your password to sign in again." }
        form method="post" action={ "/" (t.name) "/oauth2/v2.0/logout" } {
            (hidden("csrf", &logout_csrf(&sid)))
            @if let Some(u) = uri {
                (hidden("post_logout_redirect_uri", u))
            }
            @if let Some(s) = p.state.as_deref() {
                (hidden("state", s))
            }
            button type="submit" id="signout" { "Sign out" }
        }
    };
    crate::pages::page(StatusCode::OK, "Sign out", body, "'self'")
}

/// `POST /{tenant}/oauth2/v2.0/logout`: the confirmation of a logout; its CSRF token must be
/// the one bound to this browser's session.
pub async fn logout_confirmed(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<LogoutForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let t = match tenant_or_page(&state, &tenant, corr).await {
        Ok(t) => t,
        Err(r) => return r,
    };
    let uri = f.post_logout_redirect_uri.as_deref();
    if let Some((session, sid)) = session_with_id(&state, &t, &headers).await {
        if !crate::issue::secrets_equal(logout_csrf(&sid), &f.csrf) {
            return expired(corr);
        }
        tracing::info!(tenant = %t.name, user = %session.user_id, "signed out");
    }
    let registered = match uri {
        Some(u) => logout_uri_registered(&state, &t, u, None).await,
        None => false,
    };
    let cookie = end_sso_session(&state, &headers).await;
    let mut r = after_logout(uri, f.state.as_deref(), registered);
    r.headers_mut().append("set-cookie", cookie);
    r
}

/// `GET|POST /{tenant}/openid/userinfo`: the signed-in user's claims for a bearer token.
pub async fn userinfo(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Response {
    let unauthorized = || {
        (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", "Bearer error=\"invalid_token\"")],
            Json(json!({"error": "invalid_token", "error_description": "A valid access token is required."})),
        )
            .into_response()
    };
    let Some(token) = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        return unauthorized();
    };
    let Ok(Some(t)) = state.store.tenant(&tenant).await else {
        return unauthorized();
    };
    let Ok(keys) = state.signer.keys(t.id).await else {
        return unauthorized();
    };
    let Ok(claims) = keys.verify_user_token(token, &issuer(&base, &t)) else {
        return unauthorized();
    };
    if claims.tid != t.id {
        return unauthorized();
    }
    let Ok(Some(user)) = state.store.user_by_id(t.id, claims.oid).await else {
        return unauthorized();
    };
    let mut body = json!({
        "sub": claims.sub, "oid": user.id, "tid": t.id,
        "name": user.display_name.clone().unwrap_or_else(|| user.upn.clone()),
        "preferred_username": user.upn,
    });
    if let Some(mail) = &user.mail {
        body["email"] = json!(mail);
    }
    ([("cache-control", "no-store")], Json(body)).into_response()
}

#[cfg(test)]
mod tests;
