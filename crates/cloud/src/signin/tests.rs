use super::*;

/// An attempt of `username` in `tenant`, with no app or address.
fn attempt<'a>(tenant: &'a Tenant, username: &'a str) -> Attempt<'a> {
    Attempt {
        tenant,
        username,
        client_id: None,
        client_ip: None,
        correlation_id: Uuid::new_v4(),
    }
}

#[test]
fn an_unchanged_user_signed_in_lately_is_not_written_again() {
    let tenant = Tenant {
        id: Uuid::new_v4(),
        name: "contoso".into(),
        pta_enabled: true,
        settings: Default::default(),
    };
    let this = attempt(&tenant, "a@corp.test");
    let dir = DirectoryUser {
        object_guid: Uuid::new_v4(),
        user_principal_name: "a@corp.test".into(),
        sam_account_name: None,
        display_name: Some("A".into()),
        mail: None,
        consistency_guid: None,
    };
    let known = User {
        id: onprem_object_id(tenant.id, dir.anchor()),
        tenant_id: tenant.id,
        upn: "a@corp.test".into(),
        display_name: Some("A".into()),
        mail: None,
        password_hash: None,
        source: "onprem".into(),
        immutable_id: None,
        role: "none".into(),
        enabled: true,
        created_at: 0,
        updated_at: None,
        last_sign_in: Some(1_000),
        sync: None,
        writeback_allowed: false,
    };
    assert!(unchanged(&known, &this, &dir, 1_100));
    assert!(!unchanged(
        &known,
        &this,
        &dir,
        1_000 + LAST_SIGN_IN_PRECISION
    ));
    let renamed = DirectoryUser {
        display_name: Some("B".into()),
        ..dir.clone()
    };
    assert!(!unchanged(&known, &this, &renamed, 1_100));
    let other = DirectoryUser {
        object_guid: Uuid::new_v4(),
        ..dir
    };
    assert!(!unchanged(&known, &this, &other, 1_100));
}

/// A fake agent that knows one account: `right` is its password (under any of `names`),
/// every other password is wrong (1326).
fn one_account(
    app: &crate::test_app::TestApp,
    guid: Uuid,
    upn: &str,
) -> crate::test_app::FakeAgent {
    let upn = upn.to_string();
    app.fake_agent(
        &["corp.test"],
        Duration::from_millis(30),
        std::sync::Arc::new(move |p: &ValidationPayload| {
            if p.password.as_str() == "right" {
                Outcome::Success(DirectoryUser {
                    object_guid: guid,
                    user_principal_name: upn.clone(),
                    sam_account_name: Some("cs".into()),
                    display_name: None,
                    mail: None,
                    consistency_guid: None,
                })
            } else {
                Outcome::Denied {
                    win32: Win32::LogonFailure,
                }
            }
        }),
    )
}

/// Sends `names[i % len]` with a wrong password `n` times at once; returns how many
/// got 1326's code and how many 50053.
async fn parallel_wrong(
    app: &crate::test_app::TestApp,
    tenant: &Tenant,
    names: &[&str],
    n: usize,
) -> anyhow::Result<(usize, usize)> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let state = app.state.clone();
        let tenant = tenant.clone();
        let name = names[i % names.len()].to_string();
        tasks.spawn(async move {
            let this = attempt(&tenant, &name);
            check_password(&state, &this, Zeroizing::new(format!("wrong-{i}")))
                .await
                .err()
                .map(|e| e.code)
        });
    }
    let (mut wrong, mut locked) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r? {
            Some(Aadsts::InvalidCredentials) => wrong += 1,
            Some(Aadsts::AccountLocked) => locked += 1,
            other => anyhow::bail!("unexpected result {other:?}"),
        }
    }
    Ok((wrong, locked))
}

fn managed(app: &crate::test_app::TestApp, threshold: u32) -> Tenant {
    let mut t = app.tenant.clone();
    t.pta_enabled = true;
    t.settings.lockout_threshold = threshold;
    t.settings.lockout_duration_seconds = 1;
    t
}

/// 200 wrong passwords at once for one account: at most the threshold reach the
/// directory, the rest get 50053; the right password works once the lock is over.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_reach_the_directory_at_most_threshold_times() -> anyhow::Result<()>
{
    let app =
        crate::test_app::TestApp::new("lockout-par", "corp.test", DomainKind::Managed).await?;
    let tenant = managed(&app, 3);
    let agent = one_account(&app, Uuid::new_v4(), "dave@corp.test");
    let (wrong, locked) = parallel_wrong(&app, &tenant, &["dave@corp.test"], 200).await?;
    let asked = agent.received.load(std::sync::atomic::Ordering::SeqCst);
    assert!(asked <= 3, "{asked} wrong passwords reached the directory");
    assert_eq!((wrong, locked), (asked, 200 - asked));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let this = attempt(&tenant, "dave@corp.test");
    let user = check_password(&app.state, &this, Zeroizing::new("right".into())).await;
    assert_eq!(user.map(|u| u.upn).ok().as_deref(), Some("dave@corp.test"));
    Ok(())
}

/// Case variants (Unicode too), the implicit UPN and the mail address of one account
/// count toward one lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_name_of_an_account_counts_toward_one_lock() -> anyhow::Result<()> {
    let app =
        crate::test_app::TestApp::new("lockout-names", "corp.test", DomainKind::Managed).await?;
    let mut tenant = managed(&app, 3);
    // The lock must outlast the 200 attempts and the checks after them on a busy machine.
    tenant.settings.lockout_duration_seconds = 60;
    let guid = Uuid::new_v4();
    let agent = one_account(&app, guid, "çarol@corp.test");
    // A first sign-in by the implicit UPN makes the account known (a sync would too).
    let this = attempt(&tenant, "cs@corp.test");
    let user = check_password(&app.state, &this, Zeroizing::new("right".into())).await;
    let user = user.map_err(|e| anyhow::anyhow!("first sign-in: {:?}", e.code))?;
    app.state
        .store
        .learn_sign_in_names(tenant.id, user.id, &["carol@mail.test"])
        .await?;
    let names = [
        "ÇAROL@corp.test",
        "çarol@CORP.TEST",
        "CS@Corp.Test",
        "cs@corp.test",
    ];
    let before = agent.received.load(std::sync::atomic::Ordering::SeqCst);
    let (wrong, locked) = parallel_wrong(&app, &tenant, &names, 200).await?;
    let asked = agent.received.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert!(asked <= 3, "{asked} wrong passwords reached the directory");
    assert_eq!((wrong, locked), (asked, 200 - asked));
    // One by one too: each name is refused once the account is locked, its mail
    // address too (not a UPN of a domain: unlocked, it would get 50034).
    for name in names.iter().copied().chain(["Carol@Mail.Test"]) {
        let this = attempt(&tenant, name);
        let r = check_password(&app.state, &this, Zeroizing::new("right".into())).await;
        assert_eq!(
            r.err().map(|e| e.code),
            Some(Aadsts::AccountLocked),
            "{name}"
        );
    }
    Ok(())
}

#[test]
fn a_success_for_a_synced_user_must_name_its_object_guid() {
    let guid = Uuid::new_v4();
    let answered = |object_guid| DirectoryUser {
        object_guid,
        user_principal_name: "a@corp.test".into(),
        sam_account_name: None,
        display_name: None,
        mail: None,
        // The anchor may differ from objectGUID; the rule compares objectGUIDs.
        consistency_guid: Some(Uuid::new_v4()),
    };
    let mut user = User {
        id: Uuid::new_v4(),
        tenant_id: Uuid::new_v4(),
        upn: "a@corp.test".into(),
        display_name: None,
        mail: None,
        password_hash: None,
        source: "onprem".into(),
        immutable_id: None,
        role: "none".into(),
        enabled: true,
        created_at: 0,
        updated_at: None,
        last_sign_in: None,
        sync: None,
        writeback_allowed: false,
    };
    // Nothing synced to compare with: the answer stands.
    assert!(names_synced_record(None, &answered(Uuid::new_v4())));
    assert!(names_synced_record(Some(&user), &answered(Uuid::new_v4())));
    user.sync = Some(crate::store::sync::SyncedAttributes {
        forest: "corp.test".into(),
        object_guid: guid,
        dn: "CN=A,DC=corp,DC=test".into(),
        sam_account_name: None,
        given_name: None,
        surname: None,
        enabled: true,
        account_expires: None,
        when_changed: None,
        password_last_set: None,
        last_change: 0,
    });
    assert!(names_synced_record(Some(&user), &answered(guid)));
    assert!(!names_synced_record(Some(&user), &answered(Uuid::new_v4())));
}

#[test]
fn object_id_is_stable_and_tenant_scoped() {
    let t1 = Uuid::new_v4();
    let t2 = Uuid::new_v4();
    let g = Uuid::new_v4();
    assert_eq!(onprem_object_id(t1, g), onprem_object_id(t1, g));
    assert_ne!(onprem_object_id(t1, g), onprem_object_id(t2, g));
    assert_ne!(onprem_object_id(t1, g), g);
}
