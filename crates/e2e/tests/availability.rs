//! High availability in the gateway, with real processes against the test bed's forest: an
//! agent that is stuck (SIGSTOP: its connection stays open but it answers nothing) loses no
//! sign-in. A request sent to it is re-sent to the other agent once the stuck agent has also
//! missed a ping (about 1.5 s), the sign-in log records both agents, the stuck agent gets no
//! new requests, and it serves again once it is heard from.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, ensure};
use passthru_testkit::bed;
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::procs::{fresh_dir, recorded_secret, ForestEntry};
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

fn signal(pid: u32, sig: &str) -> anyhow::Result<()> {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()?
        .success();
    ensure!(ok, "kill {sig} {pid} failed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_agent_loses_no_sign_in() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let good = TestUser::with(
        &format!("avail{tag}"),
        &format!("avail{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Av"),
        "Availability Test",
    );
    admin.create_user(&good).await?;
    let mut t = PtaSetup::new(&fresh_dir("availability")?, &corp).start()?;
    let mut stuck = t.take_agent()?;
    let _other = t.start_agent(&[ForestEntry::for_forest(&corp)])?;
    t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
    t.cloud
        .admin(&["settings", "set", "request_deadline_ms", "4000"])?;
    let stuck_id = stuck.id()?;
    let client = t.sign_in()?;
    let pid = stuck
        .pid()
        .ok_or_else(|| anyhow!("the agent is not running"))?;
    signal(pid, "-STOP")?;
    let outcome = async {
        // Pairs at once, so that least-in-flight dispatch gives the stuck agent its share.
        let mut worst = Duration::ZERO;
        // One wrong password, repeated: each agent binds it at most once (its memory of
        // recent wrong passwords), so AD's lockout threshold is never reached.
        for _ in 0..4 {
            let started = Instant::now();
            let (a, b) = tokio::join!(
                client.password("contoso", &good.upn, &good.password),
                client.password("contoso", &good.upn, "Wrong-Passw0rd-Again!")
            );
            worst = worst.max(started.elapsed());
            let (a, b) = (a?, b?);
            ensure!(
                a.ok(),
                "a right password while an agent is stuck: {:?}",
                a.body
            );
            ensure!(b.code() == Some(50126), "a wrong one: {:?}", b.body);
        }
        ensure!(
            worst < Duration::from_millis(3000),
            "worst latency {worst:?}: stuck-agent detection takes about 1.5 s"
        );
        eprintln!("availability: 8 sign-ins with an agent stuck, worst {worst:?}");
        Ok(())
    }
    .await;
    signal(pid, "-CONT")?;
    outcome?;
    let log: Value = serde_json::from_str(&t.cloud.admin(&[
        "--json", "signins", "list", "--user", &good.upn, "--top", "50",
    ])?)?;
    let lines = log["signins"].as_array().cloned().unwrap_or_default();
    let moved: Vec<&Value> = lines
        .iter()
        .filter(|l| {
            l["other_agents"]
                .as_array()
                .is_some_and(|a| a.iter().any(|x| x == stuck_id.as_str()))
        })
        .collect();
    ensure!(
        !moved.is_empty(),
        "a request was moved off the stuck agent: {log}"
    );
    ensure!(
        moved.iter().all(|l| l["agent_id"] != stuck_id.as_str()),
        "answered by the other agent: {log}"
    );
    ensure!(
        lines.iter().all(|l| l["agent_id"] != stuck_id.as_str()),
        "the stuck agent answered nothing: {log}"
    );
    let text = t
        .cloud
        .admin(&["signins", "list", "--user", &good.upn, "--top", "50"])?;
    ensure!(text.contains(&format!("(after {stuck_id})")), "{text}");

    // Heard from again, it serves again.
    let started = Instant::now();
    loop {
        let (a, b) = tokio::join!(
            client.password("contoso", &good.upn, &good.password),
            client.password("contoso", &good.upn, &good.password)
        );
        ensure!(a?.ok() && b?.ok());
        let log: Value = serde_json::from_str(&t.cloud.admin(&[
            "--json", "signins", "list", "--user", &good.upn, "--top", "4",
        ])?)?;
        let back = log["signins"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|l| l["agent_id"] == stuck_id.as_str());
        if back {
            break;
        }
        ensure!(
            started.elapsed() < Duration::from_secs(20),
            "the resumed agent serves again within 20 s: {log}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stuck.stop_with(15);
    admin.delete(&good.dn(&corp.base_dn)).await?;
    Ok(())
}

/// A tenant has at most `--max-agents-per-tenant` registered agents (40 by default, as in
/// Azure): one more is refused with what to do, and revoking one makes room. (The cloud here
/// runs on one thread, `serve --threads 1`, as the relay benchmark runs it.)
#[test]
fn registrations_stop_at_the_tenant_limit() -> anyhow::Result<()> {
    let dir = fresh_dir("agent-limit")?;
    let mut cloud = passthru_testkit::fixture::contoso_cloud(&dir)?;
    cloud.set_serve_args(&["--max-agents-per-tenant", "2", "--threads", "1"]);
    cloud.stop();
    cloud.serve()?;
    let register = |cloud: &passthru_testkit::procs::Cloud| {
        passthru_testkit::procs::Agent::register(
            cloud,
            &dir,
            &cloud.tenant,
            &cloud.admin_upn,
            &cloud.admin_password,
            &[],
        )
    };
    let first = register(&cloud)?;
    register(&cloud)?;
    let refused = register(&cloud)
        .err()
        .ok_or_else(|| anyhow!("a third agent was registered"))?;
    let text = format!("{refused:#}");
    ensure!(
        text.contains("the most it may have (2)") && text.contains("agents revoke"),
        "{text}"
    );
    cloud.admin(&["agents", "revoke", &first.id()?, "--force"])?;
    register(&cloud)?;
    Ok(())
}
