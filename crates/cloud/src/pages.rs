//! Server-rendered sign-in pages: plain HTML forms that work without JavaScript, labelled
//! fields, a CSRF token in every form, and strict security headers. No page ever contains a
//! password.
//!
//! Every page is written with maud's `html!`, which escapes each spliced value (element
//! content and attribute values alike) unless it is itself markup that maud made; nothing
//! here escapes by hand.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use passthru_proto::Aadsts;
use uuid::Uuid;

/// A sentence a person understands for each code a sign-in can end with. It never says more
/// about whether an account exists than the code itself does.
/// The sentences are in the catalogs (`locales/*/signin.ftl`, keys `msg-*`), in the page's
/// language.
pub fn user_message(code: Aadsts) -> String {
    tr(user_message_key(code))
}

/// The catalog key of [`user_message`].
fn user_message_key(code: Aadsts) -> &'static str {
    match code {
        Aadsts::InvalidCredentials => "msg-invalid-credentials",
        Aadsts::UserNotFound => "msg-user-not-found",
        Aadsts::AccountLocked => "msg-account-locked",
        Aadsts::AccountDisabled => "msg-account-disabled",
        // The seed's words for a user who may not change the password here (no writeback).
        Aadsts::PasswordChangeRequired => "msg-password-change-required",
        Aadsts::NoPasswordInCloud => "msg-no-password-in-cloud",
        Aadsts::LogonHours => "msg-logon-hours",
        Aadsts::DirectoryCommunication => "msg-directory-communication",
        Aadsts::AgentUnavailable => "msg-agent-unavailable",
        Aadsts::AgentTimeout => "msg-agent-timeout",
        Aadsts::InvalidUsernameForAgent => "msg-invalid-username-for-agent",
        Aadsts::AgentDecryptFailed
        | Aadsts::AgentNoKey
        | Aadsts::AgentAnswerRefused
        | Aadsts::ClockSkew => "msg-agent-failure",
        Aadsts::RedirectUriMismatch => "msg-redirect-uri-mismatch",
        Aadsts::UnknownClient => "msg-unknown-client",
        Aadsts::TenantNotFound => "msg-tenant-not-found",
        Aadsts::StrongAuthFailed => "msg-strong-auth-failed",
        Aadsts::MfaRequired => "msg-mfa-required",
        _ => "msg-other",
    }
}

/// The message `key` of the catalogs in the language of the page being answered.
pub(crate) fn tr(key: &str) -> String {
    crate::i18n::text(branding().locale, key, &[])
}

/// [`tr`] with arguments.
pub(crate) fn tr_with(key: &str, args: &[(&str, &str)]) -> String {
    crate::i18n::text(branding().locale, key, args)
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f2f2f2;margin:0}\
main{max-width:440px;margin:8vh auto;background:#fff;padding:32px 40px;box-shadow:0 2px 6px rgba(0,0,0,.2)}\
h1{font-size:1.5rem;font-weight:600;margin:0 0 16px}label{display:block;margin:12px 0 4px}\
input[type=text],input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:8px;font-size:1rem;border:1px solid #666}\
button{margin-top:20px;padding:8px 24px;font-size:1rem;background:#0067b8;color:#fff;border:0;cursor:pointer}\
button:focus,input:focus{outline:2px solid #000;outline-offset:2px}\
.error{color:#a80000;border-left:4px solid #a80000;padding-left:8px}.meta{color:#555;font-size:.8rem;word-break:break-all}\
.who{color:#333;margin-bottom:8px}\
.secret{font-family:monospace;font-size:1.05rem;word-break:break-all;background:#f2f2f2;padding:6px}\
.codes{font-family:monospace;font-size:1.05rem;columns:2;padding-left:24px}.qr{display:block;width:220px;height:220px;margin:8px 0}\
.org{display:flex;align-items:center;gap:12px;margin:0 0 20px}.logo{max-height:36px;max-width:200px}.org-name{font-weight:600;color:#333}\
.org-text{color:#333;font-size:.9rem;margin:24px 0 0;border-top:1px solid #ddd;padding-top:12px}.help{margin:16px 0 0}";

/// SHA-256 of the inline style, base64, for the CSP (so no inline style is otherwise allowed).
fn style_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| csp_hash(STYLE))
}

/// The CSP source hash (base64 SHA-256) of an inline style or script.
pub fn csp_hash(text: &str) -> String {
    use base64::Engine as _;
    use sha2::Digest as _;
    base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(text.as_bytes()))
}

/// The headers every HTML answer of ours carries: the page's content security policy, no
/// framing, no caching, no sniffing, no referrer.
pub fn security_headers(r: &mut Response, csp: &str) {
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(csp) {
        h.insert("content-security-policy", v);
    }
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("cache-control", HeaderValue::from_static("no-store"));
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

/// What a tenant's pages show of its branding (the `branding_*` settings and the logo).
#[derive(Debug, Clone, Default)]
pub(crate) struct Branding {
    pub tenant: String,
    pub name: String,
    pub accent: String,
    pub text: String,
    /// When the logo was set (its URL carries it, so a new logo is fetched at once).
    pub logo: Option<i64>,
    /// The page's language.
    pub locale: crate::i18n::Locale,
}

tokio::task_local! {
    /// The branding of the tenant whose page is being answered.
    static BRANDING: Branding;
}

/// Runs `f` (a page's handler) with `branding` for [`page`] to show
/// (`crate::look::with_branding` calls it).
pub(crate) async fn with<F: std::future::Future>(branding: Branding, f: F) -> F::Output {
    BRANDING.scope(branding, f).await
}

/// The branding of the page being answered (none outside [`with`]).
fn branding() -> Branding {
    BRANDING.try_with(Clone::clone).unwrap_or_default()
}

/// The style a tenant's accent colour adds (validated `#rrggbb` only, see
/// `model::settings`).
fn accent_style(accent: &str) -> Option<String> {
    let ok = accent.len() == 7
        && accent.starts_with('#')
        && accent[1..].bytes().all(|b| b.is_ascii_hexdigit());
    ok.then(|| format!("button{{background:{accent}}}"))
}

/// A complete page with the security headers. `form_action` names where forms may post
/// (`'self'`, or the app's redirect URI origin for the form_post answer).
pub(crate) fn page(status: StatusCode, title: &str, body: Markup, form_action: &str) -> Response {
    let b = branding();
    let accent = accent_style(&b.accent);
    let html = html! {
        (DOCTYPE)
        html lang=(b.locale.tag()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                // A constant of ours, not input; the CSP allows it by the hash of these exact
                // bytes, so it must not be altered by escaping.
                style { (PreEscaped(STYLE)) }
                // Built from a validated colour only; allowed by its own hash.
                @if let Some(a) = &accent {
                    style { (PreEscaped(a)) }
                }
            }
            body {
                main {
                    @if b.logo.is_some() || !b.name.is_empty() {
                        div class="org" id="org" {
                            @if let Some(v) = b.logo {
                                img class="logo" id="logo" src={ "/" (b.tenant) "/branding/logo?v=" (v) } alt={ @if b.name.is_empty() { (b.tenant) } @else { (b.name) } " logo" } height="36";
                            }
                            @if !b.name.is_empty() {
                                span class="org-name" id="org-name" { (b.name) }
                            }
                        }
                    }
                    (body)
                    @if !b.text.is_empty() {
                        p class="org-text" id="sign-in-text" { (b.text) }
                    }
                }
            }
        }
    };
    let styles = match &accent {
        Some(a) => format!("'sha256-{}' 'sha256-{}'", style_hash(), csp_hash(a)),
        None => format!("'sha256-{}'", style_hash()),
    };
    let img = if b.logo.is_some() {
        "; img-src 'self'"
    } else {
        ""
    };
    let csp = format!(
        "default-src 'none'; style-src {styles}{img}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'"
    );
    let mut r = (status, Html(html.into_string())).into_response();
    security_headers(&mut r, &csp);
    r
}

/// The `#error` paragraph of a form page that said something went wrong (empty without).
pub(crate) fn alert(message: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = message {
            p class="error" role="alert" id="error" { (e) }
        }
    }
}

/// 400 for a form page that shows an error, else 200.
pub(crate) fn form_status(error: bool) -> StatusCode {
    if error {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

/// The error paragraph of a form page: the sentence for the code, the code and the
/// correlation id.
pub(crate) fn error_block(error: Option<(Aadsts, Uuid)>) -> Markup {
    html! {
        @if let Some((code, corr)) = error {
            p class="error" role="alert" id="error" { (user_message(code)) }
            p class="meta" { (tr_with("error-code", &[("code", &format!("AADSTS{}", code.code()))])) br; (tr_with("correlation-id", &[("id", &corr.to_string())])) }
        }
    }
}

/// A hidden form field.
pub(crate) fn hidden(name: &str, value: &str) -> Markup {
    html! { input type="hidden" name=(name) value=(value); }
}

/// The first page: the user's name.
pub(crate) fn username_page(
    tenant: &str,
    req: &str,
    csrf: &str,
    hint: &str,
    error: Option<(Aadsts, Uuid)>,
) -> Response {
    let body = html! {
        h1 { (tr("sign-in")) }
        (error_block(error))
        form method="post" action={ "/" (tenant) "/login" } {
            (hidden("req", req))
            (hidden("csrf", csrf))
            label for="username" { (tr("username-label")) }
            input type="email" id="username" name="username" value=(hint) autocomplete="username" required autofocus;
            button type="submit" id="next" { (tr("next")) }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    // A federated name is answered with a redirect to the domain's identity provider, which
    // browsers check against form-action: allow https destinations (the page has no other
    // form and every value on it is escaped).
    page(status, &tr("sign-in"), body, "'self' https:")
}

/// The second page: the password for a known name. A hidden username field lets password
/// managers and assistive tools know whose password this is. Its form's answer redirects to the app's
/// `redirect_uri`, so `form-action` must allow that origin too (browsers check it on redirects).
pub(crate) fn password_page(
    tenant: &str,
    req: &str,
    csrf: &str,
    username: &str,
    redirect_uri: &str,
    error: Option<(Aadsts, Uuid)>,
    reset_available: bool,
) -> Response {
    let body = html! {
        h1 { (tr("enter-password")) }
        p class="who" id="who" { (username) }
        (error_block(error))
        form method="post" action={ "/" (tenant) "/login/password" } {
            (hidden("req", req))
            (hidden("csrf", csrf))
            input type="text" name="username" value=(username) autocomplete="username" hidden readonly;
            label for="password" { (tr("password-label")) }
            input type="password" id="password" name="password" autocomplete="current-password" required autofocus;
            button type="submit" id="signin" { (tr("sign-in")) }
        }
        p class="help" {
            @if reset_available {
                a id="forgot" href={ "/" (tenant) "/password/reset" } { (tr("forgot-password")) }
            } @else {
                a id="cant-access" href={ "/" (tenant) "/password/help" } { (tr("cant-access")) }
            }
        }
    };
    let status = if error.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    page(
        status,
        &tr("enter-password"),
        body,
        &redirect_form_action(redirect_uri),
    )
}

/// `GET /{tenant}/password/help`: what a user without self-service reset does.
pub async fn password_help() -> Response {
    info_page(&tr("cant-access"), &tr("cant-access-text"))
}

/// The `form-action` of a page whose form may be answered with a redirect to the app's
/// `redirect_uri` (browsers check form-action on redirects): ours and that origin.
pub(crate) fn redirect_form_action(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(u) if u.origin().is_tuple() => format!("'self' {}", u.origin().ascii_serialization()),
        // A native app's custom scheme (`msal...://auth`): allow the scheme.
        Ok(u) => format!("'self' {}:", u.scheme()),
        Err(_) => "'self'".to_string(),
    }
}

/// The page for a [`crate::oauth_error::Fault`] (logged here, once): a sentence and the
/// correlation id, never the fault's own words.
pub(crate) fn fault_page(corr: Uuid, e: impl Into<crate::oauth_error::Fault>) -> Response {
    let f = e.into();
    f.log(corr);
    error_page(f.aadsts(), corr, &tr("service-failed"))
}

/// A page for an error that cannot be sent back to the application.
pub(crate) fn error_page(code: Aadsts, corr: Uuid, detail: &str) -> Response {
    let body = html! {
        h1 { (tr("trouble-title")) }
        (error_block(Some((code, corr))))
        p class="meta" { (detail) }
    };
    page(
        StatusCode::BAD_REQUEST,
        &tr("sign-in-error"),
        body,
        "'none'",
    )
}

/// The `response_mode=form_post` answer: a form posting the result to the app (a button, so
/// it works without JavaScript).
pub(crate) fn form_post(redirect_uri: &str, fields: &[(&str, &str)]) -> Response {
    let body = html! {
        h1 { (tr("signed-in")) }
        form method="post" action=(redirect_uri) {
            @for (k, v) in fields {
                (hidden(k, v))
            }
            button type="submit" id="continue" { (tr("continue-to-app")) }
        }
    };
    let origin = url::Url::parse(redirect_uri)
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "'none'".into());
    page(StatusCode::OK, &tr("signed-in"), body, &origin)
}

/// A plain information page (signed out, and the like).
pub(crate) fn info_page(title: &str, text: &str) -> Response {
    let body = html! {
        h1 { (title) }
        p { (text) }
    };
    page(StatusCode::OK, title, body, "'none'")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_code_has_its_own_sentence() {
        let codes = [
            Aadsts::InvalidCredentials,
            Aadsts::AccountLocked,
            Aadsts::AccountDisabled,
            Aadsts::PasswordChangeRequired,
            Aadsts::LogonHours,
            Aadsts::DirectoryCommunication,
            Aadsts::AgentUnavailable,
            Aadsts::AgentTimeout,
            Aadsts::InvalidUsernameForAgent,
            Aadsts::NoPasswordInCloud,
            Aadsts::UserNotFound,
            Aadsts::StrongAuthFailed,
            Aadsts::MfaRequired,
        ];
        let mut seen = std::collections::HashSet::new();
        for c in codes {
            assert!(seen.insert(user_message(c)), "{c} shares its sentence");
        }
    }
}

#[cfg(test)]
mod escaping_tests;
