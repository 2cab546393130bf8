//! Authentication agents: `/agents...` (registration's shapes are in
//! [`passthru_proto::admin`], which `passthru-agent register` shares).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// `POST /agents/{id}/revoke`: `force` revokes the last active agent while pass-through
/// authentication is on.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
pub struct RevokeAgent {
    #[serde(default)]
    pub force: bool,
}

/// An agent with its status and request statistics.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    pub id: Uuid,
    pub host: String,
    pub version: String,
    /// `Active`, `Inactive` (not heard from for two heartbeat intervals), `Draining` or
    /// `Revoked`.
    pub status: String,
    /// Unix seconds.
    pub last_seen: Option<i64>,
    pub source_ip: Option<String>,
    /// Unix seconds.
    pub cert_expires_at: i64,
    /// The UPN suffixes it serves.
    pub forests: Vec<String>,
    pub in_flight: u64,
    pub requests_served: u64,
    /// Denials by Win32 code.
    pub failures: BTreeMap<String, u64>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    pub round_trip_ms: RoundTrip,
    pub revoked: bool,
    /// What a connected agent last reported of its domain controllers (none when it is not
    /// connected).
    pub domain_controllers: Vec<DomainController>,
}

/// One domain controller as an agent last reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct DomainController {
    /// The forest's name in the agent's configuration.
    pub forest: String,
    /// `ldaps://host:port`.
    pub url: String,
    /// Used (true), or skipped and probed in the background (false).
    pub up: bool,
    /// Since when it is in this state, Unix seconds.
    pub since: i64,
    /// Transport failures since it last answered.
    pub consecutive_failures: u32,
}

/// Round-trip quantiles, in ms (`null` before any request).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoundTrip {
    pub p50: Option<f64>,
    pub p99: Option<f64>,
}

/// `GET /agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}

/// `POST /agents/{id}/revoke`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AgentRevoked {
    pub id: Uuid,
    pub revoked: bool,
    pub connections_closed: u64,
}

/// The header of `POST /agents/releases` that carries the release's signed manifest: the
/// `SIGFILE` `passthru-agent release sign` wrote, base64 (the body is the package itself).
pub const SIGNED_MANIFEST_HEADER: &str = "passthru-signed-manifest";

/// An agent release the cloud offers (signed auto-update).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Release {
    /// The release's version.
    pub version: String,
    /// The platform it runs on (`x86_64-linux`).
    pub target: String,
    /// The package's SHA-256, lower-case hex.
    pub sha256: String,
    /// The package's size in bytes.
    pub size: u64,
    /// The oldest cloud version that may offer it.
    pub min_cloud_version: String,
    /// When it was added, Unix seconds.
    pub added_at: i64,
    /// Who added it.
    pub added_by: String,
}

/// `GET /agents/releases`, oldest added first.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseList {
    pub releases: Vec<Release>,
    /// The tenant's `agent_updates` setting (`auto` or `off`).
    pub agent_updates: String,
    /// The release an agent of this cloud's platform would be offered now, if any.
    pub offered: Option<String>,
}

/// `DELETE /agents/releases/{version}`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ReleaseRemoved {
    pub version: String,
    pub removed: bool,
}
