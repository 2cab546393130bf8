//! The browser sign-in session, shared by every sign-in surface: the pending authorization
//! request (its lifetime, CSRF check and expiry page), the single sign-on session cookie, and
//! the completion that starts the session and answers the app (a code by query or form_post,
//! or the approval of a device code). The surfaces (`authorize`, `mfa`, `password_change`,
//! `federation`, `device`, `portal`) call into it; it calls none of them.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use passthru_proto::Aadsts;
use uuid::Uuid;

use crate::clock::unix_now;
use crate::http::cookie_value;
use crate::issue::{hash_secret, random_token};
use crate::pages::{error_page, fault_page, form_post, info_page};
use crate::state::Shared;
use crate::store::{AuthCode, AuthzRequest, SessionRecord, Tenant};

/// How long a sign-in may take from `/authorize` to the password, seconds.
pub(crate) const REQUEST_LIFETIME: i64 = 900;

/// Authorization codes live this long, seconds.
pub(crate) const CODE_LIFETIME: i64 = 120;

/// Browser sessions last this long, seconds (8 hours).
pub(crate) const SESSION_LIFETIME: i64 = 8 * 3600;

/// The single sign-on session cookie's name.
pub(crate) const COOKIE: &str = "__Host-passthru_session";

/// The tenant's live session of this browser, if any.
pub(crate) async fn current_session(
    state: &Shared,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Option<SessionRecord> {
    session_with_id(state, tenant, headers)
        .await
        .map(|(s, _)| s)
}

/// The tenant's live session of this browser and its id (from the cookie), if any.
pub(crate) async fn session_with_id(
    state: &Shared,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Option<(SessionRecord, String)> {
    let id = cookie_value(headers, COOKIE)?;
    let s = state
        .store
        .session(&hash_secret(&id), unix_now())
        .await
        .ok()??;
    (s.tenant_id == tenant.id).then_some((s, id))
}

pub(crate) fn session_cookie(value: &str, max_age: i64) -> HeaderValue {
    crate::browser_policy::host_cookie(COOKIE, value, "Lax", max_age)
}

/// Sends the result to the app (query string, fragment or form_post).
pub(crate) fn respond_to_app(req: &AuthzRequest, mut fields: Vec<(&str, String)>) -> Response {
    if let Some(s) = &req.state {
        fields.push(("state", s.clone()));
    }
    if req.response_mode == "form_post" {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        return form_post(&req.redirect_uri, &pairs);
    }
    match url::Url::parse(&req.redirect_uri) {
        Ok(mut u) if req.response_mode == "fragment" => {
            // Single-page apps read the answer from the fragment, which never reaches a
            // server (nor its logs).
            let mut f = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &fields {
                f.append_pair(k, v);
            }
            u.set_fragment(Some(&f.finish()));
            Redirect::to(u.as_str()).into_response()
        }
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in &fields {
                    q.append_pair(k, v);
                }
            }
            Redirect::to(u.as_str()).into_response()
        }
        Err(_) => error_page(
            Aadsts::RedirectUriMismatch,
            Uuid::new_v4(),
            "The redirect URI is not valid.",
        ),
    }
}

pub(crate) fn app_error(req: &AuthzRequest, error: &str, code: Aadsts, corr: Uuid) -> Response {
    respond_to_app(
        req,
        vec![
            ("error", error.to_string()),
            (
                "error_description",
                format!(
                    "AADSTS{}: {} Correlation ID: {corr}",
                    code.code(),
                    code.description()
                ),
            ),
            ("error_codes", code.code().to_string()),
            ("correlation_id", corr.to_string()),
        ],
    )
}

/// Issues a code for the signed-in user and sends it to the app.
pub(crate) async fn finish(
    state: &Shared,
    req: &AuthzRequest,
    user_id: Uuid,
    auth_time: i64,
    corr: Uuid,
) -> Response {
    if let Some(user_code) = &req.device_user_code {
        return approve_device(state, req, user_code, user_id, auth_time, corr).await;
    }
    let code = random_token();
    let c = AuthCode {
        tenant_id: req.tenant_id,
        client_id: req.client_id.clone(),
        redirect_uri: req.redirect_uri.clone(),
        user_id,
        scope: req.scope.clone(),
        nonce: req.nonce.clone(),
        code_challenge: req.code_challenge.clone(),
        auth_time,
        expires_at: unix_now() + CODE_LIFETIME,
    };
    if let Err(e) = state.store.add_code(&hash_secret(&code), &c).await {
        tracing::error!(error = %e, "cannot store an authorization code");
        return app_error(req, "server_error", Aadsts::ServerError, corr);
    }
    let _ = state.store.delete_authz(&req.id).await;
    respond_to_app(req, vec![("code", code)])
}

/// Loads the pending request of a form and checks its CSRF token.
pub(crate) async fn pending(
    state: &Shared,
    t: &Tenant,
    req: &str,
    csrf: &str,
) -> Option<AuthzRequest> {
    let r = state.store.authz(t.id, req, unix_now()).await.ok()??;
    crate::issue::secrets_equal(&r.csrf, csrf).then_some(r)
}

pub(crate) async fn tenant_or_page(
    state: &Shared,
    tenant: &str,
    corr: Uuid,
) -> Result<Tenant, Response> {
    match state.store.tenant(tenant).await {
        Ok(Some(t)) => Ok(t),
        _ => Err(error_page(
            Aadsts::TenantNotFound,
            corr,
            "This organization was not found.",
        )),
    }
}

pub(crate) fn expired(corr: Uuid) -> Response {
    let mut r = error_page(
        Aadsts::InvalidRequest,
        corr,
        "This sign-in page has expired or the form was not ours (missing or wrong CSRF token). Go back to the application and sign in again.",
    );
    *r.status_mut() = StatusCode::FORBIDDEN;
    r
}

/// Finishes a sign-in where the user just proved who they are (password, or a federated
/// domain's identity provider): starts the browser session and sends a code to the app.
pub(crate) async fn complete_sign_in(
    state: &Shared,
    t: &Tenant,
    req: &AuthzRequest,
    user_id: Uuid,
    corr: Uuid,
) -> Response {
    let now = unix_now();
    let sid = random_token();
    let rec = SessionRecord {
        tenant_id: t.id,
        user_id,
        auth_time: now,
        expires_at: now + SESSION_LIFETIME,
    };
    if let Err(e) = state.store.add_session(&hash_secret(&sid), &rec).await {
        return fault_page(corr, e);
    }
    let mut r = finish(state, req, user_id, now, corr).await;
    r.headers_mut()
        .append("set-cookie", session_cookie(&sid, SESSION_LIFETIME));
    r
}

/// Ends this browser's single sign-on session (the store row); returns the `Set-Cookie`
/// that removes the cookie. The portal's sign-out uses it too.
pub(crate) async fn end_sso_session(state: &Shared, headers: &HeaderMap) -> HeaderValue {
    if let Some(id) = cookie_value(headers, COOKIE) {
        let _ = state.store.delete_session(&hash_secret(&id)).await;
    }
    session_cookie("", 0)
}

/// Called when the sign-in pages finish for a device: records the approval.
async fn approve_device(
    state: &Shared,
    req: &AuthzRequest,
    user_code: &str,
    user_id: Uuid,
    auth_time: i64,
    corr: Uuid,
) -> Response {
    let _ = state.store.delete_authz(&req.id).await;
    match state
        .store
        .approve_device(req.tenant_id, user_code, user_id, auth_time)
        .await
    {
        Ok(true) => {
            let app = if req.client_id == passthru_proto::admin::ADMIN_CLIENT_ID {
                passthru_proto::admin::ADMIN_CLIENT_NAME.to_string()
            } else {
                state
                    .store
                    .app(req.tenant_id, &req.client_id)
                    .await
                    .ok()
                    .flatten()
                    .map(|a| a.name)
                    .unwrap_or_else(|| "the application".into())
            };
            info_page(
                "You're signed in",
                &format!(
                    "You have signed in to {app} on your device. You may now close this window."
                ),
            )
        }
        _ => error_page(
            Aadsts::DeviceCodeExpired,
            corr,
            "The code expired or was already used. Start again on your device.",
        ),
    }
}
