//! The portal's page shell: navigation bar (tenant, signed-in UPN, sign-out), one style sheet
//! allowed by its hash, strict security headers, and small formatting helpers. The layout is
//! a flex/grid one that reads at 1280 px and at 390 px (tables scroll sideways in a wrapper).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::auth::Ctx;
use crate::admin_api::ops;

const STYLE: &str = "*{box-sizing:border-box}\
body{font-family:system-ui,sans-serif;margin:0;background:#f3f2f1;color:#201f1e;font-size:15px}\
header{background:#0f3b5f;color:#fff;display:flex;flex-wrap:wrap;align-items:center;gap:8px 16px;padding:10px 16px}\
header .brand{font-weight:600;font-size:1.1rem}header .muted{color:#dbe6f0}header .who{margin-left:auto;display:flex;flex-wrap:wrap;gap:8px;align-items:center}\
header form{margin:0}header button{background:#fff;color:#0f3b5f;border:0;padding:4px 12px;cursor:pointer;font-size:.9rem}\
nav{display:flex;flex-wrap:wrap;gap:4px;padding:6px 12px;background:#fff;border-bottom:1px solid #d2d0ce}\
nav a{color:#0f3b5f;text-decoration:none;padding:6px 10px;border-radius:4px}nav a.on{background:#deecf9;font-weight:600}\
nav a:focus,button:focus,input:focus,select:focus,a:focus{outline:2px solid #000;outline-offset:2px}\
main{max-width:1240px;margin:0 auto;padding:16px}h1{font-size:1.4rem;margin:4px 0 12px}h2{font-size:1.1rem;margin:0 0 8px}\
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:16px}\
.card{background:#fff;padding:12px 16px;box-shadow:0 1px 3px rgba(0,0,0,.15);min-width:0}\
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(220px,1fr));gap:12px}\
.scroll{overflow-x:auto;background:#fff;box-shadow:0 1px 3px rgba(0,0,0,.15)}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{text-align:left;padding:6px 10px;border-bottom:1px solid #edebe9;white-space:nowrap;vertical-align:top}\
th{background:#faf9f8}td.wrap{white-space:normal;min-width:16em}\
svg.chart{width:100%;height:auto;display:block}svg.chart text{font-size:15px;fill:#323130}#signins-chart{grid-column:1/-1}h2.section{margin:20px 0 8px}\
.legend{list-style:none;padding:0;margin:8px 0 0;display:flex;flex-wrap:wrap;gap:4px 16px}.legend svg{vertical-align:middle;margin-right:4px}\
.hrow{display:grid;grid-template-columns:minmax(0,1fr) 3em;gap:2px 8px;margin:0 0 10px}.hrow .hl{grid-column:1 / 3;font-size:.85rem}\
.hrow svg{width:100%;height:12px;display:block}.hrow .hn{text-align:right;font-weight:600}\
.ok{color:#107c10}.bad{color:#a80000}.muted{color:#605e5c}.empty{color:#605e5c;font-style:italic}\
.error{color:#a80000;border-left:4px solid #a80000;padding-left:8px}.notice{color:#107c10;border-left:4px solid #107c10;padding-left:8px}\
form.filters,form.setting{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-end;margin:0 0 12px}\
label{display:flex;flex-direction:column;font-size:.85rem;gap:2px}input,select{padding:6px;font-size:.95rem;border:1px solid #8a8886;max-width:100%}\
button.primary{background:#0067b8;color:#fff;border:0;padding:7px 16px;font-size:.95rem;cursor:pointer}\
.pager{display:flex;gap:16px;margin:10px 0}dl.kv{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:6px 0}dl.kv dt{color:#605e5c}dl.kv dd{margin:0}\
@media (max-width:600px){main{padding:8px}header .who{margin-left:0}h1{font-size:1.2rem}}";

/// SHA-256 of the style sheet, for the CSP.
fn style_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| crate::pages::csp_hash(STYLE))
}

/// Adds the security headers of every portal answer (`form_action` for the CSP).
pub fn secure(r: &mut Response, form_action: &str) {
    let csp = format!(
        "default-src 'none'; style-src 'sha256-{}'; img-src data:; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        style_hash()
    );
    crate::pages::security_headers(r, &csp);
}

fn document(title: &str, head_extra: Markup, body: Markup) -> String {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                (head_extra)
                title { (title) " - Passthru portal" }
                // A constant of ours, not input; the CSP allows it by the hash of these exact
                // bytes, so it must not be altered by escaping.
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
    .into_string()
}

/// A page without the navigation (sign-in steps, errors before a session exists); with
/// `refresh_to`, it moves on to that same-origin path by itself (no script).
pub(crate) fn bare(
    status: StatusCode,
    title: &str,
    body: Markup,
    refresh_to: Option<&str>,
) -> Response {
    let head = html! {
        @if let Some(to) = refresh_to {
            meta http-equiv="refresh" content={ "0;url=" (to) };
        }
    };
    let html = document(title, head, html! { main { (body) } });
    let mut r = (status, Html(html)).into_response();
    secure(&mut r, "'self'");
    r
}

/// A page with only a heading and a sentence.
pub(crate) fn message(status: StatusCode, title: &str, text: &str) -> Response {
    bare(
        status,
        title,
        html! {
            h1 { (title) }
            p { (text) }
        },
        None,
    )
}

/// The navigation: every page, shown only to the roles that may open it.
pub const NAV: &[(&str, &str, &[&str])] = &[
    ("", "Dashboard", ops::LIST_SIGNINS.roles),
    ("users", "Users", ops::LIST_USERS.roles),
    ("domains", "Domains", ops::LIST_DOMAINS.roles),
    ("apps", "Apps", ops::LIST_APPS.roles),
    ("agents", "Agents", ops::LIST_AGENTS.roles),
    ("sync", "Sync", ops::GET_SYNC.roles),
    ("settings", "Settings", ops::GET_SETTINGS.roles),
    ("signins", "Sign-in log", ops::LIST_SIGNINS.roles),
    ("audit", "Audit log", ops::LIST_AUDIT.roles),
];

/// A portal page for the signed-in user: header (tenant, UPN, sign-out), navigation, `body`.
/// `active` is the page's path under the portal ("" for the dashboard).
pub(crate) fn page(
    status: StatusCode,
    ctx: &Ctx,
    active: &str,
    title: &str,
    body: Markup,
) -> Response {
    let t = &ctx.t.name;
    let body = html! {
        header {
            span class="brand" { "Passthru" }
            span id="tenant" { (t) }
            span class="who" {
                span id="upn" { (ctx.user.upn) }
                span class="muted" { (ctx.user.role) }
                form method="post" action={ "/" (t) "/portal/signout" } {
                    (crate::pages::hidden("csrf", &ctx.session.csrf))
                    button type="submit" id="signout" { "Sign out" }
                }
            }
        }
        nav aria-label="Portal" {
            @for (path, label, _) in NAV.iter().filter(|(_, _, roles)| ctx.may(roles)) {
                @let on = *path == active;
                a href={ "/" (t) "/portal/" (path) } class=[on.then_some("on")] aria-current=[on.then_some("page")] { (label) }
            }
        }
        main { (body) }
    };
    let mut r = (status, Html(document(title, html! {}, body))).into_response();
    secure(&mut r, "'self'");
    r
}

/// A table in its horizontal scroller: `head` are the column titles, `rows` the cells (each
/// markup made by maud, so its text is escaped already).
pub(crate) fn table(id: &str, head: &[&str], rows: &[Vec<Markup>], empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p class="empty" id=(id) { (empty) }
        } @else {
            // Focusable, so that a keyboard can scroll a table wider than the page (axe-core's
            // scrollable-region-focusable), and named for screen readers.
            div class="scroll" tabindex="0" role="region" aria-label={ "Table " (id) ", scrolls sideways" } {
                table id=(id) {
                    thead { tr { @for h in head { th scope="col" { (h) } } } }
                    tbody {
                        @for r in rows {
                            tr { @for c in r { td { (c) } } }
                        }
                    }
                }
            }
        }
    }
}

/// The links between the pages of a list: to the first page when this is not it, and to the
/// next one when there is one. `base` is the list's path and query (its filters), `next` the
/// continuation of the page after this one.
pub(crate) fn pager(base: &str, on_first: bool, next: Option<&str>) -> Markup {
    html! {
        div class="pager" role="navigation" aria-label="Pages" {
            @if !on_first {
                a id="first-page" href=(base) { "First page" }
            }
            @if let Some(next) = next {
                a id="next-page" href={ (base) "&after=" (next) } { "Next page (older)" }
            }
        }
    }
}

/// One table cell of plain text (escaped).
pub(crate) fn text(s: &str) -> Markup {
    html! { (s) }
}

/// Unix seconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time_s(secs: i64) -> String {
    let fmt =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| secs.to_string())
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn time_ms(ms: i64) -> String {
    time_s(ms.div_euclid(1000))
}

/// `HH:MM` (UTC) of a Unix minute.
pub fn hh_mm(minute: i64) -> String {
    let fmt = time::macros::format_description!("[hour]:[minute]");
    time::OffsetDateTime::from_unix_timestamp(minute * 60)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

/// The sentences of the codes the sign-in log holds (one definition, the admin API's).
pub use crate::admin_api::signins::{aadsts_text, win32_text};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_of_the_catalog_reads_with_its_sentence() {
        for a in passthru_proto::Aadsts::ALL {
            let text = aadsts_text(a.code());
            assert!(
                text.starts_with(&format!("AADSTS{}: ", a.code())) && text.len() > 20,
                "{text}"
            );
        }
        assert_eq!(aadsts_text(1), "AADSTS1");
        assert_eq!(
            win32_text(1326),
            "Win32 1326: The user name or password is incorrect."
        );
        assert_eq!(win32_text(7), "Win32 7");
    }
}
