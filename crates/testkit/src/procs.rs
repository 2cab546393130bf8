//! The cloud and agents as real processes, for integration tests, benchmarks and the demo.
//! Every process is a child owned by its handle and killed when the handle drops.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;

use crate::bed::BedForest;

/// Directory holding the built `passthru-cloud`, `passthru-agent` and `passthru-testbed`.
pub fn bin_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PASSTHRU_BIN_DIR") {
        return PathBuf::from(d);
    }
    // A test binary lives in target/<profile>/deps; the binaries in target/<profile>.
    let exe = std::env::current_exe().unwrap_or_default();
    let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// Path of one of the workspace's binaries.
pub fn bin(name: &str) -> PathBuf {
    bin_dir().join(name)
}

/// Root under which tests put their cloud data dirs and agent state dirs, so that the
/// password scan can read them afterwards.
pub fn runs_root() -> PathBuf {
    match std::env::var_os("PASSTHRU_TEST_ROOT") {
        Some(r) => PathBuf::from(r).join("runs"),
        None => std::env::temp_dir().join("passthru-runs"),
    }
}

/// A fresh random password for a cloud account, recorded in `$PASSTHRU_TEST_ROOT/secrets.txt`
/// (outside the scanned tree) so that the final scan looks for it too.
pub fn recorded_secret(prefix: &str) -> String {
    let s = crate::bed::secret(prefix);
    if let Some(root) = std::env::var_os("PASSTHRU_TEST_ROOT") {
        use std::io::Write as _;
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(PathBuf::from(root).join("secrets.txt"))
        {
            let _ = writeln!(f, "{s}");
        }
    }
    s
}

/// Writes `secret` (a service account's password) to a fresh file with mode 0600, outside
/// the directories the password scan covers (the file is the one place it may be), and
/// returns its path.
pub fn secret_file(secret: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("passthru-secret-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("password");
    std::fs::write(&file, format!("{secret}\n"))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// A fresh directory for one test.
pub fn fresh_dir(label: &str) -> anyhow::Result<PathBuf> {
    let dir = runs_root().join(format!("{label}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Kills a child (if still running) and reaps it.
fn stop_child(child: &mut Child, signal: i32) {
    if let Ok(None) = child.try_wait() {
        let _ = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Stops a process this handle did not start (the version a self-updated agent handed over
/// to): `signal`, then SIGKILL after 10 s; waits until it is gone.
fn stop_pid(pid: u32, signal: i32) {
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
            .is_some_and(|r| !r.starts_with('Z'))
    };
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if alive() {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
}

/// The second build of `passthru-agent` the update tests publish, with another (newer)
/// version (`scripts/build-update-fixture.sh` builds it): `PASSTHRU_UPDATE_FIXTURE`, else
/// `update-fixture/passthru-agent` beside the binaries' profile directory. Returns its path
/// and the version it reports.
pub fn update_fixture() -> anyhow::Result<(PathBuf, String)> {
    let path = match std::env::var_os("PASSTHRU_UPDATE_FIXTURE") {
        Some(p) => PathBuf::from(p),
        None => bin_dir()
            .parent()
            .map(|p| p.join("update-fixture").join("passthru-agent"))
            .unwrap_or_default(),
    };
    if !path.is_file() {
        bail!(
            "the update fixture (a second build of passthru-agent with a newer version) is \
             missing at {}: build it with `bash scripts/build-update-fixture.sh` (scripts/test.sh \
             does), or name it with PASSTHRU_UPDATE_FIXTURE",
            path.display()
        );
    }
    let out = Command::new(&path).arg("--version").output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text
        .split_whitespace()
        .last()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("{} --version printed no version", path.display()))?;
    Ok((path, version))
}

/// The standard output of a command that must have succeeded; an error `WHAT failed: STDERR`
/// otherwise.
pub(crate) fn stdout_of_success(what: &str, out: &Output) -> anyhow::Result<String> {
    if !out.status.success() {
        bail!("{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// The host lock each test agent takes, in its own state dir (`passthru-agent run
/// --host-lock`; outside tests there is one per host).
pub const HOST_LOCK_FILE: &str = "host.lock";

/// `serve` arguments that lift the rate limits far above any load a bench or a test makes from
/// its one address (the benches measure the relay and the OpenID Connect paths, not the
/// limiter): give them to [`crate::fixture::PtaSetup::serve_args`] or [`Cloud::start_with`].
pub const UNTHROTTLED: [&str; 8] = [
    "--rate-limit-per-address",
    "10000000",
    "--rate-burst-per-address",
    "10000000",
    "--rate-limit-per-tenant",
    "10000000",
    "--rate-burst-per-tenant",
    "10000000",
];

/// A running `passthru-cloud serve`.
#[derive(Debug)]
pub struct Cloud {
    pub data_dir: PathBuf,
    /// `https://127.0.0.1:PORT`
    pub url: String,
    pub tenant: String,
    pub admin_upn: String,
    pub admin_password: String,
    pub listen: String,
    /// Extra environment variables of the `serve` process (kept across restarts).
    serve_env: Vec<(String, String)>,
    /// The DNS zone `domain verify` looks records up in (`serve --dns-server`).
    pub dns: crate::dns::DnsZone,
    /// Extra arguments of the `serve` process (kept across restarts).
    serve_args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
}

impl Cloud {
    /// Initialises a data dir (tenant + admin) in `dir` and serves it on `listen`
    /// (`127.0.0.1:0` picks a free port).
    pub fn start(
        dir: &Path,
        tenant: &str,
        admin_upn: &str,
        admin_password: &str,
        listen: &str,
    ) -> anyhow::Result<Cloud> {
        Cloud::start_with_env(dir, tenant, admin_upn, admin_password, listen, &[])
    }

    /// Like [`Cloud::start`], with extra environment variables for the `serve` process
    /// (e.g. `PASSTHRU_FEDERATION_CA_FILE`), kept across restarts.
    pub fn start_with_env(
        dir: &Path,
        tenant: &str,
        admin_upn: &str,
        admin_password: &str,
        listen: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Cloud> {
        Cloud::start_with(dir, tenant, admin_upn, admin_password, listen, env, &[])
    }

    /// Like [`Cloud::start_with_env`], with extra arguments for `serve` from the first start
    /// on (e.g. `--heartbeat-seconds 10`, which replaces the tests' 2 s).
    pub fn start_with(
        dir: &Path,
        tenant: &str,
        admin_upn: &str,
        admin_password: &str,
        listen: &str,
        env: &[(&str, &str)],
        serve_args: &[&str],
    ) -> anyhow::Result<Cloud> {
        Cloud::start_full(
            dir,
            tenant,
            admin_upn,
            admin_password,
            listen,
            env,
            serve_args,
            &[],
        )
    }

    /// Like [`Cloud::start_with`], with extra arguments for `init` (e.g. `--store
    /// postgres://...`).
    #[allow(clippy::too_many_arguments)]
    pub fn start_full(
        dir: &Path,
        tenant: &str,
        admin_upn: &str,
        admin_password: &str,
        listen: &str,
        env: &[(&str, &str)],
        serve_args: &[&str],
        init_args: &[&str],
    ) -> anyhow::Result<Cloud> {
        let data_dir = dir.join("cloud");
        let out = Command::new(bin("passthru-cloud"))
            .args(["init", "--data-dir"])
            .arg(&data_dir)
            .args(["--tenant", tenant, "--admin", admin_upn])
            .args(init_args)
            .env("PASSTHRU_ADMIN_PASSWORD", admin_password)
            .output()
            .context("running passthru-cloud init")?;
        stdout_of_success("passthru-cloud init", &out)?;
        let mut cloud = Cloud {
            data_dir,
            url: String::new(),
            tenant: tenant.to_string(),
            admin_upn: admin_upn.to_string(),
            admin_password: admin_password.to_string(),
            listen: listen.to_string(),
            serve_env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            dns: crate::dns::DnsZone::new(dir)?,
            serve_args: serve_args.iter().map(|a| a.to_string()).collect(),
            child: None,
            log: dir.join("cloud.log"),
        };
        cloud.serve()?;
        Ok(cloud)
    }

    /// Starts (or restarts) `serve` on the same data dir. After the first start the port is
    /// kept, so agents find the cloud again.
    pub fn serve(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        // Tests run with 2 s heartbeats unless the serve arguments say otherwise.
        let heartbeat: &[&str] = if self.serve_args.iter().any(|a| a == "--heartbeat-seconds") {
            &[]
        } else {
            &["--heartbeat-seconds", "2"]
        };
        let mut child = Command::new(bin("passthru-cloud"))
            .args(["serve", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen", &self.listen])
            .args(heartbeat)
            .arg("--dns-server")
            .arg(self.dns.addr().to_string())
            .args(&self.serve_args)
            .envs(self.serve_env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting passthru-cloud serve")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Passthru cloud listening on ") {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .map_err(|_| anyhow!("the cloud did not start; see {}", self.log.display()))?;
        if let Some(port) = url.rsplit(':').next() {
            self.listen = format!("127.0.0.1:{port}");
        }
        self.url = url;
        self.child = Some(child);
        Ok(())
    }

    /// Another instance of this deployment, as the operator makes one: a copy (`cp -a`) of
    /// the data dir in `dir/cloud`, served with the same arguments (the same store and bus)
    /// on a free port of its own; its log is `dir/cloud.log`.
    pub fn another_instance(&self, dir: &Path) -> anyhow::Result<Cloud> {
        let mut other = self.copy_for_instance(dir)?;
        other.serve()?;
        Ok(other)
    }

    /// [`Cloud::another_instance`] without starting it ([`Cloud::serve`] does; or
    /// [`Cloud::try_serve`] to see a refusal).
    pub fn copy_for_instance(&self, dir: &Path) -> anyhow::Result<Cloud> {
        std::fs::create_dir_all(dir)?;
        let data_dir = dir.join("cloud");
        let out = Command::new("cp")
            .arg("-a")
            .arg(&self.data_dir)
            .arg(&data_dir)
            .output()?;
        stdout_of_success("cp -a DATA_DIR", &out)?;
        Ok(Cloud {
            data_dir,
            url: String::new(),
            tenant: self.tenant.clone(),
            admin_upn: self.admin_upn.clone(),
            admin_password: self.admin_password.clone(),
            listen: "127.0.0.1:0".into(),
            serve_env: self.serve_env.clone(),
            dns: crate::dns::DnsZone::new(dir)?,
            serve_args: self.serve_args.clone(),
            child: None,
            log: dir.join("cloud.log"),
        })
    }

    /// Runs `serve` expecting it to refuse to start: its exit status must be a failure
    /// within 30 s; returns what it printed on standard error.
    pub fn try_serve(&self, extra: &[&str]) -> anyhow::Result<String> {
        let mut child = Command::new(bin("passthru-cloud"))
            .args(["serve", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen", "127.0.0.1:0", "--dns-server"])
            .arg(self.dns.addr().to_string())
            .args(&self.serve_args)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read as _;
                    e.read_to_string(&mut err)?;
                }
                if status.success() {
                    bail!("serve exited successfully instead of refusing: {err}");
                }
                return Ok(err);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("serve started instead of refusing");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kills the server with SIGKILL (a crash: nothing is flushed, nobody is told).
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Extra arguments for `serve` from the next [`Cloud::serve`] on (e.g.
    /// `--metrics-listen 127.0.0.1:PORT`).
    pub fn set_serve_args(&mut self, args: &[&str]) {
        self.serve_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// More arguments for `serve`, after those it has, from the next [`Cloud::serve`] on
    /// (e.g. an instance's own `--metrics-listen 127.0.0.1:PORT`).
    pub fn add_serve_args(&mut self, args: &[&str]) {
        self.serve_args.extend(args.iter().map(|a| a.to_string()));
    }

    /// Stops the server with SIGTERM (as Ctrl-C would).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, 15);
        }
    }

    /// The deployment CA file clients trust.
    pub fn ca_file(&self) -> PathBuf {
        self.data_dir.join("tls/ca.pem")
    }

    /// `passthru-cloud admin ... ARGS` for `tenant` as `upn`, ready to run.
    fn admin_command(&self, tenant: &str, upn: &str, password: &str, args: &[&str]) -> Command {
        let mut c = Command::new(bin("passthru-cloud"));
        c.args(["admin", "--url", &self.url, "--tenant", tenant, "--ca-file"])
            .arg(self.ca_file())
            .args(args)
            .env("PASSTHRU_ADMIN_UPN", upn)
            .env("PASSTHRU_ADMIN_PASSWORD", password)
            .stdin(Stdio::null());
        c
    }

    /// `passthru-cloud admin ... ARGS` for the cloud's tenant with no credentials in the
    /// environment (no `PASSTHRU_ADMIN_UPN`, `PASSTHRU_ADMIN_PASSWORD`) and no terminal: what
    /// signs in is `--device-code` or the token cache (give it `PASSTHRU_TOKEN_CACHE`).
    pub fn admin_without_credentials(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("passthru-cloud"));
        c.args([
            "admin",
            "--url",
            &self.url,
            "--tenant",
            &self.tenant,
            "--ca-file",
        ])
        .arg(self.ca_file())
        .args(args)
        .env_remove("PASSTHRU_ADMIN_UPN")
        .env_remove("PASSTHRU_ADMIN_PASSWORD")
        .stdin(Stdio::null());
        c
    }

    /// Runs `passthru-cloud admin ... ARGS` for `tenant` as its admin.
    pub fn admin_as(
        &self,
        tenant: &str,
        upn: &str,
        password: &str,
        args: &[&str],
    ) -> anyhow::Result<Output> {
        self.admin_command(tenant, upn, password, args)
            .output()
            .context("running passthru-cloud admin")
    }

    /// Like [`Cloud::admin_as`], but insists on success and returns the standard output.
    pub fn admin_as_ok(
        &self,
        tenant: &str,
        upn: &str,
        password: &str,
        args: &[&str],
    ) -> anyhow::Result<String> {
        let out = self.admin_as(tenant, upn, password, args)?;
        stdout_of_success(&format!("`passthru-cloud admin {}`", args.join(" ")), &out)
    }

    /// Adds a domain (`domain add ARGS...`, managed or `--federated ...`) as the tenant's
    /// Global Administrator, publishes the TXT record the cloud asks for in the test DNS
    /// zone, and verifies the domain. Returns the answer of `domain add --json`.
    pub fn add_domain(&self, args: &[&str]) -> anyhow::Result<Value> {
        self.add_domain_as(&self.tenant, &self.admin_upn, &self.admin_password, args)
    }

    /// [`Cloud::add_domain`] in `tenant` as `upn`.
    pub fn add_domain_as(
        &self,
        tenant: &str,
        upn: &str,
        password: &str,
        args: &[&str],
    ) -> anyhow::Result<Value> {
        let mut full = vec!["--json", "domain", "add"];
        full.extend_from_slice(args);
        let added: Value = serde_json::from_str(&self.admin_as_ok(tenant, upn, password, &full)?)
            .context("`domain add --json` printed no JSON")?;
        let name = added["name"].as_str().unwrap_or_default().to_string();
        let record = &added["verification"];
        let (Some(rname), Some(value)) = (record["name"].as_str(), record["value"].as_str()) else {
            bail!("`domain add` asked for no TXT record: {added}");
        };
        self.dns.publish_txt(rname, value)?;
        self.admin_as_ok(tenant, upn, password, &["domain", "verify", &name])?;
        Ok(added)
    }

    /// Runs an admin command that reads a user's password from `PASSTHRU_USER_PASSWORD`
    /// (`user reset-password`, `user set-password`), as the tenant's Global Administrator.
    pub fn admin_with_user_password(
        &self,
        args: &[&str],
        user_password: &str,
    ) -> anyhow::Result<Output> {
        self.admin_command(&self.tenant, &self.admin_upn, &self.admin_password, args)
            .env("PASSTHRU_USER_PASSWORD", user_password)
            .output()
            .context("running passthru-cloud admin")
    }

    /// Runs an admin command as the tenant's Global Administrator and insists on success.
    pub fn admin(&self, args: &[&str]) -> anyhow::Result<String> {
        self.admin_as_ok(&self.tenant, &self.admin_upn, &self.admin_password, args)
    }

    /// Adds the cloud-only user `upn` with `password` to the tenant, as its Global
    /// Administrator (`admin user add`), and insists on success.
    pub fn add_user(&self, upn: &str, password: &str) -> anyhow::Result<()> {
        let out = self
            .admin_command(
                &self.tenant,
                &self.admin_upn,
                &self.admin_password,
                &["user", "add", upn],
            )
            .env("PASSTHRU_USER_PASSWORD", password)
            .output()
            .context("running passthru-cloud admin user add")?;
        stdout_of_success(&format!("`passthru-cloud admin user add {upn}`"), &out).map(drop)
    }

    /// Adds a tenant to this cloud's data dir (`passthru-cloud tenant add`).
    pub fn add_tenant(
        &self,
        tenant: &str,
        admin_upn: &str,
        admin_password: &str,
    ) -> anyhow::Result<()> {
        let out = Command::new(bin("passthru-cloud"))
            .args(["tenant", "add", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--tenant", tenant, "--admin", admin_upn])
            .env("PASSTHRU_ADMIN_PASSWORD", admin_password)
            .output()?;
        stdout_of_success("tenant add", &out)?;
        Ok(())
    }

    /// Waits until `n` agents of `tenant` show as active.
    pub fn wait_active_agents(&self, n: usize, timeout: Duration) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let out = self.admin(&["--json", "agents", "list"])?;
            let v: Value = serde_json::from_str(&out)?;
            let active = v["agents"]
                .as_array()
                .map(|a| a.iter().filter(|x| x["status"] == "Active").count())
                .unwrap_or(0);
            if active >= n {
                return Ok(v);
            }
            if Instant::now() > deadline {
                bail!("only {active} of {n} agents became active: {v}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Process id of the server, when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Cloud {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One forest entry of an agent config file.
#[derive(Debug, Clone)]
pub struct ForestEntry {
    pub name: String,
    pub upn_suffixes: Vec<String>,
    pub domain_controllers: Vec<String>,
    pub ca_file: PathBuf,
    /// Directory sync: the service account, its password file, the interval in seconds.
    pub sync: Option<(String, PathBuf, u64)>,
    /// A plain LDAP directory's bind DN template (`uid={local},ou=people,...`).
    pub bind_dn_template: Option<String>,
    /// Extra lines of the `[[forest]]` table (`writeback_base_dn = "..."`, say).
    pub extra: Vec<String>,
}

impl ForestEntry {
    /// The entry for a test bed forest, served by the domain controllers `dcs` (LDAPS URLs).
    pub fn from_bed(forest: &BedForest, dcs: Vec<String>) -> ForestEntry {
        ForestEntry {
            name: forest.dns_name.clone(),
            upn_suffixes: vec![forest.upn_suffix.clone()],
            domain_controllers: dcs,
            ca_file: forest.ca_file.clone(),
            sync: None,
            bind_dn_template: None,
            extra: Vec::new(),
        }
    }

    /// Writeback limits: `writeback_protected_accounts` and, when given,
    /// `writeback_base_dn`.
    pub fn with_writeback_scope(mut self, protected_accounts: bool, base_dn: Option<&str>) -> Self {
        self.extra.push(format!(
            "writeback_protected_accounts = {protected_accounts}"
        ));
        if let Some(dn) = base_dn {
            self.extra.push(format!("writeback_base_dn = {dn:?}"));
        }
        self
    }

    /// Users bind as `template`'s DN (a plain LDAP directory such as slapd).
    pub fn with_bind_dn_template(mut self, template: &str) -> Self {
        self.bind_dn_template = Some(template.to_string());
        self
    }

    /// Syncs the forest with `account` (a UPN) whose password is in `password_file`, every
    /// `interval_seconds`.
    pub fn with_sync(mut self, account: &str, password_file: &Path, interval_seconds: u64) -> Self {
        self.sync = Some((
            account.to_string(),
            password_file.to_path_buf(),
            interval_seconds,
        ));
        self
    }

    /// The entry for a test bed forest, served by its own domain controller.
    pub fn for_forest(forest: &BedForest) -> ForestEntry {
        ForestEntry::from_bed(forest, vec![forest.ldaps_url.clone()])
    }
}

/// Writes an agent config file.
pub fn write_agent_config(path: &Path, forests: &[ForestEntry]) -> anyhow::Result<()> {
    let mut s = String::new();
    for f in forests {
        let list = |v: &[String]| {
            v.iter()
                .map(|x| format!("{x:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        s.push_str(&format!(
            "[[forest]]\nname = {:?}\nupn_suffixes = [{}]\ndomain_controllers = [{}]\nca_file = {:?}\n\n",
            f.name,
            list(&f.upn_suffixes),
            list(&f.domain_controllers),
            f.ca_file.display().to_string()
        ));
        if let Some(template) = &f.bind_dn_template {
            s.truncate(s.trim_end().len());
            s.push_str(&format!("\nbind_dn_template = {template:?}\n\n"));
        }
        if let Some((account, file, interval)) = &f.sync {
            // The table's keys continue: remove the blank line the entry ended with.
            s.truncate(s.trim_end().len());
            s.push_str(&format!(
                "\nservice_account = {account:?}\nservice_password_file = {:?}\nsync_interval_seconds = {interval}\n\n",
                file.display().to_string()
            ));
        }
        if !f.extra.is_empty() {
            s.truncate(s.trim_end().len());
            s.push('\n');
            for line in &f.extra {
                s.push_str(line);
                s.push('\n');
            }
            s.push('\n');
        }
    }
    std::fs::write(path, s)?;
    Ok(())
}

/// A registered agent, and its process when running.
#[derive(Debug)]
pub struct Agent {
    pub state_dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    log: PathBuf,
}

impl Agent {
    /// `passthru-agent register` against `cloud` for `tenant` (as that tenant's admin).
    pub fn register(
        cloud: &Cloud,
        dir: &Path,
        tenant: &str,
        upn: &str,
        password: &str,
        forests: &[ForestEntry],
    ) -> anyhow::Result<Agent> {
        let state_dir = dir.join(format!("agent-{}", uuid::Uuid::new_v4().simple()));
        let out = Command::new(bin("passthru-agent"))
            .args([
                "register",
                "--cloud",
                &cloud.url,
                "--tenant",
                tenant,
                "--ca-file",
            ])
            .arg(cloud.ca_file())
            .arg("--state-dir")
            .arg(&state_dir)
            .env("PASSTHRU_ADMIN_UPN", upn)
            .env("PASSTHRU_ADMIN_PASSWORD", password)
            .stdin(Stdio::null())
            .output()?;
        stdout_of_success("passthru-agent register", &out)?;
        let config = state_dir.with_extension("toml");
        write_agent_config(&config, forests)?;
        let log = state_dir.with_extension("log");
        Ok(Agent {
            state_dir,
            config,
            child: None,
            log,
        })
    }

    /// A copy of this agent's state dir and config as they are now (not its lock or
    /// connection record), to run later as the agent was: e.g. with a certificate since
    /// renewed.
    pub fn snapshot(&self, label: &str) -> anyhow::Result<Agent> {
        use std::os::unix::fs::PermissionsExt as _;
        let state_dir = self.state_dir.with_file_name(format!(
            "{}-{label}",
            self.state_dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or("agent")
        ));
        std::fs::create_dir_all(&state_dir)?;
        std::fs::set_permissions(&state_dir, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(&self.state_dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if matches!(
                name.as_ref(),
                "agent.lock" | "host.lock" | "connection.json"
            ) || name.starts_with('.')
            {
                continue;
            }
            std::fs::copy(entry.path(), state_dir.join(entry.file_name()))?;
        }
        let config = state_dir.with_extension("toml");
        std::fs::copy(&self.config, &config)?;
        Ok(Agent {
            log: state_dir.with_extension("log"),
            state_dir,
            config,
            child: None,
        })
    }

    /// Starts `passthru-agent run` (with a host lock of its own, so that several agents can
    /// run on the test machine).
    pub fn run(&mut self) -> anyhow::Result<()> {
        self.spawn(None)
    }

    /// Starts `passthru-agent run` as the user `uid` and group `gid` (no supplementary
    /// groups), e.g. so that firewall rules can tell its traffic apart (`-m owner
    /// --uid-owner`). The state dir and the config must be that user's first
    /// ([`Agent::hand_over`]); so must every file the config names.
    pub fn run_as(&mut self, uid: u32, gid: u32) -> anyhow::Result<()> {
        self.spawn(Some((uid, gid)))
    }

    fn spawn(&mut self, user: Option<(u32, u32)>) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut command = Command::new(bin("passthru-agent"));
        command
            .args(["run", "--state-dir"])
            .arg(&self.state_dir)
            .arg("--config")
            .arg(&self.config)
            // One agent per host is the rule (`run --host-lock`): the tests run several on one
            // machine, so each takes a host lock of its own, in its state dir (which
            // `hand_over` gives to the user of `run_as`).
            .arg("--host-lock")
            .arg(self.state_dir.join(HOST_LOCK_FILE))
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .stdin(Stdio::null());
        if let Some((uid, gid)) = user {
            // With a uid set and no groups given, std drops the supplementary groups
            // (setgroups(0)) before setgid and setuid.
            use std::os::unix::process::CommandExt as _;
            command.uid(uid).gid(gid);
        }
        self.child = Some(command.spawn().context("starting passthru-agent run")?);
        Ok(())
    }

    /// Gives the state dir (recursively) and the config file to `uid`:`gid`, for
    /// [`Agent::run_as`].
    pub fn hand_over(&self, uid: u32, gid: u32) -> anyhow::Result<()> {
        fn walk(path: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .with_context(|| format!("chown {}", path.display()))?;
            if path.is_dir() {
                for entry in std::fs::read_dir(path)? {
                    walk(&entry?.path(), uid, gid)?;
                }
            }
            Ok(())
        }
        walk(&self.state_dir, uid, gid)?;
        walk(&self.config, uid, gid)
    }

    /// Sends `signal` (`STOP`, `CONT`, `KILL`, ...) to the running agent without waiting
    /// for anything.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow!("the agent is not running"))?;
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -{signal} {pid} failed");
        }
        Ok(())
    }

    /// Stops the agent with a signal (15 = SIGTERM, 9 = SIGKILL); and the version it
    /// handed over to, after a self-update ([`Agent::lock_holder`]).
    pub fn stop_with(&mut self, signal: i32) {
        let started = self.child.as_ref().map(Child::id);
        if let Some(mut c) = self.child.take() {
            stop_child(&mut c, signal);
        }
        if let Some(pid) = self.lock_holder().filter(|p| Some(*p) != started) {
            stop_pid(pid, signal);
        }
    }

    /// The process running this agent (its state dir's lock names it, and its command line
    /// names the state dir): after a self-update, the new version, not the process
    /// [`Agent::run`] started. `None` when none runs.
    pub fn lock_holder(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.state_dir.join("agent.lock")).ok()?;
        let pid: u32 = text.trim().strip_prefix("pid ")?.trim().parse().ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let dir = self.state_dir.as_os_str().as_encoded_bytes();
        let ours = cmdline.split(|b| *b == 0).any(|arg| arg == dir);
        // A zombie (exited, not yet reaped by the test) runs nothing.
        let running = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit(')').next().map(|r| r.trim_start().to_string()))
            .is_some_and(|r| !r.starts_with('Z'));
        (ours && running).then_some(pid)
    }

    /// Whether the process [`Agent::run`] started has exited, and how.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Appends `text` to the agent's configuration file (read at its next start).
    pub fn append_config(&self, text: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)?;
        writeln!(f, "\n{text}")?;
        Ok(())
    }

    /// The agent's admin log (`STATE_DIR/admin.log`).
    pub fn admin_log(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("admin.log")).unwrap_or_default()
    }

    /// Process id, when running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Lists the cloud's instances in the agent's config (`[cloud] urls`), replacing the
    /// address it registered with, from its next start on.
    pub fn set_cloud_urls(&self, urls: &[&str]) -> anyhow::Result<()> {
        use std::io::Write as _;
        let list = urls
            .iter()
            .map(|u| format!("\"{u}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&self.config)?;
        writeln!(f, "\n[cloud]\nurls = [{list}]")?;
        Ok(())
    }

    /// The agent's trace log (failed validations).
    pub fn trace(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("trace.log")).unwrap_or_default()
    }

    /// The agent's console log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The agent id from its state dir.
    pub fn id(&self) -> anyhow::Result<String> {
        let v: Value =
            serde_json::from_str(&std::fs::read_to_string(self.state_dir.join("agent.json"))?)?;
        v["agent_id"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| anyhow!("agent.json has no agent_id"))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop_with(15);
    }
}

/// Socket inodes a process holds in LISTEN state (TCP, IPv4 and IPv6). Empty means the
/// process accepts no connections.
pub fn listening_sockets(pid: u32) -> anyhow::Result<Vec<u64>> {
    let mut inodes = Vec::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
        let Ok(target) = std::fs::read_link(entry?.path()) else {
            continue;
        };
        let t = target.to_string_lossy();
        if let Some(n) = t.strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')) {
            if let Ok(n) = n.parse::<u64>() {
                inodes.push(n);
            }
        }
    }
    let mut listening = Vec::new();
    for table in ["tcp", "tcp6", "udp", "udp6"] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 10 {
                continue;
            }
            // TCP state 0A = LISTEN; any bound UDP socket (07) also receives unsolicited traffic.
            let listening_state = if table.starts_with("tcp") {
                cols[3] == "0A"
            } else {
                cols[3] == "07"
            };
            if let Ok(inode) = cols[9].parse::<u64>() {
                if listening_state && inodes.contains(&inode) {
                    listening.push(inode);
                }
            }
        }
    }
    Ok(listening)
}
