//! The directory pages: users (search and paging), domains, apps and agents.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::auth::{server_error, signed_in};
use super::dashboard::agent_views;
use super::layout::{self, esc, time_s};
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
    let rows: Vec<Vec<String>> = page
        .users
        .iter()
        .map(|u| {
            vec![
                esc(&u.upn),
                esc(u.display_name.as_deref().unwrap_or("")),
                if u.is_synced() {
                    "onprem (synced)".to_string()
                } else {
                    esc(&u.source)
                },
                esc(&u.role),
                if u.enabled {
                    "<span class=\"ok\">enabled</span>".into()
                } else {
                    "<span class=\"bad\">blocked</span>".into()
                },
                u.last_sign_in.map(time_s).unwrap_or_else(|| "never".into()),
                time_s(u.created_at),
            ]
        })
        .collect();
    let t = esc(&ctx.t.name);
    let q = url::form_urlencoded::byte_serialize(p.q.trim().as_bytes()).collect::<String>();
    let mut pager = String::new();
    if after.is_some() {
        pager.push_str(&format!(
            "<a href=\"/{t}/portal/users?q={q}\" id=\"first\">First page</a>"
        ));
    }
    if let Some(next) = &page.next {
        let next = url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>();
        pager.push_str(&format!(
            "<a href=\"/{t}/portal/users?q={q}&amp;after={next}\" id=\"next\">Next page</a>"
        ));
    }
    let body = format!(
        "<h1>Users</h1><form class=\"filters\" method=\"get\" action=\"/{t}/portal/users\" role=\"search\">\
<label>Search (UPN, name or mail)<input type=\"search\" name=\"q\" id=\"q\" value=\"{}\"></label>\
<button type=\"submit\" class=\"primary\">Search</button></form>{}<div class=\"pager\">{pager}</div>",
        esc(p.q.trim()),
        layout::table(
            "users",
            &["UPN", "Name", "Source", "Role", "Sign-in", "Last sign-in", "Created"],
            &rows,
            "No user matches.",
        ),
    );
    layout::page(StatusCode::OK, &ctx, "users", "Users", &body)
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
    let rows: Vec<Vec<String>> = domains
        .iter()
        .map(|d| {
            vec![
                esc(&d.name),
                esc(match d.kind {
                    crate::store::DomainKind::Cloud => "cloud (initial)",
                    crate::store::DomainKind::Managed => "managed (pass-through)",
                    crate::store::DomainKind::Federated => "federated",
                }),
                if d.verified {
                    "<span class=\"ok\">verified</span>".into()
                } else {
                    "<span class=\"bad\">not verified</span>".into()
                },
            ]
        })
        .collect();
    let body = format!(
        "<h1>Domains</h1>{}",
        layout::table(
            "domains",
            &["Domain", "Kind", "Proof of control"],
            &rows,
            "No domain."
        )
    );
    layout::page(StatusCode::OK, &ctx, "domains", "Domains", &body)
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
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            vec![
                esc(&a.name),
                esc(&a.client_id),
                if a.public { "public" } else { "confidential" }.into(),
                a.redirect_uris
                    .iter()
                    .map(|u| esc(u))
                    .collect::<Vec<_>>()
                    .join("<br>"),
            ]
        })
        .collect();
    let body = format!(
        "<h1>Apps</h1>{}",
        layout::table(
            "apps",
            &["Name", "Client id", "Type", "Redirect URIs"],
            &rows,
            "No app is registered."
        )
    );
    layout::page(StatusCode::OK, &ctx, "apps", "Apps", &body)
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
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            vec![
                esc(&a.host),
                esc(&a.version),
                esc(&a.status),
                a.in_flight.to_string(),
                a.served.to_string(),
                esc(&a.forests.join(", ")),
                if a.dcs == 0 {
                    "-".to_string()
                } else if a.dcs_down.is_empty() {
                    format!("{} up", a.dcs)
                } else {
                    format!(
                        "{} of {} up; down: {}",
                        a.dcs - a.dcs_down.len(),
                        a.dcs,
                        esc(&a.dcs_down.join(", "))
                    )
                },
                a.last_seen.map(time_s).unwrap_or_else(|| "never".into()),
                esc(a.source_ip.as_deref().unwrap_or("")),
                time_s(a.cert_expires_at),
                esc(&a.id),
            ]
        })
        .collect();
    let body = format!(
        "<h1>Agents</h1>{}",
        layout::table(
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
        )
    );
    layout::page(StatusCode::OK, &ctx, "agents", "Agents", &body)
}
