//! What every request handler shares.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::gateway::Gateway;
use crate::metrics::Metrics;
use crate::pki::AgentCa;
use crate::store::Store;
use crate::tokens::Signer;

/// Shared server state.
#[derive(Debug)]
pub struct AppState {
    pub store: Store,
    pub signer: Signer,
    /// The agents connected to this process: their registry, sync and draining.
    pub gateway: Arc<Gateway>,
    /// Where sign-ins and writebacks send what only an agent can answer (the gateway, in
    /// one process).
    pub dispatcher: Arc<dyn crate::dispatcher::Dispatcher>,
    /// Prometheus metrics (the same as `gateway.metrics`).
    pub metrics: Arc<Metrics>,
    pub agent_ca: AgentCa,
    /// How long agent certificates are valid (`serve --agent-cert-lifetime`); agents renew
    /// theirs with a third of it left.
    pub agent_cert_lifetime: time::Duration,
    /// How often each side of an agent connection pings the other.
    pub heartbeat: Duration,
    /// Agents a tenant may have registered and not revoked.
    pub max_agents_per_tenant: u32,
    /// Flips to `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
    /// Looks up domains' proof-of-control TXT records.
    pub domain_proof: crate::domain_proof::DomainProof,
    /// Directory sync leases and runs.
    pub sync: crate::sync_leases::Coordinator,
    /// Seals and opens secrets at rest: users' TOTP secrets, signing private keys,
    /// federation client secrets (the data dir's `mfa.key`).
    pub mfa_box: Arc<crate::secret_box::SecretBox>,
    /// `serve --public-url` (no trailing slash): the base of every absolute URL; `None`:
    /// each request's `Host`.
    pub public_url: Option<String>,
    /// Smart lockout's password checks in flight per account.
    pub lockout_gate: Arc<crate::lockout_gate::LockoutGate>,
    /// This instance's place among several (`serve --bus`); `None`: the only one.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
}

/// Handlers' view of the state.
pub type Shared = Arc<AppState>;

#[async_trait::async_trait]
impl crate::cluster::Instance for AppState {
    fn store(&self) -> &Store {
        &self.store
    }

    async fn keys_rotated(&self, tenant_id: uuid::Uuid) {
        if let Err(e) = self
            .signer
            .reload(tenant_id, crate::clock::unix_now())
            .await
        {
            tracing::warn!(error = %e, tenant = %tenant_id, "could not load the tenant's rotated signing keys; the periodic refresh retries");
        }
    }

    fn shutdown(&self) -> watch::Receiver<bool> {
        self.shutdown.clone()
    }
}
