//! Agents: registration, the list with health and statistics, revocation.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use passthru_admin::api::{self, RegisterAgentRequest, RegisterAgentResponse};
use passthru_proto::wire::DcStatus;
use uuid::Uuid;

use super::{authorize, ops};
use crate::clock::unix_now;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::StoreError;
use crate::sts::BaseUrl;

/// `POST /{tenant}/admin/agents/register`
#[utoipa::path(
    post,
    path = "/agents/register",
    operation_id = ops::REGISTER_AGENT.id,
    summary = ops::REGISTER_AGENT.summary,
    request_body = api::RegisterAgentRequest,
    responses((status = 200, description = "Done.", body = api::RegisterAgentResponse))
)]
pub async fn register(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    super::ApiJson(req): super::ApiJson<RegisterAgentRequest>,
) -> Result<Json<RegisterAgentResponse>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::REGISTER_AGENT).await?;
    let hpke = B64
        .decode(req.hpke_public_key.as_bytes())
        .ok()
        .filter(|k| k.len() == 32)
        .ok_or_else(|| {
            ApiError::bad_request("hpke_public_key must be 32 bytes of X25519 public key, base64.")
        })?;
    if req.host.is_empty() || req.host.len() > 255 {
        return Err(ApiError::bad_request("host must be 1 to 255 characters."));
    }
    let registered = state.store.active_agent_count(t.id).await?;
    if registered >= state.max_agents_per_tenant as usize {
        return Err(too_many_agents(
            registered,
            state.max_agents_per_tenant as usize,
        ));
    }
    let agent_id = Uuid::new_v4();
    let issued = state
        .agent_ca
        .issue(
            &req.csr_pem,
            agent_id,
            t.id,
            time::OffsetDateTime::now_utc(),
            state.agent_cert_lifetime,
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    state
        .store
        .add_agent(
            agent_id,
            t.id,
            &issued.fingerprint,
            issued.not_after,
            &hpke,
            &req.host,
            &req.version,
            unix_now(),
            state.max_agents_per_tenant as usize,
        )
        .await
        .map_err(|e| match e {
            // Registrations that passed the first count together: the store kept the limit.
            StoreError::TooManyAgents { max } => too_many_agents(max, max),
            other => other.into(),
        })?;
    tracing::info!(tenant = %t.name, agent = %agent_id, host = %req.host, by = %admin.upn, "agent registered");
    Ok(Json(RegisterAgentResponse {
        agent_id,
        tenant_id: t.id,
        tenant_name: t.name,
        certificate_pem: issued.pem,
        agent_endpoint: base,
    }))
}

/// `GET /{tenant}/admin/agents`: every agent with its status (`active`; `inactive` once
/// nothing was heard from it for two heartbeat intervals; `draining`; `revoked`), what it
/// announced, and its request statistics (stored totals plus what was not yet flushed).
#[utoipa::path(
    get,
    path = "/agents",
    operation_id = ops::LIST_AGENTS.id,
    summary = ops::LIST_AGENTS.summary,
    responses((status = 200, description = "Done.", body = api::AgentList))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::AgentList>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_AGENTS).await?;
    let agents = agents(&state, t.id).await?;
    Ok(Json(api::AgentList { agents }))
}

/// A domain controller as an agent reported it, as the API shows it.
pub(crate) fn domain_controller_json(dc: &DcStatus) -> api::DomainController {
    api::DomainController {
        forest: dc.forest.clone(),
        url: dc.url.clone(),
        up: dc.up,
        since: dc.since,
        consecutive_failures: dc.consecutive_failures,
    }
}

/// Every agent of the tenant with its live state and statistics, as `agents list` shows it
/// (the portal shows the same).
pub(crate) async fn agents(
    state: &Shared,
    tenant_id: uuid::Uuid,
) -> Result<Vec<api::Agent>, crate::store::StoreError> {
    let connected = state.dispatcher.connected(tenant_id);
    let mut stored = state.store.agent_stats(tenant_id).await?;
    let now_ms = u64::try_from(crate::clock::unix_ms()).unwrap_or(0);
    let silent_limit_ms = u64::try_from(state.heartbeat.as_millis() * 2).unwrap_or(u64::MAX);
    let agents: Vec<api::Agent> = state
        .store
        .agents(tenant_id)
        .await?
        .into_iter()
        .map(|a| {
            let live = connected.iter().find(|c| c.agent_id == a.id);
            let mut stats = stored.remove(&a.id).unwrap_or_default();
            if let Some(pending) = state.gateway.unflushed(a.id) {
                stats.merge(&pending);
            }
            let status = match live {
                _ if a.revoked => "Revoked",
                Some(c) if c.draining => "Draining",
                Some(c) if now_ms.saturating_sub(c.last_heard_ms) <= silent_limit_ms => "Active",
                _ => "Inactive",
            };
            let domain_controllers = if live.is_some() {
                state
                    .metrics
                    .domain_controllers(a.id)
                    .iter()
                    .map(domain_controller_json)
                    .collect()
            } else {
                Vec::new()
            };
            api::Agent {
                id: a.id,
                host: a.host,
                version: a.version,
                status: status.to_string(),
                last_seen: a.last_seen,
                source_ip: a.source_ip,
                cert_expires_at: a.cert_expires_at,
                forests: live
                    .map(|c| c.upn_suffixes.clone())
                    .unwrap_or(a.upn_suffixes),
                in_flight: live
                    .map(|c| u64::try_from(c.in_flight).unwrap_or(u64::MAX))
                    .unwrap_or(0),
                requests_served: stats.served,
                failures: stats
                    .failures
                    .iter()
                    .map(|(k, v)| (k.to_string(), *v))
                    .collect(),
                errors: stats.errors.clone(),
                round_trip_ms: api::RoundTrip {
                    p50: stats.rtt_quantile_ms(0.5),
                    p99: stats.rtt_quantile_ms(0.99),
                },
                revoked: a.revoked,
                domain_controllers,
            }
        })
        .collect();
    Ok(agents)
}

/// The warning of removing the last active agent while PTA is on (the seed's wording).
pub const LAST_AGENT: &str =
    "Users will not be able to sign in unless you have other authentication agents installed.";

/// `POST /{tenant}/admin/agents/{id}/revoke`: the agent's certificate is refused at once and
/// its connections are closed. Revoking the last active agent while PTA is on needs `force`.
#[utoipa::path(
    post,
    path = "/agents/{id}/revoke",
    operation_id = ops::REVOKE_AGENT.id,
    summary = ops::REVOKE_AGENT.summary,
    request_body = api::RevokeAgent,
    responses((status = 200, description = "Done.", body = api::AgentRevoked))
)]
pub async fn revoke(
    State(state): State<Shared>,
    Path((tenant, id)): Path<(String, Uuid)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::RevokeAgent>,
) -> Result<Json<api::AgentRevoked>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::REVOKE_AGENT).await?;
    let others_active = state
        .dispatcher
        .connected(t.id)
        .iter()
        .any(|c| c.agent_id != id && !c.draining);
    if t.pta_enabled && !others_active && !body.force {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "last_agent",
            format!("{LAST_AGENT} Install and start another agent first, or repeat with --force."),
        ));
    }
    if !state.store.revoke_agent(t.id, id).await? {
        return Err(ApiError::not_found(format!(
            "No agent {id} in this tenant."
        )));
    }
    let closed = state.dispatcher.disconnect(t.id, id);
    tracing::warn!(tenant = %t.name, agent = %id, by = %admin.upn, closed, "agent revoked");
    Ok(Json(api::AgentRevoked {
        id,
        revoked: true,
        connections_closed: u64::try_from(closed).unwrap_or(u64::MAX),
    }))
}

/// The refusal of a registration past the tenant's agent limit.
fn too_many_agents(registered: usize, max: usize) -> ApiError {
    ApiError::new(
        StatusCode::CONFLICT,
        "too_many_agents",
        format!(
            "This tenant already has {registered} authentication agents, the most it may have ({max}): revoke one that is no longer used (`agents list`, then `agents revoke AGENT_ID`) before registering another."
        ),
    )
}
