//! Directory sync in the store: applying an agent's batches (users, groups, membership,
//! deletions), ending a run (reconciliation, watermark), and each forest's sync state.
//!
//! Synced objects are keyed by objectGUID within the tenant; a user's cloud object id derives
//! from its source anchor (ms-DS-ConsistencyGuid, else objectGUID), the same id a pass-through
//! sign-in gives, so a user who signed in before the first sync keeps its id.
//!
//! About 600 lines: applying a batch is one transaction over users, groups, membership and
//! deletions, whose rules read best side by side; the group queries are in `groups.rs`.

use async_trait::async_trait;
use passthru_proto::sync::{SyncBatch, SyncDone, SyncUser, Watermark};
use serde::Serialize;

pub use crate::model::records::SyncedAttributes;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::Result;

/// The stable object id of an on-premises user or group: derived from the tenant and the
/// source anchor.
pub fn onprem_object_id(tenant_id: Uuid, anchor: Uuid) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"passthru/oid");
    h.update(tenant_id.as_bytes());
    h.update(anchor.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Uuid::new_v8(b)
}

/// A forest's sync state.
#[derive(Debug, Clone, Serialize)]
pub struct SyncForestState {
    pub forest: String,
    /// The agent holding the lease (the one that syncs), if any.
    pub holder_agent_id: Option<Uuid>,
    pub lease_since: Option<i64>,
    #[serde(skip)]
    pub watermark: Option<Watermark>,
    pub interval_seconds: u64,
    pub last_full_at: Option<i64>,
    pub last_success_at: Option<i64>,
    pub last_run_at: Option<i64>,
    pub last_error: Option<String>,
    /// Objects read by the last successful run.
    pub last_objects: Option<i64>,
    /// Objects in the forest at the last full import.
    pub full_total: Option<i64>,
    /// Objects the last runs could not apply, and why (a UPN taken by a cloud user, ...).
    pub conflicts: Vec<String>,
}

/// What applying a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applied {
    pub users: u64,
    pub groups: u64,
    pub deleted: u64,
    /// Objects not applied, and why.
    pub conflicts: Vec<String>,
    /// UPNs of users whose password was changed in AD since the last run.
    pub password_changed: Vec<String>,
}

/// The UPN a synced user gets: its userPrincipalName, else the implicit one
/// (sAMAccountName@the domain's DNS name, from the DN's DC= parts).
pub fn effective_upn(u: &SyncUser) -> Option<String> {
    if let Some(upn) = u.user_principal_name.as_deref().map(str::trim) {
        if upn.contains('@') && !upn.starts_with('@') {
            return Some(upn.to_string());
        }
    }
    implicit_upn(u)
}

/// A synced user's implicit UPN: sAMAccountName@the domain's DNS name (from the DN's DC=
/// parts), which AD accepts in a bind whatever the userPrincipalName.
pub fn implicit_upn(u: &SyncUser) -> Option<String> {
    let sam = u.sam_account_name.as_deref()?.trim();
    let domain: Vec<String> =
        u.dn.split(',')
            .filter_map(|rdn| {
                let (k, v) = rdn.trim().split_once('=')?;
                k.trim()
                    .eq_ignore_ascii_case("dc")
                    .then(|| v.trim().to_lowercase())
            })
            .collect();
    (!sam.is_empty() && !domain.is_empty()).then(|| format!("{sam}@{}", domain.join(".")))
}

/// Directory synchronisation: batches applied per forest with watermarks, runs finished or
/// failed, the sync holder lease.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Applies one batch of a run in one transaction.
    async fn apply_sync_batch(
        &self,
        tenant_id: Uuid,
        forest: &str,
        batch: &SyncBatch,
        now: i64,
    ) -> Result<Applied>;

    /// Ends a run: when it mentioned every object, removes the forest's objects it did not
    /// mention; records the watermark. Returns how many objects were removed.
    async fn finish_sync_run(
        &self,
        tenant_id: Uuid,
        forest: &str,
        done: &SyncDone,
        conflicts: &[String],
        now: i64,
    ) -> Result<u64>;

    /// Records a failed run (the watermark stays).
    async fn sync_run_failed(
        &self,
        tenant_id: Uuid,
        forest: &str,
        error: &str,
        now: i64,
    ) -> Result<()>;

    /// Creates the forest's sync state if new, and records its interval.
    async fn ensure_sync_forest(
        &self,
        tenant_id: Uuid,
        forest: &str,
        interval_seconds: u64,
    ) -> Result<()>;

    /// Gives the forest's lease to `agent` (or to nobody).
    async fn set_sync_holder(
        &self,
        tenant_id: Uuid,
        forest: &str,
        agent: Option<Uuid>,
        now: i64,
    ) -> Result<()>;

    /// Every synced forest of a tenant.
    async fn sync_forests(&self, tenant_id: Uuid) -> Result<Vec<SyncForestState>>;

    /// The synced users whose mail is `mail` (for sign-in with the mail address).
    async fn synced_users_by_mail(&self, tenant_id: Uuid, mail: &str) -> Result<Vec<super::User>>;

    /// The object ids of the groups a user belongs to, directly or through nested groups
    /// (at most `limit`).
    async fn user_group_ids(
        &self,
        tenant_id: Uuid,
        object_guid: &str,
        limit: i64,
    ) -> Result<Vec<Uuid>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::*;
    use crate::store::{DomainKind, OnpremUser};
    use passthru_proto::sync::{SyncBatch, SyncGroup, SyncObject};
    use uuid::Uuid;

    async fn store() -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
        let (s, dir, tid) =
            crate::store::test_store("sync", "corp.test", DomainKind::Managed).await?;
        s.ensure_sync_forest(tid, "corp.test", 30).await?;
        Ok((s, dir, tid))
    }

    fn user(name: &str, guid: Uuid) -> SyncUser {
        SyncUser {
            object_guid: guid,
            consistency_guid: None,
            dn: format!("CN={name},CN=Users,DC=corp,DC=test"),
            user_principal_name: Some(format!("{name}@corp.test")),
            sam_account_name: Some(name.to_string()),
            mail: Some(format!("{name}@mail.test")),
            display_name: Some(name.to_uppercase()),
            given_name: None,
            surname: None,
            enabled: true,
            account_expires: None,
            usn_changed: 1,
            when_changed: None,
            password_last_set: Some(1_000),
        }
    }

    fn group(name: &str, guid: Uuid, members: Vec<Uuid>) -> SyncGroup {
        SyncGroup {
            object_guid: guid,
            consistency_guid: None,
            dn: format!("CN={name},CN=Users,DC=corp,DC=test"),
            sam_account_name: Some(name.to_string()),
            display_name: None,
            mail: None,
            members,
            usn_changed: 1,
            when_changed: None,
        }
    }

    fn batch(run: Uuid, objects: Vec<SyncObject>, present: Vec<Uuid>) -> SyncBatch {
        SyncBatch {
            run_id: run,
            objects,
            present,
            done: 0,
            estimated_total: None,
        }
    }

    fn done(run: Uuid, complete: bool) -> SyncDone {
        SyncDone {
            run_id: run,
            watermark: Watermark {
                dc: "dc1".into(),
                usn: 42,
            },
            complete,
            full: complete,
            objects: 0,
            dc_url: "ldaps://dc1".into(),
            millis: 1,
        }
    }

    /// A synced user's UPN, implicit UPN and mail, in any case, count toward one smart
    /// lockout; a renamed user's old names no longer do.
    #[tokio::test]
    async fn a_synced_users_names_share_one_lockout_key() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        let g = Uuid::new_v4();
        let mut u = user("carol", g);
        u.user_principal_name = Some("Carol.Long@corp.test".into());
        let run = Uuid::new_v4();
        let objects = vec![SyncObject::User(u.clone())];
        s.apply_sync_batch(tid, "corp.test", &batch(run, objects, vec![]), 10)
            .await?;
        let id = onprem_object_id(tid, g);
        for name in [
            "carol.long@corp.test",
            "CAROL@CORP.TEST",
            "carol@corp.test",
            "Carol@Mail.Test",
        ] {
            let key = s.sign_in_state(tid, name, 20).await?.lockout_key;
            assert_eq!(key, format!("user:{id}"), "{name}");
        }
        // Renamed in AD (new sAMAccountName and mail): the old implicit UPN is a name of
        // nobody again.
        u.sam_account_name = Some("cl".into());
        u.mail = None;
        let run = Uuid::new_v4();
        let objects = vec![SyncObject::User(u)];
        s.apply_sync_batch(tid, "corp.test", &batch(run, objects, vec![]), 30)
            .await?;
        let old = s
            .sign_in_state(tid, "carol@corp.test", 40)
            .await?
            .lockout_key;
        assert_eq!(old, "carol@corp.test");
        let new = s.sign_in_state(tid, "CL@corp.test", 40).await?.lockout_key;
        assert_eq!(new, format!("user:{id}"));
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn a_full_run_then_changes_renames_and_reconciliation() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        let (a, b, g, outer) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        // A pass-through sign-in before the first sync created alice's record: sync adopts it.
        let anchor = a.to_string();
        let jit = OnpremUser {
            tenant_id: tid,
            id: onprem_object_id(tid, a),
            immutable_id: &anchor,
            upn: "alice@corp.test",
            display_name: None,
            mail: None,
        };
        s.upsert_onprem_user(&jit, 5).await?;
        let run1 = Uuid::new_v4();
        let applied = s
            .apply_sync_batch(
                tid,
                "corp.test",
                &batch(
                    run1,
                    vec![
                        SyncObject::User(user("alice", a)),
                        SyncObject::User(user("bob", b)),
                        SyncObject::Group(group("team", g, vec![a])),
                        SyncObject::Group(group("dept", outer, vec![g])),
                    ],
                    vec![],
                ),
                10,
            )
            .await?;
        assert_eq!((applied.users, applied.groups), (2, 2));
        assert!(applied.conflicts.is_empty());
        s.finish_sync_run(tid, "corp.test", &done(run1, true), &[], 10)
            .await?;
        let alice = s
            .user_by_upn(tid, "alice@corp.test")
            .await?
            .ok_or_else(|| anyhow::anyhow!("alice"))?;
        assert_eq!(
            alice.id,
            onprem_object_id(tid, a),
            "the sign-in's id is kept"
        );
        assert_eq!(alice.display_name.as_deref(), Some("ALICE"));
        let synced = alice
            .sync
            .clone()
            .ok_or_else(|| anyhow::anyhow!("not synced"))?;
        assert_eq!(synced.last_change, 10);
        assert!(synced.enabled);
        // Nested membership: alice is in team, team in dept.
        let mut groups = s.user_group_ids(tid, &a.to_string(), 10).await?;
        groups.sort();
        let mut expected = vec![onprem_object_id(tid, g), onprem_object_id(tid, outer)];
        expected.sort();
        assert_eq!(groups, expected);
        assert_eq!(
            s.user_direct_groups(tid, a).await?,
            vec!["team".to_string()]
        );
        let state = s.sync_forests(tid).await?;
        assert_eq!(state[0].watermark.as_ref().map(|w| w.usn), Some(42));
        assert_eq!(state[0].last_full_at, Some(10));

        // An unchanged object keeps its time of last change; a rename changes it.
        let run2 = Uuid::new_v4();
        let mut renamed = user("bob", b);
        renamed.user_principal_name = Some("robert@corp.test".into());
        s.apply_sync_batch(
            tid,
            "corp.test",
            &batch(
                run2,
                vec![
                    SyncObject::User(user("alice", a)),
                    SyncObject::User(renamed),
                ],
                vec![g, outer],
            ),
            20,
        )
        .await?;
        s.finish_sync_run(tid, "corp.test", &done(run2, true), &[], 20)
            .await?;
        let alice = s.user_by_upn(tid, "alice@corp.test").await?;
        assert_eq!(alice.and_then(|u| u.sync).map(|s| s.last_change), Some(10));
        assert!(s.user_by_upn(tid, "bob@corp.test").await?.is_none());
        let robert = s.user_by_upn(tid, "robert@corp.test").await?;
        assert_eq!(robert.map(|u| u.id), Some(onprem_object_id(tid, b)));
        assert_eq!(s.groups_page(tid, None, None, 10).await?.0.len(), 2);

        // A complete run that does not mention bob and the team removes them (and the
        // team's memberships).
        let run3 = Uuid::new_v4();
        s.apply_sync_batch(tid, "corp.test", &batch(run3, vec![], vec![a, outer]), 30)
            .await?;
        let removed = s
            .finish_sync_run(tid, "corp.test", &done(run3, true), &[], 30)
            .await?;
        assert_eq!(removed, 2);
        assert!(s.user_by_upn(tid, "robert@corp.test").await?.is_none());
        assert!(s.user_group_ids(tid, &a.to_string(), 10).await?.is_empty());
        // An incomplete run removes nothing; a tombstone does.
        let run4 = Uuid::new_v4();
        s.finish_sync_run(tid, "corp.test", &done(run4, false), &[], 40)
            .await?;
        assert!(s.user_by_upn(tid, "alice@corp.test").await?.is_some());
        let run5 = Uuid::new_v4();
        let applied = s
            .apply_sync_batch(
                tid,
                "corp.test",
                &batch(run5, vec![SyncObject::Deleted { object_guid: a }], vec![]),
                50,
            )
            .await?;
        assert_eq!(applied.deleted, 1);
        assert!(s.user_by_upn(tid, "alice@corp.test").await?.is_none());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_cloud_users_upn_is_never_taken_and_mail_finds_synced_users() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        s.add_cloud_user(tid, "carol@corp.test", "hash", "none", 1)
            .await?;
        let run = Uuid::new_v4();
        let (c, d) = (Uuid::new_v4(), Uuid::new_v4());
        let mut disabled = user("dave", d);
        disabled.enabled = false;
        disabled.user_principal_name = None; // implicit UPN: sAMAccountName@DNS name
        let applied = s
            .apply_sync_batch(
                tid,
                "corp.test",
                &batch(
                    run,
                    vec![
                        SyncObject::User(user("carol", c)),
                        SyncObject::User(disabled),
                    ],
                    vec![],
                ),
                10,
            )
            .await?;
        assert_eq!(applied.users, 1);
        assert_eq!(applied.conflicts.len(), 1);
        assert!(
            applied.conflicts[0].contains("carol@corp.test"),
            "{:?}",
            applied.conflicts
        );
        let carol = s.user_by_upn(tid, "carol@corp.test").await?;
        assert_eq!(carol.map(|u| u.source), Some("cloud".to_string()));
        let dave = s
            .user_by_upn(tid, "dave@corp.test")
            .await?
            .ok_or_else(|| anyhow::anyhow!("dave"))?;
        assert_eq!(dave.sync.map(|s| s.enabled), Some(false));
        let by_mail = s.synced_users_by_mail(tid, "DAVE@mail.test").await?;
        assert_eq!(by_mail.len(), 1);
        assert!(s
            .synced_users_by_mail(tid, "carol@mail.test")
            .await?
            .is_empty());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_password_changed_in_ad_is_reported_once() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        let g = Uuid::new_v4();
        let apply = |u: SyncUser| {
            let s = &s;
            async move {
                s.apply_sync_batch(
                    tid,
                    "corp.test",
                    &batch(Uuid::new_v4(), vec![SyncObject::User(u)], vec![]),
                    10,
                )
                .await
            }
        };
        // The first import says nothing: there is nothing to forget yet.
        assert!(apply(user("fay", g)).await?.password_changed.is_empty());
        assert!(apply(user("fay", g)).await?.password_changed.is_empty());
        let mut changed = user("fay", g);
        changed.password_last_set = Some(2_000);
        assert_eq!(
            apply(changed.clone()).await?.password_changed,
            ["fay@corp.test"]
        );
        assert!(apply(changed).await?.password_changed.is_empty());
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[test]
    fn effective_upn_falls_back_to_the_implicit_one() {
        let mut u = user("erin", Uuid::nil());
        assert_eq!(effective_upn(&u).as_deref(), Some("erin@corp.test"));
        u.user_principal_name = Some("@broken".into());
        assert_eq!(effective_upn(&u).as_deref(), Some("erin@corp.test"));
        u.sam_account_name = None;
        assert_eq!(effective_upn(&u), None);
    }
}
