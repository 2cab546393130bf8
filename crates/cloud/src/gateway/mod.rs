//! The agent gateway and dispatcher: the registry of connected agents (one WebSocket each,
//! opened by the agent), and `validate`, which seals a password to one agent of the tenant,
//! sends it, and waits for the answer until the deadline. When an agent's connection drops
//! with a request in flight, the request is sealed again to another agent while the deadline
//! allows.
//!
//! Each request in flight keeps the key its answer must be authenticated with (exported from
//! the HPKE context it was sealed with, [`passthru_proto::answer`]): an answer whose MAC does
//! not match is refused, so only the holder of the agent's private key can answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use passthru_proto::answer::{AnswerKey, AnswerRefusal, Binding};
use passthru_proto::seal::{self, Encapsulation, RequestHeader, ValidationPayload};
use passthru_proto::wire::{AgentError, CloudToAgent, Outcome};
use passthru_proto::SessionSealer;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::dispatcher::{DispatchError, Dispatched, Dispatcher, Reply};
use crate::metrics::{AgentLoad, Metrics};
use crate::store::AgentTally;

mod relay;
mod relayed;

pub use relayed::Relayed;

/// Encapsulations kept ready per connected agent (each 32 bytes of key material and a
/// context; made while requests wait, at most one per request).
const SPARE_ENCAPSULATIONS: usize = 4;

/// One connected agent.
#[derive(Debug)]
pub struct AgentConn {
    pub agent_id: Uuid,
    pub tenant_id: Uuid,
    pub conn_id: Uuid,
    pub host: String,
    pub version: String,
    pub upn_suffixes: Vec<String>,
    /// The forests the agent can sync (it has their service accounts).
    pub sync_forests: Vec<passthru_proto::sync::SyncForest>,
    hpke_public_key: Vec<u8>,
    /// The id of that key ([`seal::key_id`]): a request relayed here sealed to another key
    /// (by an instance that has not yet heard of a renewal) is not sent on this connection.
    key_id: String,
    tx: mpsc::Sender<CloudToAgent>,
    in_flight: AtomicUsize,
    served: AtomicU64,
    draining: AtomicBool,
    /// When the agent was last heard from (any frame, pongs included), Unix ms.
    last_heard_ms: AtomicU64,
    /// Fires when the agent is revoked: its connection handler closes the socket.
    pub revoked: tokio::sync::Notify,
    /// Asks the connection handler to ping the agent now (a request of it looks stuck).
    pub ping_now: tokio::sync::Notify,
    /// When the agent was found stuck (Unix ms; 0: never): until it is heard from again it
    /// gets no new requests.
    stuck_since_ms: AtomicU64,
    /// Until when (Unix ms) the agent comes after the others: it last reached no DC.
    no_dc_until_ms: AtomicU64,
    /// HPKE encapsulations to the agent's key made while earlier requests were waiting for
    /// the agent, so that a request's seal is only the AEAD (see [`AgentConn::refill`]).
    spare: Mutex<Vec<Encapsulation>>,
    /// Seals in sessions (one HPKE context for many envelopes) when the agent said it opens
    /// them; `None` for older agents (or a key that does not parse).
    sessions: Option<SessionSealer>,
}

impl AgentConn {
    /// A new connection record; `tx` feeds the connection's writer.
    pub fn new(
        agent_id: Uuid,
        tenant_id: Uuid,
        host: String,
        version: String,
        upn_suffixes: Vec<String>,
        hpke_public_key: Vec<u8>,
        tx: mpsc::Sender<CloudToAgent>,
    ) -> AgentConn {
        AgentConn {
            agent_id,
            tenant_id,
            conn_id: Uuid::new_v4(),
            host,
            version,
            upn_suffixes,
            sync_forests: Vec::new(),
            key_id: seal::key_id(&hpke_public_key),
            hpke_public_key,
            tx,
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            draining: AtomicBool::new(false),
            last_heard_ms: AtomicU64::new(now_ms()),
            revoked: tokio::sync::Notify::new(),
            ping_now: tokio::sync::Notify::new(),
            stuck_since_ms: AtomicU64::new(0),
            no_dc_until_ms: AtomicU64::new(0),
            spare: Mutex::new(Vec::new()),
            sessions: None,
        }
    }

    fn spare(&self) -> MutexGuard<'_, Vec<Encapsulation>> {
        // The pool is consistent after every operation: a poisoned lock is usable.
        self.spare.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The encapsulation for the next request: a spare one, or a new one.
    fn encapsulation(&self) -> Result<Encapsulation, seal::SealError> {
        match self.spare().pop() {
            Some(e) => Ok(e),
            None => Encapsulation::new(&self.hpke_public_key),
        }
    }

    /// Makes one spare encapsulation when fewer than [`SPARE_ENCAPSULATIONS`] are ready. Run
    /// while a request waits for this agent: the X25519 work of the next request's seal
    /// then happens while the agent and its DC work, not on the sign-in's path.
    fn refill(&self) {
        if self.sessions.is_some() || self.spare().len() >= SPARE_ENCAPSULATIONS {
            return;
        }
        if let Ok(e) = Encapsulation::new(&self.hpke_public_key) {
            let mut spare = self.spare();
            if spare.len() < SPARE_ENCAPSULATIONS {
                spare.push(e);
            }
        }
    }

    /// Whether the agent was found stuck and has not been heard from since.
    fn is_stuck(&self) -> bool {
        let since = self.stuck_since_ms.load(Ordering::Relaxed);
        since != 0 && self.last_heard_ms() <= since
    }

    /// Notes that the agent was heard from just now.
    pub fn heard(&self) {
        self.last_heard_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// The agent's forests it can sync.
    pub fn with_sync_forests(mut self, forests: Vec<passthru_proto::sync::SyncForest>) -> Self {
        self.sync_forests = forests;
        self
    }

    /// Whether the agent opens envelopes sealed in sessions (it said so in its `Hello`).
    pub fn with_sealed_sessions(mut self, yes: bool) -> Self {
        self.sessions = yes
            .then(|| SessionSealer::new(&self.hpke_public_key).ok())
            .flatten();
        self
    }

    /// Whether requests to it are sealed in sessions.
    pub fn sealed_sessions(&self) -> bool {
        self.sessions.is_some()
    }

    /// Seals `payload` to the agent: in its session when it opens them, else with a context
    /// of its own (a spare one when ready).
    fn seal(
        &self,
        header: RequestHeader,
        payload: &ValidationPayload,
    ) -> Result<(passthru_proto::SealedRequest, passthru_proto::AnswerKey), seal::SealError> {
        match &self.sessions {
            Some(sealer) => sealer.seal(header, payload, Instant::now()),
            None => self.encapsulation().and_then(|e| e.seal(header, payload)),
        }
    }

    /// Queues a message to the agent; false when its connection is closing or saturated.
    pub fn send(&self, message: CloudToAgent) -> bool {
        self.tx.try_send(message).is_ok()
    }

    /// Whether the agent takes new work.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// When the agent was last heard from, Unix ms.
    pub fn last_heard_ms(&self) -> u64 {
        self.last_heard_ms.load(Ordering::Relaxed)
    }

    /// Validations in flight on this connection.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Marks the agent as draining: it gets no new work.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    /// Whether one of the agent's forests serves `domain`: the same rule as the agent's own
    /// routing (a suffix matches itself and its subdomains), so the cloud never prefers an
    /// agent that would answer "not routable".
    fn serves(&self, domain: &str) -> bool {
        self.upn_suffixes.iter().any(|s| suffix_matches(domain, s))
    }

    /// Whether the agent has a service account for a forest serving `domain` (password
    /// writeback needs one for resets and for users who cannot bind).
    fn writes(&self, domain: &str) -> bool {
        self.sync_forests
            .iter()
            .any(|f| f.upn_suffixes.iter().any(|s| suffix_matches(domain, s)))
    }
}

struct Pending {
    agent_id: Uuid,
    conn_id: Uuid,
    awaiting: Awaiting,
}

/// Who waits for a request's answer.
enum Awaiting {
    /// A request sealed here: the answer's MAC is checked with the key it was sealed with.
    Sealer {
        answer_key: AnswerKey,
        tx: oneshot::Sender<Answer>,
    },
    /// A request another instance sealed and relayed here: the answer goes back to it as
    /// the agent sent it, MAC and all, and that instance checks it.
    Relay { tx: oneshot::Sender<RawAnswer> },
}

/// An answer as the waiting request receives it: accepted, or refused.
type Answer = Result<Reply, AnswerRefusal>;

/// An agent's answer before its MAC is checked: the reply and the MAC it came with.
pub type RawAnswer = (Reply, Option<String>);

/// What became of an agent's answer (see [`Gateway::complete`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Completion {
    /// Authenticated and handed to the waiting request.
    Delivered,
    /// No request of this connection waits for it (late, or never sent to it): dropped.
    Unknown,
    /// Refused (MAC missing or wrong); the request fails with AADSTS80005.
    Refused(AnswerRefusal),
}

#[derive(Default)]
struct Inner {
    agents: HashMap<Uuid, Vec<Arc<AgentConn>>>,
    pending: HashMap<Uuid, Pending>,
}

/// The registry of connected agents and requests in flight.
#[derive(Default)]
pub struct Gateway {
    inner: Mutex<Inner>,
    /// Statistics of answered requests per agent not yet added to the store.
    tallies: Mutex<HashMap<Uuid, AgentTally>>,
    /// Where round trips are recorded for Prometheus.
    pub metrics: Arc<Metrics>,
    /// Turns among agents tied for least in flight.
    turn: AtomicUsize,
    /// Agent requests each tenant may have in flight (`serve --max-agent-requests-per-tenant`).
    tenant_slots: crate::limits::fair::TenantSlots,
    /// Wakes whoever tells other instances which agents are connected here (an agent
    /// connected or left).
    pub changed: tokio::sync::Notify,
}

/// A connected agent as other instances need it: to seal to it, and to pick it.
#[derive(Debug, Clone)]
pub struct LocalAgent {
    pub tenant_id: Uuid,
    pub agent: ConnectedAgent,
    pub hpke_public_key: Vec<u8>,
    /// It opens envelopes sealed in sessions.
    pub sealed_sessions: bool,
    /// The UPN suffixes of the forests it has a service account for (it can write
    /// passwords there).
    pub write_suffixes: Vec<String>,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

use crate::dispatcher::ConnectedAgent;

fn snapshot(c: &AgentConn) -> ConnectedAgent {
    ConnectedAgent {
        agent_id: c.agent_id,
        host: c.host.clone(),
        version: c.version.clone(),
        upn_suffixes: c.upn_suffixes.clone(),
        in_flight: c.in_flight.load(Ordering::Relaxed),
        served: c.served.load(Ordering::Relaxed),
        draining: c.draining.load(Ordering::Relaxed),
        last_heard_ms: c.last_heard_ms.load(Ordering::Relaxed),
    }
}

/// Whether `domain` is `suffix` or a subdomain of it, ignoring case.
pub fn suffix_matches(domain: &str, suffix: &str) -> bool {
    let (domain, suffix) = (domain.to_ascii_lowercase(), suffix.to_ascii_lowercase());
    domain == suffix
        || domain
            .strip_suffix(&suffix)
            .is_some_and(|head| head.ends_with('.'))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Gateway {
    /// A gateway where each tenant may have `per_tenant` agent requests in flight.
    pub fn with_agent_requests_per_tenant(per_tenant: usize) -> Gateway {
        Gateway {
            tenant_slots: crate::limits::fair::TenantSlots::new(per_tenant),
            ..Gateway::default()
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the maps inconsistent in a way that
        // matters (each operation is a single insert or remove), so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds a connection. A previous connection of the same agent stays until it ends.
    pub fn register(&self, conn: Arc<AgentConn>) {
        self.lock()
            .agents
            .entry(conn.tenant_id)
            .or_default()
            .push(conn);
        self.changed.notify_one();
    }

    /// Takes one of the tenant's places for an agent request (given back when dropped).
    pub(crate) fn enter_tenant(
        &self,
        tenant_id: Uuid,
    ) -> Result<crate::limits::fair::Slot, DispatchError> {
        self.tenant_slots
            .enter(tenant_id)
            .map_err(|_| DispatchError::Busy)
    }

    /// Every connected agent, with what another instance needs to seal to it.
    pub fn local_agents(&self) -> Vec<LocalAgent> {
        let inner = self.lock();
        inner
            .agents
            .iter()
            .flat_map(|(t, list)| {
                list.iter().map(|c| LocalAgent {
                    tenant_id: *t,
                    agent: snapshot(c),
                    hpke_public_key: c.hpke_public_key.clone(),
                    sealed_sessions: c.sealed_sessions(),
                    write_suffixes: c
                        .sync_forests
                        .iter()
                        .flat_map(|f| f.upn_suffixes.iter().cloned())
                        .collect(),
                })
            })
            .collect()
    }

    /// Removes a connection, and fails its requests in flight so they go to another agent.
    pub fn unregister(&self, conn: &AgentConn) {
        let mut inner = self.lock();
        if let Some(list) = inner.agents.get_mut(&conn.tenant_id) {
            list.retain(|c| c.conn_id != conn.conn_id);
        }
        inner.pending.retain(|_, p| p.conn_id != conn.conn_id);
        drop(inner);
        self.changed.notify_one();
    }

    /// Closes every connection of `agent_id` (after a revocation) and stops routing to it.
    pub fn disconnect(&self, tenant_id: Uuid, agent_id: Uuid) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for c in inner.agents.get(&tenant_id).into_iter().flatten() {
            if c.agent_id == agent_id {
                c.set_draining();
                c.revoked.notify_one();
                n += 1;
            }
        }
        n
    }

    /// Stops routing new requests to the other connections of `conn`'s agent: they were
    /// made with the certificate and HPKE key that `conn`'s renewed ones just replaced.
    /// Requests in flight on them finish there; the agent closes them once drained. Returns
    /// how many there were.
    pub fn retire_older(&self, conn: &AgentConn) -> usize {
        let inner = self.lock();
        let mut n = 0;
        for c in inner.agents.get(&conn.tenant_id).into_iter().flatten() {
            if c.agent_id == conn.agent_id && c.conn_id != conn.conn_id {
                c.set_draining();
                n += 1;
            }
        }
        drop(inner);
        if n > 0 {
            self.changed.notify_one();
        }
        n
    }

    /// Whether `agent_id` has an open connection here.
    pub fn is_connected(&self, tenant_id: Uuid, agent_id: Uuid) -> bool {
        self.lock()
            .agents
            .get(&tenant_id)
            .is_some_and(|list| list.iter().any(|c| c.agent_id == agent_id))
    }

    /// Sends `message` to every connected agent of the tenant, without waiting (an agent
    /// whose queue is full misses it).
    pub fn tell_all(&self, tenant_id: Uuid, message: &CloudToAgent) -> usize {
        self.connections(tenant_id)
            .iter()
            .filter(|c| c.tx.try_send(message.clone()).is_ok())
            .count()
    }

    /// The open connections of a tenant.
    pub fn connections(&self, tenant_id: Uuid) -> Vec<Arc<AgentConn>> {
        self.lock()
            .agents
            .get(&tenant_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Whether the tenant has an open connection here (no copy of the list).
    pub fn has_connections(&self, tenant_id: Uuid) -> bool {
        self.lock()
            .agents
            .get(&tenant_id)
            .is_some_and(|list| !list.is_empty())
    }

    /// The tenants with at least one agent that can sync a forest.
    pub fn tenants_with_sync(&self) -> Vec<Uuid> {
        self.lock()
            .agents
            .iter()
            .filter(|(_, list)| list.iter().any(|c| !c.sync_forests.is_empty()))
            .map(|(t, _)| *t)
            .collect()
    }

    /// How many agent connections are open, across tenants.
    pub fn total_connected(&self) -> usize {
        self.lock().agents.values().map(Vec::len).sum()
    }

    /// The connected agents of a tenant.
    pub fn connected(&self, tenant_id: Uuid) -> Vec<ConnectedAgent> {
        let inner = self.lock();
        inner
            .agents
            .get(&tenant_id)
            .map(|list| list.iter().map(|c| snapshot(c)).collect())
            .unwrap_or_default()
    }

    /// Every connected agent's load, per tenant, for the metrics' gauges.
    pub fn agent_loads(&self) -> Vec<(Uuid, Vec<AgentLoad>)> {
        let inner = self.lock();
        inner
            .agents
            .iter()
            .map(|(t, list)| {
                let loads = list
                    .iter()
                    .map(|c| AgentLoad {
                        agent_id: c.agent_id,
                        in_flight: c.in_flight.load(Ordering::Relaxed),
                    })
                    .collect();
                (*t, loads)
            })
            .collect()
    }

    /// The ids of every connected agent, across tenants.
    pub fn connected_ids(&self) -> Vec<Uuid> {
        let inner = self.lock();
        inner
            .agents
            .values()
            .flatten()
            .map(|c| c.agent_id)
            .collect()
    }

    fn tallies(&self) -> MutexGuard<'_, HashMap<Uuid, AgentTally>> {
        self.tallies.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count(&self, tenant_id: Uuid, agent_id: Uuid, outcome: &Outcome, rtt: Duration) {
        self.metrics.round_trip(tenant_id, rtt.as_secs_f64());
        let mut tallies = self.tallies();
        let t = tallies.entry(agent_id).or_default();
        t.record_rtt(rtt.as_secs_f64() * 1000.0);
        match outcome {
            Outcome::Denied { win32 } => *t.failures.entry(win32.code()).or_default() += 1,
            Outcome::Error { error } => {
                let kind = match serde_json::to_value(error) {
                    Ok(serde_json::Value::String(s)) => s,
                    _ => "other".to_string(),
                };
                *t.errors.entry(kind).or_default() += 1;
            }
            _ => {}
        }
    }

    /// The statistics of `agent_id` not yet in the store.
    pub fn unflushed(&self, agent_id: Uuid) -> Option<AgentTally> {
        self.tallies().get(&agent_id).cloned()
    }

    /// Takes the statistics of `agent_id` not yet in the store (to add them to it).
    pub fn take_unflushed(&self, agent_id: Uuid) -> Option<AgentTally> {
        self.tallies().remove(&agent_id)
    }

    /// Takes the statistics of every agent not yet in the store.
    pub fn take_all_unflushed(&self) -> Vec<(Uuid, AgentTally)> {
        self.tallies().drain().collect()
    }

    /// Puts back statistics that could not be stored.
    pub fn restore_unflushed(&self, agent_id: Uuid, tally: &AgentTally) {
        self.tallies().entry(agent_id).or_default().merge(tally);
    }
}

#[cfg(test)]
mod tests;
