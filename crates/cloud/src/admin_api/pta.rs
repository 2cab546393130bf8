//! Pass-through authentication on and off.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::Tenant;

/// The message of `pta enable` with no active agent (the seed's wording, then what to do).
pub const NO_CONNECTORS: &str = "The enabling of the feature failed because there were no connectors available. \
You need at least one active authentication agent: register one with `passthru-agent register`, start it with `passthru-agent run`, \
check that `passthru-cloud admin agents list` shows it active, then enable again.";

/// PTA's state with agent counts: registered (not revoked), active (connected and taking
/// work), draining, and inactive (registered but not connected).
pub async fn pta_status(state: &Shared, t: &Tenant) -> Result<api::PtaStatus, ApiError> {
    let connected = state.dispatcher.connected(t.id);
    let registered = state
        .store
        .agents(t.id)
        .await?
        .iter()
        .filter(|a| !a.revoked)
        .count();
    let active = connected.iter().filter(|c| !c.draining).count();
    let draining = connected.len() - active;
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(api::PtaStatus {
        enabled: t.pta_enabled,
        active_agents: count(active),
        draining_agents: count(draining),
        registered_agents: count(registered),
        inactive_agents: count(registered.saturating_sub(connected.len())),
    })
}

/// `GET /{tenant}/admin/pta`
#[utoipa::path(
    get,
    path = "/pta",
    operation_id = ops::GET_PTA.id,
    summary = ops::GET_PTA.summary,
    responses((status = 200, description = "Done.", body = api::PtaStatus))
)]
pub async fn get(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::PtaStatus>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::GET_PTA).await?;
    Ok(Json(pta_status(&state, &t).await?))
}

/// `POST /{tenant}/admin/pta`: enables (needs an active agent) or disables PTA.
#[utoipa::path(
    post,
    path = "/pta",
    operation_id = ops::SET_PTA.id,
    summary = ops::SET_PTA.summary,
    request_body = api::SetPta,
    responses((status = 200, description = "Done.", body = api::PtaStatus))
)]
pub async fn set(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetPta>,
) -> Result<Json<api::PtaStatus>, ApiError> {
    let (mut t, admin) = authorize(&state, &tenant, &headers, ops::SET_PTA).await?;
    if body.enabled && !state.dispatcher.connected(t.id).iter().any(|c| !c.draining) {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_connectors",
            NO_CONNECTORS,
        ));
    }
    state.store.set_pta(t.id, body.enabled).await?;
    t.pta_enabled = body.enabled;
    tracing::info!(tenant = %t.name, enabled = body.enabled, by = %admin.upn, "pass-through authentication setting changed");
    Ok(Json(pta_status(&state, &t).await?))
}
