//! A real HTTP CONNECT proxy for tests, as its own process (`passthru-connect-proxy`, see
//! [`server`]): [`ConnectProxy::start`] runs it on a free port of 127.0.0.1 and reads what it
//! logged. Tunnel mode relays to the target (optionally requiring basic credentials, limited
//! to allowed targets, with names mapped to addresses); intercept mode plays a TLS-inspecting
//! firewall whose CA is [`server::INSPECTION_CA_NAME`].

pub mod server;

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, Context as _};

pub use server::{ProxyMode, INSPECTION_CA_NAME};

use crate::procs::bin;

/// How to start a proxy (all optional).
#[derive(Debug, Clone, Default)]
pub struct ProxyOptions {
    /// Require `Proxy-Authorization: Basic` with this user and password (407 otherwise).
    pub credentials: Option<(String, String)>,
    /// Allow only these targets (`host:port`; 403 for others). Empty: any.
    pub allow: Vec<String>,
    /// `NAME:PORT` → `IP:PORT` (names the proxy cannot resolve).
    pub map: Vec<(String, String)>,
    /// Where its log and CA go; a fresh directory under the runs root when `None`. (The
    /// credentials file goes to a private directory outside the scanned runs root, removed
    /// on drop.)
    pub dir: Option<PathBuf>,
}

/// One request the proxy logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectRecord {
    /// `host:port` asked for.
    pub target: String,
    /// The status answered (200: tunnel opened or intercepted).
    pub status: u16,
    /// `none` (no authentication required), `missing`, `wrong` or `ok`.
    pub auth: String,
}

/// A running `passthru-connect-proxy`; killed when dropped.
#[derive(Debug)]
pub struct ConnectProxy {
    addr: SocketAddr,
    dir: PathBuf,
    log: PathBuf,
    ca_file: Option<PathBuf>,
    /// The directory of the credentials file, when there is one.
    secret_dir: Option<PathBuf>,
    child: Option<Child>,
}

impl ConnectProxy {
    /// Starts a proxy in `mode` on a free port of 127.0.0.1 and waits until it listens.
    pub fn start(mode: ProxyMode, options: ProxyOptions) -> anyhow::Result<ConnectProxy> {
        let dir = match options.dir {
            Some(d) => d,
            None => crate::procs::fresh_dir("connect-proxy")?,
        };
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("connects.log");
        let mut command = Command::new(bin("passthru-connect-proxy"));
        command
            .args(["--listen", "127.0.0.1:0", "--mode", mode.name(), "--log"])
            .arg(&log);
        let secret_dir = match &options.credentials {
            Some((user, password)) => {
                let secret_dir = std::env::temp_dir().join(format!(
                    "passthru-proxy-secret-{}",
                    uuid::Uuid::new_v4().simple()
                ));
                std::fs::create_dir_all(&secret_dir)?;
                let file = secret_dir.join("credentials");
                write_private(&file, &format!("{user}:{password}\n"))?;
                command.arg("--auth-file").arg(&file);
                Some(secret_dir)
            }
            None => None,
        };
        for target in &options.allow {
            command.args(["--allow", target]);
        }
        for (from, to) in &options.map {
            command.args(["--map", &format!("{from}={to}")]);
        }
        let ca_file = (mode == ProxyMode::Intercept).then(|| dir.join("inspection-ca.pem"));
        if let Some(ca) = &ca_file {
            command.arg("--ca-out").arg(ca);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .stdin(Stdio::null())
            .spawn()
            .context("starting passthru-connect-proxy (build it: cargo build -p passthru-testkit --bins)")?;
        let stdout = child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("LISTENING ") {
                    let _ = tx.send(addr.trim().to_string());
                }
            }
        });
        let listening = rx.recv_timeout(Duration::from_secs(30));
        let mut proxy = ConnectProxy {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
            log,
            ca_file,
            secret_dir,
            child: Some(child),
        };
        let addr = listening.map_err(|_| anyhow!("passthru-connect-proxy did not start"))?;
        proxy.addr = addr
            .parse()
            .with_context(|| format!("bad address {addr}"))?;
        Ok(proxy)
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, as `[cloud] proxy` and `HTTPS_PROXY` take it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Intercept mode: the inspection CA's certificate (PEM).
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every request logged so far, in order.
    pub fn connects(&self) -> Vec<ConnectRecord> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter_map(|line| {
                let mut words = line.split(' ');
                (words.next()? == "CONNECT").then_some(())?;
                let target = words.next()?.to_string();
                let status = words.next()?.parse().ok()?;
                let auth = words.next()?.strip_prefix("auth=")?.to_string();
                Some(ConnectRecord {
                    target,
                    status,
                    auth,
                })
            })
            .collect()
    }

    /// Tunnels opened (or intercepted) to `target` so far.
    pub fn tunnels_to(&self, target: &str) -> usize {
        self.connects()
            .iter()
            .filter(|c| c.status == 200 && c.target == target)
            .count()
    }

    /// Tunnels opened (or intercepted) so far, to any target.
    pub fn tunnels(&self) -> usize {
        self.connects().iter().filter(|c| c.status == 200).count()
    }

    /// Stops it (SIGKILL: it keeps nothing).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = self.secret_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Writes `text` to a new file with mode 0600.
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
