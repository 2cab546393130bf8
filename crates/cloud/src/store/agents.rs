//! Store rows of authentication agents: registration, connection and heartbeat times,
//! revocation, request statistics (kept across disconnects and restarts of the cloud), and the
//! removal of agents inactive for [`AGENT_EXPIRY_SECS`].

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AgentRecord, Result};

/// Agents not seen for this long (10 days) are removed by the periodic purge, unless
/// connected. Revoked agents too: their certificate stays refused, since it then belongs to
/// no agent.
pub const AGENT_EXPIRY_SECS: i64 = 10 * 24 * 3600;

/// Round-trip histogram buckets: bucket `i` holds round trips up to `0.1 ms * 1.2^i`; the
/// last one holds everything longer. Percentiles are read as the bucket's upper bound (within
/// 20 %).
pub const RTT_BUCKETS: usize = 80;
const RTT_FIRST_MS: f64 = 0.1;
const RTT_FACTOR: f64 = 1.2;

fn rtt_upper_ms(i: usize) -> f64 {
    RTT_FIRST_MS * RTT_FACTOR.powi(i32::try_from(i).unwrap_or(i32::MAX))
}

/// An agent's request statistics, as measured by the cloud: requests answered, failures by
/// Win32 code, errors by kind, and a histogram of round trips (cloud -> agent -> cloud).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTally {
    pub served: u64,
    /// Denials by Win32 code (e.g. {1326: 3, 1909: 1}).
    pub failures: BTreeMap<u32, u64>,
    /// Errors (the agent could not ask the directory, or refused the request) by kind.
    pub errors: BTreeMap<String, u64>,
    /// Counts per round-trip bucket (see [`RTT_BUCKETS`]); empty when none yet.
    pub rtt_buckets: Vec<u64>,
}

impl AgentTally {
    /// Counts one answered request that took `rtt_ms`.
    pub fn record_rtt(&mut self, rtt_ms: f64) {
        if self.rtt_buckets.len() != RTT_BUCKETS {
            self.rtt_buckets.resize(RTT_BUCKETS, 0);
        }
        let i = (0..RTT_BUCKETS - 1)
            .find(|&i| rtt_ms <= rtt_upper_ms(i))
            .unwrap_or(RTT_BUCKETS - 1);
        self.rtt_buckets[i] += 1;
        self.served += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &AgentTally) {
        self.served += other.served;
        for (k, v) in &other.failures {
            *self.failures.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        if !other.rtt_buckets.is_empty() {
            if self.rtt_buckets.len() != RTT_BUCKETS {
                self.rtt_buckets.resize(RTT_BUCKETS, 0);
            }
            for (a, b) in self.rtt_buckets.iter_mut().zip(&other.rtt_buckets) {
                *a += b;
            }
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.served == 0
            && self.failures.is_empty()
            && self.errors.is_empty()
            && self.rtt_buckets.iter().all(|&n| n == 0)
    }

    /// The `q` quantile (0..=1) of the round trips, milliseconds; `None` before any.
    pub fn rtt_quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.rtt_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.rtt_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(rtt_upper_ms(i));
            }
        }
        None
    }
}

/// Whether a connected agent may stay connected, as the store says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStanding {
    /// Registered, not revoked, certificate valid.
    Admitted,
    /// Revoked (by this or another cloud process).
    Revoked,
    /// Its certificate has expired.
    CertificateExpired,
    /// The certificate of this connection was replaced by a renewed one, now in use.
    CertificateReplaced,
    /// No longer registered.
    Removed,
}

/// Authentication agents of a tenant: registration under the tenant's limit (one
/// conditional insert), presence, revocation and answer counts.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Registers an agent while the tenant has fewer than `max_active` agents not revoked
    /// ([`StoreError::TooManyAgents`] otherwise), in one statement: however many
    /// registrations run at once, the tenant never has more than `max_active`.
    #[allow(clippy::too_many_arguments)]
    async fn add_agent(
        &self,
        id: Uuid,
        tenant_id: Uuid,
        cert_fingerprint: &str,
        cert_expires_at: i64,
        hpke_public_key: &[u8],
        host: &str,
        version: &str,
        now: i64,
        max_active: usize,
    ) -> Result<()>;

    /// The agent whose current certificate, or whose renewed certificate not yet used, has
    /// this fingerprint.
    async fn agent_by_fingerprint(&self, fingerprint: &str) -> Result<Option<AgentRecord>>;

    /// Records the certificate and HPKE public key issued at a renewal of agent `id`: they
    /// wait, beside the current ones, until the agent first connects with them
    /// ([`AgentStore::promote_agent_cert`]). A later renewal replaces one not yet used.
    /// Returns whether the agent exists and is not revoked (nothing is recorded otherwise).
    async fn renew_agent_cert(
        &self,
        id: Uuid,
        cert_fingerprint: &str,
        cert_expires_at: i64,
        hpke_public_key: &[u8],
    ) -> Result<bool>;

    /// Makes the renewed certificate `cert_fingerprint` of agent `id` (and the HPKE key that
    /// came with it) current: the old ones are refused from then on. Returns the agent's
    /// record as it is now, or `None` when that is not (or no longer) its renewed certificate.
    async fn promote_agent_cert(
        &self,
        id: Uuid,
        cert_fingerprint: &str,
    ) -> Result<Option<AgentRecord>>;

    async fn agents(&self, tenant_id: Uuid) -> Result<Vec<AgentRecord>>;

    /// The tenant's registered agents that are not revoked (the per-tenant limit counts
    /// these), counted by the store: a registration must not read every agent's record.
    async fn active_agent_count(&self, tenant_id: Uuid) -> Result<usize>;

    /// Records a connection: when, from where, and what the agent announced.
    #[allow(clippy::too_many_arguments)]
    async fn agent_seen(
        &self,
        id: Uuid,
        host: &str,
        version: &str,
        source_ip: &str,
        upn_suffixes: &[String],
        now: i64,
    ) -> Result<()>;

    /// Marks an agent revoked: its certificate is refused from now on. Returns whether the
    /// agent exists in the tenant.
    async fn revoke_agent(&self, tenant_id: Uuid, id: Uuid) -> Result<bool>;

    /// Records that a connected agent was heard from, and reads in the same statement
    /// whether it may stay connected: any cloud process sharing the store may have revoked
    /// it meanwhile, or the agent may have renewed its certificate since this connection
    /// (made with `fingerprint`; `None`: not checked) was opened.
    async fn agent_heartbeat(
        &self,
        id: Uuid,
        fingerprint: Option<&str>,
        now: i64,
    ) -> Result<AgentStanding>;

    /// Adds `delta` to the agent's stored statistics (one transaction).
    async fn add_agent_stats(&self, id: Uuid, delta: &AgentTally, now: i64) -> Result<()>;

    /// The stored statistics of a tenant's agents.
    async fn agent_stats(&self, tenant_id: Uuid) -> Result<HashMap<Uuid, AgentTally>>;

    /// Removes the agents (and their statistics) of every tenant that were last seen (or, never
    /// connected, registered) [`AGENT_EXPIRY_SECS`] or more before `now`, except those in
    /// `connected`. Revoked agents go by the same rule. Returns the removed agents' ids.
    async fn remove_inactive_agents(&self, now: i64, connected: &[Uuid]) -> Result<Vec<Uuid>>;
}
