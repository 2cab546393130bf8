//! What directory sync brought: synced groups (`/groups...`) and the state of sync
//! (`/sync...`). Read-only apart from asking for a run: they are changed in Active Directory.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A synced group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncedGroup {
    /// The cloud object id (what the groups claim carries).
    pub id: Uuid,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub dn: String,
    pub forest: String,
    pub object_guid: Uuid,
    pub immutable_id: String,
    /// When sync last wrote it, Unix seconds.
    pub synced_at: i64,
}

/// `GET /groups`: a page of synced groups by name.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct GroupList {
    pub groups: Vec<SyncedGroup>,
    pub next_skiptoken: Option<String>,
}

/// `GET /groups/{id}`: a synced group with its direct members.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Group {
    /// The cloud object id (what the groups claim carries).
    pub id: Uuid,
    pub name: Option<String>,
    pub display_name: Option<String>,
    pub mail: Option<String>,
    pub dn: String,
    pub forest: String,
    pub object_guid: Uuid,
    pub immutable_id: String,
    /// When sync last wrote it, Unix seconds.
    pub synced_at: i64,
    pub members: Vec<GroupMember>,
}

/// A direct member of a synced group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GroupMember {
    /// `user`, `group`, or `unknown` (an object sync does not cover, such as a computer).
    pub kind: String,
    pub object_guid: Uuid,
    /// The cloud object id, for users and groups.
    pub id: Option<Uuid>,
    /// UPN of a user, name of a group.
    pub name: Option<String>,
}

/// `POST /sync/{forest}/run` (the body is optional): `full` reads everything again.
#[derive(Debug, Default, Clone, Serialize, Deserialize, ToSchema)]
pub struct RunSync {
    #[serde(default)]
    pub full: bool,
}

/// `GET /sync`: whether sign-in needs synced users, and each forest's state.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncStatus {
    pub sync_required: bool,
    pub forests: Vec<SyncForest>,
}

/// A forest's sync state: the agent that syncs it, its last runs, what it brought and the
/// run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncForest {
    pub forest: String,
    /// The agent holding the lease (the one that syncs), if any.
    pub holder_agent_id: Option<Uuid>,
    /// Unix seconds.
    pub lease_since: Option<i64>,
    pub interval_seconds: u64,
    /// Unix seconds.
    pub last_full_at: Option<i64>,
    /// Unix seconds.
    pub last_success_at: Option<i64>,
    /// Unix seconds.
    pub last_run_at: Option<i64>,
    pub last_error: Option<String>,
    /// Objects read by the last successful run.
    pub last_objects: Option<i64>,
    /// Objects in the forest at the last full import.
    pub full_total: Option<i64>,
    /// Objects the last runs could not apply, and why (a UPN taken by a cloud user, ...).
    pub conflicts: Vec<String>,
    /// Synced users of the forest.
    pub users: i64,
    /// Synced groups of the forest.
    pub groups: i64,
    /// The run in progress (`null` when none).
    pub running: Option<SyncRun>,
}

/// A sync run in progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SyncRun {
    pub forest: String,
    pub run_id: Uuid,
    pub agent_id: Uuid,
    pub full: bool,
    /// Unix seconds.
    pub started_at: i64,
    /// Objects read so far.
    pub objects: u64,
    /// Objects per second since the start.
    pub objects_per_second: f64,
    /// The expected total, when known.
    pub estimated_total: Option<u64>,
    /// Seconds left at the current rate, when the total is known.
    pub eta_seconds: Option<u64>,
}

/// `POST /sync/{forest}/run`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SyncRequested {
    pub forest: String,
    pub full: bool,
    pub requested: bool,
}
