//! Pass-through sign-in end to end: the real `passthru-cloud` and `passthru-agent` processes,
//! real TLS, the real SQLite store, and real Samba AD forests from the test bed.

use std::time::{Duration, Instant};

use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::fixture::{AgentStage, PtaSetup, PtaTenant, ADMIN_UPN, TENANT};
use passthru_testkit::http::SignInClient;
use passthru_testkit::procs::{fresh_dir, listening_sockets, recorded_secret, Agent, ForestEntry};

/// A cloud with one tenant, a managed domain for `forest` and a public app; no agent, PTA
/// left off. With a sign-in client for the app.
fn setup(label: &str, forest: &BedForest) -> anyhow::Result<(PtaTenant, SignInClient)> {
    let t = PtaSetup::new(&fresh_dir(label)?, forest)
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let client_id = t.client_id()?;
    assert_eq!(
        client_id.len(),
        36,
        "app add prints only the client id: {client_id:?}"
    );
    let client = t.sign_in()?;
    Ok((t, client))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_account_state_gives_its_code() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let (t, client) = setup("states", &corp)?;
    let good = corp.user("good")?;

    // PTA off: a managed-domain user has no password in the cloud.
    let r = client
        .password("contoso", &good.upn, &good.password)
        .await?;
    assert_eq!(r.code(), Some(50056), "{:?}", r.body);

    // Enabling needs an active agent.
    let out = t.cloud.admin_as(
        "contoso",
        &t.cloud.admin_upn,
        &t.cloud.admin_password,
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

    let agent = t.start_agent(&[ForestEntry::for_forest(&corp)])?;
    let pid = agent
        .pid()
        .ok_or_else(|| anyhow::anyhow!("agent not running"))?;
    assert!(
        listening_sockets(pid)?.is_empty(),
        "the agent must own no listening socket"
    );
    t.enable_pta()?;
    let status = t.cloud.admin(&["pta", "status"])?;
    assert!(
        status.contains("enabled (1 active, 0 draining, 0 inactive of 1 registered"),
        "{status}"
    );

    // Every account state of the test bed.
    let mut checked = 0;
    for u in corp.users.iter().filter(|u| u.state.expected().is_some()) {
        let Some(win32) = u.state.expected().map(|w| w.code()) else {
            continue;
        };
        let r = client.password("contoso", &u.upn, &u.password).await?;
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
        let r = client.password("contoso", &u.upn, &u.password).await?;
        assert!(r.ok(), "user {} should sign in: {:?}", u.upn, r.body);
        let claims = client.verify_id_token("contoso", &r).await?;
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
        let again = client.password("contoso", &u.upn, &u.password).await?;
        let claims2 = client.verify_id_token("contoso", &again).await?;
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
    let r = client
        .password("contoso", &spare.upn, "Wrong-Passw0rd!")
        .await?;
    assert_eq!(r.code(), Some(50126));
    let ghost = format!(
        "nobody-{}@{}",
        uuid::Uuid::new_v4().simple(),
        corp.upn_suffix
    );
    let r = client.password("contoso", &ghost, "Whatever-1").await?;
    assert_eq!(r.code(), Some(50126));
    // Empty password: refused before any bind.
    let r = client.password("contoso", &spare.upn, "").await?;
    assert_eq!(r.code(), Some(50126));

    // A managed domain no agent serves: not routable (80004).
    t.cloud.add_domain(&["elsewhere.example.test"])?;
    let r = client
        .password("contoso", "x@elsewhere.example.test", "Whatever-1")
        .await?;
    assert_eq!(r.code(), Some(80004), "{:?}", r.body);

    // Cloud-only users sign in with their cloud password while PTA is on.
    let cloud_pw = recorded_secret("Cl0ud");
    t.cloud.add_user("helpdesk@contoso.example", &cloud_pw)?;
    let r = client
        .password("contoso", "helpdesk@contoso.example", &cloud_pw)
        .await?;
    assert!(r.ok(), "{:?}", r.body);

    // The sign-in log has the Win32 code and the agent of a pass-through failure.
    let log = t.cloud.admin(&["--json", "signins", "list"])?;
    let v: serde_json::Value = serde_json::from_str(&log)?;
    let agent_id = agent.id()?;
    assert!(v["signins"]
        .as_array()
        .is_some_and(|a| a.iter().any(|e| e["win32"] == 1909
            && e["aadsts"] == 50053
            && e["agent_id"] == agent_id.as_str())));
    // The 1329 case tells the admin what to do.
    assert!(
        t.cloud.log().contains("'Log On To'"),
        "the cloud log should explain 1329"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn tenants_never_see_each_others_requests() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let fab = bed::fabrikam()?;
    let (t, client) = setup("tenants", &corp)?;
    let beta_pw = recorded_secret("B3ta");
    t.cloud.add_tenant("beta", "admin@beta.example", &beta_pw)?;
    let beta_admin = |args: &[&str]| {
        t.cloud
            .admin_as_ok("beta", "admin@beta.example", &beta_pw, args)
    };
    t.cloud
        .add_domain_as("beta", "admin@beta.example", &beta_pw, &[&fab.upn_suffix])?;
    let beta_client = beta_admin(&["app", "add", "Beta app", "--public"])?
        .trim()
        .to_string();

    let mut a = t.start_agent(&[ForestEntry::for_forest(&corp)])?;
    let mut b = Agent::register(
        &t.cloud,
        &t.dir,
        "beta",
        "admin@beta.example",
        &beta_pw,
        &[ForestEntry::for_forest(&fab)],
    )?;
    b.run()?;
    t.enable_pta()?;
    // Beta's admin cannot act on contoso.
    let out = t.cloud.admin_as(
        "contoso",
        "admin@beta.example",
        &beta_pw,
        &["agents", "list"],
    )?;
    assert!(!out.status.success());

    let good = corp.user("good")?;
    for _ in 0..5 {
        let r = client
            .password("contoso", &good.upn, &good.password)
            .await?;
        assert!(r.ok(), "{:?}", r.body);
    }
    let bad = corp.user("spare2")?;
    let r = client
        .password("contoso", &bad.upn, "Wrong-Passw0rd!")
        .await?;
    assert_eq!(r.code(), Some(50126));
    // A FABRIKAM user is unknown to contoso.
    let fgood = fab.user("good")?;
    let r = client
        .password("contoso", &fgood.upn, &fgood.password)
        .await?;
    assert_eq!(r.code(), Some(50034));
    // Beta's agent got nothing: its served counter is zero and its trace is empty.
    let list: serde_json::Value =
        serde_json::from_str(&beta_admin(&["--json", "agents", "list"])?)?;
    assert_eq!(list["agents"][0]["requests_served"], 0, "{list}");
    assert!(b.trace().is_empty());
    let alist: serde_json::Value =
        serde_json::from_str(&t.cloud.admin(&["--json", "agents", "list"])?)?;
    assert!(
        alist["agents"][0]["requests_served"].as_u64().unwrap_or(0) >= 6,
        "{alist}"
    );
    // Contoso's client id is unknown in beta.
    let r = client.password("beta", &fgood.upn, &fgood.password).await?;
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
    while !t
        .cloud
        .log()
        .contains("an agent certificate was presented for another tenant")
    {
        assert!(
            Instant::now() < deadline,
            "the cloud did not refuse the cross-tenant certificate:\n{}",
            t.cloud.log()
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
    let (t, client) = setup("failover", &corp)?;
    // First DC dead (nothing listens on port 1), second alive: success.
    let dead = "ldaps://127.0.0.1:1".to_string();
    let mut agent = t.start_agent(&[ForestEntry::from_bed(
        &corp,
        vec![dead.clone(), corp.ldaps_url.clone()],
    )])?;
    t.enable_pta()?;
    let good = corp.user("good")?;
    let r = client
        .password("contoso", &good.upn, &good.password)
        .await?;
    assert!(r.ok(), "{:?}", r.body);

    // Agent stopped: 80001, well within the 10 s deadline.
    agent.stop_with(9);
    let started = Instant::now();
    let r = client
        .password("contoso", &good.upn, &good.password)
        .await?;
    let code = r.code();
    // The cloud may not have noticed the kill yet: then the request waits for the deadline
    // (80002) or goes nowhere (80001). Either way no hang past the deadline.
    assert!(matches!(code, Some(80001) | Some(80002)), "{:?}", r.body);
    assert!(started.elapsed() < Duration::from_secs(12));
    // Once the connection is gone, 80001 at once.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let started = Instant::now();
    let r = client
        .password("contoso", &good.upn, &good.password)
        .await?;
    assert_eq!(r.code(), Some(80001), "{:?}", r.body);
    assert!(started.elapsed() < Duration::from_secs(2));

    // An agent whose DCs are all unreachable: 80001.
    let blind = t.start_agent(&[ForestEntry::from_bed(
        &corp,
        vec![dead, "ldaps://127.0.0.1:2".into()],
    )])?;
    let r = client
        .password("contoso", &good.upn, &good.password)
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

    // Revocation: refused for the last active agent while PTA is on (with the seed's
    // warning), done with --force; the connection closes at once and the certificate is
    // refused from then on.
    let blind_id = blind.id()?;
    let out = t.cloud.admin_as(
        TENANT,
        ADMIN_UPN,
        &t.cloud.admin_password,
        &["agents", "revoke", &blind_id],
    )?;
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Users will not be able to sign in unless you have other authentication agents installed."),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    t.cloud.admin(&["agents", "revoke", &blind_id, "--force"])?;
    let r = client
        .password("contoso", &good.upn, &good.password)
        .await?;
    assert_eq!(
        r.code(),
        Some(80001),
        "a revoked agent gets no work: {:?}",
        r.body
    );
    let list = t.cloud.admin(&["agents", "list"])?;
    assert!(
        list.lines()
            .any(|l| l.contains(&blind_id) && l.contains("Revoked")),
        "{list}"
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !t.cloud.log().contains("This agent has been revoked")
        && !t.cloud.log().contains("revoked by an administrator")
    {
        assert!(Instant::now() < deadline, "{}", t.cloud.log());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}
