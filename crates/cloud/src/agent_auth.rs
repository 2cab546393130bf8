//! Who is calling an agent route: the client certificate the TLS handshake checked against
//! the private agent CA, looked up by its fingerprint, of an agent of the tenant in the path
//! that is not revoked. The agent WebSocket (`agent_ws`) and the release download
//! (`agent_releases`) take their caller from here.

use axum::http::StatusCode;
use uuid::Uuid;

use crate::http::ClientInfo;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::AgentRecord;

/// An agent the cloud recognised by its client certificate.
#[derive(Debug)]
pub(crate) struct CallingAgent {
    /// Its record.
    pub agent: AgentRecord,
    /// The certificate's SHA-256 fingerprint (the agent's current one, or its renewed one
    /// not yet made current).
    pub fingerprint: String,
}

impl CallingAgent {
    /// Whether it called with its renewed certificate (not yet current).
    pub fn renewed(&self) -> bool {
        self.agent.cert_fingerprint != self.fingerprint
    }
}

/// 403 `access_denied` with `detail`.
pub(crate) fn forbidden(detail: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, "access_denied", detail)
}

/// The agent behind `client`'s certificate, of the tenant `tenant` (its id, as in the path),
/// not revoked; refused (403, saying why) otherwise.
pub(crate) async fn calling_agent(
    state: &Shared,
    client: &ClientInfo,
    tenant: &str,
) -> Result<CallingAgent, ApiError> {
    let Some(fp) = client.peer_cert_fingerprint.as_deref() else {
        return Err(forbidden(
            "The agent endpoint needs a client certificate issued at agent registration.",
        ));
    };
    let Some(agent) = state.store.agent_by_fingerprint(fp).await? else {
        return Err(forbidden(
            "This certificate belongs to no registered agent: it was replaced by a renewed \
             one, or the agent was removed. Register the agent again.",
        ));
    };
    let tenant_ok = Uuid::parse_str(tenant).ok() == Some(agent.tenant_id);
    if !tenant_ok {
        tracing::warn!(agent = %agent.id, path_tenant = %tenant, "an agent certificate was presented for another tenant; refused");
        return Err(forbidden(
            "This agent's certificate was issued for another tenant.",
        ));
    }
    if agent.revoked {
        return Err(forbidden("This agent has been revoked. Register it again."));
    }
    Ok(CallingAgent {
        agent,
        fingerprint: fp.to_string(),
    })
}
