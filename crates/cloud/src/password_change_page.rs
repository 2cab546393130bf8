//! The "Update your password" page of password writeback, shared by the sign-in steps that
//! lead to it (the password page on 1330/1907, the MFA code page before the change) and by
//! [`crate::password_change`], which handles its posts.

use axum::response::Response;
use maud::html;

use crate::pages::{alert, form_status, hidden, page};
use crate::store::{AuthzRequest, Tenant};

/// Where a change page posts, and what it says.
pub(crate) struct Form<'a> {
    pub(crate) action: String,
    pub(crate) req: &'a str,
    pub(crate) csrf: &'a str,
    pub(crate) username: &'a str,
    pub(crate) intro: &'a str,
}

pub(crate) fn change_page(f: &Form<'_>, error: Option<&str>, form_action: &str) -> Response {
    let body = html! {
        h1 { "Update your password" }
        p class="who" id="who" { (f.username) }
        p id="intro" { (f.intro) }
        (alert(error))
        form method="post" action=(f.action) {
            (hidden("req", f.req))
            (hidden("csrf", f.csrf))
            input type="text" name="username" value=(f.username) autocomplete="username" hidden readonly;
            label for="current" { "Current password" }
            input type="password" id="current" name="current" autocomplete="current-password" required autofocus;
            label for="new" { "New password" }
            input type="password" id="new" name="new" autocomplete="new-password" required;
            label for="confirm" { "Confirm password" }
            input type="password" id="confirm" name="confirm" autocomplete="new-password" required;
            button type="submit" id="change" { "Update password" }
        }
    };
    let status = form_status(error.is_some());
    page(status, "Update your password", body, form_action)
}

pub(crate) const EXPIRED_INTRO: &str = "You need to update your password because this is the first time you are signing in, or because your password has expired.";

/// The change page of a pending sign-in whose grant allows the change now.
pub(crate) fn change_page_of(t: &Tenant, req: &AuthzRequest) -> Response {
    let upn = req.password_change.as_ref().map_or("", |g| g.upn.as_str());
    change_page(
        &expired_form(t, req, upn),
        None,
        &crate::pages::redirect_form_action(&req.redirect_uri),
    )
}

pub(crate) fn expired_form<'a>(t: &Tenant, req: &'a AuthzRequest, upn: &'a str) -> Form<'a> {
    Form {
        action: format!("/{}/login/password/change", t.name),
        req: &req.id,
        csrf: &req.csrf,
        username: upn,
        intro: EXPIRED_INTRO,
    }
}
