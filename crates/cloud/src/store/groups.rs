//! Synced groups in the store: pages of groups, one group with its direct members, a user's
//! groups, and the counts of synced objects per forest.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use super::Result;

/// A synced group.
#[derive(Debug, Clone, Serialize)]
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
}

/// A member of a group, as the cloud knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// `user`, `group`, or `unknown` (an object sync does not cover, such as a computer).
    pub kind: &'static str,
    pub object_guid: Uuid,
    /// The cloud object id, for users and groups.
    pub id: Option<Uuid>,
    /// UPN of a user, name of a group.
    pub name: Option<String>,
}

/// Groups synchronised from the directory, and their members.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait GroupStore: Send + Sync {
    /// Groups by name, optionally those whose name contains `search`, after `after`.
    async fn groups_page(
        &self,
        tenant_id: Uuid,
        search: Option<&str>,
        after: Option<&str>,
        top: i64,
    ) -> Result<(Vec<Group>, Option<String>)>;

    /// A group by cloud object id or by name, with its direct members.
    async fn group(
        &self,
        tenant_id: Uuid,
        id_or_name: &str,
    ) -> Result<Option<(Group, Vec<Member>)>>;

    /// The names of the groups a user is a direct member of.
    async fn user_direct_groups(&self, tenant_id: Uuid, object_guid: Uuid) -> Result<Vec<String>>;

    /// How many synced users and groups a tenant has, by forest.
    async fn sync_counts(&self, tenant_id: Uuid) -> Result<Vec<(String, i64, i64)>>;
}
