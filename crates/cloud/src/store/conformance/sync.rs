//! Rules of the store's sync area, run on every backend.

use crate::store::sync::*;
use crate::store::*;
use crate::store::{DomainKind, OnpremUser};
use passthru_proto::sync::{SyncBatch, SyncDone, SyncGroup, SyncObject, SyncUser, Watermark};
use uuid::Uuid;

async fn store(backend: TestBackend) -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
    let (s, dir, tid) =
        crate::store::test_store_on(backend, "sync", "corp.test", DomainKind::Managed).await?;
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

#[test]
fn effective_upn_falls_back_to_the_implicit_one() {
    let mut u = user("erin", Uuid::nil());
    assert_eq!(effective_upn(&u).as_deref(), Some("erin@corp.test"));
    u.user_principal_name = Some("@broken".into());
    assert_eq!(effective_upn(&u).as_deref(), Some("erin@corp.test"));
    u.sam_account_name = None;
    assert_eq!(effective_upn(&u), None);
}

super::on_every_backend! {
    /// A synced user's UPN, implicit UPN and mail, in any case, count toward one smart
    /// lockout; a renamed user's old names no longer do.
    #[tokio::test]
    async fn a_synced_users_names_share_one_lockout_key(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) = store(backend).await?;
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
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn a_full_run_then_changes_renames_and_reconciliation(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) = store(backend).await?;
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
        s.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_cloud_users_upn_is_never_taken_and_mail_finds_synced_users(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) = store(backend).await?;
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
        s.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }

    #[tokio::test]
    async fn a_password_changed_in_ad_is_reported_once(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) = store(backend).await?;
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
        s.close().await;
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
