//! Running the cloud for years, end to end with the real processes, the real agent and the
//! Samba forest: the health endpoints of the management listener; `backup` taken while
//! sign-ins run, restored into a new data dir (`tar -xpf`) and served: the agent comes back,
//! pass-through and cloud-only sign-ins work, and what was written after the backup is not
//! there; the agent's trace log rotated by size and reopened on SIGHUP.

use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use passthru_testkit::bed;
use passthru_testkit::cluster::free_port;
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::load::{Credential, Load, LoadSpec};
use passthru_testkit::procs::{bin, fresh_dir, recorded_secret};

async fn get(http: &reqwest::Client, addr: &str, path: &str) -> anyhow::Result<(u16, String)> {
    let r = http
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// Polls `GET path` until it answers `status` (within `within`).
async fn wait_status(
    http: &reqwest::Client,
    addr: &str,
    path: &str,
    status: u16,
    within: Duration,
) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        match get(http, addr, path).await {
            Ok((got, _)) if got == status => return Ok(()),
            Ok((got, body)) if started.elapsed() > within => {
                bail!("{path} answers {got} ({body:?}), not {status}")
            }
            Err(e) if started.elapsed() > within => return Err(e),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn backup(
    data_dir: &std::path::Path,
    out: &std::path::Path,
) -> anyhow::Result<std::process::Output> {
    Command::new(bin("passthru-cloud"))
        .args(["backup", "--data-dir"])
        .arg(data_dir)
        .arg("--out")
        .arg(out)
        .output()
        .context("running passthru-cloud backup")
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_under_load_restores_into_a_serving_deployment() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("ops-backup")?;
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let mut t = PtaSetup::new(&dir, &corp)
        .serve_args(&["--metrics-listen", &metrics])
        .start()?;
    let http = passthru_testkit::http::client(&t.cloud.ca_file())?;

    // Health of the real process.
    assert_eq!(
        get(&http, &metrics, "/healthz").await?,
        (200, "ok".to_string())
    );
    wait_status(&http, &metrics, "/readyz", 200, Duration::from_secs(10)).await?;
    assert_eq!(get(&http, &metrics, "/readyz").await?.1, "ready\n");
    let (_, text) = get(&http, &metrics, "/metrics").await?;
    ensure!(
        text.lines()
            .any(|l| l.starts_with("passthru_build_info{version=\"") && l.ends_with(" 1")),
        "{text}"
    );

    // A cloud-only user written before the backup.
    let before_pw = recorded_secret("Bef0re");
    t.cloud.add_user("before@contoso.example", &before_pw)?;

    // Sign-ins through the agent while the backup is taken.
    let good = corp.user("good")?;
    let load = Load::start(
        LoadSpec {
            tenant: "contoso".into(),
            clients: 4,
            period: Duration::from_millis(50),
            credentials: vec![Credential::right(&good.upn, &good.password)],
            duration: None,
        },
        || t.sign_in(),
    )?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let out = dir.join("backup.tar");
    let data_dir = t.cloud.data_dir.clone();
    let (taken, again) = tokio::task::spawn_blocking({
        let (data_dir, out) = (data_dir.clone(), out.clone());
        move || -> anyhow::Result<_> { Ok((backup(&data_dir, &out)?, backup(&data_dir, &out)?)) }
    })
    .await??;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await?;
    report.print("sign-ins during the backup");
    report.check_attempted(10)?;
    report.check_served(&[])?;
    let printed = String::from_utf8_lossy(&taken.stdout);
    ensure!(
        taken.status.success(),
        "backup failed: {}",
        String::from_utf8_lossy(&taken.stderr)
    );
    for needle in [
        "Backed up",
        "mfa.key",
        "agent-ca/",
        "tls/",
        "passthru.db",
        "tar -xpf",
    ] {
        ensure!(printed.contains(needle), "{needle}: {printed}");
    }
    ensure!(
        std::fs::metadata(&out)?.permissions().mode() & 0o777 == 0o600,
        "the archive is not 0600"
    );
    // A second run does not overwrite the archive.
    ensure!(
        !again.status.success(),
        "a second backup overwrote the archive"
    );
    let err = String::from_utf8_lossy(&again.stderr);
    ensure!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );

    // Written after the backup: not in it.
    t.cloud
        .add_user("after@contoso.example", &recorded_secret("Aft3r"))?;

    // Restore: the old data dir goes away, a new one is made from the archive alone, and
    // served on the same port (the agent finds it there).
    t.cloud.stop();
    std::fs::rename(&data_dir, dir.join("cloud-before-restore"))?;
    std::fs::DirBuilder::new().mode(0o700).create(&data_dir)?;
    let untar = Command::new("tar")
        .arg("-xpf")
        .arg(&out)
        .arg("-C")
        .arg(&data_dir)
        .output()?;
    ensure!(
        untar.status.success(),
        "tar: {}",
        String::from_utf8_lossy(&untar.stderr)
    );
    for key in [
        "mfa.key",
        "tls/server-key.pem",
        "agent-ca/ca-key.pem",
        "passthru.db",
    ] {
        let path = data_dir.join(key);
        let mode = std::fs::metadata(&path)
            .with_context(|| format!("{key} restored"))?
            .permissions()
            .mode();
        ensure!(mode & 0o777 == 0o600, "{key}: {:o}", mode & 0o777);
    }
    t.cloud.serve()?;
    t.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    wait_status(&http, &metrics, "/readyz", 200, Duration::from_secs(10)).await?;

    let client = t.sign_in()?;
    let r = client
        .password("contoso", &good.upn, &good.password)
        .await?;
    ensure!(r.ok(), "pass-through after the restore: {:?}", r.body);
    let r = client
        .password("contoso", "before@contoso.example", &before_pw)
        .await?;
    ensure!(r.ok(), "the user written before the backup: {:?}", r.body);
    let users = t.cloud.admin(&["user", "list"])?;
    ensure!(
        users.contains("before@contoso.example") && !users.contains("after@contoso.example"),
        "{users}"
    );
    Ok(())
}

/// The real agent with `[trace] max_bytes = 1024, keep = 2`: a stream of failed sign-ins
/// leaves at most three trace files, each within the limit and 0600, the newest line in
/// `trace.log`; after an outside rename, SIGHUP makes the agent write to a new `trace.log`.
#[tokio::test(flavor = "multi_thread")]
async fn the_agent_rotates_its_trace_log_and_reopens_it_on_sighup() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("ops-trace")?;
    let mut t = PtaSetup::new(&dir, &corp).start()?;
    let mut agent = t.take_agent()?;
    agent.stop_with(15);
    {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&agent.config)?;
        writeln!(f, "\n[trace]\nmax_bytes = 1024\nkeep = 2")?;
    }
    agent.run()?;
    t.cloud.wait_active_agents(1, Duration::from_secs(30))?;
    let client = t.sign_in()?;
    let good = corp.user("good")?;
    let suffix = good
        .upn
        .split('@')
        .nth(1)
        .context("a UPN with a domain")?
        .to_string();
    // Accounts that do not exist: each wrong sign-in is a trace line, nobody is locked out.
    for i in 0..30 {
        let last = format!("ghost{i}-{}@{suffix}", std::process::id());
        let r = client.password("contoso", &last, "Wrong-Passw0rd!").await?;
        ensure!(!r.ok(), "{last} signed in");
    }
    let state = agent.state_dir.clone();
    let file = |name: &str| state.join(name);
    for name in ["trace.log", "trace.log.1", "trace.log.2"] {
        let meta = std::fs::metadata(file(name)).with_context(|| format!("{name} exists"))?;
        ensure!(
            meta.len() > 0 && meta.len() <= 1024,
            "{name}: {} bytes",
            meta.len()
        );
        ensure!(
            meta.permissions().mode() & 0o777 == 0o600,
            "{name} is not 0600"
        );
    }
    ensure!(!file("trace.log.3").exists(), "more files than keep + 1");
    let newest = agent.trace();
    ensure!(newest.lines().count() >= 1, "{newest}");
    let lines = |name: &str| -> anyhow::Result<usize> {
        Ok(std::fs::read_to_string(file(name))?.lines().count())
    };
    let kept = lines("trace.log")? + lines("trace.log.1")? + lines("trace.log.2")?;
    ensure!(kept < 30, "nothing was dropped: {kept} lines kept");

    // logrotate's way: rename, then SIGHUP.
    std::fs::rename(file("trace.log"), file("trace.log-rotated"))?;
    agent.signal("HUP")?;
    let started = Instant::now();
    while !file("trace.log").exists() {
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "no new trace.log after SIGHUP:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = client
        .password(
            "contoso",
            &format!("ghost-after-hup@{suffix}"),
            "Wrong-Passw0rd!",
        )
        .await?;
    ensure!(!r.ok());
    let after = agent.trace();
    ensure!(after.lines().count() == 1, "{after}");
    ensure!(
        std::fs::metadata(file("trace.log"))?.permissions().mode() & 0o777 == 0o600,
        "the new trace.log is not 0600"
    );
    // The agent still serves.
    let r = client
        .password("contoso", &good.upn, &good.password)
        .await?;
    ensure!(r.ok(), "{:?}", r.body);
    Ok(())
}
