//! A DNS zone for the tests: a real DNS server (dnsmasq, Debian's `dnsmasq-base`) on a
//! loopback port, serving the TXT records a test publishes. The cloud under test is started
//! with `serve --dns-server` pointing at it, so `domain verify` does a real DNS lookup.

use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};

const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// The published TXT records and the server serving them.
#[derive(Debug, Default)]
struct Served {
    records: Vec<(String, String)>,
    server: Option<Child>,
}

/// The zone: records, and the server while any are published.
#[derive(Debug)]
pub struct DnsZone {
    addr: SocketAddr,
    log: PathBuf,
    inner: Mutex<Served>,
}

/// A port free for both UDP and TCP on 127.0.0.1.
fn free_port() -> anyhow::Result<u16> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    bail!("no free port for the test DNS server")
}

impl DnsZone {
    /// Starts the zone's server, empty, on a free loopback port.
    pub fn new(dir: &Path) -> anyhow::Result<DnsZone> {
        let zone = DnsZone {
            addr: SocketAddr::from(([127, 0, 0, 1], free_port()?)),
            log: dir.join("dnsmasq.log"),
            inner: Mutex::new(Served::default()),
        };
        zone.restart(None)?;
        Ok(zone)
    }

    /// Where the zone answers (give it to `serve --dns-server`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Publishes a TXT record `name` = `value` (and keeps the earlier ones), restarting the
    /// server with the new zone, and waits until it answers.
    pub fn publish_txt(&self, name: &str, value: &str) -> anyhow::Result<()> {
        self.restart(Some((name, value)))
    }

    fn restart(&self, add: Option<(&str, &str)>) -> anyhow::Result<()> {
        if !Path::new(DNSMASQ).exists() {
            bail!("{DNSMASQ} is missing: run scripts/deps.sh (it installs dnsmasq-base)");
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((name, value)) = add {
            inner.records.push((name.to_string(), value.to_string()));
        }
        if let Some(mut old) = inner.server.take() {
            let _ = old.kill();
            let _ = old.wait();
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut cmd = Command::new(DNSMASQ);
        cmd.args([
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--bind-interfaces",
            "--listen-address=127.0.0.1",
            "--pid-file=",
            "--user=root",
            "--log-queries",
            "--log-facility=-",
        ])
        .arg(format!("--port={}", self.addr.port()));
        for (n, v) in &inner.records {
            cmd.arg(format!("--txt-record={n},{v}"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting dnsmasq")?;
        inner.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "dnsmasq did not start on {} (see {})",
                    self.addr,
                    self.log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for DnsZone {
    fn drop(&mut self) {
        let inner = self.inner.get_mut().unwrap_or_else(|p| p.into_inner());
        if let Some(mut child) = inner.server.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
