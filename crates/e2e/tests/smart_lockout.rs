//! Smart lockout in the cloud, against Samba through the real agent: the cloud locks a user
//! name before Active Directory would, so an attacker's guesses never lock the on-premises
//! account (the test bed's AD locks after 3 wrong passwords; the cloud here after 2).

use std::time::Duration;

use ldap3::{Scope, SearchEntry};
use passthru_testkit::bed;
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::procs::{fresh_dir, recorded_secret};
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

/// The codes of ten different wrong passwords for `upn`, in order.
async fn ten_wrong_passwords(
    client: &passthru_testkit::http::SignInClient,
    upn: &str,
) -> anyhow::Result<Vec<Option<u64>>> {
    let mut codes = Vec::new();
    for i in 0..10 {
        let r = client
            .password("contoso", upn, &format!("Wrong-Passw0rd-{i}!"))
            .await?;
        codes.push(r.code());
    }
    Ok(codes)
}

/// 50126 `threshold` times, then 50053 (locked in the cloud), ten answers in all.
fn locked_after(threshold: usize) -> Vec<Option<u64>> {
    let mut expected = vec![Some(50126); threshold];
    expected.extend(std::iter::repeat_n(Some(50053), 10 - threshold));
    expected
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cloud_locks_before_active_directory_does() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    assert!(
        corp.lockout_threshold >= 3,
        "the test needs AD to lock later than the cloud"
    );
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let user = TestUser::with(
        &format!("lock{tag}"),
        &format!("lock{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Pw"),
        "Lock Test",
    );
    admin.create_user(&user).await?;
    let t = PtaSetup::new(&fresh_dir("smart-lockout")?, &corp).start()?;
    t.cloud
        .admin(&["settings", "set", "lockout_threshold", "2"])?;
    t.cloud
        .admin(&["settings", "set", "lockout_duration_seconds", "600"])?;
    let client = t.sign_in()?;

    assert_eq!(
        ten_wrong_passwords(&client, &user.upn).await?,
        locked_after(2)
    );
    // The right password is refused too while the lock lasts, with no agent round trip.
    let r = client
        .password("contoso", &user.upn, &user.password)
        .await?;
    assert_eq!(r.code(), Some(50053), "{:?}", r.body);
    let log: Value = serde_json::from_str(&t.cloud.admin(&[
        "--json", "signins", "list", "--user", &user.upn, "--result", "50053",
    ])?)?;
    let locked = log["signins"].as_array().cloned().unwrap_or_default();
    assert_eq!(locked.len(), 9, "{log}");
    assert!(locked.iter().all(|l| l["agent_id"].is_null()), "{log}");

    // Active Directory saw only the two wrong passwords: the account is not locked there.
    let (entries, _) = admin
        .ldap()
        .with_timeout(Duration::from_secs(10))
        .search(
            &user.dn(&corp.base_dn),
            Scope::Base,
            "(objectClass=*)",
            vec!["badPwdCount", "lockoutTime"],
        )
        .await?
        .success()?;
    let entry = entries
        .into_iter()
        .next()
        .map(SearchEntry::construct)
        .ok_or_else(|| anyhow::anyhow!("user not found"))?;
    let bad: u32 = entry
        .attrs
        .get("badPwdCount")
        .and_then(|v| v.first())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    assert_eq!(bad, 2, "{entry:?}");
    assert!(bad < corp.lockout_threshold);
    assert!(
        corp.bind(&user.upn, &user.password).await.is_ok(),
        "AD does not consider the account locked"
    );

    // An administrator ends the lock: the right password works again, and the counter is
    // forgotten.
    let out = t.cloud.admin(&["user", "unlock", &user.upn])?;
    assert!(out.contains("Unlocked"), "{out}");
    let r = client
        .password("contoso", &user.upn, &user.password)
        .await?;
    assert!(r.ok(), "{:?}", r.body);
    let r = client
        .password("contoso", &user.upn, "Wrong-Passw0rd-again!")
        .await?;
    assert_eq!(
        r.code(),
        Some(50126),
        "one failure after a success does not lock"
    );
    admin.delete(&user.dn(&corp.base_dn)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_wrong_password_again_is_counted_once() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let user = TestUser::with(
        &format!("retry{tag}"),
        &format!("retry{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Pw"),
        "Retry Test",
    );
    admin.create_user(&user).await?;
    let dn = user.dn(&corp.base_dn);
    let t = PtaSetup::new(&fresh_dir("wrong-password-memory")?, &corp).start()?;
    t.cloud
        .admin(&["settings", "set", "lockout_threshold", "2"])?;
    let client = t.sign_in()?;
    // A phone retrying an old password four times: one mistake for AD and for the cloud.
    for _ in 0..4 {
        let r = client
            .password("contoso", &user.upn, "Old-Passw0rd-1!")
            .await?;
        assert_eq!(r.code(), Some(50126), "{:?}", r.body);
    }
    assert_eq!(admin.bad_pwd_count(&dn).await?, 1);
    // A second, different mistake is counted: the cloud's threshold (2) is reached.
    let r = client
        .password("contoso", &user.upn, "Another-Passw0rd-2!")
        .await?;
    assert_eq!(r.code(), Some(50126), "{:?}", r.body);
    assert_eq!(admin.bad_pwd_count(&dn).await?, 2);
    let r = client
        .password("contoso", &user.upn, &user.password)
        .await?;
    assert_eq!(r.code(), Some(50053), "{:?}", r.body);
    admin.delete(&dn).await?;
    Ok(())
}

/// The case: AD locks this user after 5 wrong passwords (a fine-grained policy on
/// the user), the cloud after 3. Ten wrong attempts lock the name in the cloud while AD's
/// badPwdCount stays below 5, so the account still works on premises.
#[tokio::test(flavor = "multi_thread")]
async fn ad_threshold_five_cloud_threshold_three() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let user = TestUser::with(
        &format!("five{tag}"),
        &format!("five{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Pw"),
        "Five Test",
    );
    admin.create_user(&user).await?;
    let dn = user.dn(&corp.base_dn);
    let pso = admin
        .add_password_policy(
            &format!("lock5-{tag}"),
            &[("msDS-LockoutThreshold", "5")],
            std::slice::from_ref(&dn),
        )
        .await?;
    let t = PtaSetup::new(&fresh_dir("smart-lockout-5")?, &corp).start()?;
    t.cloud
        .admin(&["settings", "set", "lockout_threshold", "3"])?;
    t.cloud
        .admin(&["settings", "set", "lockout_duration_seconds", "600"])?;
    let client = t.sign_in()?;
    assert_eq!(
        ten_wrong_passwords(&client, &user.upn).await?,
        locked_after(3)
    );
    let bad = admin.bad_pwd_count(&dn).await?;
    assert_eq!(bad, 3, "AD saw only the cloud's first three");
    assert!(bad < 5);
    assert!(
        corp.bind(&user.upn, &user.password).await.is_ok(),
        "AD (threshold 5) has not locked the account"
    );
    admin.delete(&pso).await?;
    admin.delete(&dn).await?;
    Ok(())
}

/// 200 wrong passwords at once, spread over the account's names (its UPN and implicit UPN,
/// in other cases): at most the cloud's threshold reach AD (`badPwdCount`), the rest get
/// 50053, and the right password works again once the lock is over.
#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_parallel_wrong_passwords_reach_ad_at_most_threshold_times(
) -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    // The sAMAccountName differs from the UPN's first part: `s{tag}@<domain>` is the
    // implicit UPN.
    let user = TestUser::with(
        &format!("s{tag}"),
        &format!("par.allel{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Pw"),
        "Parallel Test",
    );
    admin.create_user(&user).await?;
    let dn = user.dn(&corp.base_dn);
    // AD itself would lock only after 50: whatever the cloud let through shows in
    // badPwdCount.
    let pso = admin
        .add_password_policy(
            &format!("lock50-{tag}"),
            &[("msDS-LockoutThreshold", "50")],
            std::slice::from_ref(&dn),
        )
        .await?;
    let t = PtaSetup::new(&fresh_dir("smart-lockout-parallel")?, &corp).start()?;
    t.cloud
        .admin(&["settings", "set", "lockout_threshold", "3"])?;
    t.cloud
        .admin(&["settings", "set", "lockout_duration_seconds", "10"])?;
    let client = t.sign_in()?;
    // Both names sign in once, so the cloud knows they are one account.
    let implicit = format!("s{tag}@{}", corp.upn_suffix);
    for name in [&user.upn, &implicit] {
        let r = client.password("contoso", name, &user.password).await?;
        assert!(r.ok(), "{name}: {:?}", r.body);
    }
    let names = [
        user.upn.clone(),
        user.upn.to_uppercase(),
        implicit.clone(),
        implicit.to_uppercase(),
    ];
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..200 {
        let client = client.clone();
        let name = names[i % names.len()].clone();
        tasks.spawn(async move {
            client
                .password("contoso", &name, &format!("Wrong-Passw0rd-{i}!"))
                .await
                .map(|r| r.code())
        });
    }
    let (mut wrong, mut locked) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r?? {
            Some(50126) => wrong += 1,
            Some(50053) => locked += 1,
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
    let bad = admin.bad_pwd_count(&dn).await?;
    assert!(bad <= 3, "AD counted {bad} wrong passwords");
    assert!(wrong <= 3, "{wrong} answers of 50126");
    assert_eq!(locked, 200 - wrong);
    // Locked: the right password too, by any name.
    let r = client
        .password("contoso", &implicit, &user.password)
        .await?;
    assert_eq!(r.code(), Some(50053), "{:?}", r.body);
    tokio::time::sleep(Duration::from_secs(11)).await;
    let r = client
        .password("contoso", &user.upn, &user.password)
        .await?;
    assert!(r.ok(), "after the lock: {:?}", r.body);
    admin.delete(&pso).await?;
    admin.delete(&dn).await?;
    Ok(())
}
