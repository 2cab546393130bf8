//! Agent operations, end to end with the real cloud, the real agent and the Samba forest:
//! `passthru-agent doctor` passes on a working agent and names each failure provoked for real
//! (nothing listening where a DC should be, a wrong CA file, a TLS-inspecting proxy in the
//! path, a proxy that is not there, a wrong service password, a skewed clock through the doctor's clock,
//! a revoked agent); the admin log and the session (debug) log switched on and off without a
//! restart (`log-level`, SIGUSR1); `collect-logs` writes a bundle with no key and no password.

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::cluster::free_port;
use passthru_testkit::connect_proxy::{ConnectProxy, ProxyMode, ProxyOptions};
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::procs::{bin, fresh_dir, recorded_secret, secret_file, ForestEntry};
use passthru_testkit::users::Admin;
use passthru_testkit::users::{AccountState, TestUser};
use serde_json::Value;

fn doctor(state_dir: &Path, config: &Path, json: bool) -> anyhow::Result<Output> {
    let mut cmd = Command::new(bin("passthru-agent"));
    cmd.arg("doctor")
        .arg("--state-dir")
        .arg(state_dir)
        .arg("--config")
        .arg(config);
    if json {
        cmd.arg("--json");
    }
    cmd.output().context("running passthru-agent doctor")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The FAIL line of `subject_part` / `step` (and the fix under it).
fn failure<'a>(report: &'a str, subject_part: &str, step: &str) -> Option<&'a str> {
    report.lines().find(|l| {
        l.starts_with("FAIL ") && l.contains(subject_part) && l.contains(&format!(": {step}: "))
    })
}

async fn service_account(
    forest: &BedForest,
    admin: &mut Admin,
) -> anyhow::Result<(String, std::path::PathBuf)> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let user = TestUser::with(
        &format!("svd{}", &tag[..8]),
        &format!("svd{}", &tag[..8]),
        &forest.upn_suffix,
        AccountState::Good,
        recorded_secret("Svd"),
        "Doctor service",
    );
    admin.create_user(&user).await?;
    Ok((user.upn, secret_file(&user.password)?))
}

/// Appends `lines` to a copy of `config` and returns the copy.
fn config_variant(
    config: &Path,
    name: &str,
    replace: &[(&str, &str)],
    append: &str,
) -> anyhow::Result<std::path::PathBuf> {
    let mut text = std::fs::read_to_string(config)?;
    for (from, to) in replace {
        ensure!(text.contains(from), "{from} is not in {text}");
        text = text.replace(from, to);
    }
    text.push_str(append);
    let path = config.with_file_name(format!("{name}.toml"));
    std::fs::write(&path, text)?;
    Ok(path)
}

async fn wait_until(
    within: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> anyhow::Result<()> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > within {
            bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_names_each_failure_and_the_support_bundle_holds_no_secret() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("agent-support")?;
    let mut admin = corp.admin().await?;
    let (account, password_file) = service_account(&corp, &mut admin).await?;
    let t = PtaSetup::new(&dir, &corp)
        .without_app()
        .pta(false)
        .agent(passthru_testkit::fixture::AgentStage::None)
        .start()?;
    let entry = ForestEntry::for_forest(&corp).with_sync(&account, &password_file, 3600);
    let mut agent = t.register_agent(&[entry])?;
    agent.run()?;
    t.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    let client_id = t.add_public_app("Doctor app")?;
    t.enable_pta()?;
    let admin_log = agent.state_dir.join("admin.log");

    // A working agent: every check passes, exit status 0, text and JSON.
    let ok = doctor(&agent.state_dir, &agent.config, false)?;
    let report = text(&ok);
    ensure!(ok.status.success(), "{report}");
    for needle in [
        "PASS config ",
        ": owner: ",
        ": modes: ",
        ": certificate: valid until ",
        ": key: the client key matches the certificate",
        ": tls: the cloud's certificate ",
        ": agent: the cloud accepts this agent's certificate",
        ": clock: within ",
        &format!(
            "PASS dc {} {}: tls: certificate of ",
            corp.dns_name, corp.ldaps_url
        ),
        ": rootdse: rootDSE read: ",
        &format!(": bind: the service account {account} signed in"),
        "PASS proxy: settings: none",
        "All checks passed",
    ] {
        ensure!(report.contains(needle), "no {needle:?} in\n{report}");
    }
    ensure!(!report.contains("FAIL "), "{report}");
    let json: Value =
        serde_json::from_slice(&doctor(&agent.state_dir, &agent.config, true)?.stdout)?;
    ensure!(json["ok"] == true, "{json}");
    ensure!(
        json["checks"].as_array().is_some_and(|c| c.len() >= 15),
        "{json}"
    );

    // A DC address where nothing listens (a stopped DC).
    let stopped = format!("ldaps://127.0.0.1:{}", free_port()?);
    let cfg = config_variant(
        &agent.config,
        "stopped-dc",
        &[(&corp.ldaps_url, &stopped)],
        "",
    )?;
    let out = doctor(&agent.state_dir, &cfg, false)?;
    let report = text(&out);
    ensure!(!out.status.success(), "{report}");
    let line = failure(&report, &stopped, "tcp").with_context(|| report.clone())?;
    ensure!(line.contains("cannot connect to 127.0.0.1:"), "{line}");
    ensure!(
        report.contains(": tls: not checked: no TCP connection"),
        "{report}"
    );
    // The cloud's checks still ran.
    ensure!(
        report.contains(": agent: the cloud accepts this agent's certificate"),
        "{report}"
    );

    // A wrong CA file for the forest (the cloud's CA).
    let wrong_ca = t.cloud.ca_file().display().to_string();
    let cfg = config_variant(
        &agent.config,
        "wrong-ca",
        &[(&corp.ca_file.display().to_string(), &wrong_ca)],
        "",
    )?;
    let report = text(&doctor(&agent.state_dir, &cfg, false)?);
    let line = failure(&report, &corp.ldaps_url, "tls").with_context(|| report.clone())?;
    ensure!(
        line.contains(&format!("was not issued by a CA in {wrong_ca}")),
        "{line}"
    );
    ensure!(
        report.contains(&format!(
            "what to do: put the CA that issued the server's certificate in {wrong_ca}"
        )),
        "{report}"
    );

    // A wrong service password.
    let wrong_pw = secret_file(&recorded_secret("Wr0ng"))?;
    let cfg = config_variant(
        &agent.config,
        "wrong-service-password",
        &[(
            &password_file.display().to_string(),
            &wrong_pw.display().to_string(),
        )],
        "",
    )?;
    let report = text(&doctor(&agent.state_dir, &cfg, false)?);
    let line = failure(&report, &corp.ldaps_url, "bind").with_context(|| report.clone())?;
    ensure!(line.contains("invalid credentials (LDAP 49"), "{line}");
    ensure!(report.contains("service_password_file"), "{report}");

    // A TLS-inspecting proxy in the path (a real CONNECT proxy that terminates TLS with its
    // own CA).
    let mut inspecting = ConnectProxy::start(ProxyMode::Intercept, ProxyOptions::default())?;
    let cfg = config_variant(
        &agent.config,
        "inspected",
        &[],
        &format!("\n[cloud]\nproxy = \"{}\"\n", inspecting.url()),
    )?;
    let report = text(&doctor(&agent.state_dir, &cfg, false)?);
    inspecting.stop();
    ensure!(
        report.contains(&format!("PASS proxy: settings: {}", inspecting.url())),
        "{report}"
    );
    let line = failure(&report, "cloud ", "tls").with_context(|| report.clone())?;
    ensure!(
        line.contains("a TLS-inspecting proxy or firewall in the path"),
        "{line}"
    );
    ensure!(line.contains("Passthru Test Inspection CA"), "{line}");
    ensure!(line.contains("through the proxy"), "{line}");
    // A proxy that is not there.
    let gone = format!("http://127.0.0.1:{}", free_port()?);
    let cfg = config_variant(
        &agent.config,
        "no-proxy",
        &[],
        &format!("\n[cloud]\nproxy = \"{gone}\"\n"),
    )?;
    let report = text(&doctor(&agent.state_dir, &cfg, false)?);
    let line = failure(&report, "cloud ", "tcp").with_context(|| report.clone())?;
    ensure!(line.contains("127.0.0.1"), "{line}");
    ensure!(
        report.contains("what to do: check that the proxy runs"),
        "{report}"
    );

    // A skewed clock, through the doctor's clock: the cloud's and the DC's checks say so.
    let mut options =
        passthru_agent::doctor::DoctorOptions::new(agent.state_dir.clone(), agent.config.clone());
    options.now = Arc::new(|| time::OffsetDateTime::now_utc() + time::Duration::hours(2));
    let skewed = passthru_agent::doctor::doctor(&options).await;
    let report = skewed.text();
    ensure!(!skewed.ok, "{report}");
    let line = failure(&report, "cloud ", "clock").with_context(|| report.clone())?;
    ensure!(line.contains("ahead of the cloud's"), "{line}");
    let line = failure(&report, &corp.ldaps_url, "clock").with_context(|| report.clone())?;
    ensure!(line.contains("ahead of the DC's"), "{line}");

    // Session log: on with `log-level debug` (no restart), a sign-in traced at debug, off.
    let session_log = agent.state_dir.join("session.log");
    let ask = |level: &str| -> anyhow::Result<Output> {
        Ok(Command::new(bin("passthru-agent"))
            .args(["log-level", level, "--state-dir"])
            .arg(&agent.state_dir)
            .output()?)
    };
    let on = ask("debug")?;
    ensure!(on.status.success(), "{}", text(&on));
    wait_until(Duration::from_secs(10), "session log on", || {
        std::fs::read_to_string(&admin_log)
            .is_ok_and(|l| l.contains("[log] session log on (debug)"))
    })
    .await?;
    let good = corp.user("good")?;
    let signin =
        passthru_testkit::http::SignInClient::new(&t.cloud.ca_file(), &t.cloud.url, &client_id)?;
    signin
        .password("contoso", &good.upn, &good.password)
        .await?;
    let _ = signin
        .password("contoso", &good.upn, &recorded_secret("N0tIt"))
        .await;
    wait_until(
        Duration::from_secs(10),
        "debug lines in the session log",
        || std::fs::metadata(&session_log).is_ok_and(|m| m.len() > 0),
    )
    .await?;
    let off = ask("info")?;
    ensure!(off.status.success(), "{}", text(&off));
    wait_until(Duration::from_secs(10), "session log off", || {
        std::fs::read_to_string(&admin_log)
            .is_ok_and(|l| l.contains("[log] session log off (info)"))
    })
    .await?;
    let size_off = std::fs::metadata(&session_log)?.len();
    signin
        .password("contoso", &good.upn, &good.password)
        .await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ensure!(
        std::fs::metadata(&session_log)?.len() == size_off,
        "the session log grew while off"
    );
    // SIGUSR1 alone switches it on again.
    agent.signal("USR1")?;
    wait_until(
        Duration::from_secs(10),
        "SIGUSR1 switches the session log on",
        || {
            std::fs::read_to_string(&admin_log)
                .is_ok_and(|l| l.matches("[log] session log on (debug)").count() == 2)
        },
    )
    .await?;

    // The admin log: start, connection.
    let admin_text = std::fs::read_to_string(&admin_log)?;
    ensure!(
        admin_text.contains("[register] registered as agent "),
        "{admin_text}"
    );
    ensure!(
        admin_text.contains("[start] passthru-agent "),
        "{admin_text}"
    );
    ensure!(
        admin_text.contains("[connection] connected to the cloud at "),
        "{admin_text}"
    );

    // The support bundle.
    let bundle = dir.join("support.tar.gz");
    let out = Command::new(bin("passthru-agent"))
        .arg("collect-logs")
        .arg("--state-dir")
        .arg(&agent.state_dir)
        .arg("--config")
        .arg(&agent.config)
        .arg("--out")
        .arg(&bundle)
        .output()?;
    ensure!(out.status.success(), "{}", text(&out));
    use std::os::unix::fs::PermissionsExt as _;
    ensure!(std::fs::metadata(&bundle)?.permissions().mode() & 0o777 == 0o600);
    let unpacked = dir.join("bundle");
    std::fs::create_dir_all(&unpacked)?;
    let tar = Command::new("tar")
        .arg("-xzf")
        .arg(&bundle)
        .arg("-C")
        .arg(&unpacked)
        .output()?;
    ensure!(tar.status.success(), "{}", text(&tar));
    let files = passthru_testkit::scan::files_below(&unpacked);
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    for want in [
        "/version.txt",
        "/status.txt",
        "/doctor.txt",
        "/doctor.json",
        "/config.toml",
        "/system.txt",
        "/state-dir.txt",
        "/logs/admin.log",
        "/logs/session.log",
        "/logs/trace.log",
        "/state/agent.json",
    ] {
        ensure!(
            names.iter().any(|n| n.ends_with(want)),
            "no {want} in {names:?}"
        );
    }
    // No key material: not the TLS key, not the HPKE key, nothing PEM-private.
    let client_key = std::fs::read_to_string(agent.state_dir.join("client-key.pem"))?;
    let key_body: String = client_key
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let hpke = std::fs::read(agent.state_dir.join("hpke-key"))?;
    for f in &files {
        let bytes = std::fs::read(f)?;
        let s = String::from_utf8_lossy(&bytes);
        ensure!(
            !s.contains("PRIVATE KEY"),
            "{} holds a private key",
            f.display()
        );
        ensure!(
            !s.contains(&key_body[..40.min(key_body.len())]),
            "{} holds the client key",
            f.display()
        );
        ensure!(
            !bytes
                .windows(hpke.len().max(1))
                .any(|w| w == hpke.as_slice()),
            "{} holds the HPKE key",
            f.display()
        );
    }
    // No password: the forest's, the service account's, the wrong ones tried.
    let mut passwords = corp.passwords();
    passwords.push(std::fs::read_to_string(&password_file)?.trim().to_string());
    passwords.push(t.cloud.admin_password.clone());
    let (_, findings) = passthru_testkit::scan::scan(&unpacked, &passwords)?;
    ensure!(findings.is_empty(), "passwords in the bundle: {findings:?}");

    // A revoked agent: the cloud's check names it.
    let id = agent.id()?;
    t.cloud.admin(&["agents", "revoke", &id, "--force"])?;
    let report = text(&doctor(&agent.state_dir, &agent.config, false)?);
    let line = failure(&report, "cloud ", "agent").with_context(|| report.clone())?;
    ensure!(line.contains("revoked"), "{line}");
    ensure!(report.contains("--force"), "{report}");
    Ok(())
}
