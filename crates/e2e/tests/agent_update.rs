//! Signed auto-update with real processes against the test bed's forest: a publisher key made
//! with `passthru-agent release keygen`, releases signed with `release sign` and published
//! with `passthru-cloud admin agents release add`, agents that pin the key in their
//! configuration (`[updates]`).
//!
//! - A second build of the agent with a newer version (`scripts/build-update-fixture.sh`)
//!   is picked up by a running agent while another serves and a sign-in load runs: not one
//!   sign-in is lost; the cloud then lists the agent with the new version; a restart of the
//!   installed binary starts the staged new version again.
//! - A release signed with another key, a package tampered with in the cloud's store, a
//!   downgrade, and a new version that never connects are each refused or rolled back; the
//!   agent keeps serving and its admin log says why.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};
use passthru_testkit::bed;
use passthru_testkit::fixture::{AgentStage, PtaSetup, PtaTenant, TENANT};
use passthru_testkit::load::{Credential, Load, LoadSpec};
use passthru_testkit::procs::{
    bin, fresh_dir, recorded_secret, update_fixture, Agent, Cloud, ForestEntry,
};
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

/// Seconds between an agent's update checks in these tests (about).
const CHECK_SECONDS: u64 = 2;
/// How long a new version has to connect before it is rolled back.
const ROLLBACK_SECONDS: u64 = 8;

/// `passthru-agent release keygen`: the key file and the public key it printed.
fn keygen(dir: &Path, name: &str) -> anyhow::Result<(PathBuf, String)> {
    let key = dir.join(name);
    let out = Command::new(bin("passthru-agent"))
        .args(["release", "keygen", "--out"])
        .arg(&key)
        .output()?;
    ensure!(
        out.status.success(),
        "release keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = String::from_utf8_lossy(&out.stdout).trim().to_string();
    ensure!(public.len() == 44, "a base64 Ed25519 public key: {public}");
    Ok((key, public))
}

/// `passthru-agent release sign` of `package` (its version asked of it unless given); the
/// signed manifest's path.
fn sign(key: &Path, package: &Path, version: Option<&str>) -> anyhow::Result<PathBuf> {
    let sig = package.with_extension(format!(
        "{}sig",
        version.map(|v| format!("{v}.")).unwrap_or_default()
    ));
    let mut c = Command::new(bin("passthru-agent"));
    c.args(["release", "sign", "--key"])
        .arg(key)
        .arg("--package")
        .arg(package)
        .arg("--out")
        .arg(&sig);
    if let Some(v) = version {
        c.args(["--version", v]);
    }
    let out = c.output()?;
    ensure!(
        out.status.success(),
        "release sign failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(sig)
}

/// `agents release add PACKAGE SIG`.
fn publish(cloud: &Cloud, package: &Path, sig: &Path) -> anyhow::Result<String> {
    let package = package.display().to_string();
    let sig = sig.display().to_string();
    cloud.admin(&["agents", "release", "add", &package, &sig])
}

/// A package that is a shell script (executable).
fn script(dir: &Path, name: &str, body: &str) -> anyhow::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(name);
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(path)
}

/// The `[updates]` table pinning `public_key`, with the tests' short intervals.
fn updates_table(public_key: &str) -> String {
    format!(
        "[updates]\npublic_key = \"{public_key}\"\ncheck_interval_seconds = {CHECK_SECONDS}\n\
         rollback_after_seconds = {ROLLBACK_SECONDS}"
    )
}

/// Waits (at most `limit`) until the agent's admin log has a line containing every one of
/// `needles`; returns that line.
async fn admin_line(agent: &Agent, needles: &[&str], limit: Duration) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let log = agent.admin_log();
        if let Some(line) = log.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return Ok(line.to_string());
        }
        if started.elapsed() > limit {
            bail!(
                "no admin log line with {needles:?} within {limit:?}:\n{log}\n--- agent log:\n{}",
                agent.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The cloud's view of `agent` (`agents list --json`).
fn listed(cloud: &Cloud, agent: &Agent) -> anyhow::Result<Value> {
    let id = agent.id()?;
    let v: Value = serde_json::from_str(&cloud.admin(&["--json", "agents", "list"])?)?;
    v["agents"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["id"] == id.as_str()).cloned())
        .ok_or_else(|| anyhow!("agent {id} is not listed: {v}"))
}

/// Waits (at most `limit`) until the cloud lists `agent` as active with `version`.
async fn wait_version(
    cloud: &Cloud,
    agent: &Agent,
    version: &str,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let a = listed(cloud, agent)?;
        if a["status"] == "Active" && a["version"] == version {
            return Ok(started.elapsed());
        }
        if started.elapsed() > limit {
            bail!(
                "the cloud does not list the agent active with version {version} within {limit:?}: {a}\n--- admin log:\n{}\n--- agent log:\n{}",
                agent.admin_log(),
                agent.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A user of the forest who can sign in.
async fn user(corp: &bed::BedForest, prefix: &str) -> anyhow::Result<TestUser> {
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let good = TestUser::with(
        &format!("{prefix}{tag}"),
        &format!("{prefix}{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Up"),
        "Update Test",
    );
    admin.create_user(&good).await?;
    Ok(good)
}

/// One sign-in that must succeed.
async fn signs_in(t: &PtaTenant, u: &TestUser) -> anyhow::Result<()> {
    let answer = t.sign_in()?.password(TENANT, &u.upn, &u.password).await?;
    ensure!(answer.ok(), "the sign-in failed: {answer:?}");
    Ok(())
}

/// The cloud with a registered agent `A` that pins `public_key` (running) and pass-through
/// authentication on.
async fn cloud_with_updating_agent(
    corp: &bed::BedForest,
    label: &str,
    public_key: &str,
) -> anyhow::Result<(PtaTenant, Agent)> {
    let mut t = PtaSetup::new(&fresh_dir(label)?, corp)
        .serve_args(&["--heartbeat-seconds", "2"])
        .agent(AgentStage::Registered)
        .pta(false)
        .start()?;
    let mut a = t.take_agent()?;
    a.append_config(&updates_table(public_key))?;
    a.run()?;
    t.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    Ok((t, a))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_version_is_picked_up_with_no_sign_in_lost() -> anyhow::Result<()> {
    let (fixture, new_version) = update_fixture()?;
    let corp = bed::corp()?;
    let good = user(&corp, "upd").await?;
    let keys = fresh_dir("agent-update-keys")?;
    let (key, public) = keygen(&keys, "release.key")?;
    let (t, mut a) = cloud_with_updating_agent(&corp, "agent-update", &public).await?;
    // B serves while A updates: it pins no key, so it never updates (and says so).
    let b = t.start_agent(&[ForestEntry::for_forest(&corp)])?;
    t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
    t.enable_pta()?;
    admin_line(&b, &["[update]", "no key"], Duration::from_secs(5)).await?;
    let old_version = listed(&t.cloud, &a)?["version"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    ensure!(
        old_version != new_version,
        "the fixture's version is another: {old_version}"
    );
    let first_pid = a.pid().ok_or_else(|| anyhow!("A is not running"))?;

    // The release: the fixture, its version asked of it.
    let package = keys.join("passthru-agent");
    std::fs::copy(&fixture, &package)?;
    let sig = sign(&key, &package, None)?;

    let load = Load::start(
        LoadSpec {
            tenant: TENANT.to_string(),
            clients: 4,
            period: Duration::from_millis(150),
            credentials: vec![Credential::right(&good.upn, &good.password)],
            duration: None,
        },
        || t.sign_in(),
    )?;
    let outcome: anyhow::Result<Duration> = async {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let added = publish(&t.cloud, &package, &sig)?;
        ensure!(
            added.contains(&format!("Added release {new_version}")),
            "{added}"
        );
        let took = wait_version(&t.cloud, &a, &new_version, Duration::from_secs(120)).await?;
        // Keep the load on the new version a little.
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(took)
    }
    .await;
    let report = load.stop().await?;
    let took = outcome?;
    eprintln!("update: agent A runs {new_version} after {took:?}");
    let summary = report.print("sign-ins across the update of agent A");
    ensure!(summary.attempted > 100, "too few sign-ins: {summary}");
    report.check_served(&[])?;
    ensure!(
        summary.succeeded == summary.attempted,
        "every sign-in succeeds across the update: {summary}"
    );

    // Every step in A's admin log, in order.
    let log = a.admin_log();
    let mut at = 0;
    for step in [
        format!("update check found version {new_version} (this agent runs {old_version})"),
        format!("downloaded version {new_version}"),
        format!("verified version {new_version}"),
        format!("staged version {new_version}"),
        format!("applying version {new_version}"),
        format!("swapped to version {new_version}"),
    ] {
        let found = log[at..].find(&step).ok_or_else(|| {
            anyhow!("no '{step}' after the earlier steps in the admin log:\n{log}")
        })?;
        at += found;
    }
    // The first process handed over and exited; the new version holds the state dir.
    let status = a.exit_status();
    ensure!(
        status.is_some_and(|s| s.success()),
        "the old process exits 0 after the hand-over: {status:?}"
    );
    let holder = a.lock_holder();
    ensure!(
        holder.is_some_and(|p| p != first_pid),
        "the new version holds the state dir: {holder:?} (first pid {first_pid})"
    );
    let current = std::fs::read_link(a.state_dir.join("updates/current"))?;
    ensure!(
        current == Path::new(&format!("passthru-agent-{new_version}")),
        "{current:?}"
    );
    ensure!(
        !b.admin_log().contains("swapped"),
        "B never updates:\n{}",
        b.admin_log()
    );

    // A restart of the installed binary starts the staged version again (verified again).
    a.stop_with(15);
    ensure!(a.lock_holder().is_none(), "A stopped");
    a.run()?;
    admin_line(
        &a,
        &[
            &format!("starting the staged version {new_version}"),
            "verified again",
        ],
        Duration::from_secs(20),
    )
    .await?;
    wait_version(&t.cloud, &a, &new_version, Duration::from_secs(30)).await?;
    signs_in(&t, &good).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_releases_are_refused_or_rolled_back_and_the_agent_keeps_serving() -> anyhow::Result<()>
{
    let (fixture, fixture_version) = update_fixture()?;
    let corp = bed::corp()?;
    let good = user(&corp, "rfs").await?;
    let keys = fresh_dir("agent-update-refusals-keys")?;
    let (key, public) = keygen(&keys, "release.key")?;
    let (other_key, _) = keygen(&keys, "other.key")?;
    let (t, a) = cloud_with_updating_agent(&corp, "agent-update-refusals", &public).await?;
    t.enable_pta()?;
    signs_in(&t, &good).await?;
    let pid = a.pid().ok_or_else(|| anyhow!("A is not running"))?;
    let version = listed(&t.cloud, &a)?["version"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_default();
    let remove = |v: &str| t.cloud.admin(&["agents", "release", "remove", v]);
    let step = Duration::from_secs(30);

    // The cloud refuses a package that is not the one signed (same size, other bytes).
    let signed = script(&keys, "signed", "exit 0")?;
    let sig_of_signed = sign(&key, &signed, Some("40.0.0"))?;
    let same_size = script(&keys, "same-size", "exit 1")?;
    let refused = publish(&t.cloud, &same_size, &sig_of_signed);
    let text = refused.err().map(|e| format!("{e:#}")).unwrap_or_default();
    ensure!(
        text.contains("SHA-256") && text.contains("not the package that was signed"),
        "a package that is not the signed one is refused: {text}"
    );

    // 1. Signed with another key: bad signature. Not even offered while the policy is off.
    t.cloud
        .admin(&["settings", "set", "agent_updates", "off"])?;
    let package = keys.join("passthru-agent");
    std::fs::copy(&fixture, &package)?;
    let wrong = sign(&other_key, &package, None)?;
    publish(&t.cloud, &package, &wrong)?;
    tokio::time::sleep(Duration::from_secs(3 * CHECK_SECONDS)).await;
    ensure!(
        !a.admin_log().contains("bad signature"),
        "nothing is offered while agent_updates is off:\n{}",
        a.admin_log()
    );
    t.cloud
        .admin(&["settings", "set", "agent_updates", "auto"])?;
    admin_line(
        &a,
        &["[update]", "refused an offered release: bad signature"],
        step,
    )
    .await?;
    remove(&fixture_version)?;

    // 2. A package tampered with in the cloud's store: digest mismatch.
    let tampered = script(&keys, "tampered", "exit 0")?;
    let sig = sign(&key, &tampered, Some("50.0.0"))?;
    publish(&t.cloud, &tampered, &sig)?;
    tamper(&t.cloud, "50.0.0").await?;
    admin_line(
        &a,
        &["[update]", "refused version 50.0.0: digest mismatch"],
        step,
    )
    .await?;
    remove("50.0.0")?;

    // 3. Older than the agent: downgrade.
    let old = script(&keys, "old", "exit 0")?;
    let sig = sign(&key, &old, Some("0.0.1"))?;
    publish(&t.cloud, &old, &sig)?;
    admin_line(
        &a,
        &["[update]", "refused version 0.0.1: downgrade", &version],
        step,
    )
    .await?;
    remove("0.0.1")?;
    signs_in(&t, &good).await?;
    ensure!(a.lock_holder() == Some(pid), "nothing replaced A so far");

    // 4. A new version that never connects: rolled back after the deadline, and never tried
    // again.
    let hangs = script(&keys, "hangs", "exec sleep 600")?;
    let sig = sign(&key, &hangs, Some("60.0.0"))?;
    publish(&t.cloud, &hangs, &sig)?;
    admin_line(
        &a,
        &[
            "[update]",
            "rolled back version 60.0.0",
            &format!("did not connect to the cloud within {ROLLBACK_SECONDS} s"),
            &format!("version {version} serves again"),
        ],
        Duration::from_secs(60),
    )
    .await?;
    let refused: Value =
        serde_json::from_slice(&std::fs::read(a.state_dir.join("updates/refused.json"))?)
            .context("updates/refused.json")?;
    ensure!(
        refused["refused"][0]["version"] == "60.0.0",
        "the version is refused from now on: {refused}"
    );
    ensure!(
        !a.state_dir.join("updates/current").exists(),
        "current still the installed binary"
    );
    admin_line(
        &a,
        &[
            "[update]",
            "refused version 60.0.0: it was rolled back before",
        ],
        step,
    )
    .await?;
    wait_version(&t.cloud, &a, &version, Duration::from_secs(30)).await?;
    signs_in(&t, &good).await?;
    ensure!(
        a.lock_holder() == Some(pid),
        "the agent that rolled back is the one that serves"
    );
    let log = a.admin_log();
    ensure!(
        log.matches("rolled back version 60.0.0").count() == 1,
        "one trial only:\n{log}"
    );
    Ok(())
}

/// Replaces the package of `version` in the cloud's store with other bytes of the same
/// length (what a compromised store could serve): the agent must refuse it.
async fn tamper(cloud: &Cloud, version: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let db = cloud.data_dir.join("passthru.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await?;
    let (package,): (Vec<u8>,) =
        sqlx::query_as("SELECT package FROM agent_releases WHERE version = ?")
            .bind(version)
            .fetch_one(&mut conn)
            .await?;
    let mut evil = package.clone();
    if let Some(last) = evil.last_mut() {
        *last ^= 0x20;
    }
    let done = sqlx::query("UPDATE agent_releases SET package = ? WHERE version = ?")
        .bind(&evil)
        .bind(version)
        .execute(&mut conn)
        .await?;
    ensure!(done.rows_affected() == 1, "one package tampered with");
    conn.close().await?;
    Ok(())
}
