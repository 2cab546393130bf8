//! A throwaway Samba AD forest: provisioned into a directory of its own and served by a
//! `samba` child process bound to one loopback address.
//!
//! The child's stdin is a pipe this process holds: Samba in interactive mode ends when its
//! stdin reaches end of file, so the DC also goes away when its owner dies without running
//! `Drop` (a panic with `panic = abort`, SIGKILL, a forest kept in a `static`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rustls::pki_types::ServerName;

/// How long a DC may take to accept LDAPS connections after `samba` starts.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a DC may take to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// The DC's host name (NetBIOS name DC1).
const HOST: &str = "dc1";

/// What to provision.
#[derive(Debug, Clone)]
pub struct ForestSpec {
    /// Kerberos realm, upper case (`CORP.EXAMPLE.TEST`); its lower-case form is the DNS name
    /// and the UPN suffix.
    pub realm: String,
    /// NetBIOS domain name (`CORP`).
    pub netbios: String,
    /// Loopback address the DC binds (added to `lo` when missing).
    pub ip: Ipv4Addr,
    /// Password of `Administrator`.
    pub admin_password: String,
    /// Wrong passwords before an account locks out (the lockout test user gets exactly this
    /// many).
    pub lockout_threshold: u32,
}

impl ForestSpec {
    /// A spec with a fresh random administrator password and a lockout threshold of 3.
    pub fn new(realm: &str, netbios: &str, ip: Ipv4Addr) -> ForestSpec {
        ForestSpec {
            realm: realm.to_ascii_uppercase(),
            netbios: netbios.to_ascii_uppercase(),
            ip,
            admin_password: crate::bed::secret("Adm1n"),
            lockout_threshold: 3,
        }
    }
}

/// A provisioned forest and, while it runs, its `samba` process.
#[derive(Debug)]
pub struct Forest {
    spec: ForestSpec,
    dc: DcProcess,
}

/// One DC's directory and, while it runs, its `samba` process: what the first DC of a
/// forest and a DC joined to it ([`crate::second_dc::SecondDc`]) have in common. Stopped
/// on drop.
#[derive(Debug)]
pub(crate) struct DcProcess {
    pub(crate) dir: PathBuf,
    pub(crate) ip: Ipv4Addr,
    child: Option<Child>,
}

impl Forest {
    /// Provisions a new forest in `dir` (which must not hold one yet), starts its DC, sets
    /// the password policy and waits until LDAPS answers. Installs Samba first when missing.
    pub fn provision(dir: &Path, spec: ForestSpec) -> anyhow::Result<Forest> {
        ensure_samba_installed()?;
        if dir.join("etc/smb.conf").exists() {
            bail!("{} already holds a provisioned forest", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)?;
        ensure_port_free(spec.ip)?;
        ensure_loopback_address(spec.ip)?;
        let ip = spec.ip;
        let mut forest = Forest {
            spec,
            dc: DcProcess::new(dir, ip),
        };
        forest.run_provision()?;
        forest.dc.edit_smb_conf()?;
        forest.dc.write_certs(HOST, &forest.dns_name())?;
        forest.dc.spawn()?;
        // The policy is written to the database directly; doing it while the DC boots saves
        // a few seconds.
        let policy = forest.set_password_policy();
        let ready = forest.dc.wait_ready();
        policy?;
        ready?;
        Ok(forest)
    }

    fn run_provision(&self) -> anyhow::Result<()> {
        let out = Command::new(samba_tool())
            .args(["domain", "provision"])
            .arg(format!("--targetdir={}", self.dc.dir.display()))
            .arg(format!("--realm={}", self.spec.realm))
            .arg(format!("--domain={}", self.spec.netbios))
            .arg(format!("--host-name={HOST}"))
            .args(["--server-role=dc", "--dns-backend=NONE"])
            .arg(format!("--adminpass={}", self.spec.admin_password))
            .arg(format!("--option=interfaces={}", self.spec.ip))
            .arg("--option=bind interfaces only=yes")
            .stdin(Stdio::null())
            .output()
            .context("running samba-tool domain provision")?;
        // The command line holds the administrator password: the error shows only the output.
        check(&out, "samba-tool domain provision")
    }

    fn set_password_policy(&self) -> anyhow::Result<()> {
        let out = Command::new(samba_tool())
            .args(["domain", "passwordsettings", "set", "-s"])
            .arg(self.conf())
            .args([
                "--min-pwd-age=0",
                "--complexity=off",
                "--history-length=0",
                "--min-pwd-length=1",
            ])
            .arg(format!(
                "--account-lockout-threshold={}",
                self.spec.lockout_threshold
            ))
            // A locked account stays locked for a day; the bad-password count of everyone else
            // resets a minute after their last wrong password, so repeated test runs against
            // one test bed do not lock the spare users out.
            .args([
                "--account-lockout-duration=1440",
                "--reset-account-lockout-after=1",
            ])
            .stdin(Stdio::null())
            .output()
            .context("running samba-tool domain passwordsettings set")?;
        check(&out, "samba-tool domain passwordsettings set")
    }

    /// Starts the DC again after [`Forest::stop`] and waits for LDAPS. Does nothing when
    /// it runs.
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.dc.start()
    }

    /// Stops the DC: SIGTERM to its own pid (Samba takes its workers along), SIGKILL after
    /// 15 s; then waits until nothing accepts connections on its LDAPS port.
    pub fn stop(&mut self) {
        self.dc.stop();
    }

    /// Whether the DC process is running.
    pub fn is_running(&mut self) -> bool {
        self.dc.is_running()
    }

    /// Process id of the `samba` master process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.dc.pid()
    }

    /// Writes `DIR/krb5.conf`, which names this DC's address as the realm's KDC (no DNS
    /// lookups), for `KRB5_CONFIG` of Kerberos clients such as `samba-tool domain join`.
    /// Returns its path.
    pub fn write_krb5_conf(&self) -> anyhow::Result<PathBuf> {
        let path = self.dc.dir.join("krb5.conf");
        let realm = &self.spec.realm;
        let dns = self.dns_name();
        let ip = self.spec.ip;
        let text = format!(
            "[libdefaults]\n\tdefault_realm = {realm}\n\tdns_lookup_kdc = false\n\
             \tdns_lookup_realm = false\n\n[realms]\n\t{realm} = {{\n\t\tkdc = {ip}\n\t}}\n\n\
             [domain_realm]\n\t.{dns} = {realm}\n\t{dns} = {realm}\n"
        );
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// The spec the forest was provisioned with.
    pub fn spec(&self) -> &ForestSpec {
        &self.spec
    }

    /// Kerberos realm (`CORP.EXAMPLE.TEST`).
    pub fn realm(&self) -> &str {
        &self.spec.realm
    }

    /// DNS name of the domain, which is also the UPN suffix (`corp.example.test`).
    pub fn dns_name(&self) -> String {
        self.spec.realm.to_ascii_lowercase()
    }

    /// NetBIOS domain name (`CORP`).
    pub fn netbios(&self) -> &str {
        &self.spec.netbios
    }

    /// The DC's loopback address.
    pub fn ip(&self) -> Ipv4Addr {
        self.spec.ip
    }

    /// `ldaps://IP:636`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}:636", self.spec.ip)
    }

    /// The CA file that verifies the DC's certificate (`DIR/private/tls/ca.pem`).
    pub fn ca_file(&self) -> PathBuf {
        self.dc.ca_file()
    }

    /// Distinguished name of the domain (`DC=corp,DC=example,DC=test`).
    pub fn base_dn(&self) -> String {
        base_dn(&self.dns_name())
    }

    /// The administrator's UPN (`Administrator@corp.example.test`).
    pub fn admin_upn(&self) -> String {
        format!("Administrator@{}", self.dns_name())
    }

    /// The administrator's password.
    pub fn admin_password(&self) -> &str {
        &self.spec.admin_password
    }

    /// The forest's directory.
    pub fn dir(&self) -> &Path {
        &self.dc.dir
    }

    /// `DIR/etc/smb.conf`.
    pub fn conf(&self) -> PathBuf {
        self.dc.conf()
    }

    /// Where the DC's output goes (`DIR/samba.log`).
    pub fn log_file(&self) -> PathBuf {
        self.dc.log_file()
    }

    /// The last `lines` lines of the DC's log.
    pub fn log_tail(&self, lines: usize) -> String {
        self.dc.log_tail(lines)
    }
}

impl DcProcess {
    /// A DC in `dir` (canonical) bound to `ip`, not running.
    pub(crate) fn new(dir: PathBuf, ip: Ipv4Addr) -> DcProcess {
        DcProcess {
            dir,
            ip,
            child: None,
        }
    }

    /// `DIR/etc/smb.conf`.
    pub(crate) fn conf(&self) -> PathBuf {
        self.dir.join("etc/smb.conf")
    }

    /// `DIR/private/tls/ca.pem`.
    pub(crate) fn ca_file(&self) -> PathBuf {
        self.dir.join("private/tls/ca.pem")
    }

    /// `DIR/samba.log`.
    pub(crate) fn log_file(&self) -> PathBuf {
        self.dir.join("samba.log")
    }

    /// The last `lines` lines of the DC's log.
    pub(crate) fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// A CA of its own and a certificate it signed for `host.dns_name`, `dns_name` and the
    /// DC's address, in `DIR/private/tls` (Samba's own has no subjectAltName).
    pub(crate) fn write_certs(&self, host: &str, dns_name: &str) -> anyhow::Result<()> {
        crate::tls::write_dc_certs(&self.dir.join("private/tls"), host, dns_name, self.ip)
    }

    /// `server services` without the file server and winbind (they collide between
    /// instances), and every runtime path inside the forest's directory.
    pub(crate) fn edit_smb_conf(&self) -> anyhow::Result<()> {
        let path = self.conf();
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let d = self.dir.display();
        let ours = [
            (
                "server services",
                "ldap, cldap, kdc, rpc, drepl, kcc".to_string(),
            ),
            ("pid directory", format!("{d}/run")),
            ("ncalrpc dir", format!("{d}/ncalrpc")),
            ("log file", format!("{d}/log.%m")),
        ];
        let mut out = String::new();
        let mut in_global = false;
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with('[') {
                in_global = t.eq_ignore_ascii_case("[global]");
                out.push_str(line);
                out.push('\n');
                if in_global {
                    for (k, v) in &ours {
                        out.push_str(&format!("\t{k} = {v}\n"));
                    }
                }
                continue;
            }
            let key = t.split('=').next().unwrap_or_default().trim();
            if in_global && ours.iter().any(|(k, _)| key.eq_ignore_ascii_case(k)) {
                continue;
            }
            out.push_str(line);
            out.push('\n');
        }
        std::fs::write(&path, out)?;
        std::fs::create_dir_all(self.dir.join("run"))?;
        std::fs::create_dir_all(self.dir.join("ncalrpc"))?;
        Ok(())
    }

    pub(crate) fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_file())
            .with_context(|| format!("opening {}", self.log_file().display()))?;
        let child = Command::new(samba_bin())
            .arg("-s")
            .arg(self.conf())
            .args(["-i", "--debug-stdout", "-d1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting samba")?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until LDAPS on the DC's address completes a verified TLS handshake.
    pub(crate) fn wait_ready(&mut self) -> anyhow::Result<()> {
        let config = crate::tls::client_config(&self.ca_file())?;
        let addr = SocketAddr::new(IpAddr::V4(self.ip), 636);
        let name = ServerName::IpAddress(IpAddr::V4(self.ip).into());
        let deadline = Instant::now() + START_TIMEOUT;
        let mut last = anyhow!("not tried");
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Some(status) = child.try_wait()? {
                    self.child = None;
                    bail!(
                        "samba exited ({status}) before LDAPS was ready; end of {}:\n{}",
                        self.log_file().display(),
                        self.log_tail(30)
                    );
                }
            } else {
                bail!("samba is not running");
            }
            match tls_probe(addr, name.clone(), config.clone()) {
                Ok(()) => return Ok(()),
                Err(e) => last = e,
            }
            if Instant::now() > deadline {
                bail!(
                    "LDAPS on {addr} not ready after {} s (last: {last:#}); end of {}:\n{}",
                    START_TIMEOUT.as_secs(),
                    self.log_file().display(),
                    self.log_tail(30)
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Starts the DC (again) and waits for LDAPS. Does nothing when
    /// it runs.
    pub(crate) fn start(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            if child.try_wait()?.is_none() {
                return Ok(());
            }
            self.child = None;
        }
        ensure_port_free(self.ip)?;
        ensure_loopback_address(self.ip)?;
        self.spawn()?;
        self.wait_ready()
    }

    /// Stops the DC: SIGTERM to its own pid (Samba takes its workers along), SIGKILL after
    /// 15 s; then waits until nothing accepts connections on its LDAPS port.
    pub(crate) fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() > deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        drop(child.stdin.take());
        // The workers holding the sockets may outlive the master by a moment.
        let addr = SocketAddr::new(IpAddr::V4(self.ip), 636);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline
            && TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok()
        {
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the DC process is running.
    pub(crate) fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// Process id of the `samba` master process, while it runs.
    pub(crate) fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for DcProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `DC=a,DC=b,...` for a DNS name.
pub fn base_dn(dns_name: &str) -> String {
    dns_name
        .split('.')
        .map(|label| format!("DC={label}"))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn check(out: &Output, what: &str) -> anyhow::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = text.lines().collect();
    bail!(
        "{what} failed ({}):\n{}",
        out.status,
        lines[lines.len().saturating_sub(25)..].join("\n")
    )
}

pub(crate) fn tls_probe(
    addr: SocketAddr,
    name: ServerName<'static>,
    config: Arc<rustls::ClientConfig>,
) -> anyhow::Result<()> {
    let mut sock = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    sock.set_read_timeout(Some(Duration::from_secs(2)))?;
    sock.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut conn = rustls::ClientConnection::new(config, name)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    Ok(())
}

fn samba_bin() -> &'static str {
    if Path::new("/usr/sbin/samba").exists() {
        "/usr/sbin/samba"
    } else {
        "samba"
    }
}

pub(crate) fn samba_tool() -> &'static str {
    if Path::new("/usr/bin/samba-tool").exists() {
        "/usr/bin/samba-tool"
    } else {
        "samba-tool"
    }
}

fn installed() -> bool {
    let ok = |cmd: &str| {
        Command::new(cmd)
            .arg("--version")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    ok(samba_bin()) && ok(samba_tool())
}

/// Installs Samba AD DC with apt-get when `samba` or `samba-tool` is missing.
/// One install at a time: forests are provisioned in parallel, and two apt-get runs
/// would fight over dpkg's lock.
static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());

pub fn ensure_samba_installed() -> anyhow::Result<()> {
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|p| p.into_inner());
    if installed() {
        return Ok(());
    }
    let apt = |args: &[&str]| -> anyhow::Result<bool> {
        Ok(Command::new("apt-get")
            .args([
                "-o",
                "Acquire::http::Timeout=30",
                "-o",
                "Acquire::Retries=2",
            ])
            .args(["-o", "DPkg::Lock::Timeout=300"])
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .context("running apt-get")?
            .success())
    };
    let packages = [
        "install",
        "-y",
        "samba",
        "samba-ad-dc",
        "samba-common-bin",
        "ldap-utils",
    ];
    if !apt(&packages)? {
        apt(&["update"])?;
        if !apt(&packages)? {
            bail!("apt-get install samba samba-ad-dc samba-common-bin ldap-utils failed");
        }
    }
    if !installed() {
        bail!("samba or samba-tool is still missing after apt-get install");
    }
    Ok(())
}

/// Fails when something already accepts connections on `ip:636` (another test bed?):
/// waiting for our DC there would only time out.
pub(crate) fn ensure_port_free(ip: Ipv4Addr) -> anyhow::Result<()> {
    let addr = SocketAddr::new(IpAddr::V4(ip), 636);
    if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
        bail!("something already listens on {addr} (another test bed or a system Samba?)");
    }
    Ok(())
}

/// Adds `ip/32` to `lo` unless it is 127.0.0.1 or already there (Samba binds only
/// addresses configured on an interface).
pub fn ensure_loopback_address(ip: Ipv4Addr) -> anyhow::Result<()> {
    if ip == Ipv4Addr::LOCALHOST {
        return Ok(());
    }
    if !ip.is_loopback() {
        bail!("{ip} is not a loopback address");
    }
    let out = Command::new("ip")
        .args(["-o", "-4", "addr", "show", "dev", "lo"])
        .output()
        .context("running ip addr show")?;
    let listing = String::from_utf8_lossy(&out.stdout);
    if listing.contains(&format!("inet {ip}/")) {
        return Ok(());
    }
    let out = Command::new("ip")
        .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
        .output()
        .context("running ip addr add")?;
    let err = String::from_utf8_lossy(&out.stderr);
    // Another forest starting at the same moment may have added it.
    if !out.status.success() && !err.contains("File exists") {
        bail!("ip addr add {ip}/32 dev lo failed: {err}");
    }
    Ok(())
}
