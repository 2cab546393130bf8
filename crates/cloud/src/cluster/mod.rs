//! Several cloud instances as one service: each holds the agents connected to it, and the
//! bus (NATS core request/reply and subjects, never a durable stream) carries what crosses
//! instances:
//! - a sign-in at one instance whose tenant's agents are connected to another is sealed
//!   here, to that agent's key, and relayed there ([`wire::RelayRequest`]); the agent's
//!   answer comes back as it was sent and its MAC is checked here;
//! - each instance announces its agents every second and at each change
//!   ([`wire::Presence`]);
//! - control events ([`wire::Control`]): caches to drop, keys rotated, an agent revoked, a
//!   password changed.
//!
//! [`Cluster`] is the [`Dispatcher`] of an instance with a bus: its own agents first, then
//! the others'. Without a bus an instance uses its gateway alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use passthru_proto::seal::ValidationPayload;
use uuid::Uuid;

use crate::dispatcher::{ConnectedAgent, Dispatched, Dispatcher};
use crate::gateway::Gateway;

mod dispatch;
mod presence;
mod tasks;
#[cfg(test)]
mod tests;
mod wire;

pub(crate) use tasks::spawn;

use wire::{Control, ControlMessage, Subjects};

/// Bytes of a message's tag (HMAC-SHA256).
const TAG_LEN: usize = 32;
/// How far from now a message's send time may be (replays older than this are refused;
/// the instances' clocks must agree within it).
const MAX_AGE: Duration = Duration::from_secs(10);

/// How often an instance announces its agents.
pub(crate) const ANNOUNCE_EVERY: Duration = Duration::from_secs(1);
/// How long after a tenant's last agent was seen anywhere a sign-in waits for one to
/// connect (to this instance or another) before failing with "no agent": the time the
/// agents of an instance that died take to reconnect elsewhere.
pub(crate) const AGENT_GRACE: Duration = Duration::from_secs(15);

/// What the bus's tasks need of the instance around them (the server's state implements it;
/// the cluster does not import the state).
#[async_trait::async_trait]
pub(crate) trait Instance: Send + Sync + 'static {
    /// The store facade, whose caches another instance's change invalidates.
    fn store(&self) -> &crate::store::Store;
    /// Reloads a tenant's signing keys (another instance rotated them).
    async fn keys_rotated(&self, tenant_id: Uuid);
    /// Turns `true` when the server shuts down.
    fn shutdown(&self) -> tokio::sync::watch::Receiver<bool>;
}

/// Why the bus could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("--bus must be nats://HOST:PORT (got '{0}')")]
    Url(String),
    #[error("cannot reach the NATS server at {url}: {detail}. Check that nats-server runs there and this host may connect to it")]
    Connect { url: String, detail: String },
    #[error("cannot subscribe on the NATS server at {url}: {detail}")]
    Subscribe { url: String, detail: String },
}

/// An instance's place in the service.
#[derive(Debug)]
pub struct Cluster {
    /// This instance (new at each start).
    pub(crate) instance: Uuid,
    client: async_nats::Client,
    /// Authenticates every message (see [`Cluster::seal`]).
    key: ring::hmac::Key,
    subjects: Subjects,
    gateway: Arc<Gateway>,
    remote: presence::Remote,
    /// When each tenant last had an agent anywhere (for [`AGENT_GRACE`]).
    seen: std::sync::Mutex<std::collections::HashMap<Uuid, Instant>>,
    /// Session sealers to agents at other instances, by HPKE public key (see
    /// [`Cluster::sealer`]).
    sealers:
        std::sync::Mutex<std::collections::HashMap<Vec<u8>, Arc<passthru_proto::SessionSealer>>>,
}

/// Checks `--bus`: `nats://HOST:PORT`.
pub fn parse_bus_url(raw: &str) -> Result<String, BusError> {
    let url =
        url::Url::parse(raw).map_err(|_| BusError::Url("a URL that does not parse".into()))?;
    // Credentials are not taken on the command line (they would show in `ps` and logs),
    // and the URL is never echoed with them.
    if !url.username().is_empty() || url.password().is_some() {
        return Err(BusError::Url(
            "a URL with user info: --bus takes nats://HOST:PORT without credentials".into(),
        ));
    }
    if url.scheme() != "nats" || url.host_str().is_none_or(str::is_empty) {
        return Err(BusError::Url(raw.to_string()));
    }
    Ok(raw.to_string())
}

impl Cluster {
    /// Joins the bus at `url` for the deployment `deployment_id`, with the instance's
    /// `gateway`.
    pub(crate) async fn join(
        url: &str,
        deployment_id: &str,
        gateway: Arc<Gateway>,
        key: ring::hmac::Key,
    ) -> Result<Arc<Cluster>, BusError> {
        let url = parse_bus_url(url)?;
        let instance = Uuid::new_v4();
        let client = async_nats::ConnectOptions::new()
            .name(format!("passthru-cloud {}", instance.simple()))
            .connection_timeout(Duration::from_secs(5))
            .ping_interval(Duration::from_secs(5))
            // Unlimited reconnects, at most half a second apart: the bus comes back within
            // a second of nats-server.
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                Duration::from_millis((50 * attempts as u64).min(500))
            })
            .connect(url.as_str())
            .await
            .map_err(|e| BusError::Connect {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        Ok(Arc::new(Cluster {
            instance,
            client,
            key,
            subjects: Subjects::new(deployment_id),
            gateway,
            remote: presence::Remote::default(),
            seen: Default::default(),
            sealers: Default::default(),
        }))
    }

    /// A message for `subject`: the HMAC-SHA256 (the deployment's bus key) of the subject,
    /// the time it is sent and the body, then that time (Unix ms, 8 bytes) and the body.
    /// Only a holder of the data dir's key (an instance of this deployment) can make one
    /// that [`Cluster::open`] takes: a stranger on the NATS server can neither have a
    /// password checked through an agent nor announce an agent key of its own to have
    /// passwords sealed to it; and a copy of an old message is refused once it is older
    /// than [`MAX_AGE`].
    pub(crate) fn seal(&self, subject: &str, body: &[u8]) -> Vec<u8> {
        let sent = crate::clock::unix_ms().to_be_bytes();
        let tag = self.tag(subject, &sent, body);
        let mut out = Vec::with_capacity(TAG_LEN + sent.len() + body.len());
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(&sent);
        out.extend_from_slice(body);
        out
    }

    /// When a message for `subject` made by [`Cluster::seal`] with this deployment's key was
    /// sent, and its body; `None` (logged) for anything else, or a message sent more than
    /// [`MAX_AGE`] away from now.
    pub(crate) fn open<'a>(&self, subject: &str, payload: &'a [u8]) -> Option<(i64, &'a [u8])> {
        let (tag, rest) = payload.split_at_checked(TAG_LEN)?;
        let (sent, body) = rest.split_at_checked(8)?;
        // The same tag as `seal` made, compared in constant time.
        let expected = self.tag(subject, sent, body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_ref(), tag)) {
            tracing::warn!(%subject, "a message on the bus is not authenticated with this deployment's key: dropped (is another deployment, or a stranger, publishing on these subjects?)");
            return None;
        }
        let sent_ms = i64::from_be_bytes(sent.try_into().ok()?);
        if (crate::clock::unix_ms() - sent_ms).abs() > MAX_AGE.as_millis() as i64 {
            tracing::warn!(%subject, "a message on the bus was sent more than 10 s away from this instance's clock: dropped (a replay, or the instances' clocks disagree: keep them in sync)");
            return None;
        }
        Some((sent_ms, body))
    }

    fn tag(&self, subject: &str, sent: &[u8], body: &[u8]) -> ring::hmac::Tag {
        let mut ctx = ring::hmac::Context::with_key(&self.key);
        ctx.update(subject.as_bytes());
        ctx.update(&[0]);
        ctx.update(sent);
        ctx.update(body);
        ctx.sign()
    }

    /// Tells every other instance about `control` (best effort: the bus may be down).
    pub(crate) async fn announce(&self, control: Control) {
        if let Some((subject, frame)) = self.control_frame(control) {
            publish_control(self.client.clone(), subject, frame).await;
        }
    }

    /// Tells the other instances that a tenant's signing keys changed.
    pub(crate) async fn keys_rotated(&self, tenant_id: Uuid) {
        self.announce(Control::KeysRotated { tenant_id }).await;
    }

    /// [`Cluster::announce`] from synchronous code.
    pub(crate) fn announce_later(&self, control: Control) {
        if let Some((subject, frame)) = self.control_frame(control) {
            tokio::spawn(publish_control(self.client.clone(), subject, frame));
        }
    }

    /// The subject and the sealed message of a control event from this instance.
    fn control_frame(&self, control: Control) -> Option<(String, Vec<u8>)> {
        let msg = ControlMessage {
            from: self.instance,
            control,
        };
        let body = serde_json::to_vec(&msg).ok()?;
        let subject = self.subjects.control();
        let frame = self.seal(&subject, &body);
        Some((subject, frame))
    }

    /// Notes that the tenant has agents now (somewhere).
    fn saw(&self, tenant_id: Uuid, now: Instant) {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant_id, now);
    }

    /// Whether the tenant had an agent within [`AGENT_GRACE`] of `now`.
    fn seen_lately(&self, tenant_id: Uuid, now: Instant) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&tenant_id)
            .is_some_and(|at| now.saturating_duration_since(*at) < AGENT_GRACE)
    }

    /// Whether the bus is up (the other instances can be reached).
    pub(crate) fn bus_up(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The connected agents of a tenant at the other instances.
    fn remote_connected(&self, tenant_id: Uuid) -> Vec<ConnectedAgent> {
        self.remote
            .agents(tenant_id, Instant::now())
            .into_iter()
            .map(|(_, a)| ConnectedAgent {
                agent_id: a.agent_id,
                host: a.host,
                version: a.version,
                upn_suffixes: a.upn_suffixes,
                in_flight: a.in_flight,
                served: a.served,
                draining: a.draining,
                last_heard_ms: a.last_heard_ms,
            })
            .collect()
    }
}

impl Dispatcher for Cluster {
    fn dispatch<'a>(
        &'a self,
        tenant_id: Uuid,
        payload: &'a ValidationPayload,
        timeout: Duration,
    ) -> Dispatched<'a> {
        Box::pin(Cluster::dispatch(self, tenant_id, payload, timeout))
    }

    fn password_changed(&self, tenant_id: Uuid, upn: &str) -> usize {
        let here = Dispatcher::password_changed(&*self.gateway, tenant_id, upn);
        let there = if self.bus_up() {
            self.remote.agents(tenant_id, Instant::now()).len()
        } else {
            0
        };
        self.announce_later(Control::PasswordChanged {
            tenant_id,
            upn: upn.to_string(),
        });
        here + there
    }

    fn connected(&self, tenant_id: Uuid) -> Vec<ConnectedAgent> {
        let mut all = self.gateway.connected(tenant_id);
        all.extend(self.remote_connected(tenant_id));
        all
    }

    fn disconnect(&self, tenant_id: Uuid, agent_id: Uuid) -> usize {
        let here = self.gateway.disconnect(tenant_id, agent_id);
        // Without the bus the others learn it from the store at their next heartbeat.
        let there = if self.bus_up() {
            self.remote
                .agents(tenant_id, Instant::now())
                .iter()
                .filter(|(_, a)| a.agent_id == agent_id)
                .count()
        } else {
            0
        };
        self.announce_later(Control::Revoked {
            tenant_id,
            agent_id,
        });
        here + there
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn unb64(s: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::STANDARD.decode(s).ok()
}

/// Publishes a control event (best effort: the bus may be down).
async fn publish_control(client: async_nats::Client, subject: String, frame: Vec<u8>) {
    if let Err(e) = client.publish(subject, frame.into()).await {
        tracing::warn!(error = %e, "could not tell the other instances about a change");
    }
}
