//! The directory pages: users (search and paging), domains, apps and agents.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};
use serde::Deserialize;

use super::auth::{server_error, signed_in};
use super::dashboard::agent_views;
use super::layout::{self, text, time_s};
use crate::admin_api::ops;
use crate::state::Shared;
use crate::sts::BaseUrl;

/// Users per page.
const PAGE: i64 = 25;

/// Query of the users page.
#[derive(Debug, Deserialize, Default)]
pub struct UsersQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    after: String,
}

fn none_if_empty(s: &str) -> Option<&str> {
    let s = s.trim();
    (!s.is_empty()).then_some(s)
}

/// `GET /{tenant}/portal/users?q=&after=`
pub async fn users(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(p): Query<UsersQuery>,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::LIST_USERS.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let search = none_if_empty(&p.q);
    let after = none_if_empty(&p.after);
    let page = match state.store.users_page(ctx.t.id, search, after, PAGE).await {
        Ok(p) => p,
        Err(e) => return server_error(e),
    };
    let rows: Vec<Vec<Markup>> = page
        .users
        .iter()
        .map(|u| {
            vec![
                text(&u.upn),
                text(u.display_name.as_deref().unwrap_or("")),
                if u.is_synced() {
                    text("onprem (synced)")
                } else {
                    text(&u.source)
                },
                text(&u.role),
                if u.enabled {
                    html! { span class="ok" { "enabled" } }
                } else {
                    html! { span class="bad" { "blocked" } }
                },
                text(&u.last_sign_in.map(time_s).unwrap_or_else(|| "never".into())),
                text(&time_s(u.created_at)),
            ]
        })
        .collect();
    let t = &ctx.t.name;
    let q = url::form_urlencoded::byte_serialize(p.q.trim().as_bytes()).collect::<String>();
    let next = page
        .next
        .as_ref()
        .map(|n| url::form_urlencoded::byte_serialize(n.as_bytes()).collect::<String>());
    let body = html! {
        h1 { "Users" }
        form class="filters" method="get" action={ "/" (t) "/portal/users" } role="search" {
            label { "Search (UPN, name or mail)" input type="search" name="q" id="q" value=(p.q.trim()); }
            button type="submit" class="primary" { "Search" }
        }
        (layout::table(
            "users",
            &["UPN", "Name", "Source", "Role", "Sign-in", "Last sign-in", "Created"],
            &rows,
            "No user matches.",
        ))
        div class="pager" {
            @if after.is_some() {
                a href={ "/" (t) "/portal/users?q=" (q) } id="first" { "First page" }
            }
            @if let Some(next) = &next {
                a href={ "/" (t) "/portal/users?q=" (q) "&after=" (next) } id="next" { "Next page" }
            }
        }
    };
    layout::page(StatusCode::OK, &ctx, "users", "Users", body)
}

/// `GET /{tenant}/portal/domains`
pub async fn domains(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::LIST_DOMAINS.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let domains = match state.store.domains(ctx.t.id).await {
        Ok(d) => d,
        Err(e) => return server_error(e),
    };
    let rows: Vec<Vec<Markup>> = domains
        .iter()
        .map(|d| {
            vec![
                text(&d.name),
                text(match d.kind {
                    crate::store::DomainKind::Cloud => "cloud (initial)",
                    crate::store::DomainKind::Managed => "managed (pass-through)",
                    crate::store::DomainKind::Federated => "federated",
                }),
                if d.verified {
                    html! { span class="ok" { "verified" } }
                } else {
                    html! { span class="bad" { "not verified" } }
                },
            ]
        })
        .collect();
    let body = html! {
        h1 { "Domains" }
        (layout::table(
            "domains",
            &["Domain", "Kind", "Proof of control"],
            &rows,
            "No domain."
        ))
    };
    layout::page(StatusCode::OK, &ctx, "domains", "Domains", body)
}

/// `GET /{tenant}/portal/apps`
pub async fn apps(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::LIST_APPS.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let apps = match state.store.apps(ctx.t.id).await {
        Ok(a) => a,
        Err(e) => return server_error(e),
    };
    let rows: Vec<Vec<Markup>> = apps
        .iter()
        .map(|a| {
            vec![
                text(&a.name),
                text(&a.client_id),
                text(if a.public { "public" } else { "confidential" }),
                html! {
                    @for (i, u) in a.redirect_uris.iter().enumerate() {
                        @if i > 0 { br; }
                        (u)
                    }
                },
            ]
        })
        .collect();
    let body = html! {
        h1 { "Apps" }
        (layout::table(
            "apps",
            &["Name", "Client id", "Type", "Redirect URIs"],
            &rows,
            "No app is registered."
        ))
    };
    layout::page(StatusCode::OK, &ctx, "apps", "Apps", body)
}

/// `GET /{tenant}/portal/agents`
pub async fn agents(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::LIST_AGENTS.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let agents = match agent_views(&state, &ctx).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let now = crate::clock::unix_now();
    let rows: Vec<Vec<Markup>> = agents
        .iter()
        .map(|a| {
            vec![
                text(&a.host),
                text(&a.version),
                text(&a.status),
                html! { (a.in_flight) },
                html! { (a.served) },
                text(&a.forests.join(", ")),
                text(&if a.dcs == 0 {
                    "-".to_string()
                } else if a.dcs_down.is_empty() {
                    format!("{} up", a.dcs)
                } else {
                    format!(
                        "{} of {} up; down: {}",
                        a.dcs - a.dcs_down.len(),
                        a.dcs,
                        a.dcs_down.join(", ")
                    )
                }),
                text(&a.last_seen.map(time_s).unwrap_or_else(|| "never".into())),
                text(a.source_ip.as_deref().unwrap_or("")),
                cert_expiry(a.cert_expires_at, now),
                text(&a.id),
            ]
        })
        .collect();
    let body = html! {
        h1 { "Agents" }
        (layout::table(
            "agents",
            &[
                "Host",
                "Version",
                "Status",
                "In flight",
                "Served",
                "Forests",
                "Domain controllers",
                "Last seen",
                "Source IP",
                "Certificate expires",
                "Id"
            ],
            &rows,
            "No authentication agent is registered."
        ))
    };
    layout::page(StatusCode::OK, &ctx, "agents", "Agents", body)
}

/// Agents whose certificate expires within this many days are highlighted: a running agent
/// renews with a third of the lifetime left (about 120 days of 365), so one this close has
/// not been connected for months, or cannot renew.
pub(crate) const CERT_WARN_DAYS: i64 = 30;

/// An agent's certificate expiry, highlighted within [`CERT_WARN_DAYS`] of it.
pub(crate) fn cert_expiry(expires_at: i64, now: i64) -> Markup {
    let left = expires_at - now;
    if left <= 0 {
        html! { strong class="bad cert-expiring" { (time_s(expires_at)) " (expired: register the agent again)" } }
    } else if left < CERT_WARN_DAYS * 86_400 {
        let days = left / 86_400;
        html! { strong class="bad cert-expiring" { (time_s(expires_at)) " (" (days) " days left: check that the agent runs and renews)" } }
    } else {
        text(&time_s(expires_at))
    }
}
