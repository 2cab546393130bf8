//! The second factor in the browser. After the password page, a challenge row (keyed by the
//! pending authorization request) records whose password was right; the code, enrolment and
//! recovery-code pages act only for that user, only with the request's CSRF token, and only
//! at the challenge's stage. The challenge is removed when the sign-in completes, so it
//! completes once. `/{tenant}/mfa/setup` lets a signed-in user enrol (policy `optional`).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use passthru_proto::Aadsts;
use serde::Deserialize;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::pages::{code_page, enrol_page, recovery_page, Enrolment, Form, PageError};
use super::verify::{self, Verdict};
use super::{qr, recovery, totp};
use crate::browser_session::{complete_sign_in, current_session, expired, pending, tenant_or_page};
use crate::clock::unix_now;
use crate::http::correlation_id;
use crate::http::ClientInfo;
use crate::model::mfa_policy::{self as policy, Next, Policy};
use crate::pages::{error_page, info_page, redirect_form_action};
use crate::state::Shared;
use crate::store::mfa::Stage;
use crate::store::{AuthzRequest, ChangeSecondFactor, PasswordChangeGrant, Tenant, User};

/// How long a second-factor page may wait for its form, seconds.
const CHALLENGE_LIFETIME: i64 = crate::browser_session::REQUEST_LIFETIME;

fn server_error(e: impl Into<crate::oauth_error::Fault>, corr: Uuid) -> Response {
    crate::pages::fault_page(corr, e)
}

fn page_error(code: Aadsts, corr: Uuid, detail: Option<String>) -> PageError {
    PageError {
        code,
        correlation_id: corr,
        detail,
    }
}

fn lock_detail(until: i64) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    let when = time::OffsetDateTime::from_unix_timestamp(until)
        .ok()
        .and_then(|t| t.format(&f).ok())
        .unwrap_or_else(|| "a while".into());
    format!("Too many wrong codes: your second factor is locked until {when}. Try again then, or ask your administrator to unlock your account.")
}

/// A form of a pending sign-in posting to `/{tenant}/login/{path}`; its answer may redirect
/// to the app.
fn sign_in_form(t: &Tenant, req: &AuthzRequest, path: &str) -> Form {
    Form {
        action: format!("/{}/login/{path}", t.name),
        fields: vec![("req", req.id.clone()), ("csrf", req.csrf.clone())],
        form_action: redirect_form_action(&req.redirect_uri),
    }
}

/// The setup page's form.
fn setup_form(t: &Tenant, id: &str) -> Form {
    Form {
        action: format!("/{}/mfa/setup", t.name),
        fields: vec![("id", id.to_string())],
        form_action: "'self'".into(),
    }
}

/// The code page of a pending sign-in.
fn ask_code(t: &Tenant, req: &AuthzRequest, user: &User, error: Option<&PageError>) -> Response {
    code_page(&user.upn, &sign_in_form(t, req, "mfa"), error)
}

/// The enrolment page for `secret` (QR code, key, URI) posting to `form`.
fn show_enrolment(
    t: &Tenant,
    user: &User,
    secret: &[u8],
    form: &Form,
    error: Option<&PageError>,
    corr: Uuid,
) -> Response {
    let issuer = format!("Passthru {}", t.name);
    let uri = totp::otpauth_uri(&issuer, &user.upn, secret);
    let Some(svg) = qr::svg(&uri, "QR code to scan with your authenticator app") else {
        return server_error("the otpauth URI does not fit a QR code", corr);
    };
    let grouped = totp::base32_grouped(secret);
    let view = Enrolment {
        qr_svg: &svg,
        secret: &grouped,
        uri: &uri,
    };
    enrol_page(&user.upn, &view, form, error)
}

/// Starts an enrolment: a new secret, sealed into the store (replacing one never confirmed).
async fn new_enrolment(
    state: &Shared,
    t: &Tenant,
    user: &User,
) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    let secret = totp::new_secret();
    let sealed = state
        .mfa_box
        .seal(user.id, &secret)
        .map_err(|e| e.to_string())?;
    let started = state
        .store
        .start_mfa_enrolment(t.id, user.id, &sealed)
        .await
        .map_err(|e| e.to_string())?;
    Ok(started.then_some(secret))
}

/// The started (unconfirmed) enrolment's secret.
async fn pending_secret(
    state: &Shared,
    t: &Tenant,
    user: &User,
) -> Result<Option<Zeroizing<Vec<u8>>>, String> {
    let rec = state
        .store
        .mfa(t.id, user.id)
        .await
        .map_err(|e| e.to_string())?;
    match rec.sealed_secret {
        Some(sealed) if !rec.enrolled => state
            .mfa_box
            .open(user.id, &sealed)
            .map(Some)
            .map_err(|e| e.to_string()),
        _ => Ok(None),
    }
}

/// After the password: the sign-in completes, or the code page, or the enrolment page.
pub(crate) async fn after_password(
    state: &Shared,
    t: &Tenant,
    req: &AuthzRequest,
    user: &User,
    corr: Uuid,
) -> Response {
    let rec = match state.store.mfa(t.id, user.id).await {
        Ok(r) => r,
        Err(e) => return server_error(e, corr),
    };
    let effective = policy::effective(t.settings.mfa, rec.policy);
    let next = policy::next_step(effective, rec.enrolled);
    if next == Next::Done {
        return complete_sign_in(state, t, req, user.id, corr).await;
    }
    let now = unix_now();
    let stage = if next == Next::Code {
        Stage::Code
    } else {
        Stage::Enrol
    };
    // The request lives as long as the challenge; the challenge names the user whose
    // password was right (and only that user can finish this sign-in).
    let stored = async {
        state.store.put_authz(req, now + CHALLENGE_LIFETIME).await?;
        state
            .store
            .put_mfa_challenge(&req.id, t.id, user.id, stage, now + CHALLENGE_LIFETIME)
            .await
    };
    if let Err(e) = stored.await {
        return server_error(e, corr);
    }
    if stage == Stage::Code {
        return ask_code(t, req, user, None);
    }
    let secret = match new_enrolment(state, t, user).await {
        Ok(Some(s)) => s,
        Ok(None) => return server_error("an enrolment appeared meanwhile", corr),
        Err(e) => return server_error(e, corr),
    };
    tracing::info!(tenant = %t.name, user = %user.upn, correlation = %corr, "second factor required: enrolment started");
    show_enrolment(
        t,
        user,
        &secret,
        &sign_in_form(t, req, "mfa/enrol"),
        None,
        corr,
    )
}

/// A sign-in whose expired password the user will change: the code page first (the
/// request carries the change grant; once the code is accepted, [`finish`] shows the change
/// page instead of completing).
pub(crate) async fn code_before_change(
    state: &Shared,
    t: &Tenant,
    req: &AuthzRequest,
    user: &User,
    corr: Uuid,
) -> Response {
    let now = unix_now();
    let stored = async {
        state.store.put_authz(req, now + CHALLENGE_LIFETIME).await?;
        state
            .store
            .put_mfa_challenge(
                &req.id,
                t.id,
                user.id,
                Stage::Code,
                now + CHALLENGE_LIFETIME,
            )
            .await
    };
    if let Err(e) = stored.await {
        return server_error(e, corr);
    }
    ask_code(t, req, user, None)
}

/// A form of the second-factor pages of a sign-in.
#[derive(Deserialize)]
pub struct CodeForm {
    req: String,
    csrf: String,
    #[serde(default)]
    code: Zeroizing<String>,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeForm")
            .field("req", &self.req)
            .finish_non_exhaustive()
    }
}

/// The pending request, its challenge at `stage`, and the challenge's user (who must still
/// be allowed to sign in); or the page to answer with.
async fn challenged(
    state: &Shared,
    tenant: &str,
    f: &CodeForm,
    stage: Stage,
    corr: Uuid,
) -> Result<(Tenant, AuthzRequest, User), Response> {
    let t = tenant_or_page(state, tenant, corr).await?;
    let Some(req) = pending(state, &t, &f.req, &f.csrf).await else {
        return Err(expired(corr));
    };
    let challenge = match state.store.mfa_challenge(t.id, &req.id, unix_now()).await {
        Ok(Some(c)) if c.stage == stage => c,
        Ok(_) => return Err(expired(corr)),
        Err(e) => return Err(server_error(e, corr)),
    };
    let user = match state.store.user_by_id(t.id, challenge.user_id).await {
        Ok(Some(u)) if u.enabled => u,
        Ok(_) => {
            return Err(error_page(
                Aadsts::AccountDisabled,
                corr,
                "This account can no longer sign in.",
            ))
        }
        Err(e) => return Err(server_error(e, corr)),
    };
    Ok((t, req, user))
}

/// Completes the sign-in of a challenge, once.
async fn finish(
    state: &Shared,
    t: &Tenant,
    req: &AuthzRequest,
    user: &User,
    corr: Uuid,
) -> Response {
    match state.store.take_mfa_challenge(&req.id).await {
        Ok(true) => {}
        Ok(false) => return expired(corr),
        Err(e) => return server_error(e, corr),
    }
    // An expired password to change: the second factor is proved, now the change page (the
    // sign-in completes once the new password is written).
    if let Some(grant) = req
        .password_change
        .as_ref()
        .filter(|g| g.second_factor == ChangeSecondFactor::Pending && g.user_id == user.id)
    {
        let mut req = req.clone();
        req.password_change = Some(PasswordChangeGrant {
            second_factor: ChangeSecondFactor::Proved,
            ..grant.clone()
        });
        if let Err(e) = state
            .store
            .put_authz(&req, unix_now() + CHALLENGE_LIFETIME)
            .await
        {
            return server_error(e, corr);
        }
        return crate::password_change_page::change_page_of(t, &req);
    }
    complete_sign_in(state, t, req, user.id, corr).await
}

/// `POST /{tenant}/login/mfa`: the code of an enrolled user.
pub async fn code(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CodeForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let (t, req, user) = match challenged(&state, &tenant, &f, Stage::Code, corr).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let verdict = match verify::check(&state, &t, &user, &f.code, unix_now()).await {
        Ok(v) => v,
        Err(e) => return server_error(e, corr),
    };
    let detail = match verdict {
        Verdict::Accepted => {
            tracing::info!(tenant = %t.name, user = %user.upn, correlation = %corr, "second factor accepted");
            return finish(&state, &t, &req, &user, corr).await;
        }
        Verdict::Wrong => None,
        Verdict::Locked(until) | Verdict::WrongAndLocked(until) => Some(lock_detail(until)),
        Verdict::NotEnrolled => {
            // Reset meanwhile: the user signs in again (and enrols if required).
            let _ = state.store.take_mfa_challenge(&req.id).await;
            return expired(corr);
        }
    };
    let ip = Some(client.addr.ip().to_string());
    verify::log(
        &state,
        &t,
        &user.upn,
        Some(&req.client_id),
        ip,
        Aadsts::StrongAuthFailed,
        corr,
    )
    .await;
    ask_code(
        &t,
        &req,
        &user,
        Some(&page_error(Aadsts::StrongAuthFailed, corr, detail)),
    )
}

/// `POST /{tenant}/login/mfa/enrol`: the first code of a new authenticator; shows the
/// recovery codes.
pub async fn enrol(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CodeForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let (t, req, user) = match challenged(&state, &tenant, &f, Stage::Enrol, corr).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let secret = match pending_secret(&state, &t, &user).await {
        Ok(Some(s)) => s,
        Ok(None) => return expired(corr),
        Err(e) => return server_error(e, corr),
    };
    let codes = match confirm(&state, &t, &user, &secret, &f.code).await {
        Ok(Some(codes)) => codes,
        Ok(None) => {
            let ip = Some(client.addr.ip().to_string());
            verify::log(
                &state,
                &t,
                &user.upn,
                Some(&req.client_id),
                ip,
                Aadsts::StrongAuthFailed,
                corr,
            )
            .await;
            let e = page_error(Aadsts::StrongAuthFailed, corr, None);
            return show_enrolment(
                &t,
                &user,
                &secret,
                &sign_in_form(&t, &req, "mfa/enrol"),
                Some(&e),
                corr,
            );
        }
        Err(e) => return server_error(e, corr),
    };
    match state
        .store
        .advance_mfa_challenge(&req.id, Stage::Enrol, Stage::Done)
        .await
    {
        Ok(true) => {}
        Ok(false) => return expired(corr),
        Err(e) => return server_error(e, corr),
    }
    recovery_page(&codes, Some(&sign_in_form(&t, &req, "mfa/continue")))
}

/// Confirms the started enrolment with `typed`: the new recovery codes, or `None` for a
/// wrong code.
async fn confirm(
    state: &Shared,
    t: &Tenant,
    user: &User,
    secret: &[u8],
    typed: &str,
) -> Result<Option<Vec<Zeroizing<String>>>, String> {
    let compact: Zeroizing<String> =
        Zeroizing::new(typed.chars().filter(|c| !c.is_whitespace()).collect());
    let now = unix_now();
    let Some(step) = totp::matching_step(secret, &compact, now, None) else {
        return Ok(None);
    };
    let codes = recovery::generate();
    let hashes: Vec<String> = codes
        .iter()
        .filter_map(|c| recovery::hash(user.id, c))
        .collect();
    let confirmed = state
        .store
        .confirm_mfa_enrolment(t.id, user.id, step, &hashes, now)
        .await
        .map_err(|e| e.to_string())?;
    if !confirmed {
        return Err("the enrolment was confirmed or reset meanwhile".into());
    }
    tracing::info!(tenant = %t.name, user = %user.upn, "authenticator enrolled");
    Ok(Some(codes))
}

/// `POST /{tenant}/login/mfa/continue`: after the recovery codes, the sign-in completes.
pub async fn after_recovery_codes(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CodeForm>,
) -> Response {
    let corr = correlation_id(&headers);
    match challenged(&state, &tenant, &f, Stage::Done, corr).await {
        Ok((t, req, user)) => finish(&state, &t, &req, &user, corr).await,
        Err(r) => r,
    }
}

/// The setup page's form: the challenge id (a random token bound to the session's user)
/// and the code.
#[derive(Deserialize)]
pub struct SetupForm {
    id: String,
    #[serde(default)]
    code: Zeroizing<String>,
}

impl std::fmt::Debug for SetupForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SetupForm").finish_non_exhaustive()
    }
}

/// The signed-in user of this browser, or the page saying why there is none.
async fn session_user(
    state: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    corr: Uuid,
) -> Result<(Tenant, User), Response> {
    let t = tenant_or_page(state, tenant, corr).await?;
    let signed_out = || {
        info_page(
            "Sign in first",
            "To set up an authenticator app, sign in to one of your organization's applications in this browser, then open this page again.",
        )
    };
    let Some(session) = current_session(state, &t, headers).await else {
        return Err(signed_out());
    };
    match state.store.user_by_id(t.id, session.user_id).await {
        Ok(Some(u)) if u.enabled => Ok((t, u)),
        Ok(_) => Err(signed_out()),
        Err(e) => Err(server_error(e, corr)),
    }
}

/// `GET /{tenant}/mfa/setup`: a signed-in user enrols an authenticator app.
pub async fn setup(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let corr = correlation_id(&headers);
    let (t, user) = match session_user(&state, &tenant, &headers, corr).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let rec = match state.store.mfa(t.id, user.id).await {
        Ok(r) => r,
        Err(e) => return server_error(e, corr),
    };
    if rec.enrolled {
        return info_page(
            "Your authenticator app is set up",
            "You already have an authenticator app. If you lost it, use a recovery code to sign in, or ask your administrator to reset your second factor; then set up the new one here.",
        );
    }
    if policy::effective(t.settings.mfa, rec.policy) == Policy::Off {
        return info_page(
            "Multi-factor authentication is off",
            "Your organization doesn't use a second sign-in step for your account.",
        );
    }
    let secret = match new_enrolment(&state, &t, &user).await {
        Ok(Some(s)) => s,
        Ok(None) => return server_error("an enrolment appeared meanwhile", corr),
        Err(e) => return server_error(e, corr),
    };
    let id = crate::issue::random_token();
    if let Err(e) = state
        .store
        .put_mfa_challenge(
            &id,
            t.id,
            user.id,
            Stage::Setup,
            unix_now() + CHALLENGE_LIFETIME,
        )
        .await
    {
        return server_error(e, corr);
    }
    show_enrolment(&t, &user, &secret, &setup_form(&t, &id), None, corr)
}

/// `POST /{tenant}/mfa/setup`: the first code of the new authenticator; shows the recovery
/// codes.
pub async fn setup_confirm(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<SetupForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let (t, user) = match session_user(&state, &tenant, &headers, corr).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    // The challenge must be this user's setup (a synchronizer token bound to the session's
    // user: a form of another user or of a sign-in does not do).
    match state.store.mfa_challenge(t.id, &f.id, unix_now()).await {
        Ok(Some(c)) if c.stage == Stage::Setup && c.user_id == user.id => {}
        Ok(_) => return expired(corr),
        Err(e) => return server_error(e, corr),
    }
    let secret = match pending_secret(&state, &t, &user).await {
        Ok(Some(s)) => s,
        Ok(None) => return expired(corr),
        Err(e) => return server_error(e, corr),
    };
    match confirm(&state, &t, &user, &secret, &f.code).await {
        Ok(Some(codes)) => {
            let _ = state.store.take_mfa_challenge(&f.id).await;
            recovery_page(&codes, None)
        }
        Ok(None) => {
            let ip = Some(client.addr.ip().to_string());
            verify::log(
                &state,
                &t,
                &user.upn,
                None,
                ip,
                Aadsts::StrongAuthFailed,
                corr,
            )
            .await;
            let e = page_error(Aadsts::StrongAuthFailed, corr, None);
            show_enrolment(&t, &user, &secret, &setup_form(&t, &f.id), Some(&e), corr)
        }
        Err(e) => server_error(e, corr),
    }
}
