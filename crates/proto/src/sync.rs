//! Directory synchronisation on the agent's connection: what an agent reads from Active
//! Directory and sends to the cloud, and how the cloud drives it.
//!
//! The cloud holds, per tenant and forest, a lease naming the one agent that syncs that
//! forest, and the forest's watermark. Each interval it sends that agent a [`SyncRun`]; the
//! agent reads the directory with the forest's service account and answers with
//! [`SyncBatch`]es and one [`SyncDone`] (or [`SyncFailed`]). The agent keeps no sync state:
//! another agent can take the lease over and continue from the same watermark.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Most objects an agent puts in one [`SyncBatch`].
pub const MAX_BATCH_OBJECTS: usize = 500;

/// Where an incremental read starts: a domain controller and its update sequence number.
/// USNs are local to one DC, so a watermark from another DC means a full import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// The DC's identity: its invocationId when readable, else its `dsServiceName`.
    pub dc: String,
    /// The DC's `highestCommittedUSN` read before the previous run's searches began.
    pub usn: i64,
}

/// What the cloud asks of the lease holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    /// The forest's name, as the agent announced it.
    pub forest: String,
    /// Identifies this run in the agent's answers.
    pub run_id: Uuid,
    /// `None` (or a watermark from another DC): read everything.
    #[serde(default)]
    pub watermark: Option<Watermark>,
    /// Read everything even with a watermark (the first run, or an operator's request).
    #[serde(default)]
    pub full: bool,
    /// The object count of the last full import, for progress estimates.
    #[serde(default)]
    pub previous_total: Option<u64>,
    /// In an incremental run whose service account cannot read tombstones: list every
    /// object's GUID so the cloud can remove the deleted ones. That listing costs about as
    /// much as a full import, so the cloud asks for it at a bounded share of the time.
    #[serde(default = "yes")]
    pub reconcile: bool,
}

fn yes() -> bool {
    true
}

/// Objects read in a run, in the order the directory gave them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncBatch {
    pub run_id: Uuid,
    #[serde(default)]
    pub objects: Vec<SyncObject>,
    /// objectGUIDs of objects that exist (and are in scope) but did not change: sent when
    /// deletions are found by reconciliation rather than by reading tombstones.
    #[serde(default)]
    pub present: Vec<Uuid>,
    /// Objects the run has read so far, this batch included.
    #[serde(default)]
    pub done: u64,
    /// The expected number of objects in the run, when known.
    #[serde(default)]
    pub estimated_total: Option<u64>,
}

/// The end of a run: every batch of it was sent before this.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncDone {
    pub run_id: Uuid,
    /// Where the next incremental run starts.
    pub watermark: Watermark,
    /// The run read every object in scope (as objects or `present`): anything of the forest
    /// it did not mention no longer exists.
    pub complete: bool,
    /// Whether it was a full import.
    pub full: bool,
    /// Objects read.
    pub objects: u64,
    /// The DC that was read (`ldaps://host:port`).
    pub dc_url: String,
    /// Time the run took in the agent, milliseconds.
    pub millis: u64,
}

/// A run that could not finish; the cloud keeps the old watermark and tries again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncFailed {
    pub run_id: Uuid,
    /// What went wrong and what to do, for the administrator.
    pub error: String,
}

/// A forest an agent can sync (it has a service account for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncForest {
    /// The forest's name in the agent's configuration (its DNS name).
    pub forest: String,
    /// How often the forest is read, seconds.
    pub interval_seconds: u64,
    /// The forest's UPN suffixes.
    #[serde(default)]
    pub upn_suffixes: Vec<String>,
}

/// One directory object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SyncObject {
    User(SyncUser),
    Group(SyncGroup),
    /// An object deleted in AD, by its objectGUID.
    Deleted {
        object_guid: Uuid,
    },
}

/// A user as read from AD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncUser {
    /// objectGUID.
    pub object_guid: Uuid,
    /// ms-DS-ConsistencyGuid, when set (it then is the source anchor).
    #[serde(default)]
    pub consistency_guid: Option<Uuid>,
    /// distinguishedName.
    pub dn: String,
    #[serde(default)]
    pub user_principal_name: Option<String>,
    #[serde(default)]
    pub sam_account_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub given_name: Option<String>,
    #[serde(default)]
    pub surname: Option<String>,
    /// False when userAccountControl has ACCOUNTDISABLE (2).
    pub enabled: bool,
    /// accountExpires as Unix seconds; `None` when the account never expires.
    #[serde(default)]
    pub account_expires: Option<i64>,
    /// uSNChanged on the DC that was read.
    #[serde(default)]
    pub usn_changed: i64,
    /// whenChanged, Unix seconds.
    #[serde(default)]
    pub when_changed: Option<i64>,
    /// pwdLastSet, Unix seconds; `None` when the password must be changed (0) or unknown.
    #[serde(default)]
    pub password_last_set: Option<i64>,
}

/// A group as read from AD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncGroup {
    /// objectGUID.
    pub object_guid: Uuid,
    /// ms-DS-ConsistencyGuid, when set.
    #[serde(default)]
    pub consistency_guid: Option<Uuid>,
    /// distinguishedName.
    pub dn: String,
    #[serde(default)]
    pub sam_account_name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    /// objectGUIDs of the direct members (users, groups, and others the cloud ignores).
    #[serde(default)]
    pub members: Vec<Uuid>,
    #[serde(default)]
    pub usn_changed: i64,
    #[serde(default)]
    pub when_changed: Option<i64>,
}

impl SyncUser {
    /// The source anchor: ms-DS-ConsistencyGuid when set, else objectGUID.
    pub fn anchor(&self) -> Uuid {
        self.consistency_guid.unwrap_or(self.object_guid)
    }
}

impl SyncGroup {
    /// The source anchor: ms-DS-ConsistencyGuid when set, else objectGUID.
    pub fn anchor(&self) -> Uuid {
        self.consistency_guid.unwrap_or(self.object_guid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_round_trip_and_anchor() {
        let guid = Uuid::new_v4();
        let cg = Uuid::new_v4();
        let u = SyncUser {
            object_guid: guid,
            consistency_guid: Some(cg),
            dn: "CN=a,DC=corp".into(),
            user_principal_name: Some("a@corp.test".into()),
            sam_account_name: None,
            mail: None,
            display_name: None,
            given_name: None,
            surname: None,
            enabled: false,
            account_expires: Some(1),
            usn_changed: 5,
            when_changed: None,
            password_last_set: None,
        };
        assert_eq!(u.anchor(), cg);
        let batch = SyncBatch {
            run_id: Uuid::nil(),
            objects: vec![
                SyncObject::User(u.clone()),
                SyncObject::Deleted { object_guid: guid },
            ],
            present: vec![],
            done: 2,
            estimated_total: None,
        };
        let j = serde_json::to_string(&batch).unwrap_or_default();
        assert!(j.contains(r#""kind":"user""#), "{j}");
        assert!(j.contains(r#""kind":"deleted""#), "{j}");
        let back: Result<SyncBatch, _> = serde_json::from_str(&j);
        assert!(matches!(back, Ok(b) if b == batch));
    }
}
