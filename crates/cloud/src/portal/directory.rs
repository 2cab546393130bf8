//! The directory pages: users (search and paging) and a page per user, domains, apps and
//! agents, each with the forms of its changes (posted to [`super::act`]).

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Extension;
use maud::{html, Markup};
use serde::Deserialize;

use super::act::{self, done_notice};
use super::auth::{server_error, signed_in, Ctx};
use super::dashboard::agent_views;
use super::layout::{self, text, time_s};
use crate::admin_api::ops;
use crate::http::ClientInfo;
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

/// `?done=ACTION`: the notice of a change just made.
#[derive(Debug, Deserialize, Default)]
pub struct Done {
    #[serde(default)]
    done: Option<String>,
}

/// A path segment with its reserved characters escaped.
fn seg(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
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
    let t = &ctx.t.name;
    let rows: Vec<Vec<Markup>> = page
        .users
        .iter()
        .map(|u| {
            vec![
                html! { a href={ "/" (t) "/portal/users/" (seg(&u.upn)) } { (u.upn) } },
                text(u.display_name.as_deref().unwrap_or("")),
                if u.is_synced() {
                    text("onprem (synced)")
                } else {
                    text(&u.source)
                },
                text(&u.role),
                if u.enabled {
                    html! { span class="ok" { "\u{2714} enabled" } }
                } else {
                    html! { span class="bad" { "\u{2716} blocked" } }
                },
                text(&u.last_sign_in.map(time_s).unwrap_or_else(|| "never".into())),
                text(&time_s(u.created_at)),
            ]
        })
        .collect();
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
    Query(done): Query<Done>,
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
                    html! { span class="ok" { "\u{2714} verified" } }
                } else {
                    html! {
                        span class="bad" { "\u{2716} not verified" }
                        @if let Some(code) = &d.verification_code {
                            br;
                            span class="muted" { "TXT " (d.name) " \"" (crate::domain_proof::PREFIX) (code) "\"" }
                        }
                    }
                },
                domain_actions(&ctx, d),
            ]
        })
        .collect();
    let body = html! {
        h1 { "Domains" }
        (done_notice(done.done.as_deref()))
        (layout::table(
            "domains",
            &["Domain", "Kind", "Proof of control", "Actions"],
            &rows,
            "No domain."
        ))
        @if ctx.may(ops::ADD_DOMAIN.roles) {
            h2 class="section" { "Add a domain" }
            (act::form(&ctx, "add-domain", ("", ""), html! {
                label { "Domain name" input type="text" name="name" id="new-domain" required placeholder="contoso.example"; }
            }, "Add", "add-domain"))
        }
    };
    layout::page(StatusCode::OK, &ctx, "domains", "Domains", body)
}

/// The TXT record a new domain publishes, from the admin API's answer.
pub(crate) fn txt_record(b: &serde_json::Value) -> Markup {
    let v = &b["verification"];
    html! {
        @if v.is_object() {
            dl class="kv" id="txt-record" {
                dt { "Type" } dd { "TXT" }
                dt { "Name" } dd { code { (v["name"].as_str().unwrap_or_default()) } }
                dt { "Value" } dd { code { (v["value"].as_str().unwrap_or_default()) } }
                dt { "TTL" } dd { (v["ttl"].as_u64().unwrap_or(3600)) }
            }
            p { (v["next"].as_str().unwrap_or_default()) }
        }
    }
}

/// The buttons of a domain's row, for the roles that may use them.
fn domain_actions(ctx: &Ctx, d: &crate::store::Domain) -> Markup {
    use crate::store::DomainKind;
    let target = ("name", d.name.as_str());
    html! {
        @if !d.verified && ctx.may(ops::VERIFY_DOMAIN.roles) {
            (act::form(ctx, "verify-domain", target, html! {}, "Verify", &format!("verify-{}", d.name)))
        }
        @if d.kind == DomainKind::Federated && ctx.may(ops::CONVERT_DOMAIN.roles) {
            (act::form(ctx, "convert-domain", target, html! {}, "Convert to managed", &format!("convert-{}", d.name)))
        }
        @if d.kind != DomainKind::Cloud && ctx.may(ops::REMOVE_DOMAIN.roles) {
            (act::form(ctx, "remove-domain", target, html! {}, "Remove", &format!("remove-{}", d.name)))
        }
    }
}

/// `GET /{tenant}/portal/users/{upn}`: a user with their source and sync state, groups,
/// multi-factor state, recent sign-ins, and the forms of every change.
pub async fn user(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    BaseUrl(base): BaseUrl,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    Query(done): Query<Done>,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::SHOW_USER.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let path = format!("/users/{}", seg(upn.trim()));
    let answer = match act::admin_call(&state, &ctx, &client, "GET", &path, None).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    if !answer.status.is_success() {
        return layout::page(
            answer.status,
            &ctx,
            "users",
            "User not found",
            html! { h1 { "User not found" } p class="error" role="alert" { (answer.error()) } },
        );
    }
    let u = &answer.body;
    let s = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".into(),
        other => other.to_string(),
    };
    let upn = s(&u["upn"]);
    let recent = state
        .store
        .sign_ins_filtered(
            ctx.t.id,
            &crate::store::SignInFilter {
                user: Some(upn.clone()),
                limit: 10,
                ..Default::default()
            },
        )
        .await;
    let recent = match recent {
        Ok(r) => r,
        Err(e) => return server_error(e),
    };
    let t = &ctx.t.name;
    let rows: Vec<Vec<Markup>> = recent
        .iter()
        .map(|l| {
            vec![
                html! { a href={ "/" (t) "/portal/signins/" (l.id) } { (layout::time_ms(l.time_ms)) } },
                super::signins::result_cell(&l.result),
                text(&l.aadsts.map(layout::aadsts_text).unwrap_or_default()),
                text(l.client_ip.as_deref().unwrap_or("")),
            ]
        })
        .collect();
    let enabled = u["enabled"].as_bool().unwrap_or(false);
    let cloud = u["source"] == "cloud";
    let target = ("upn", upn.as_str());
    let synced = &u["synced"];
    let mfa = &u["mfa"];
    let body = html! {
        p { a href={ "/" (t) "/portal/users" } { "\u{2190} Users" } }
        h1 { (upn) }
        (done_notice(done.done.as_deref()))
        div class="grid" {
            div class="card" {
                h2 { "Account" }
                dl class="kv" id="user-detail" {
                    dt { "Name" } dd { (s(&u["display_name"])) }
                    dt { "Mail" } dd { (s(&u["mail"])) }
                    dt { "Source" } dd { (s(&u["source"])) }
                    dt { "Role" } dd id="role" { (s(&u["role"])) }
                    dt { "Sign-in" } dd id="state" {
                        @if enabled { span class="ok" { "\u{2714} enabled" } } @else { span class="bad" { "\u{2716} blocked" } }
                    }
                    dt { "Last sign-in" } dd { (u["last_sign_in"].as_i64().map(time_s).unwrap_or_else(|| "never".into())) }
                    dt { "Self-service writeback" } dd { (s(&u["writeback_allowed"])) }
                }
            }
            div class="card" {
                h2 { "Directory sync" }
                @if synced.is_object() {
                    dl class="kv" id="sync-state" {
                        dt { "Forest" } dd { (s(&synced["forest"])) }
                        dt { "Distinguished name" } dd { (s(&synced["distinguished_name"])) }
                        dt { "sAMAccountName" } dd { (s(&synced["sam_account_name"])) }
                        dt { "Enabled in AD" } dd { (s(&synced["account_enabled"])) }
                        dt { "Password last set" } dd { (s(&synced["password_last_set"])) }
                        dt { "Last change read" } dd { (s(&synced["last_change"])) }
                        dt { "Groups" } dd id="groups" {
                            @if let Some(groups) = synced["groups"].as_array() {
                                @if groups.is_empty() { "none" }
                                @for (i, g) in groups.iter().enumerate() {
                                    @if i > 0 { ", " }
                                    (g["name"].as_str().or_else(|| g.as_str()).unwrap_or_default())
                                }
                            } @else { "-" }
                        }
                    }
                } @else {
                    p class="muted" { "Not synced from Active Directory." }
                }
            }
            div class="card" {
                h2 { "Multi-factor authentication" }
                dl class="kv" id="mfa-state" {
                    dt { "Policy" } dd { (s(&mfa["policy"])) " (applies: " (s(&mfa["effective"])) ")" }
                    dt { "Enrolled" } dd { (s(&mfa["enrolled"])) }
                    dt { "Recovery codes left" } dd { (s(&mfa["recovery_codes_left"])) }
                    dt { "Locked until" } dd { (mfa["locked_until"].as_i64().map(time_s).unwrap_or_else(|| "-".into())) }
                }
            }
        }
        h2 class="section" { "Actions" }
        div class="card" id="user-actions" {
            @if enabled {
                (act::form(&ctx, "block-user", target, html! {}, "Block sign-in", "block"))
            } @else {
                (act::form(&ctx, "unblock-user", target, html! {}, "Unblock sign-in", "unblock"))
            }
            (act::form(&ctx, "unlock-user", target, html! {}, "Unlock (end smart lockout)", "unlock"))
            (act::form(&ctx, "reset-mfa", target, html! {}, "Reset multi-factor authentication", "reset-mfa"))
            (act::form(&ctx, "reset-password", target, html! {
                label { "New password" input type="password" name="password" id="new-password" autocomplete="new-password" required; }
                label { "Must change at next sign-in" input type="checkbox" name="must_change" id="must-change" value="true"; }
            }, if cloud { "Reset password" } else { "Reset password in Active Directory" }, "reset-password"))
            (act::form(&ctx, "set-role", target, html! {
                label {
                    "Administrator role"
                    select name="role" id="new-role" {
                        @for r in ops::ROLES {
                            option value=(r) selected[u["role"] == *r] { (r) }
                        }
                    }
                }
            }, "Change role", "set-role"))
        }
        h2 class="section" { "Recent sign-ins" }
        (layout::table("user-signins", &["Time", "Result", "Error", "IP"], &rows, "No sign-in in the log."))
    };
    layout::page(StatusCode::OK, &ctx, "users", &upn, body)
}

/// `GET /{tenant}/portal/apps`
pub async fn apps(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(done): Query<Done>,
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
                text(if a.spa { "single-page" } else if a.public { "public" } else { "confidential" }),
                html! {
                    (act::form(&ctx, "set-redirect-uris", ("client_id", &a.client_id), html! {
                        label { "Redirect URIs, one per line" textarea name="redirect_uris" rows="3" cols="40" id={ "uris-" (a.client_id) } { (a.redirect_uris.join("\n")) } }
                    }, "Save", &format!("save-uris-{}", a.client_id)))
                },
                html! {
                    @if !a.public {
                        (act::form(&ctx, "add-secret", ("client_id", &a.client_id), html! {}, "New secret", &format!("secret-{}", a.client_id)))
                    }
                    (act::form(&ctx, "delete-app", ("client_id", &a.client_id), html! {}, "Delete", &format!("delete-{}", a.client_id)))
                },
            ]
        })
        .collect();
    let body = html! {
        h1 { "Apps" }
        (done_notice(done.done.as_deref()))
        (layout::table(
            "apps",
            &["Name", "Client id", "Type", "Redirect URIs", "Actions"],
            &rows,
            "No app is registered."
        ))
        h2 class="section" { "Register an app" }
        (act::form(&ctx, "add-app", ("", ""), html! {
            label { "Name" input type="text" name="name" id="app-name" required; }
            label {
                "Type"
                select name="kind" id="app-kind" {
                    option value="public" { "Public (desktop, mobile, CLI)" }
                    option value="confidential" { "Confidential (web app with a secret)" }
                    option value="spa" { "Single-page app" }
                }
            }
            label { "Redirect URIs, one per line" textarea name="redirect_uris" rows="3" cols="40" id="app-uris" {} }
        }, "Register", "add-app"))
    };
    layout::page(StatusCode::OK, &ctx, "apps", "Apps", body)
}

/// `GET /{tenant}/portal/agents`
pub async fn agents(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    Query(done): Query<Done>,
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
                text(&a.latency_p50.map(|l| format!("{l} ms")).unwrap_or_else(|| "-".into())),
                text(&a.failures.to_string()),
                text(&a.id),
                html! {
                    @if a.status != "Revoked" && ctx.may(ops::REVOKE_AGENT.roles) {
                        (act::form(&ctx, "revoke-agent", ("id", &a.id), html! {}, "Revoke", &format!("revoke-{}", a.id)))
                    }
                },
            ]
        })
        .collect();
    let pta = ctx.t.pta_enabled;
    let body = html! {
        h1 { "Agents" }
        (done_notice(done.done.as_deref()))
        div class="card" id="pta" {
            p {
                "Pass-through authentication is "
                @if pta { strong class="ok" { "\u{2714} on" } } @else { strong class="bad" { "\u{2716} off" } }
                "."
            }
            @if ctx.may(ops::SET_PTA.roles) {
                (act::form(&ctx, "set-pta", ("", ""), html! {
                    @if !pta { (crate::pages::hidden("enabled", "true")) }
                }, if pta { "Turn off" } else { "Turn on" }, "toggle-pta"))
            }
        }
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
                "Latency p50",
                "Failures",
                "Id",
                "Actions"
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
