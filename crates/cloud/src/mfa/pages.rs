//! The second-factor pages: the code page, the enrolment page (QR code, the secret written
//! out, the otpauth URI), and the recovery codes page. Plain forms, no JavaScript, the same
//! style and headers as the sign-in pages. Only the enrolment page ever shows a secret.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{html, Markup};
use passthru_proto::Aadsts;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::pages::{error_block, hidden, page};

/// An error on a form page: the code's sentence, then an optional detail (a lock's end).
#[derive(Debug, Clone)]
pub struct PageError {
    pub code: Aadsts,
    pub correlation_id: Uuid,
    pub detail: Option<String>,
}

fn error_html(e: Option<&PageError>) -> Markup {
    html! {
        @if let Some(e) = e {
            (error_block(Some((e.code, e.correlation_id))))
            @if let Some(d) = &e.detail {
                p class="error" id="detail" { (d) }
            }
        }
    }
}

fn status(e: Option<&PageError>) -> StatusCode {
    if e.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    }
}

fn hidden_fields(fields: &[(&'static str, String)]) -> Markup {
    html! {
        @for (k, v) in fields {
            (hidden(k, v))
        }
    }
}

/// Where a page's form posts, with its hidden fields.
#[derive(Debug, Clone)]
pub struct Form {
    /// The path the form posts to.
    pub action: String,
    pub fields: Vec<(&'static str, String)>,
    /// The page's CSP `form-action` (the app's origin too when the answer may redirect there).
    pub form_action: String,
}

/// Asks for a code of the user's authenticator app, or a recovery code.
pub(crate) fn code_page(username: &str, form: &Form, error: Option<&PageError>) -> Response {
    let body = html! {
        h1 { "Enter code" }
        p class="who" id="who" { (username) }
        (error_html(error))
        p { "Enter the 6-digit code shown in your authenticator app. If you don't have your phone, enter one of your recovery codes." }
        form method="post" action=(form.action) {
            (hidden_fields(&form.fields))
            label for="code" { "Code" }
            input type="text" id="code" name="code" autocomplete="one-time-code" spellcheck="false" maxlength="32" required autofocus;
            button type="submit" id="verify" { "Verify" }
        }
    };
    page(status(error), "Enter code", body, &form.form_action)
}

/// What the enrolment page shows of the new authenticator.
pub struct Enrolment<'a> {
    /// The QR code (inline SVG, drawn by [`super::qr::svg`]) of the otpauth URI.
    pub qr_svg: &'a Markup,
    /// The secret in base32, grouped for typing.
    pub secret: &'a Zeroizing<String>,
    /// The otpauth:// URI.
    pub uri: &'a Zeroizing<String>,
}

impl std::fmt::Debug for Enrolment<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Enrolment(..)")
    }
}

/// Enrolment: scan the QR code (or type the key), then confirm with a code.
pub(crate) fn enrol_page(
    username: &str,
    enrolment: &Enrolment<'_>,
    form: &Form,
    error: Option<&PageError>,
) -> Response {
    let body = html! {
        h1 { "Set up your authenticator app" }
        p class="who" id="who" { (username) }
        (error_html(error))
        p { "Your organization asks for a second step when you sign in. In your authenticator app (Microsoft Authenticator, Google Authenticator, FreeOTP, or any TOTP app), add an account and scan this QR code." }
        (enrolment.qr_svg)
        p { "Can't scan it? Add the account by hand with this key (time-based, 6 digits, every 30 seconds):" }
        p class="secret" id="secret" { (enrolment.secret.as_str()) }
        p class="meta" { "Or open this link on the device that has the app: " span id="otpauth" { (enrolment.uri.as_str()) } }
        form method="post" action=(form.action) {
            (hidden_fields(&form.fields))
            label for="code" { "Then enter the 6-digit code the app shows" }
            input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" spellcheck="false" maxlength="16" required autofocus;
            button type="submit" id="verify" { "Verify" }
        }
    };
    page(
        status(error),
        "Set up your authenticator app",
        body,
        &form.form_action,
    )
}

/// The recovery codes, shown once, then a button to go on (a sign-in) or nothing more (an
/// enrolment from the setup page).
pub(crate) fn recovery_page(codes: &[Zeroizing<String>], next: Option<&Form>) -> Response {
    let body = html! {
        h1 { "Save your recovery codes" }
        p { "Your authenticator app is set up. If you lose your phone, each of these codes lets you sign in once instead of a code from the app. Keep them somewhere safe: they are shown only now." }
        ol class="codes" id="recovery-codes" {
            @for c in codes {
                li { (c.as_str()) }
            }
        }
        @match next {
            Some(f) => {
                form method="post" action=(f.action) {
                    (hidden_fields(&f.fields))
                    button type="submit" id="continue" { "I saved them, continue" }
                }
            }
            None => {
                p id="done" { "Your authenticator app is set up. You can close this page." }
            }
        }
    };
    let form_action = next.map_or("'none'", |f| f.form_action.as_str());
    page(
        StatusCode::OK,
        "Save your recovery codes",
        body,
        form_action,
    )
}
