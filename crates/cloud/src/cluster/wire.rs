//! What cloud instances say to each other on the bus (NATS core subjects, JSON): relayed
//! requests and their answers, which agents each instance holds, and control events. A
//! relayed request carries the envelope sealed to the agent's key and nothing else of the
//! sign-in; its answer is the agent's, MAC included. Nothing here is ever written to a
//! durable stream.

use passthru_proto::seal::SealedRequest;
use passthru_proto::wire::Outcome;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The subjects of one deployment (its id names them, so deployments sharing a NATS server
/// never hear each other).
#[derive(Debug, Clone)]
pub(crate) struct Subjects {
    prefix: String,
}

impl Subjects {
    pub(crate) fn new(deployment_id: &str) -> Subjects {
        Subjects {
            prefix: format!("passthru.{deployment_id}"),
        }
    }

    /// Where `instance` takes requests for the agents connected to it.
    pub(crate) fn relay(&self, instance: Uuid) -> String {
        format!("{}.relay.{}", self.prefix, instance.simple())
    }

    /// Where each instance says which agents it holds.
    pub(crate) fn presence(&self) -> String {
        format!("{}.presence", self.prefix)
    }

    /// Where control events go to every instance.
    pub(crate) fn control(&self) -> String {
        format!("{}.control", self.prefix)
    }
}

/// A request sealed by one instance, for an agent connected to another.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RelayRequest {
    pub(crate) tenant_id: Uuid,
    pub(crate) agent_id: Uuid,
    pub(crate) sealed: SealedRequest,
    /// How long the relaying instance may wait for the agent, ms.
    pub(crate) timeout_ms: u64,
    /// A validation (may go to another agent when this one looks stuck), not a write.
    pub(crate) may_move_on: bool,
}

/// What became of a relayed request. (Made, sent and dropped at once: its size does not
/// matter.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum RelayAnswer {
    Answered {
        request_id: Uuid,
        outcome: Outcome,
        agent_host: String,
        agent_micros: u64,
        repeated: bool,
        mac: Option<String>,
    },
    NoAgent,
    Lost,
    Stuck,
    Timeout,
    /// The request did not parse or did not match itself (tenant or agent).
    Refused,
}

/// Agents an announcement carries at most (about 330 bytes each): an instance holding more
/// announces them in several parts, each well under nats-server's default 1 MB payload limit.
pub(crate) const PRESENCE_PART: usize = 1_000;

/// The agents connected to one instance, announced every second and at each change, in
/// parts of at most [`PRESENCE_PART`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Presence {
    pub(crate) instance: Uuid,
    pub(crate) agents: Vec<PresentAgent>,
    /// Which part of the instance's list this is (0 for a list in one part).
    #[serde(default)]
    pub(crate) part: u32,
    /// How many parts the list has now (parts at or past it are gone).
    #[serde(default = "one")]
    pub(crate) parts: u32,
}

fn one() -> u32 {
    1
}

/// One agent connected to an instance.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PresentAgent {
    pub(crate) tenant_id: Uuid,
    pub(crate) agent_id: Uuid,
    pub(crate) host: String,
    pub(crate) version: String,
    pub(crate) upn_suffixes: Vec<String>,
    pub(crate) write_suffixes: Vec<String>,
    /// The agent's HPKE public key (public), base64.
    pub(crate) hpke_public_key: String,
    /// It opens envelopes sealed in sessions (absent from older instances: no).
    #[serde(default)]
    pub(crate) sealed_sessions: bool,
    pub(crate) in_flight: usize,
    pub(crate) served: u64,
    pub(crate) draining: bool,
    pub(crate) last_heard_ms: u64,
}

/// An event every instance acts on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Control {
    /// The store changed under the caches (settings, PTA switch, apps, domains).
    Caches,
    /// A tenant's token signing keys changed.
    KeysRotated { tenant_id: Uuid },
    /// An agent was revoked: its connections close.
    Revoked { tenant_id: Uuid, agent_id: Uuid },
    /// A user's password changed: agents forget wrong passwords they remember for them.
    PasswordChanged { tenant_id: Uuid, upn: String },
    /// The instance stops: forget its agents now.
    Leaving,
}

/// A [`Control`] with its sender (an instance ignores its own).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ControlMessage {
    pub(crate) from: Uuid,
    #[serde(flatten)]
    pub(crate) control: Control,
}
