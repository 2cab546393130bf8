//! The sync page: each forest's syncing agent, last runs, object counts, conflicts, the run
//! in progress (objects, rate, ETA), and the synced groups.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::auth::{server_error, signed_in};
use super::dashboard::agent_views;
use super::layout::{self, esc, time_s};
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
    let rows: Vec<Vec<String>> = forests
        .iter()
        .map(|f| {
            let (users, groups) = counts
                .iter()
                .find(|(n, _, _)| n.eq_ignore_ascii_case(&f.forest))
                .map(|(_, u, g)| (*u, *g))
                .unwrap_or((0, 0));
            vec![
                esc(&f.forest),
                esc(&host_of(f.holder_agent_id)),
                users.to_string(),
                groups.to_string(),
                format!("{} s", f.interval_seconds),
                f.last_success_at
                    .map(time_s)
                    .unwrap_or_else(|| "never".into()),
                f.last_full_at.map(time_s).unwrap_or_else(|| "never".into()),
                match &f.last_error {
                    Some(e) => format!("<span class=\"bad\">{}</span>", esc(e)),
                    None => "<span class=\"ok\">none</span>".into(),
                },
            ]
        })
        .collect();
    let running: String = progress
        .iter()
        .map(|p| {
            let bar = match p.estimated_total {
                Some(total) if total > 0 => format!(
                    "<progress max=\"{total}\" value=\"{}\"></progress>",
                    p.objects.min(total)
                ),
                _ => String::new(),
            };
            let eta = p
                .eta_seconds
                .map(|s| format!(", about {s} s left"))
                .unwrap_or_default();
            format!(
                "<p class=\"run\">{} of <b>{}</b>: {} objects, {}/s{eta} {bar}</p>",
                if p.full {
                    "Full import"
                } else {
                    "Incremental run"
                },
                esc(&p.forest),
                p.objects,
                p.objects_per_second,
            )
        })
        .collect();
    let conflicts: String = forests
        .iter()
        .flat_map(|f| f.conflicts.iter().map(move |c| (f, c)))
        .map(|(f, c)| format!("<li>{}: {}</li>", esc(&f.forest), esc(c)))
        .collect();
    let group_rows: Vec<Vec<String>> = groups
        .0
        .iter()
        .map(|g| {
            vec![
                esc(g.name.as_deref().unwrap_or("")),
                esc(&g.dn),
                esc(&g.forest),
                esc(&g.id.to_string()),
            ]
        })
        .collect();
    let required = if ctx.t.settings.sync_required {
        "on: users a forest does not sync cannot sign in"
    } else {
        "off"
    };
    let body = format!(
        "<h1>Directory sync</h1><p>sync_required is <b id=\"sync-required\">{required}</b>. \
Synced users and groups are read-only here: change them in Active Directory.</p>{running}{}{}\
<h2>Groups</h2>{}",
        layout::table(
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
        ),
        if conflicts.is_empty() {
            String::new()
        } else {
            format!("<h2>Objects not applied</h2><ul id=\"conflicts\">{conflicts}</ul>")
        },
        layout::table(
            "groups",
            &["Name", "Distinguished name", "Forest", "Object id"],
            &group_rows,
            "No group is synced."
        ),
    );
    layout::page(StatusCode::OK, &ctx, "sync", "Directory sync", &body)
}
