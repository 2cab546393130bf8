//! The sync page: each forest's syncing agent, last runs, object counts, conflicts, the run
//! in progress (objects, rate, ETA), and the synced groups.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{html, Markup};

use super::auth::{server_error, signed_in};
use super::dashboard::agent_views;
use super::layout::{self, text, time_s};
use crate::admin_api::ops;
use crate::state::Shared;
use crate::sts::BaseUrl;

/// Groups shown on the page.
const GROUPS: i64 = 50;

/// `GET /{tenant}/portal/sync`
pub async fn page(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
) -> Response {
    let ctx = match signed_in(&state, &tenant, &base, &headers, ops::GET_SYNC.roles).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (forests, counts, groups) = match tokio::try_join!(
        state.store.sync_forests(ctx.t.id),
        state.store.sync_counts(ctx.t.id),
        state.store.groups_page(ctx.t.id, None, None, GROUPS),
    ) {
        Ok(v) => v,
        Err(e) => return server_error(e),
    };
    let agents = match agent_views(&state, &ctx).await {
        Ok(a) => a,
        Err(r) => return r,
    };
    let progress = state.sync.progress(ctx.t.id);
    let host_of = |id: Option<uuid::Uuid>| {
        id.map(|id| {
            agents
                .iter()
                .find(|a| a.id == id.to_string())
                .map(|a| a.host.clone())
                .unwrap_or_else(|| id.to_string())
        })
        .unwrap_or_else(|| "none".into())
    };
    let rows: Vec<Vec<Markup>> = forests
        .iter()
        .map(|f| {
            let (users, groups) = counts
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(&f.forest))
                .map(|(_, u, g)| (*u, *g))
                .unwrap_or((0, 0));
            vec![
                text(&f.forest),
                text(&host_of(f.holder_agent_id)),
                html! { (users) },
                html! { (groups) },
                html! { (f.interval_seconds) " s" },
                text(
                    &f.last_success_at
                        .map(time_s)
                        .unwrap_or_else(|| "never".into()),
                ),
                text(&f.last_full_at.map(time_s).unwrap_or_else(|| "never".into())),
                match &f.last_error {
                    Some(e) => html! { span class="bad" { (e) } },
                    None => html! { span class="ok" { "none" } },
                },
            ]
        })
        .collect();
    let group_rows: Vec<Vec<Markup>> = groups
        .0
        .iter()
        .map(|g| {
            vec![
                text(g.name.as_deref().unwrap_or("")),
                text(&g.dn),
                text(&g.forest),
                text(&g.id.to_string()),
            ]
        })
        .collect();
    let required = if ctx.t.settings.sync_required {
        "on: users a forest does not sync cannot sign in"
    } else {
        "off"
    };
    let conflicts: Vec<(&str, &String)> = forests
        .iter()
        .flat_map(|f| f.conflicts.iter().map(move |c| (f.forest.as_str(), c)))
        .collect();
    let body = html! {
        h1 { "Directory sync" }
        p {
            "sync_required is " b id="sync-required" { (required) } ". "
            "Synced users and groups are read-only here: change them in Active Directory."
        }
        @for run in &progress {
            p class="run" {
                (if run.full { "Full import" } else { "Incremental run" })
                " of " b { (run.forest) } ": " (run.objects) " objects, " (run.objects_per_second) "/s"
                @if let Some(s) = run.eta_seconds {
                    ", about " (s) " s left"
                }
                " "
                @if let Some(total) = run.estimated_total.filter(|t| *t > 0) {
                    progress max=(total) value=(run.objects.min(total)) {}
                }
            }
        }
        (layout::table(
            "forests",
            &[
                "Forest",
                "Syncing agent",
                "Users",
                "Groups",
                "Interval",
                "Last success",
                "Last full import",
                "Last error"
            ],
            &rows,
            "No forest is synced: give an agent a service account for a forest \
             (service_account and service_password_file in its configuration)."
        ))
        @if !conflicts.is_empty() {
            h2 { "Objects not applied" }
            ul id="conflicts" {
                @for (forest, c) in &conflicts {
                    li { (forest) ": " (c) }
                }
            }
        }
        h2 { "Groups" }
        (layout::table(
            "groups",
            &["Name", "Distinguished name", "Forest", "Object id"],
            &group_rows,
            "No group is synced."
        ))
    };
    layout::page(StatusCode::OK, &ctx, "sync", "Directory sync", body)
}
