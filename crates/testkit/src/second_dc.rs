//! A second domain controller of a test forest: `samba-tool domain join ... DC` into a
//! directory of its own, served by its own `samba` process on another loopback address,
//! for failover tests with two real DCs of one domain.
//!
//! No DNS and no /etc/hosts entry is needed: the join is pointed at the first DC's address
//! (`--server=IP`), and Kerberos at a krb5.conf that names it as the realm's KDC
//! ([`Forest::write_krb5_conf`], via `KRB5_CONFIG`). Objects that exist at join time are on
//! both DCs; replication of later changes does not run without DNS, so create what a test
//! needs first, then join.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

use crate::forest::{self, DcProcess, Forest};

/// The joined DC's host name (NetBIOS name DC2).
const HOST: &str = "dc2";

/// A DC joined to a [`Forest`] and, while it runs, its `samba` process (stopped on drop).
#[derive(Debug)]
pub struct SecondDc {
    dc: DcProcess,
    join_time: Duration,
}

impl SecondDc {
    /// Joins a second DC (host `dc2`) to `forest`, whose DC must run, into `dir` (which must
    /// not hold a DC yet) on loopback address `ip`; gives it a certificate of its own CA,
    /// writes [`SecondDc::forest_ca_file`], starts it and waits until LDAPS answers.
    pub fn join(forest: &Forest, dir: &Path, ip: Ipv4Addr) -> anyhow::Result<SecondDc> {
        if ip == forest.ip() {
            bail!("the second DC needs an address of its own, not the first DC's {ip}");
        }
        if dir.join("etc/smb.conf").exists() {
            bail!("{} already holds a DC", dir.display());
        }
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let dir = std::fs::canonicalize(dir)?;
        forest::ensure_port_free(ip)?;
        forest::ensure_loopback_address(ip)?;
        let krb5_conf = forest.write_krb5_conf()?;
        let mut dc = DcProcess::new(dir, ip);

        let started = Instant::now();
        let out = Command::new(forest::samba_tool())
            .args(["domain", "join", &forest.dns_name(), "DC"])
            .arg(format!("--server={}", forest.ip()))
            .arg(format!("-U{}\\Administrator", forest.netbios()))
            .arg(format!("--password={}", forest.admin_password()))
            .arg(format!("--targetdir={}", dc.dir.display()))
            .arg(format!("--option=interfaces={ip}"))
            .arg("--option=bind interfaces only=yes")
            .arg(format!(
                "--option=netbios name={}",
                HOST.to_ascii_uppercase()
            ))
            .arg(format!("--option=workgroup={}", forest.netbios()))
            .arg("--dns-backend=NONE")
            .env("KRB5_CONFIG", &krb5_conf)
            .stdin(Stdio::null())
            .output()
            .context("running samba-tool domain join")?;
        // The command line holds the administrator password: the error shows only the output.
        forest::check(
            &out,
            &format!(
                "samba-tool domain join {} DC --server={} (into {})",
                forest.dns_name(),
                forest.ip(),
                dc.dir.display()
            ),
        )?;
        let join_time = started.elapsed();

        dc.edit_smb_conf()?;
        dc.write_certs(HOST, &forest.dns_name())?;
        let both = dc.dir.join("forest-ca.pem");
        let mut pem = std::fs::read_to_string(forest.ca_file())
            .with_context(|| format!("reading {}", forest.ca_file().display()))?;
        pem.push_str(
            &std::fs::read_to_string(dc.ca_file())
                .with_context(|| format!("reading {}", dc.ca_file().display()))?,
        );
        std::fs::write(&both, pem).with_context(|| format!("writing {}", both.display()))?;
        dc.spawn()?;
        dc.wait_ready()
            .context("starting the joined DC (the join itself succeeded)")?;
        Ok(SecondDc { dc, join_time })
    }

    /// How long `samba-tool domain join` took.
    pub fn join_time(&self) -> Duration {
        self.join_time
    }

    /// Starts the DC again after [`SecondDc::stop`] and waits for LDAPS. Does nothing when
    /// it runs.
    pub fn start(&mut self) -> anyhow::Result<()> {
        self.dc.start()
    }

    /// Stops the DC (SIGTERM to its own pid, SIGKILL after 15 s) and waits until nothing
    /// accepts connections on its LDAPS port.
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

    /// The DC's loopback address.
    pub fn ip(&self) -> Ipv4Addr {
        self.dc.ip
    }

    /// `ldaps://IP:636`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}:636", self.dc.ip)
    }

    /// The CA file that verifies this DC's certificate only (`DIR/private/tls/ca.pem`: each
    /// DC's certificate is issued by a CA of its own).
    pub fn ca_file(&self) -> PathBuf {
        self.dc.ca_file()
    }

    /// A CA file that verifies both DCs (`DIR/forest-ca.pem`: the first DC's CA, then this
    /// one's), for a directory configured with both.
    pub fn forest_ca_file(&self) -> PathBuf {
        self.dc.dir.join("forest-ca.pem")
    }

    /// The DC's directory.
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
