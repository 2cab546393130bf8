//! Pass-through sign-in end to end: the real `passthru-cloud` and `passthru-agent` processes,
//! real TLS, the real SQLite store, and real Samba AD forests from the test bed.

use std::time::{Duration, Instant};

use passthru_testkit::bed::{self, BedForest};

use passthru_testkit::http::{self, password_grant, verify_with_jwks};
use passthru_testkit::procs::{
    fresh_dir, listening_sockets, recorded_secret, Agent, Cloud, ForestEntry,
};

const SCOPE: &str = "openid profile offline_access";

fn entry(f: &BedForest, dcs: Vec<String>) -> ForestEntry {
    ForestEntry {
        name: f.dns_name.clone(),
        upn_suffixes: vec![f.upn_suffix.clone()],
        domain_controllers: dcs,
        ca_file: f.ca_file.clone(),
    }
}

/// A cloud with one tenant, a managed domain for `forest`, a public app and one running agent;
/// PTA left off.
struct Setup {
    cloud: Cloud,
    client_id: String,
    http: reqwest::Client,
    dir: std::path::PathBuf,
}

fn setup(label: &str, forest: &BedForest) -> anyhow::Result<Setup> {
    let dir = fresh_dir(label)?;
    let admin_pw = recorded_secret("Adm1n");
    let cloud = Cloud::start(
        &dir,
        "contoso",
        "admin@contoso.example",
        &admin_pw,
        "127.0.0.1:0",
    )?;
    cloud.admin(&["domain", "add", &forest.upn_suffix])?;
    let client_id = cloud
        .admin(&["app", "add", "Test app", "--public"])?
        .trim()
        .to_string();
    assert_eq!(
        client_id.len(),
        36,
        "app add prints only the client id: {client_id:?}"
    );
    let http = http::client(&cloud.ca_file())?;
    Ok(Setup {
        cloud,
        client_id,
        http,
        dir,
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_account_state_gives_its_code() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let s = setup("states", &corp)?;
    let good = corp.user("good")?;

    // PTA off: a managed-domain user has no password in the cloud.
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &good.upn,
        &good.password,
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(50056), "{:?}", r.body);

    // Enabling needs an active agent.
    let out = s.cloud.admin_as(
        "contoso",
        &s.cloud.admin_upn,
        &s.cloud.admin_password,
        &["pta", "enable"],
    )?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "The enabling of the feature failed because there were no connectors available"
        ),
        "{err}"
    );

    let mut agent = Agent::register(
        &s.cloud,
        &s.dir,
        "contoso",
        &s.cloud.admin_upn,
        &s.cloud.admin_password,
        &[entry(&corp, vec![corp.ldaps_url.clone()])],
    )?;
    agent.run()?;
    s.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    let pid = agent
        .pid()
        .ok_or_else(|| anyhow::anyhow!("agent not running"))?;
    assert!(
        listening_sockets(pid)?.is_empty(),
        "the agent must own no listening socket"
    );
    s.cloud.admin(&["pta", "enable"])?;
    let status = s.cloud.admin(&["pta", "status"])?;
    assert!(status.contains("enabled"), "{status}");

    // Every account state of the test bed.
    let mut checked = 0;
    for u in corp.users.iter().filter(|u| u.state.expected().is_some()) {
        let Some(win32) = u.state.expected().map(|w| w.code()) else {
            continue;
        };
        let r = password_grant(
            &s.http,
            &s.cloud.url,
            "contoso",
            &s.client_id,
            &u.upn,
            &u.password,
            SCOPE,
        )
        .await?;
        let want = passthru_proto::Win32::from_code(win32)
            .map(|w| u64::from(w.aadsts().code()))
            .ok_or_else(|| anyhow::anyhow!("unknown code {win32}"))?;
        assert_eq!(
            r.code(),
            Some(want),
            "user {} ({}): {:?}",
            u.upn,
            u.state,
            r.body
        );
        let desc = r.body["error_description"].as_str().unwrap_or_default();
        assert!(desc.starts_with(&format!("AADSTS{want}: ")), "{desc}");
        for field in ["timestamp", "trace_id", "correlation_id"] {
            assert!(r.body[field].is_string(), "missing {field}");
        }
        let trace = agent.trace();
        assert!(
            trace.lines().any(|l| l
                .contains("Passthrough Authentication request failed. RequestId: '")
                && l.ends_with(&format!("Reason: '{win32}'."))),
            "no trace line for {} with {win32}:\n{trace}",
            u.upn
        );
        checked += 1;
    }
    assert!(
        checked >= 6,
        "the test bed has too few account states ({checked})"
    );

    // Good passwords, including special and non-ASCII characters, give verifiable tokens with
    // a stable oid.
    let mut oids = Vec::new();
    for u in corp
        .users
        .iter()
        .filter(|u| u.state.expected().is_none() && !u.sam.starts_with("spare"))
    {
        let r = password_grant(
            &s.http,
            &s.cloud.url,
            "contoso",
            &s.client_id,
            &u.upn,
            &u.password,
            SCOPE,
        )
        .await?;
        assert!(r.ok(), "user {} should sign in: {:?}", u.upn, r.body);
        let id_token = r.body["id_token"].as_str().unwrap_or_default();
        let claims =
            verify_with_jwks(&s.http, &s.cloud.url, "contoso", id_token, &s.client_id).await?;
        for c in [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "nbf",
            "oid",
            "tid",
            "preferred_username",
            "name",
        ] {
            assert!(!claims[c].is_null(), "claim {c} missing: {claims}");
        }
        assert_eq!(claims["ver"], "2.0");
        assert_eq!(
            claims["preferred_username"]
                .as_str()
                .map(str::to_ascii_lowercase),
            Some(u.upn.to_ascii_lowercase())
        );
        assert!(r.body["refresh_token"].is_string());
        assert!(r.body["client_info"].is_string());
        let again = password_grant(
            &s.http,
            &s.cloud.url,
            "contoso",
            &s.client_id,
            &u.upn,
            &u.password,
            SCOPE,
        )
        .await?;
        let claims2 = verify_with_jwks(
            &s.http,
            &s.cloud.url,
            "contoso",
            again.body["id_token"].as_str().unwrap_or_default(),
            &s.client_id,
        )
        .await?;
        assert_eq!(
            claims["oid"], claims2["oid"],
            "oid must be stable across sign-ins"
        );
        oids.push(claims["oid"].clone());
    }
    assert!(oids.len() >= 2);
    oids.dedup();
    assert!(oids.len() >= 2, "different users have different oids");

    // A wrong password (on a spare user, so no one else gets locked out) and an unknown user.
    let spare = corp.user("spare1")?;
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &spare.upn,
        "Wrong-Passw0rd!",
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(50126));
    let ghost = format!(
        "nobody-{}@{}",
        uuid::Uuid::new_v4().simple(),
        corp.upn_suffix
    );
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &ghost,
        "Whatever-1",
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(50126));
    // Empty password: refused before any bind.
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &spare.upn,
        "",
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(50126));

    // A managed domain no agent serves: not routable (80004).
    s.cloud
        .admin(&["domain", "add", "elsewhere.example.test"])?;
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        "x@elsewhere.example.test",
        "Whatever-1",
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(80004), "{:?}", r.body);

    // Cloud-only users sign in with their cloud password while PTA is on.
    let cloud_pw = recorded_secret("Cl0ud");
    let out = std::process::Command::new(passthru_testkit::procs::bin("passthru-cloud"))
        .args([
            "admin",
            "--url",
            &s.cloud.url,
            "--tenant",
            "contoso",
            "--ca-file",
        ])
        .arg(s.cloud.ca_file())
        .args(["user", "add", "helpdesk@contoso.example"])
        .env("PASSTHRU_ADMIN_UPN", &s.cloud.admin_upn)
        .env("PASSTHRU_ADMIN_PASSWORD", &s.cloud.admin_password)
        .env("PASSTHRU_USER_PASSWORD", &cloud_pw)
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        "helpdesk@contoso.example",
        &cloud_pw,
        SCOPE,
    )
    .await?;
    assert!(r.ok(), "{:?}", r.body);

    // The sign-in log has the Win32 code and the agent of a pass-through failure.
    let log = s.cloud.admin(&["--json", "signins", "list"])?;
    let v: serde_json::Value = serde_json::from_str(&log)?;
    let agent_id = agent.id()?;
    assert!(v["signins"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["win32"] == 1909
            && e["aadsts"] == 50053
            && e["agent_id"] == agent_id.as_str())));
    // The 1329 case tells the admin what to do.
    assert!(
        s.cloud.log().contains("'Log On To'"),
        "the cloud log should explain 1329"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_see_each_others_requests() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let fab = bed::fabrikam()?;
    let s = setup("tenants", &corp)?;
    let beta_pw = recorded_secret("B3ta");
    s.cloud.add_tenant("beta", "admin@beta.example", &beta_pw)?;
    let beta_admin = |args: &[&str]| -> anyhow::Result<String> {
        let out = s
            .cloud
            .admin_as("beta", "admin@beta.example", &beta_pw, args)?;
        anyhow::ensure!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(String::from_utf8_lossy(&out.stdout).to_string())
    };
    beta_admin(&["domain", "add", &fab.upn_suffix])?;
    let beta_client = beta_admin(&["app", "add", "Beta app", "--public"])?
        .trim()
        .to_string();

    let mut a = Agent::register(
        &s.cloud,
        &s.dir,
        "contoso",
        &s.cloud.admin_upn,
        &s.cloud.admin_password,
        &[entry(&corp, vec![corp.ldaps_url.clone()])],
    )?;
    a.run()?;
    let mut b = Agent::register(
        &s.cloud,
        &s.dir,
        "beta",
        "admin@beta.example",
        &beta_pw,
        &[entry(&fab, vec![fab.ldaps_url.clone()])],
    )?;
    b.run()?;
    s.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    s.cloud.admin(&["pta", "enable"])?;
    // Beta's admin cannot act on contoso.
    let out = s.cloud.admin_as(
        "contoso",
        "admin@beta.example",
        &beta_pw,
        &["agents", "list"],
    )?;
    assert!(!out.status.success());

    let good = corp.user("good")?;
    for _ in 0..5 {
        let r = password_grant(
            &s.http,
            &s.cloud.url,
            "contoso",
            &s.client_id,
            &good.upn,
            &good.password,
            SCOPE,
        )
        .await?;
        assert!(r.ok(), "{:?}", r.body);
    }
    let bad = corp.user("spare2")?;
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &bad.upn,
        "Wrong-Passw0rd!",
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(50126));
    // A FABRIKAM user is unknown to contoso.
    let fgood = fab.user("good")?;
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &fgood.upn,
        &fgood.password,
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(50034));
    // Beta's agent got nothing: its served counter is zero and its trace is empty.
    let list: serde_json::Value =
        serde_json::from_str(&beta_admin(&["--json", "agents", "list"])?)?;
    assert_eq!(list["agents"][0]["requests_served"], 0, "{list}");
    assert!(b.trace().is_empty());
    let alist: serde_json::Value =
        serde_json::from_str(&s.cloud.admin(&["--json", "agents", "list"])?)?;
    assert!(
        alist["agents"][0]["requests_served"].as_u64().unwrap_or(0) >= 6,
        "{alist}"
    );
    // Contoso's client id is unknown in beta.
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "beta",
        &s.client_id,
        &fgood.upn,
        &fgood.password,
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(700016));
    let _ = beta_client;

    // Agent A's certificate presented for tenant beta is refused.
    let beta_tid = serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(
        b.state_dir.join("agent.json"),
    )?)?["tenant_id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow::anyhow!("no tenant id"))?;
    a.stop_with(15);
    let agent_json = a.state_dir.join("agent.json");
    let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&agent_json)?)?;
    v["tenant_id"] = serde_json::Value::String(beta_tid);
    std::fs::write(&agent_json, serde_json::to_vec(&v)?)?;
    a.run()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !s
        .cloud
        .log()
        .contains("an agent certificate was presented for another tenant")
    {
        assert!(
            Instant::now() < deadline,
            "the cloud did not refuse the cross-tenant certificate:\n{}",
            s.cloud.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let list: serde_json::Value =
        serde_json::from_str(&beta_admin(&["--json", "agents", "list"])?)?;
    assert_eq!(list["agents"].as_array().map(Vec::len), Some(1), "{list}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn dc_failover_and_agent_outage() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let s = setup("failover", &corp)?;
    // First DC dead (nothing listens on port 1), second alive: success.
    let dead = "ldaps://127.0.0.1:1".to_string();
    let mut agent = Agent::register(
        &s.cloud,
        &s.dir,
        "contoso",
        &s.cloud.admin_upn,
        &s.cloud.admin_password,
        &[entry(&corp, vec![dead.clone(), corp.ldaps_url.clone()])],
    )?;
    agent.run()?;
    s.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    s.cloud.admin(&["pta", "enable"])?;
    let good = corp.user("good")?;
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &good.upn,
        &good.password,
        SCOPE,
    )
    .await?;
    assert!(r.ok(), "{:?}", r.body);

    // Agent stopped: 80001, well within the 10 s deadline.
    agent.stop_with(9);
    let started = Instant::now();
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &good.upn,
        &good.password,
        SCOPE,
    )
    .await?;
    let code = r.code();
    // The cloud may not have noticed the kill yet: then the request waits for the deadline
    // (80002) or goes nowhere (80001). Either way no hang past the deadline.
    assert!(matches!(code, Some(80001) | Some(80002)), "{:?}", r.body);
    assert!(started.elapsed() < Duration::from_secs(12));
    // Once the connection is gone, 80001 at once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let started = Instant::now();
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &good.upn,
        &good.password,
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(80001), "{:?}", r.body);
    assert!(started.elapsed() < Duration::from_secs(2));

    // An agent whose DCs are all unreachable: 80001.
    let mut blind = Agent::register(
        &s.cloud,
        &s.dir,
        "contoso",
        &s.cloud.admin_upn,
        &s.cloud.admin_password,
        &[entry(&corp, vec![dead, "ldaps://127.0.0.1:2".into()])],
    )?;
    blind.run()?;
    s.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    let r = password_grant(
        &s.http,
        &s.cloud.url,
        "contoso",
        &s.client_id,
        &good.upn,
        &good.password,
        SCOPE,
    )
    .await?;
    assert_eq!(r.code(), Some(80001), "{:?}", r.body);
    assert!(
        blind.trace().contains("Reason: '80001'."),
        "{}",
        blind.trace()
    );

    // A second agent on the same state dir refuses to start.
    let second = std::process::Command::new(passthru_testkit::procs::bin("passthru-agent"))
        .args(["run", "--state-dir"])
        .arg(&blind.state_dir)
        .arg("--config")
        .arg(&blind.config)
        .output()?;
    assert!(!second.status.success());
    Ok(())
}
