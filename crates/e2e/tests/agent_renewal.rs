//! Agent certificate renewal with real processes against the test bed's forest: the cloud
//! issues agent certificates valid for 2 minutes (`serve --agent-cert-lifetime 2m`), so both
//! agents renew theirs over their connections (a third of the lifetime left: about 80 s after
//! registration) while a sign-in load runs. Not one sign-in fails; each agent's state dir then
//! holds a new certificate and a new HPKE key; a copy of an agent's state dir taken before the
//! renewal is refused by the cloud (the old certificate is retired), so the old key is given
//! nothing to open.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use passthru_testkit::bed;
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::load::{Credential, Load, LoadSpec};
use passthru_testkit::procs::{bin, fresh_dir, recorded_secret, Agent, ForestEntry};
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

const TENANT: &str = "contoso";

fn read(agent: &Agent, file: &str) -> anyhow::Result<Vec<u8>> {
    Ok(std::fs::read(agent.state_dir.join(file))?)
}

/// `passthru-agent status --json` of `agent`'s state dir.
fn status(agent: &Agent) -> anyhow::Result<Value> {
    let out = std::process::Command::new(bin("passthru-agent"))
        .args(["status", "--json", "--state-dir"])
        .arg(&agent.state_dir)
        .output()?;
    ensure!(
        out.status.success(),
        "status --json failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Whether `agent` has renewed since `before` was taken, and its renewed set is current.
fn renewed(agent: &Agent, before: &Agent) -> anyhow::Result<bool> {
    Ok(
        read(agent, "client-cert.pem")? != read(before, "client-cert.pem")?
            && !agent.state_dir.join("renewed-client-cert.pem").exists(),
    )
}

/// Waits (at most 150 s: renewal is due about 80 s after registration) until every agent has
/// renewed since its copy in `before` was taken; returns how long it took.
async fn wait_renewed(agents: &[Agent], before: &[&Agent]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        let mut done = 0;
        for (a, b) in agents.iter().zip(before) {
            if renewed(a, b)? {
                done += 1;
            }
        }
        if done == agents.len() {
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(150) {
            let logs: Vec<String> = agents.iter().map(Agent::log).collect();
            bail!(
                "{done} of {} agents renewed in 150 s; agent logs:\n{}",
                agents.len(),
                logs.join("\n---\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_renew_their_certificates_under_load_losing_no_sign_in() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let good = TestUser::with(
        &format!("renew{tag}"),
        &format!("renew{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Rn"),
        "Renewal Test",
    );
    admin.create_user(&good).await?;
    let mut t = PtaSetup::new(&fresh_dir("agent-renewal")?, &corp)
        .serve_args(&["--agent-cert-lifetime", "2m", "--heartbeat-seconds", "2"])
        .start()?;
    let first = t.take_agent()?;
    let second = t.start_agent(&[ForestEntry::for_forest(&corp)])?;
    t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
    let agents = [first, second];
    let mut before = Vec::new();
    for a in &agents {
        let s = status(a)?;
        let days = s["cert_days_left"].as_i64();
        ensure!(days == Some(0), "a 2-minute certificate: {s}");
        ensure!(s["cert_not_after"].as_str().is_some(), "{s}");
        before.push((a.snapshot("before-renewal")?, s));
    }

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
    let outcome: anyhow::Result<()> = async {
        let took =
            wait_renewed(&agents, &before.iter().map(|(b, _)| b).collect::<Vec<_>>()).await?;
        eprintln!("renewal: both agents renewed after {took:?}");
        t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
        // The old certificate is refused (well before it would expire): an agent run from
        // the copy taken before the renewal cannot connect.
        let mut old = before[0].0.snapshot("rerun")?;
        old.run()?;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let log = old.log();
            if log.contains("403") && log.contains("no registered agent") {
                break;
            }
            ensure!(
                Instant::now() < deadline,
                "the retired certificate was not refused:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        old.stop_with(15);
        // Keep the load on the renewed connections a little.
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    }
    .await;
    let report = load.stop().await?;
    outcome?;
    let summary = report.print("sign-ins across the renewal of 2 agents");
    ensure!(summary.attempted > 100, "too few sign-ins: {summary}");
    report.check_served(&[])?;
    ensure!(
        summary.succeeded == summary.attempted,
        "every sign-in succeeds across the renewals: {summary}"
    );

    for (a, (b, old_status)) in agents.iter().zip(&before) {
        let now = status(a)?;
        ensure!(
            now["cert_not_after_unix"].as_i64() > old_status["cert_not_after_unix"].as_i64(),
            "a later expiry after the renewal: {old_status} then {now}"
        );
        ensure!(
            now["hpke_key_id"] != old_status["hpke_key_id"],
            "a new HPKE key: {now}"
        );
        ensure!(read(a, "hpke-key")? != read(b, "hpke-key")?);
        ensure!(read(a, "client-key.pem")? != read(b, "client-key.pem")?);
        let log = a.log();
        ensure!(
            log.contains("connected with the renewed certificate"),
            "the agent says it uses its renewed certificate:\n{log}"
        );
    }
    let cloud_log = t.cloud.log();
    ensure!(
        cloud_log
            .matches("the old certificate and key are retired")
            .count()
            >= 2,
        "the cloud retires both old certificates:\n{cloud_log}"
    );

    // Still two agents, both on their renewed certificates.
    t.cloud.wait_active_agents(2, Duration::from_secs(10))?;
    Ok(())
}

/// Two instances on PostgreSQL and NATS: both agents are connected to A and renew there while
/// the sign-ins arrive at B, which seals to the agents' keys as A's presence announces them
/// (so for up to a second after a renewal, to the old key). Not one sign-in fails: a request
/// B sealed to a retired key is never sent on the renewed connection, and B moves on.
#[tokio::test(flavor = "multi_thread")]
async fn agents_renewing_at_one_instance_lose_no_sign_in_made_at_another() -> anyhow::Result<()> {
    use passthru_testkit::cluster::{NatsServer, TestDatabase};
    use passthru_testkit::http::SignInClient;
    let corp = bed::corp()?;
    let dir = fresh_dir("agent-renewal-cluster")?;
    let db = TestDatabase::create("agent_renewal")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let mut t = PtaSetup::new(&dir, &corp)
        .store(&db.url)
        .bus(&nats.url())
        .serve_args(&["--agent-cert-lifetime", "2m", "--heartbeat-seconds", "2"])
        .start()?;
    let first = t.take_agent()?;
    let second = t.start_agent(&[ForestEntry::for_forest(&corp)])?;
    t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
    let b = t.cloud.another_instance(&dir.join("b"))?;
    b.wait_active_agents(2, Duration::from_secs(10))?;
    let agents = [first, second];
    let before = agents
        .iter()
        .map(|a| a.snapshot("before-renewal"))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let good = corp.user("good")?;
    let client_id = t.client_id()?.to_string();
    let load = Load::start(
        LoadSpec {
            tenant: TENANT.to_string(),
            clients: 4,
            period: Duration::from_millis(150),
            credentials: vec![Credential::right(&good.upn, &good.password)],
            duration: None,
        },
        || SignInClient::new(&b.ca_file(), &b.url, &client_id),
    )?;
    let waited: anyhow::Result<()> = async {
        wait_renewed(&agents, &before.iter().collect::<Vec<_>>()).await?;
        t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    }
    .await;
    let report = load.stop().await?;
    waited?;
    let summary = report.print("sign-ins at B across the renewal of 2 agents connected to A");
    ensure!(summary.attempted > 100, "too few sign-ins: {summary}");
    report.check_served(&[])?;
    ensure!(
        summary.succeeded == summary.attempted,
        "every sign-in succeeds across the renewals: {summary}"
    );
    ensure!(
        t.cloud
            .log()
            .matches("the old certificate and key are retired")
            .count()
            >= 2,
        "A retires both old certificates:\n{}",
        t.cloud.log()
    );
    Ok(())
}
