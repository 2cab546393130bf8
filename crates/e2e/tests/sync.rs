//! Directory sync end to end: real `passthru-cloud` and `passthru-agent` processes, real TLS,
//! the real store and the test bed's Samba forest. Objects are created, changed, moved and
//! deleted in AD, and each change is looked for in the cloud (admin CLI, sign-in, tokens).
//! Also: the sync lease moving between agents, sign-in by mail, and two forests routed by
//! UPN suffix.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::fixture::{AgentStage, PtaSetup, PtaTenant};
use passthru_testkit::procs::{fresh_dir, recorded_secret, secret_file, Agent, ForestEntry};
use passthru_testkit::users::Admin;
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

/// The agents' sync interval in these tests.
const INTERVAL: u64 = 2;

/// A service account in `forest` (a plain user: it can read the directory) and its password
/// file, written outside the directories the password scan covers (the file is the one place
/// the password may be).
async fn service_account(
    forest: &BedForest,
    admin: &mut Admin,
) -> anyhow::Result<(String, PathBuf)> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let user = TestUser::with(
        &format!("svc{}", &tag[..8]),
        &format!("svc{}", &tag[..8]),
        &forest.upn_suffix,
        AccountState::Good,
        recorded_secret("Svc"),
        "Sync service",
    );
    admin.create_user(&user).await?;
    Ok((user.upn, secret_file(&user.password)?))
}

/// Polls `check` until it gives a value, or fails after `timeout` with the last reason.
async fn wait_for<T>(
    timeout: Duration,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<(T, Duration)> {
    let started = Instant::now();
    loop {
        match check() {
            Ok(Some(v)) => return Ok((v, started.elapsed())),
            Ok(None) => {}
            Err(e) if started.elapsed() > timeout => return Err(e),
            Err(_) => {}
        }
        if started.elapsed() > timeout {
            bail!("not seen within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn json(t: &PtaTenant, args: &[&str]) -> anyhow::Result<Value> {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    Ok(serde_json::from_str(&t.cloud.admin(&all)?)?)
}

/// `user show UPN --json`, or `None` when the cloud has no such user.
fn user_show(t: &PtaTenant, upn: &str) -> anyhow::Result<Option<Value>> {
    let out = t.cloud.admin_as(
        &t.cloud.tenant,
        &t.cloud.admin_upn,
        &t.cloud.admin_password,
        &["--json", "user", "show", upn],
    )?;
    if out.status.success() {
        Ok(Some(serde_json::from_slice(&out.stdout)?))
    } else {
        Ok(None)
    }
}

fn sync_status(t: &PtaTenant) -> anyhow::Result<Value> {
    json(t, &["sync", "status"])
}

/// The forest's sync state in `sync status`.
fn forest_state(t: &PtaTenant, forest: &BedForest) -> anyhow::Result<Value> {
    let status = sync_status(t)?;
    status["forests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["forest"].as_str() == Some(forest.dns_name.as_str()))
        .cloned()
        .ok_or_else(|| anyhow!("{} is not in sync status: {status}", forest.dns_name))
}

/// Waits for a successful run after `after` (Unix seconds).
async fn synced_after(t: &PtaTenant, forest: &BedForest, after: i64) -> anyhow::Result<Value> {
    let (state, _) = wait_for(Duration::from_secs(60), || {
        let f = forest_state(t, forest)?;
        let done = f["last_success_at"].as_i64().is_some_and(|t| t >= after);
        Ok(done.then_some(f))
    })
    .await?;
    Ok(state)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn tenant_with_sync(label: &str, forest: &BedForest) -> anyhow::Result<PtaTenant> {
    PtaSetup::new(&fresh_dir(label)?, forest)
        .agent(AgentStage::None)
        .pta(false)
        .start()
}

fn sync_entry(forest: &BedForest, account: &str, file: &Path) -> ForestEntry {
    ForestEntry::for_forest(forest).with_sync(account, file, INTERVAL)
}

struct People {
    alice: TestUser,
    bob: TestUser,
    carol: TestUser,
    group_dn: String,
    outer_dn: String,
    ou_dn: String,
    group: String,
    outer: String,
}

async fn create_people(forest: &BedForest, admin: &mut Admin) -> anyhow::Result<People> {
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let user = |n: &str| {
        TestUser::with(
            &format!("{n}{tag}"),
            &format!("{n}{tag}"),
            &forest.upn_suffix,
            AccountState::Good,
            recorded_secret("Pw"),
            &format!("{n} Synced"),
        )
    };
    let (alice, bob, carol) = (user("alice"), user("bob"), user("carol"));
    for u in [&alice, &bob, &carol] {
        admin.create_user(u).await?;
    }
    let base = forest.base_dn.clone();
    let group = format!("team{tag}");
    let outer = format!("dept{tag}");
    let group_dn = format!("CN={group},CN=Users,{base}");
    let outer_dn = format!("CN={outer},CN=Users,{base}");
    admin
        .add_entry(
            &group_dn,
            &[("objectClass", "group"), ("sAMAccountName", &group)],
        )
        .await?;
    admin
        .add_entry(
            &outer_dn,
            &[("objectClass", "group"), ("sAMAccountName", &outer)],
        )
        .await?;
    admin.set_member(&group_dn, &alice.dn(&base), true).await?;
    admin.set_member(&group_dn, &bob.dn(&base), true).await?;
    admin.set_member(&outer_dn, &group_dn, true).await?;
    let ou_dn = format!("OU=moved{tag},{base}");
    admin
        .add_entry(&ou_dn, &[("objectClass", "organizationalUnit")])
        .await?;
    Ok(People {
        alice,
        bob,
        carol,
        group_dn,
        outer_dn,
        ou_dn,
        group,
        outer,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_in_ad_reach_the_cloud() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let (account, file) = service_account(&corp, &mut admin).await?;
    let p = create_people(&corp, &mut admin).await?;
    let t = tenant_with_sync("sync-changes", &corp)?;
    let setting = json(&t, &["settings", "get", "sync_required"])?;
    assert_eq!(setting["settings"][0]["value"], "false", "{setting}");
    let _agent = t.start_agent(&[sync_entry(&corp, &account, &file)])?;
    t.enable_pta()?;

    // The first run is a full import; it turns sync_required on.
    let first = synced_after(&t, &corp, 0).await?;
    assert!(first["users"].as_i64().unwrap_or(0) >= 3, "{first}");
    assert!(first["last_full_at"].is_i64(), "{first}");
    assert_eq!(sync_status(&t)?["sync_required"], true);

    let alice = user_show(&t, &p.alice.upn)?.ok_or_else(|| anyhow!("alice not synced"))?;
    let s = &alice["synced"];
    assert_eq!(s["forest"], corp.dns_name.as_str(), "{alice}");
    assert_eq!(s["sam_account_name"], p.alice.sam.as_str(), "{alice}");
    assert_eq!(s["given_name"], "alice", "{alice}");
    assert_eq!(s["account_enabled"], true, "{alice}");
    assert_eq!(
        s["distinguished_name"],
        p.alice.dn(&corp.base_dn).as_str(),
        "{alice}"
    );
    assert!(s["last_change"].is_string(), "{alice}");
    assert_eq!(s["groups"], serde_json::json!([p.group]), "{alice}");
    assert_eq!(alice["mail"], p.alice.mail.as_str());
    assert_eq!(alice["read_only"], true);
    let alice_id = alice["id"].clone();

    // Groups are listed read-only with their members (a nested group included).
    let outer = json(&t, &["group", "show", &p.outer])?;
    assert_eq!(outer["members"][0]["kind"], "group", "{outer}");
    assert_eq!(outer["members"][0]["name"], p.group.as_str(), "{outer}");
    let inner = json(&t, &["group", "show", &p.group])?;
    let names: Vec<&str> = inner["members"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["name"].as_str())
        .collect();
    assert!(
        names.contains(&p.alice.upn.as_str()) && names.contains(&p.bob.upn.as_str()),
        "{inner}"
    );

    // Sign-in works, and the groups claim carries both groups (nested membership).
    let client = t.sign_in()?;
    let client_id = t.client_id()?.to_string();
    t.cloud.admin(&["app", "groups-claim", &client_id, "on"])?;
    let r = client
        .password("contoso", &p.alice.upn, &p.alice.password)
        .await?;
    assert!(r.ok(), "{:?}", r.body);
    let claims = client.verify_id_token("contoso", &r).await?;
    let groups: Vec<&str> = claims["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    for g in [&inner["id"], &outer["id"]] {
        let id = g.as_str().ok_or_else(|| anyhow!("group without id"))?;
        assert!(groups.contains(&id), "{id} missing from {claims}");
    }
    assert_eq!(claims["oid"], alice_id);

    // sync_required: a managed-domain user sync does not cover (the forest's Administrator,
    // a critical system object) is refused without a round trip.
    let r = client
        .password("contoso", &corp.admin_upn, &corp.admin_password)
        .await?;
    assert_eq!(r.code(), Some(50034), "{:?}", r.body);

    // An attribute change is visible within the interval + 2 s.
    let before = now();
    let changed_at = Instant::now();
    admin
        .replace_attrs(
            &p.alice.dn(&corp.base_dn),
            &[("displayName", "Alice Renamed")],
        )
        .await?;
    wait_for(Duration::from_secs(INTERVAL + 2), || {
        Ok(user_show(&t, &p.alice.upn)?.filter(|u| u["display_name"] == "Alice Renamed"))
    })
    .await?;
    let seen_after = changed_at.elapsed();
    eprintln!("incremental change visible after {seen_after:?} (interval {INTERVAL} s)");
    let alice = user_show(&t, &p.alice.upn)?.ok_or_else(|| anyhow!("alice gone"))?;
    assert!(
        alice["synced"]["last_change"].as_str() >= Some(""),
        "{alice}"
    );
    assert!(
        alice["updated_at"].as_i64().unwrap_or(0) >= before,
        "{alice}"
    );

    // Disabled in AD: refused in the cloud with 50057, with no agent round trip.
    let bob_dn = p.bob.dn(&corp.base_dn);
    admin
        .replace_attrs(&bob_dn, &[("userAccountControl", "514")])
        .await?;
    wait_for(Duration::from_secs(INTERVAL + 2), || {
        Ok(user_show(&t, &p.bob.upn)?.filter(|u| u["synced"]["account_enabled"] == false))
    })
    .await?;
    let r = client
        .password("contoso", &p.bob.upn, &p.bob.password)
        .await?;
    assert_eq!(r.code(), Some(50057), "{:?}", r.body);
    let log = json(&t, &["signins", "list", "--user", &p.bob.upn])?;
    assert!(log["signins"][0]["agent_id"].is_null(), "{log}");

    // Moved to another OU and renamed (CN and UPN): the same cloud object, new names.
    let carol_dn = p.carol.dn(&corp.base_dn);
    let new_upn = format!("carol.new{}@{}", &p.carol.sam[5..], corp.upn_suffix);
    admin
        .replace_attrs(&carol_dn, &[("userPrincipalName", &new_upn)])
        .await?;
    let carol_before = user_show(&t, &p.carol.upn)?;
    admin
        .rename(&carol_dn, "CN=Carol Moved", Some(&p.ou_dn))
        .await?;
    let (carol, _) = wait_for(Duration::from_secs(INTERVAL + 2), || {
        Ok(user_show(&t, &new_upn)?.filter(|u| {
            u["synced"]["distinguished_name"] == format!("CN=Carol Moved,{}", p.ou_dn).as_str()
        }))
    })
    .await?;
    if let Some(before) = carol_before {
        assert_eq!(before["id"], carol["id"], "a rename keeps the object id");
    }
    assert!(
        user_show(&t, &p.carol.upn)?.is_none(),
        "the old UPN is gone"
    );

    // Group membership: removing alice from the team is seen.
    admin
        .set_member(&p.group_dn, &p.alice.dn(&corp.base_dn), false)
        .await?;
    wait_for(Duration::from_secs(INTERVAL + 2), || {
        Ok(user_show(&t, &p.alice.upn)?.filter(|u| u["synced"]["groups"] == serde_json::json!([])))
    })
    .await?;

    // Deleted in AD: gone from the cloud.
    admin.delete(&format!("CN=Carol Moved,{}", p.ou_dn)).await?;
    wait_for(Duration::from_secs(INTERVAL + 2), || {
        Ok(user_show(&t, &new_upn)?.is_none().then_some(()))
    })
    .await?;

    // An administrator asks for a full import now.
    let full_before = forest_state(&t, &corp)?["last_full_at"]
        .as_i64()
        .unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let out = t.cloud.admin(&["sync", "run", &corp.dns_name, "--full"])?;
    assert!(out.contains("full import"), "{out}");
    wait_for(Duration::from_secs(INTERVAL + 3), || {
        let f = forest_state(&t, &corp)?;
        Ok((f["last_full_at"].as_i64().unwrap_or(0) > full_before).then_some(()))
    })
    .await?;
    let refused = t.cloud.admin(&["sync", "run", "nothing.example"]);
    assert!(refused.is_err(), "{refused:?}");

    // Sign-in by mail: the mail resolves to the synced UPN the agent binds with.
    t.cloud
        .admin(&["settings", "set", "sign_in_attribute", "mail"])?;
    let r = client
        .password("contoso", &p.alice.mail, &p.alice.password)
        .await?;
    assert!(r.ok(), "{:?}", r.body);
    let claims = client.verify_id_token("contoso", &r).await?;
    assert_eq!(
        claims["preferred_username"],
        p.alice.upn.as_str(),
        "{claims}"
    );
    // A wrong password by mail is still a wrong password.
    let r = client
        .password("contoso", &p.alice.mail, "Wrong-Passw0rd!")
        .await?;
    assert_eq!(r.code(), Some(50126), "{:?}", r.body);

    for dn in [
        &p.outer_dn,
        &p.group_dn,
        &bob_dn,
        &p.alice.dn(&corp.base_dn),
        &p.ou_dn,
    ] {
        let _ = admin.delete(dn).await;
    }
    let _ = std::fs::remove_dir_all(file.parent().unwrap_or(&file));
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lease_moves_when_its_agent_goes_away() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let (account, file) = service_account(&corp, &mut admin).await?;
    let t = tenant_with_sync("sync-lease", &corp)?;
    let entry = [sync_entry(&corp, &account, &file)];
    let mut a = t.register_agent(&entry)?;
    let mut b = t.register_agent(&entry)?;
    a.run()?;
    b.run()?;
    t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
    synced_after(&t, &corp, 0).await?;
    let holder = |t: &PtaTenant| -> anyhow::Result<String> {
        Ok(forest_state(t, &corp)?["holder_agent_id"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    };
    let first = holder(&t)?;
    let (mut gone, mut other): (Agent, Agent) = if first == a.id()? { (a, b) } else { (b, a) };
    assert_eq!(first, gone.id()?);
    // One agent syncs the forest at a time: the other has read nothing.
    assert!(gone.log().contains("sync of "), "{}", gone.log());
    assert!(!other.log().contains("sync of "), "{}", other.log());

    // The holder is stopped (SIGSTOP: connected but silent): the other agent takes over
    // within 2 intervals (plus the scheduler's tick and a run).
    let pid = gone.pid().ok_or_else(|| anyhow!("agent not running"))?;
    let stopped_at = Instant::now();
    kill(pid, "STOP")?;
    let other_id = other.id()?;
    let (_, took) = wait_for(Duration::from_secs(4 * INTERVAL + 5), || {
        Ok((holder(&t)? == other_id).then_some(()))
    })
    .await?;
    eprintln!("lease moved {took:?} after the holder stopped");
    assert!(
        stopped_at.elapsed() <= Duration::from_secs(2 * INTERVAL + 3),
        "took {took:?}"
    );
    // The new holder syncs: a change in AD arrives.
    let newcomer = TestUser::new(
        &format!("lease{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        &corp.upn_suffix,
        AccountState::Good,
    );
    admin.create_user(&newcomer).await?;
    wait_for(Duration::from_secs(INTERVAL + 3), || {
        user_show(&t, &newcomer.upn)
    })
    .await?;
    kill(pid, "CONT")?;

    // The new holder dies (kill -9): the first one, back, takes over.
    let first_id = gone.id()?;
    other.stop_with(9);
    wait_for(Duration::from_secs(4 * INTERVAL + 5), || {
        Ok((holder(&t)? == first_id).then_some(()))
    })
    .await?;
    admin.delete(&newcomer.dn(&corp.base_dn)).await?;
    wait_for(Duration::from_secs(INTERVAL + 3), || {
        Ok(user_show(&t, &newcomer.upn)?.is_none().then_some(()))
    })
    .await?;
    gone.stop_with(15);
    let _ = std::fs::remove_dir_all(file.parent().unwrap_or(&file));
    Ok(())
}

fn kill(pid: u32, signal: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn two_forests_route_by_upn_suffix() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let fab = bed::fabrikam()?;
    let t = tenant_with_sync("two-forests", &corp)?;
    t.cloud.add_domain(&[&fab.upn_suffix])?;
    // One agent serves both forests (no trust between them), another only CORP.
    let both = t.start_agent(&[
        ForestEntry::for_forest(&corp),
        ForestEntry::for_forest(&fab),
    ])?;
    let corp_only = t.register_agent(&[ForestEntry::for_forest(&corp)])?;
    let mut corp_only = corp_only;
    corp_only.run()?;
    t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
    t.enable_pta()?;
    let client = t.sign_in()?;
    let both_id = both.id()?;
    let fgood = fab.user("good")?;
    let cgood = corp.user("good")?;
    for _ in 0..8 {
        let r = client
            .password("contoso", &fgood.upn, &fgood.password)
            .await?;
        assert!(r.ok(), "{:?}", r.body);
        let r = client
            .password("contoso", &cgood.upn, &cgood.password)
            .await?;
        assert!(r.ok(), "{:?}", r.body);
    }
    // Every FABRIKAM sign-in went to the agent that has the forest.
    let log = json(&t, &["signins", "list", "--user", &fgood.upn])?;
    let lines = log["signins"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 8, "{log}");
    for l in &lines {
        assert_eq!(l["agent_id"].as_str(), Some(both_id.as_str()), "{l}");
    }
    // A FABRIKAM wrong password gives FABRIKAM's answer, through the same agent.
    let spare = fab.user("spare3")?;
    let r = client
        .password("contoso", &spare.upn, "Wrong-Passw0rd!")
        .await?;
    assert_eq!(r.code(), Some(50126), "{:?}", r.body);
    assert!(corp_only.trace().is_empty() || !corp_only.trace().contains(&spare.upn));
    Ok(())
}
