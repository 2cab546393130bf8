//! Synced groups (read-only: they are changed in Active Directory) and the state of
//! directory sync.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use passthru_admin::api;

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::groups::{Group, Member};
use crate::store::sync::SyncForestState;
use crate::sync_leases::RunProgress;

/// A synced group as the API shows it.
pub(crate) fn group_json(g: &Group) -> api::SyncedGroup {
    api::SyncedGroup {
        id: g.id,
        name: g.name.clone(),
        display_name: g.display_name.clone(),
        mail: g.mail.clone(),
        dn: g.dn.clone(),
        forest: g.forest.clone(),
        object_guid: g.object_guid,
        immutable_id: g.immutable_id.clone(),
        synced_at: g.synced_at,
    }
}

/// A synced group with its direct members, as the API shows it.
pub(crate) fn group_with_members_json(g: &Group, members: &[Member]) -> api::Group {
    api::Group {
        id: g.id,
        name: g.name.clone(),
        display_name: g.display_name.clone(),
        mail: g.mail.clone(),
        dn: g.dn.clone(),
        forest: g.forest.clone(),
        object_guid: g.object_guid,
        immutable_id: g.immutable_id.clone(),
        synced_at: g.synced_at,
        members: members.iter().map(member_json).collect(),
    }
}

fn member_json(m: &Member) -> api::GroupMember {
    api::GroupMember {
        kind: m.kind.to_string(),
        object_guid: m.object_guid,
        id: m.id,
        name: m.name.clone(),
    }
}

/// A forest's sync state with its counts of synced users and groups and the run in progress.
pub(crate) fn forest_json(
    f: &SyncForestState,
    (users, groups): (i64, i64),
    running: Option<&RunProgress>,
) -> api::SyncForest {
    api::SyncForest {
        forest: f.forest.clone(),
        holder_agent_id: f.holder_agent_id,
        lease_since: f.lease_since,
        interval_seconds: f.interval_seconds,
        last_full_at: f.last_full_at,
        last_success_at: f.last_success_at,
        last_run_at: f.last_run_at,
        last_error: f.last_error.clone(),
        last_objects: f.last_objects,
        full_total: f.full_total,
        conflicts: f.conflicts.clone(),
        users,
        groups,
        running: running.map(run_json),
    }
}

fn run_json(p: &RunProgress) -> api::SyncRun {
    api::SyncRun {
        forest: p.forest.clone(),
        run_id: p.run_id,
        agent_id: p.agent_id,
        full: p.full,
        started_at: p.started_at,
        objects: p.objects,
        objects_per_second: p.objects_per_second,
        estimated_total: p.estimated_total,
        eta_seconds: p.eta_seconds,
    }
}

/// `GET /{tenant}/admin/groups`
#[utoipa::path(
    get,
    path = "/groups",
    operation_id = ops::LIST_GROUPS.id,
    summary = ops::LIST_GROUPS.summary,
    params(api::ListQuery),
    responses((status = 200, description = "Done.", body = api::GroupList))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Query(q): Query<api::ListQuery>,
) -> Result<Json<api::GroupList>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_GROUPS).await?;
    let top = q.top.unwrap_or(100);
    if !(1..=1000).contains(&top) {
        return Err(ApiError::bad_request("top must be 1 to 1000."));
    }
    let (groups, next) = state
        .store
        .groups_page(
            t.id,
            q.search.as_deref().map(str::trim).filter(|s| !s.is_empty()),
            q.skiptoken.as_deref(),
            top,
        )
        .await?;
    Ok(Json(api::GroupList {
        groups: groups.iter().map(group_json).collect(),
        next_skiptoken: next,
    }))
}

/// `GET /{tenant}/admin/groups/{id}`: by object id or name, with direct members.
#[utoipa::path(
    get,
    path = "/groups/{id}",
    operation_id = ops::SHOW_GROUP.id,
    summary = ops::SHOW_GROUP.summary,
    responses((status = 200, description = "Done.", body = api::Group))
)]
pub async fn show(
    State(state): State<Shared>,
    Path((tenant, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::Group>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::SHOW_GROUP).await?;
    let (group, members) =
        state.store.group(t.id, &id).await?.ok_or_else(|| {
            ApiError::not_found(format!("No synced group '{id}' in this tenant."))
        })?;
    Ok(Json(group_with_members_json(&group, &members)))
}

/// `GET /{tenant}/admin/sync`: every forest's lease holder, last runs, counts, conflicts and
/// the run in progress.
#[utoipa::path(
    get,
    path = "/sync",
    operation_id = ops::GET_SYNC.id,
    summary = ops::GET_SYNC.summary,
    responses((status = 200, description = "Done.", body = api::SyncStatus))
)]
pub async fn status(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::SyncStatus>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::GET_SYNC).await?;
    Ok(Json(sync_status(&state, t.id).await?))
}

/// `POST /{tenant}/admin/sync/{forest}/run`: a run now (a full import with `full`).
#[utoipa::path(
    post,
    path = "/sync/{forest}/run",
    operation_id = ops::RUN_SYNC.id,
    summary = ops::RUN_SYNC.summary,
    request_body = Option<api::RunSync>,
    responses((status = 200, description = "Done.", body = api::SyncRequested))
)]
pub async fn run(
    State(state): State<Shared>,
    Path((tenant, forest)): Path<(String, String)>,
    headers: HeaderMap,
    body: Option<super::ApiJson<api::RunSync>>,
) -> Result<Json<api::SyncRequested>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::RUN_SYNC).await?;
    let full = body.map(|super::ApiJson(b)| b.full).unwrap_or(false);
    if !state.sync.request_run(t.id, &forest, full) {
        return Err(ApiError::not_found(format!(
            "No agent syncs forest '{forest}': give a connected agent a service account for it."
        )));
    }
    tracing::info!(tenant = %t.name, %forest, full, by = %admin.upn, "sync run requested");
    Ok(Json(api::SyncRequested {
        forest: forest.to_ascii_lowercase(),
        full,
        requested: true,
    }))
}

/// The sync status of a tenant.
pub async fn sync_status(
    state: &Shared,
    tenant_id: uuid::Uuid,
) -> Result<api::SyncStatus, ApiError> {
    let forests = state.store.sync_forests(tenant_id).await?;
    let counts = state.store.sync_counts(tenant_id).await?;
    let progress = state.sync.progress(tenant_id);
    let list: Vec<api::SyncForest> = forests
        .iter()
        .map(|f| {
            let count = counts
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(&f.forest))
                .map(|(_, u, g)| (*u, *g))
                .unwrap_or((0, 0));
            let running = progress
                .iter()
                .find(|p| p.forest.eq_ignore_ascii_case(&f.forest));
            forest_json(f, count, running)
        })
        .collect();
    let settings = state
        .store
        .tenant(&tenant_id.to_string())
        .await?
        .map(|t| t.settings.sync_required)
        .unwrap_or(false);
    Ok(api::SyncStatus {
        sync_required: settings,
        forests: list,
    })
}
