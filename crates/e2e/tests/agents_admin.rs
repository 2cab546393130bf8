//! Agent administration end to end: `agents list` health and statistics (kept when the agent
//! goes away, and across a restart of the cloud), the inactive rule (no heartbeat for two
//! intervals), revocation of a connected agent, and the Prometheus metrics of the management
//! listener. Real `passthru-cloud` and `passthru-agent` processes, real TLS, the shared Samba
//! AD test bed.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use passthru_testkit::bed;
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::procs::{fresh_dir, Cloud, ForestEntry};
use passthru_testkit::users::AccountState;
use serde_json::Value;

/// The cloud is started with `--heartbeat-seconds 2` (see `procs.rs`).
const HEARTBEAT: Duration = Duration::from_secs(2);

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn agents(cloud: &Cloud) -> anyhow::Result<Vec<Value>> {
    let v: Value = serde_json::from_str(&cloud.admin(&["--json", "agents", "list"])?)?;
    v["agents"]
        .as_array()
        .cloned()
        .ok_or_else(|| anyhow!("no agents array: {v}"))
}

fn agent(cloud: &Cloud, id: &str) -> anyhow::Result<Value> {
    agents(cloud)?
        .into_iter()
        .find(|a| a["id"] == id)
        .ok_or_else(|| anyhow!("agent {id} is not listed"))
}

/// Polls `agents list` until `agent`'s entry satisfies `ok`.
fn wait_agent(
    cloud: &Cloud,
    id: &str,
    timeout: Duration,
    ok: impl Fn(&Value) -> bool,
) -> anyhow::Result<(Value, Duration)> {
    let started = Instant::now();
    loop {
        let a = agent(cloud, id)?;
        if ok(&a) {
            return Ok((a, started.elapsed()));
        }
        if started.elapsed() > timeout {
            bail!("agent {id} did not reach the expected state: {a}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

async fn metrics(http: &reqwest::Client, addr: &str) -> anyhow::Result<String> {
    let r = http.get(format!("http://{addr}/metrics")).send().await?;
    assert!(r.status().is_success(), "{}", r.status());
    let ct = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    Ok(r.text().await?)
}

/// The value of the first sample line starting with `prefix` (name and labels).
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_list_inactive_revoke_and_metrics() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("agents-admin")?;
    let mut t = PtaSetup::new(&dir, &corp).start()?;
    // The management listener: restart the cloud with it (same port; the agent reconnects).
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    t.cloud.stop();
    t.cloud.set_serve_args(&["--metrics-listen", &metrics_addr]);
    t.cloud.serve()?;
    t.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    let mut first = t.take_agent()?;
    let first_id = first.id()?;
    let client = t.sign_in()?;

    // The public port does not serve the metrics.
    let https = passthru_testkit::http::client(&t.cloud.ca_file())?;
    let r = https.get(format!("{}/metrics", t.cloud.url)).send().await?;
    assert!(!r.status().is_success(), "{}", r.status());

    // Sign-ins through the agent: good passwords, a wrong one (1326, on a spare user so that
    // nobody gets locked out; its good sign-in after resets the bad-password count) and a
    // locked-out account's own password (1909: only read, its state does not change).
    let good = corp.user("good")?;
    let spare = corp.user("spare7")?;
    let locked = corp
        .users
        .iter()
        .find(|u| u.state == AccountState::LockedOut)
        .ok_or_else(|| anyhow!("no locked-out user in the test bed"))?;
    for _ in 0..3 {
        let r = client
            .password("contoso", &good.upn, &good.password)
            .await?;
        assert!(r.ok(), "{:?}", r.body);
    }
    let r = client
        .password("contoso", &spare.upn, "Wrong-Passw0rd!")
        .await?;
    assert_eq!(r.code(), Some(50126), "{:?}", r.body);
    let r = client
        .password("contoso", &spare.upn, &spare.password)
        .await?;
    assert!(r.ok(), "{:?}", r.body);
    let r = client
        .password("contoso", &locked.upn, &locked.password)
        .await?;
    assert_eq!(r.code(), Some(50053), "{:?}", r.body);
    let sent = 6;

    // agents list: every field.
    let a = agent(&t.cloud, &first_id)?;
    assert_eq!(a["status"], "Active", "{a}");
    assert_eq!(a["version"], env!("CARGO_PKG_VERSION"), "{a}");
    assert!(a["host"].as_str().is_some_and(|h| !h.is_empty()), "{a}");
    assert_eq!(a["source_ip"], "127.0.0.1", "{a}");
    let forests: Vec<&str> = a["forests"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        forests.contains(&corp.upn_suffix.to_ascii_lowercase().as_str()),
        "{a}"
    );
    let expires = a["cert_expires_at"].as_i64().unwrap_or(0);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?;
    assert!(expires > now + 86_400, "{a}");
    assert!(a["requests_served"].as_u64().unwrap_or(0) >= sent, "{a}");
    assert!(a["failures"]["1326"].as_u64().unwrap_or(0) >= 1, "{a}");
    assert!(a["failures"]["1909"].as_u64().unwrap_or(0) >= 1, "{a}");
    let p50 = a["round_trip_ms"]["p50"].as_f64().unwrap_or(0.0);
    let p99 = a["round_trip_ms"]["p99"].as_f64().unwrap_or(0.0);
    assert!(p50 > 0.0 && p99 >= p50, "{a}");
    // The text form carries the same.
    let text = t.cloud.admin(&["agents", "list"])?;
    assert!(
        text.lines()
            .any(|l| l.contains(&first_id) && l.contains("Active") && l.contains("1326:")),
        "{text}"
    );

    // Metrics: sign-ins by result and AADSTS, the round-trip histogram, agents connected, and
    // the agent's own counters (they come with its next heartbeat).
    let http = https.clone();
    let deadline = Instant::now() + HEARTBEAT * 5;
    let m = loop {
        let m = metrics(&http, &metrics_addr).await?;
        if m.contains(r#"outcome="denied",win32="1326""#) {
            break m;
        }
        if Instant::now() > deadline {
            bail!("the agent's counters did not reach the cloud:\n{m}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let signins_ok = m
        .lines()
        .filter(|l| l.starts_with("passthru_signins_total{") && l.contains(r#"result="success""#))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(signins_ok >= 4.0, "{m}");
    assert!(
        m.lines()
            .any(|l| l.starts_with("passthru_signins_total{") && l.contains(r#"aadsts="50126""#)),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("passthru_pass_through_round_trip_seconds_bucket{")),
        "{m}"
    );
    let rt_count = m
        .lines()
        .find(|l| l.starts_with("passthru_pass_through_round_trip_seconds_count{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(rt_count >= sent as f64, "{m}");
    assert_eq!(sample(&m, "passthru_agents_connected{"), Some(1.0), "{m}");
    assert!(
        m.lines().any(|l| l.starts_with("passthru_agent_in_flight{")
            && l.contains(&format!(r#"agent="{first_id}""#))),
        "{m}"
    );
    assert!(
        m.lines()
            .any(|l| l.starts_with("passthru_agent_validations_total{")
                && l.contains(r#"outcome="success""#)
                && l.contains(&format!(r#"agent="{first_id}""#))),
        "{m}"
    );
    assert!(
        m.contains("passthru_agent_directory_requests_total{"),
        "{m}"
    );
    // The agent's domain controllers: up, in the metrics and in the agents list.
    assert!(
        m.lines()
            .any(|l| l.starts_with("passthru_agent_domain_controller_up{")
                && l.contains(&format!(r#"agent="{first_id}""#))
                && l.ends_with(" 1")),
        "{m}"
    );
    let a = agent(&t.cloud, &first_id)?;
    let dcs = a["domain_controllers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !dcs.is_empty()
            && dcs
                .iter()
                .all(|d| d["up"] == true
                    && d["url"].as_str().is_some_and(|u| u.starts_with("ldaps://"))),
        "{a}"
    );
    assert!(
        !m.contains("sync"),
        "no sync metrics: sync does not exist yet\n{m}"
    );

    // Revoking a connected agent: a second agent joins, serves, and is revoked (not the last
    // active one, so no --force). Its stream closes at once, it cannot reconnect, and the
    // cloud routes nothing more to it.
    let mut second = t.start_agent(&[ForestEntry::for_forest(&corp)])?;
    let second_id = second.id()?;
    t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
    t.cloud.admin(&["agents", "revoke", &second_id])?;
    let (revoked, _) = wait_agent(&t.cloud, &second_id, Duration::from_secs(5), |a| {
        a["status"] == "Revoked"
    })?;
    assert_eq!(revoked["revoked"], true, "{revoked}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !t.cloud.log().contains("revoked by an administrator") {
        assert!(Instant::now() < deadline, "{}", t.cloud.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // It tries again (backoff 0.5 s..) and is refused.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !second.log().contains("This agent has been revoked") {
        assert!(
            Instant::now() < deadline,
            "the revoked agent was not refused on reconnecting:\n{}",
            second.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let served_by_second = revoked["requests_served"].as_u64().unwrap_or(0);
    for _ in 0..4 {
        let r = client
            .password("contoso", &good.upn, &good.password)
            .await?;
        assert!(r.ok(), "{:?}", r.body);
    }
    let after = agent(&t.cloud, &second_id)?;
    assert_eq!(after["status"], "Revoked", "{after}");
    assert_eq!(
        after["requests_served"].as_u64().unwrap_or(0),
        served_by_second,
        "a revoked agent gets no work: {after}"
    );
    let m = metrics(&http, &metrics_addr).await?;
    assert_eq!(sample(&m, "passthru_agents_connected{"), Some(1.0), "{m}");
    second.stop_with(15);

    // The inactive rule: the first agent is frozen (SIGSTOP: its connection stays open but
    // silent) and shows as inactive within two heartbeat intervals.
    let served_before = agent(&t.cloud, &first_id)?["requests_served"]
        .as_u64()
        .unwrap_or(0);
    let pid = first
        .pid()
        .ok_or_else(|| anyhow!("the first agent is not running"))?;
    let stopped = Command::new("kill")
        .args(["-STOP", &pid.to_string()])
        .status()?;
    assert!(stopped.success());
    let waited = wait_agent(&t.cloud, &first_id, HEARTBEAT * 4, |a| {
        a["status"] == "Inactive"
    });
    let _ = Command::new("kill")
        .args(["-CONT", &pid.to_string()])
        .status();
    let (inactive, took) = waited?;
    assert!(took <= HEARTBEAT * 3, "inactive after {took:?}");
    // Its figures stay.
    assert!(
        inactive["requests_served"].as_u64().unwrap_or(0) >= served_before,
        "{inactive}"
    );
    assert!(
        inactive["failures"]["1326"].as_u64().unwrap_or(0) >= 1,
        "{inactive}"
    );
    first.stop_with(15);

    // The figures are in the store: they survive a restart of the cloud.
    t.cloud.stop();
    t.cloud.serve()?;
    let a = agent(&t.cloud, &first_id)?;
    assert_eq!(a["status"], "Inactive", "{a}");
    assert!(
        a["requests_served"].as_u64().unwrap_or(0) >= served_before,
        "{a}"
    );
    assert!(a["failures"]["1909"].as_u64().unwrap_or(0) >= 1, "{a}");
    assert!(
        a["round_trip_ms"]["p99"].as_f64().unwrap_or(0.0) > 0.0,
        "{a}"
    );
    assert!(
        a["forests"].as_array().is_some_and(|f| !f.is_empty()),
        "the forests it last announced: {a}"
    );
    Ok(())
}

/// Two cloud instances share one PostgreSQL store and a bus. The agent is connected to the
/// first; the bus is down (nats-server killed), so an administrator's revocation through the
/// second cannot be announced: the first finds it in the store at its next heartbeat and
/// drops the agent within two heartbeat intervals.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_revoked_by_another_cloud_process_is_dropped_at_a_heartbeat() -> anyhow::Result<()>
{
    let corp = bed::corp()?;
    let dir = fresh_dir("agents-revoked-elsewhere")?;
    let db = passthru_testkit::cluster::TestDatabase::create("revoked_elsewhere")?;
    let mut nats = passthru_testkit::cluster::NatsServer::start(&dir.join("nats"))?;
    let mut t = PtaSetup::new(&dir, &corp)
        .store(&db.url)
        .bus(&nats.url())
        .start()?;
    let mut agent = t.take_agent()?;
    let id = agent.id()?;
    let other = t.cloud.another_instance(&dir.join("second-instance"))?;
    nats.kill();
    // The instances notice the bus is gone (their connections to it were reset).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = t.cloud.log();
    let revoked_at = Instant::now();
    let answer: Value =
        serde_json::from_str(&other.admin(&["--json", "agents", "revoke", &id, "--force"])?)?;
    assert_eq!(
        answer["connections_closed"], 0,
        "the second instance has no connection of the agent to close, and cannot reach the first: {answer}"
    );
    // The agent is told why and its connection ends within two heartbeat intervals.
    while !agent
        .log()
        .contains("this agent has been revoked by an administrator")
    {
        assert!(
            revoked_at.elapsed() < HEARTBEAT * 2 + Duration::from_secs(1),
            "the first instance did not drop the revoked agent within two heartbeats:\nagent:\n{}\ncloud:\n{}",
            agent.log(),
            t.cloud.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The cloud logs why as the connection ends (the agent may have logged the goodbye a
    // moment before).
    let logged = Instant::now() + Duration::from_secs(3);
    while !t.cloud.log()[before.len()..].contains("revoked (found at a heartbeat)") {
        assert!(Instant::now() < logged, "{}", t.cloud.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Its reconnection is refused.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !agent.log().contains("This agent has been revoked") {
        assert!(Instant::now() < deadline, "{}", agent.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let client = t.sign_in()?;
    let good = corp.user("good")?;
    let r = client
        .password("contoso", &good.upn, &good.password)
        .await?;
    assert_eq!(
        r.code(),
        Some(80001),
        "no agent serves any more: {:?}",
        r.body
    );
    agent.stop_with(15);
    Ok(())
}
