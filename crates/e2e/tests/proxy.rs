//! The agent behind an HTTP CONNECT proxy (issue 19): the agent's user may not reach the
//! cloud directly (an iptables rule rejects what that user sends to the cloud's port), and a
//! real proxy process (`passthru-connect-proxy`, running as root) is its only way out.
//!
//! - the block works: `register` and `run` without a proxy cannot reach the cloud;
//! - `register` through the proxy, from `[cloud] proxy` (`--config`) and from `HTTPS_PROXY`;
//! - `run` through the proxy, from either; a real sign-in is validated against Samba by that
//!   agent (end-to-end TLS with its client certificate inside the tunnel);
//! - the proxy saw every CONNECT, to the cloud's address;
//! - basic authentication: missing and wrong credentials give the 407 message naming
//!   `proxy_auth_file` (register's error, run's log), the right ones work; a TLS-inspecting
//!   proxy in the path is refused (the cloud's certificate is still checked end to end).
//!
//! Needs root and iptables (`scripts/deps.sh`); skipped otherwise unless
//! `PASSTHRU_PROXY_REQUIRE_NET=1` (which `scripts/test.sh` sets as root) makes it a failure.

use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _};
use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::connect_proxy::{ConnectProxy, ProxyMode, ProxyOptions};
use passthru_testkit::fixture::{AgentStage, PtaSetup, PtaTenant, TENANT};
use passthru_testkit::netblock::{self, Blocked};
use passthru_testkit::procs::{bin, fresh_dir, recorded_secret, write_agent_config, ForestEntry};

/// The user the agent runs as (created when missing): its direct route to the cloud is
/// blocked.
const AGENT_USER: &str = "passthru-proxied";
/// Set to 1 to fail instead of skipping when root or iptables is missing.
const REQUIRE_NET: &str = "PASSTHRU_PROXY_REQUIRE_NET";
/// How long an agent has to log what is looked for, or to become active.
const WAIT: Duration = Duration::from_secs(30);

/// The agent's uid and gid, or `None` when the test is skipped.
fn agent_user(test: &str) -> anyhow::Result<Option<(u32, u32)>> {
    match netblock::prerequisites(AGENT_USER) {
        Ok(ids) => Ok(Some(ids)),
        Err(why) if std::env::var(REQUIRE_NET).as_deref() == Ok("1") => {
            bail!("{test} cannot run here ({REQUIRE_NET}=1): {why}")
        }
        Err(why) => {
            eprintln!("SKIP {test}: {why}. Set {REQUIRE_NET}=1 to make this a failure.");
            Ok(None)
        }
    }
}

/// A directory the agent's user owns, outside the run's root (which may be private to root):
/// `home` for state dirs, configs and logs (scanned for passwords at the end), `secret` for
/// the proxy's credentials files. Removed on drop.
struct Home {
    root: PathBuf,
    uid: u32,
    gid: u32,
}

impl Home {
    fn new(uid: u32, gid: u32) -> anyhow::Result<Home> {
        let root =
            std::env::temp_dir().join(format!("passthru-proxy-{}", uuid::Uuid::new_v4().simple()));
        let home = Home { root, uid, gid };
        for dir in [home.root.clone(), home.agent_dir(), home.secret_dir()] {
            std::fs::create_dir_all(&dir)?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))?;
        }
        Ok(home)
    }

    fn agent_dir(&self) -> PathBuf {
        self.root.join("agent")
    }

    fn secret_dir(&self) -> PathBuf {
        self.root.join("secret")
    }

    /// Writes `text` to `path`, owned by the agent's user, with `mode`.
    fn give(&self, path: &Path, text: &[u8], mode: u32) -> anyhow::Result<()> {
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid))?;
        Ok(())
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// One run of the test: the tenant (cloud, domain, app; no agent yet), the block, the files
/// the agent's user needs.
struct Setup {
    t: PtaTenant,
    home: Home,
    /// `127.0.0.1:PORT` of the cloud: what the agent asks the proxy for.
    cloud_authority: String,
    /// The cloud's CA and the DC's CA, readable by the agent's user.
    cloud_ca: PathBuf,
    forest: ForestEntry,
    _blocked: Blocked,
}

impl Setup {
    fn new(label: &str, corp: &BedForest, uid: u32, gid: u32) -> anyhow::Result<Setup> {
        let t = PtaSetup::new(&fresh_dir(label)?, corp)
            .agent(AgentStage::None)
            .pta(false)
            .start()?;
        let port: u16 = t
            .cloud
            .listen
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| anyhow!("no port in {}", t.cloud.listen))?;
        let home = Home::new(uid, gid)?;
        let cloud_ca = home.agent_dir().join("cloud-ca.pem");
        home.give(&cloud_ca, &std::fs::read(t.cloud.ca_file())?, 0o644)?;
        let dc_ca = home.agent_dir().join("dc-ca.pem");
        home.give(&dc_ca, &std::fs::read(&corp.ca_file)?, 0o644)?;
        let forest = ForestEntry {
            ca_file: dc_ca,
            ..ForestEntry::for_forest(corp)
        };
        let blocked = Blocked::tcp_from_uid(uid, port)?;
        Ok(Setup {
            cloud_authority: format!("127.0.0.1:{port}"),
            t,
            home,
            cloud_ca,
            forest,
            _blocked: blocked,
        })
    }

    /// An agent config (the forest, and `cloud` lines under `[cloud]` when given), owned by
    /// the agent's user.
    fn config(&self, name: &str, cloud: &[String]) -> anyhow::Result<PathBuf> {
        let path = self.home.agent_dir().join(format!("{name}.toml"));
        write_agent_config(&path, std::slice::from_ref(&self.forest))?;
        let mut text = std::fs::read_to_string(&path)?;
        if !cloud.is_empty() {
            text.push_str("\n[cloud]\n");
            for line in cloud {
                text.push_str(line);
                text.push('\n');
            }
        }
        self.home.give(&path, text.as_bytes(), 0o644)?;
        Ok(path)
    }

    /// A proxy credentials file (`user:password`, 0600, the agent's user's).
    fn auth_file(&self, name: &str, user: &str, password: &str) -> anyhow::Result<PathBuf> {
        let path = self.home.secret_dir().join(name);
        self.home
            .give(&path, format!("{user}:{password}\n").as_bytes(), 0o600)?;
        Ok(path)
    }

    /// `passthru-agent register` as the agent's user, into state dir `name`, with
    /// `--config` and environment `env` when given.
    fn register(
        &self,
        name: &str,
        config: Option<&Path>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Output> {
        let mut c = Command::new(bin("passthru-agent"));
        c.args(["register", "--cloud", &self.t.cloud.url, "--tenant", TENANT])
            .arg("--ca-file")
            .arg(&self.cloud_ca)
            .arg("--state-dir")
            .arg(self.home.agent_dir().join(name));
        if let Some(config) = config {
            c.arg("--config").arg(config);
        }
        c.env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .envs(env.iter().copied())
            .env("PASSTHRU_ADMIN_UPN", &self.t.cloud.admin_upn)
            .env("PASSTHRU_ADMIN_PASSWORD", &self.t.cloud.admin_password)
            .stdin(Stdio::null())
            .uid(self.home.uid)
            .gid(self.home.gid);
        c.output().context("running passthru-agent register")
    }

    /// `passthru-agent run` as the agent's user on state dir `name` with `config`.
    fn run(&self, name: &str, config: &Path, env: &[(&str, &str)]) -> anyhow::Result<RunningAgent> {
        let state = self.home.agent_dir().join(name);
        let log = self
            .home
            .agent_dir()
            .join(format!("{name}-{}.log", uuid::Uuid::new_v4().simple()));
        let file = std::fs::File::create(&log)?;
        let child = Command::new(bin("passthru-agent"))
            .args(["run", "--state-dir"])
            .arg(&state)
            .arg("--config")
            .arg(config)
            .arg("--host-lock")
            .arg(state.join("host.lock"))
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .envs(env.iter().copied())
            .stdout(Stdio::from(file.try_clone()?))
            .stderr(Stdio::from(file))
            .stdin(Stdio::null())
            .uid(self.home.uid)
            .gid(self.home.gid)
            .spawn()
            .context("starting passthru-agent run")?;
        Ok(RunningAgent {
            child: Some(child),
            log,
        })
    }

    /// Agents the cloud shows as active.
    fn active_agents(&self) -> anyhow::Result<usize> {
        let v: serde_json::Value =
            serde_json::from_str(&self.t.cloud.admin(&["--json", "agents", "list"])?)?;
        Ok(v["agents"]
            .as_array()
            .map(|a| a.iter().filter(|x| x["status"] == "Active").count())
            .unwrap_or(0))
    }

    /// The passwords that must be nowhere in the agent's files: the cloud admin's, the
    /// users', and `more`.
    fn scan_agent_files(&self, corp: &BedForest, more: &[String]) -> anyhow::Result<()> {
        let mut passwords = corp.passwords();
        passwords.push(self.t.cloud.admin_password.clone());
        passwords.extend(more.iter().cloned());
        let (files, findings) = passthru_testkit::scan::scan(&self.home.agent_dir(), &passwords)?;
        eprintln!(
            "scanned the agent's {files} files: {} finding(s)",
            findings.len()
        );
        ensure!(
            findings.is_empty(),
            "passwords in the agent's files: {findings:?}"
        );
        Ok(())
    }
}

/// A `passthru-agent run` process; stopped (SIGTERM, then SIGKILL) when dropped.
struct RunningAgent {
    child: Option<Child>,
    log: PathBuf,
}

impl RunningAgent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds every one of `needles`; the log otherwise.
    fn wait_log(&self, needles: &[&str]) -> anyhow::Result<String> {
        let started = Instant::now();
        loop {
            let log = self.log();
            if needles.iter().all(|n| log.contains(n)) {
                return Ok(log);
            }
            if started.elapsed() > WAIT {
                bail!("the agent did not log {needles:?} within {WAIT:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        self.stop();
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// Waits until the cloud shows `n` active agents.
fn wait_active(s: &Setup, n: usize, agents: &[&RunningAgent]) -> anyhow::Result<()> {
    let started = Instant::now();
    loop {
        if s.active_agents()? >= n {
            return Ok(());
        }
        if started.elapsed() > WAIT {
            let logs: Vec<String> = agents.iter().map(|a| a.log()).collect();
            bail!(
                "{n} agents did not become active within {WAIT:?}; logs:\n{}",
                logs.join("\n---\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn register_and_run_through_a_proxy_with_the_direct_route_blocked() -> anyhow::Result<()> {
    let Some((uid, gid)) = agent_user("register_and_run_through_a_proxy")? else {
        return Ok(());
    };
    let corp = bed::corp()?;
    let s = Setup::new("proxy", &corp, uid, gid)?;
    let proxy = ConnectProxy::start(
        ProxyMode::Tunnel,
        ProxyOptions {
            allow: vec![s.cloud_authority.clone()],
            ..ProxyOptions::default()
        },
    )?;
    let with_proxy = s.config("with-proxy", &[format!("proxy = {:?}", proxy.url())])?;
    let without_proxy = s.config("without-proxy", &[])?;

    // (a) The block works: no way to the cloud without the proxy.
    let o = s.register("direct", None, &[])?;
    ensure!(
        !o.status.success(),
        "registered without the proxy: {}",
        stderr(&o)
    );
    ensure!(
        stderr(&o).contains("cannot reach the cloud"),
        "{}",
        stderr(&o)
    );
    ensure!(!s.home.agent_dir().join("direct/agent.json").exists());
    ensure!(proxy.tunnels() == 0, "{:?}", proxy.connects());

    // (b) register through the proxy: from [cloud] proxy, then from HTTPS_PROXY.
    let o = s.register("from-config", Some(&with_proxy), &[])?;
    ensure!(
        o.status.success(),
        "register --config failed: {}",
        stderr(&o)
    );
    let announced = format!(
        "Reaching the cloud through the proxy {} (from [cloud] proxy, no authentication).",
        proxy.url()
    );
    ensure!(stderr(&o).contains(&announced), "{}", stderr(&o));
    ensure!(
        proxy.tunnels_to(&s.cloud_authority) == 1,
        "{:?}",
        proxy.connects()
    );
    let o = s.register("from-env", None, &[("HTTPS_PROXY", &proxy.url())])?;
    ensure!(
        o.status.success(),
        "register with HTTPS_PROXY failed: {}",
        stderr(&o)
    );
    ensure!(
        stderr(&o).contains("(from HTTPS_PROXY, no authentication)"),
        "{}",
        stderr(&o)
    );
    ensure!(
        proxy.tunnels_to(&s.cloud_authority) == 2,
        "{:?}",
        proxy.connects()
    );
    // NO_PROXY naming the cloud's host: straight to the block.
    let o = s.register(
        "no-proxy",
        None,
        &[("HTTPS_PROXY", &proxy.url()), ("NO_PROXY", "127.0.0.1")],
    )?;
    ensure!(
        !o.status.success() && stderr(&o).contains("cannot reach the cloud"),
        "{}",
        stderr(&o)
    );
    ensure!(
        proxy.tunnels_to(&s.cloud_authority) == 2,
        "{:?}",
        proxy.connects()
    );

    // (a) run without a proxy: it cannot connect.
    let mut blocked = s.run("from-env", &without_proxy, &[])?;
    blocked.wait_log(&[&format!(
        "cannot connect to the cloud at https://{}: cannot reach the cloud",
        s.cloud_authority
    )])?;
    ensure!(s.active_agents()? == 0);
    blocked.stop();

    // (c) run through the proxy of [cloud] proxy: connected, and a sign-in is validated
    // against Samba by this agent (the only one).
    let through_config = s.run("from-config", &with_proxy, &[])?;
    wait_active(&s, 1, &[&through_config])?;
    through_config.wait_log(&[&format!(
        "reaching the cloud through a proxy: https://{} through {} (from [cloud] proxy, no authentication)",
        s.cloud_authority,
        proxy.url()
    )])?;
    s.t.enable_pta()?;
    let client = s.t.sign_in()?;
    let good = corp.user("good")?.clone();
    let spare = corp.user("spare8")?.clone();
    let (wrong, ok_again) = bed::block_on(async move {
        let ok = client.password(TENANT, &good.upn, &good.password).await?;
        ensure!(
            ok.ok(),
            "the sign-in through the proxied agent failed: {:?}",
            ok.body
        );
        let claims = client.verify_id_token(TENANT, &ok).await?;
        ensure!(
            claims["preferred_username"] == good.upn.as_str(),
            "{claims}"
        );
        let wrong = client
            .password(TENANT, &spare.upn, "Wrong-Passw0rd!")
            .await?;
        let ok_again = client.password(TENANT, &spare.upn, &spare.password).await?;
        Ok((wrong, ok_again))
    })?;
    ensure!(wrong.code() == Some(50126), "{:?}", wrong.body);
    ensure!(ok_again.ok(), "{:?}", ok_again.body);
    // The cloud's count of what this agent answered (its only active agent).
    let listed: serde_json::Value =
        serde_json::from_str(&s.t.cloud.admin(&["--json", "agents", "list"])?)?;
    let served: Vec<u64> = listed["agents"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|x| x["status"] == "Active")
                .filter_map(|x| x["requests_served"].as_u64())
                .collect()
        })
        .unwrap_or_default();
    ensure!(served == [3], "{listed}");

    // (c) run through HTTPS_PROXY too: a second agent, active.
    let through_env = s.run("from-env", &without_proxy, &[("HTTPS_PROXY", &proxy.url())])?;
    wait_active(&s, 2, &[&through_config, &through_env])?;
    through_env.wait_log(&["(from HTTPS_PROXY, no authentication)"])?;

    // (d) The proxy saw each CONNECT, to the cloud: two registrations, two agents.
    let connects = proxy.connects();
    ensure!(
        connects
            .iter()
            .all(|c| c.target == s.cloud_authority && c.status == 200),
        "{connects:?}"
    );
    ensure!(proxy.tunnels_to(&s.cloud_authority) >= 4, "{connects:?}");
    eprintln!(
        "the proxy opened {} tunnels to {}",
        connects.len(),
        s.cloud_authority
    );

    drop(through_env);
    drop(through_config);
    s.scan_agent_files(&corp, &[])
}

#[test]
fn proxy_credentials_and_an_inspecting_proxy() -> anyhow::Result<()> {
    let Some((uid, gid)) = agent_user("proxy_credentials_and_an_inspecting_proxy")? else {
        return Ok(());
    };
    let corp = bed::corp()?;
    let s = Setup::new("proxy-auth", &corp, uid, gid)?;
    let user = "passthru-px";
    let password = recorded_secret("Pr0xy");
    let proxy = ConnectProxy::start(
        ProxyMode::Tunnel,
        ProxyOptions {
            credentials: Some((user.to_string(), password.clone())),
            allow: vec![s.cloud_authority.clone()],
            ..ProxyOptions::default()
        },
    )?;
    let right = s.auth_file("right.auth", user, &password)?;
    let wrong = s.auth_file("wrong.auth", user, &recorded_secret("N0t-it"))?;
    let proxy_line = format!("proxy = {:?}", proxy.url());
    let no_credentials = s.config("no-credentials", std::slice::from_ref(&proxy_line))?;
    let wrong_credentials = s.config(
        "wrong-credentials",
        &[
            proxy_line.clone(),
            format!("proxy_auth_file = {:?}", wrong.display().to_string()),
        ],
    )?;
    let right_credentials = s.config(
        "right-credentials",
        &[
            proxy_line.clone(),
            format!("proxy_auth_file = {:?}", right.display().to_string()),
        ],
    )?;

    // register: missing, wrong, right.
    let o = s.register("a", Some(&no_credentials), &[])?;
    ensure!(!o.status.success(), "registered without credentials");
    let text = stderr(&o);
    for part in [
        "407 Proxy Authentication Required",
        "none were sent",
        "proxy_auth_file",
        &proxy.url(),
    ] {
        ensure!(text.contains(part), "{part}: {text}");
    }
    let o = s.register("a", Some(&wrong_credentials), &[])?;
    ensure!(!o.status.success(), "registered with wrong credentials");
    let text = stderr(&o);
    ensure!(
        text.contains("407") && text.contains(&format!("refused the credentials of user '{user}'")),
        "{text}"
    );
    let o = s.register("a", Some(&right_credentials), &[])?;
    ensure!(
        o.status.success(),
        "register with the right credentials failed: {}",
        stderr(&o)
    );
    ensure!(
        stderr(&o).contains(&format!("(from [cloud] proxy, basic auth user '{user}')")),
        "{}",
        stderr(&o)
    );

    // run: missing, wrong (each logged with what to do), right.
    let mut agent = s.run("a", &no_credentials, &[])?;
    agent.wait_log(&[
        "407 Proxy Authentication Required",
        "none were sent",
        "proxy_auth_file",
    ])?;
    agent.stop();
    let mut agent = s.run("a", &wrong_credentials, &[])?;
    agent.wait_log(&[
        "407 Proxy Authentication Required",
        &format!("refused the credentials of user '{user}'"),
    ])?;
    agent.stop();
    ensure!(s.active_agents()? == 0);
    let agent = s.run("a", &right_credentials, &[])?;
    wait_active(&s, 1, &[&agent])?;
    let auths: Vec<(u16, String)> = proxy
        .connects()
        .into_iter()
        .map(|c| (c.status, c.auth))
        .collect();
    for seen in [(407, "missing"), (407, "wrong"), (200, "ok")] {
        ensure!(
            auths
                .iter()
                .any(|(status, auth)| *status == seen.0 && auth == seen.1),
            "{seen:?} not in {auths:?}"
        );
    }
    drop(agent);

    // A TLS-inspecting proxy in the path: the agent's TLS to the cloud still checks the
    // cloud's certificate, so the inspection CA's is refused.
    let inspecting = ConnectProxy::start(ProxyMode::Intercept, ProxyOptions::default())?;
    let inspected = s.config("inspected", &[format!("proxy = {:?}", inspecting.url())])?;
    let agent = s.run("a", &inspected, &[])?;
    let log = agent.wait_log(&["the cloud's TLS certificate is not trusted"])?;
    ensure!(!log.contains("connected to the cloud at"), "{log}");
    ensure!(
        inspecting.tunnels_to(&s.cloud_authority) >= 1,
        "{:?}",
        inspecting.connects()
    );
    drop(agent);

    s.scan_agent_files(&corp, &[password])
}
