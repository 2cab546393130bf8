//! A throwaway OpenLDAP `slapd` over LDAPS (for `passthru-bench signins --directory slapd`:
//! a directory fast enough to show the relay's own ceiling). Its users live under
//! `ou=people,SUFFIX` as `uid=NAME` (inetOrgPerson, password in `userPassword`); the agent
//! reaches them with a forest's `bind_dn_template` (`uid={local},ou=people,SUFFIX`).
//!
//! Installed by `PASSTHRU_NEED_SLAPD=1 bash scripts/deps.sh`; [`installed`] says whether it
//! is there. The process is a child owned by [`Slapd`], stopped when it drops; its
//! directory is removed too.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use rustls::pki_types::ServerName;

use crate::forest::{base_dn, check};
use crate::users::TestUser;

const SLAPD: &str = "/usr/sbin/slapd";
const SLAPADD: &str = "/usr/sbin/slapadd";
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether slapd is installed (`PASSTHRU_NEED_SLAPD=1 bash scripts/deps.sh` installs it).
pub fn installed() -> bool {
    Path::new(SLAPD).exists() && Path::new(SLAPADD).exists()
}

/// A running slapd.
#[derive(Debug)]
pub struct Slapd {
    dir: PathBuf,
    ip: Ipv4Addr,
    dns_name: String,
    child: Option<Child>,
}

impl Slapd {
    /// Sets up a directory for `dns_name` (suffix `dc=...`) in `dir` holding `users` (each
    /// as `uid=LOCAL` where LOCAL is the part of its UPN before '@', with its password and
    /// mail), then serves it over LDAPS on `ip:636` with a certificate from a fresh test CA.
    pub fn start(
        dir: &Path,
        ip: Ipv4Addr,
        dns_name: &str,
        users: &[TestUser],
    ) -> anyhow::Result<Slapd> {
        if !installed() {
            bail!("slapd is not installed: run `PASSTHRU_NEED_SLAPD=1 bash scripts/deps.sh` (as root)");
        }
        crate::forest::ensure_port_free(ip)?;
        crate::forest::ensure_loopback_address(ip)?;
        std::fs::create_dir_all(dir.join("data"))?;
        let dir = std::fs::canonicalize(dir)?;
        crate::tls::write_dc_certs(&dir.join("tls"), "ldap", dns_name, ip)?;
        let suffix = base_dn(dns_name).to_lowercase();
        let d = dir.display();
        let conf = format!(
            "include /etc/ldap/schema/core.schema\n\
             include /etc/ldap/schema/cosine.schema\n\
             include /etc/ldap/schema/inetorgperson.schema\n\
             pidfile {d}/slapd.pid\n\
             argsfile {d}/slapd.args\n\
             modulepath /usr/lib/ldap\n\
             moduleload back_mdb\n\
             TLSCACertificateFile {d}/tls/ca.pem\n\
             TLSCertificateFile {d}/tls/cert.pem\n\
             TLSCertificateKeyFile {d}/tls/key.pem\n\
             database mdb\n\
             maxsize 1073741824\n\
             suffix \"{suffix}\"\n\
             directory {d}/data\n\
             index objectClass eq\n\
             index uid eq\n\
             access to attrs=userPassword by anonymous auth by * none\n\
             access to * by * read\n"
        );
        std::fs::write(dir.join("slapd.conf"), conf)?;
        let first_dc = dns_name.split('.').next().unwrap_or("bench");
        let mut ldif = format!(
            "dn: {suffix}\nobjectClass: dcObject\nobjectClass: organization\no: {dns_name}\ndc: {first_dc}\n\n\
             dn: ou=people,{suffix}\nobjectClass: organizationalUnit\nou: people\n\n"
        );
        for u in users {
            let local = u.upn.split('@').next().unwrap_or(&u.sam);
            ldif.push_str(&format!(
                "dn: uid={local},ou=people,{suffix}\nobjectClass: inetOrgPerson\nuid: {local}\ncn: {}\nsn: {}\ndisplayName: {}\nmail: {}\nuserPassword: {}\n\n",
                u.display_name, u.surname(), u.display_name, u.mail, u.password
            ));
        }
        let ldif_path = dir.join("users.ldif");
        std::fs::write(&ldif_path, ldif)?;
        let out = Command::new(SLAPADD)
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-l")
            .arg(&ldif_path)
            .stdin(Stdio::null())
            .output()
            .context("running slapadd")?;
        // The LDIF holds the passwords: it goes as soon as it is loaded.
        let _ = std::fs::remove_file(&ldif_path);
        check(&out, "slapadd")?;
        let log = std::fs::File::create(dir.join("slapd.log"))?;
        let child = Command::new(SLAPD)
            .arg("-f")
            .arg(dir.join("slapd.conf"))
            .arg("-h")
            .arg(format!("ldaps://{ip}:636/"))
            .args(["-d", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting slapd")?;
        let mut s = Slapd {
            dir,
            ip,
            dns_name: dns_name.to_string(),
            child: Some(child),
        };
        s.wait_ready()?;
        Ok(s)
    }

    fn wait_ready(&mut self) -> anyhow::Result<()> {
        let config = crate::tls::client_config(&self.ca_file())?;
        let addr = SocketAddr::new(IpAddr::V4(self.ip), 636);
        let name = ServerName::IpAddress(IpAddr::V4(self.ip).into());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                self.child = None;
                bail!(
                    "slapd exited ({status}) before LDAPS was ready; see {}",
                    self.dir.join("slapd.log").display()
                );
            }
            match crate::forest::tls_probe(addr, name.clone(), config.clone()) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => {
                    return Err(anyhow!(
                        "slapd's LDAPS on {addr} not ready after {} s: {e:#}",
                        START_TIMEOUT.as_secs()
                    ))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// `ldaps://IP:636`.
    pub fn ldaps_url(&self) -> String {
        format!("ldaps://{}:636", self.ip)
    }

    /// The CA file that verifies its certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("tls/ca.pem")
    }

    /// The suffix (`dc=bench,dc=example,dc=test`).
    pub fn suffix(&self) -> String {
        base_dn(&self.dns_name).to_lowercase()
    }

    /// The bind DN template the agent's forest needs: `uid={local},ou=people,SUFFIX`.
    pub fn bind_dn_template(&self) -> String {
        format!("uid={{local}},ou=people,{}", self.suffix())
    }

    /// The DN of the user whose UPN's local part is `local`.
    pub fn user_dn(&self, local: &str) -> String {
        format!(
            "uid={},ou=people,{}",
            ldap3::dn_escape(local),
            self.suffix()
        )
    }

    /// Process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(c.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
