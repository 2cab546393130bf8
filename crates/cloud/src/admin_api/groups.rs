//! Synced groups (read-only: they are changed in Active Directory) and the state of
//! directory sync.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::Json;
use passthru_admin::api;
use serde_json::{json, Value};

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::Shared;

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
        groups: groups
            .iter()
            .map(|g| serde_json::to_value(g).unwrap_or_default())
            .collect(),
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
    let mut v = serde_json::to_value(&group).unwrap_or_default();
    v["members"] = json!(members);
    Ok(Json(api::Group(v)))
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
    let list: Vec<Value> = forests
        .iter()
        .map(|f| {
            let mut v = serde_json::to_value(f).unwrap_or_default();
            let (users, groups) = counts
                .iter()
                .find(|(name, _, _)| name.eq_ignore_ascii_case(&f.forest))
                .map(|(_, u, g)| (*u, *g))
                .unwrap_or((0, 0));
            v["users"] = json!(users);
            v["groups"] = json!(groups);
            v["running"] = json!(progress
                .iter()
                .find(|p| p.forest.eq_ignore_ascii_case(&f.forest)));
            v
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
