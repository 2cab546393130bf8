//! What several cloud instances need in tests: a PostgreSQL database of their own (on the
//! server at `PASSTHRU_TEST_POSTGRES`, default `postgres://postgres@127.0.0.1:5432/postgres`),
//! a nats-server of their own (a fresh process on a free port, without JetStream, so nothing
//! can be durable), and a capture of every message on it for the password scan.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};

/// The PostgreSQL server tests make their databases on.
pub fn postgres_server() -> String {
    std::env::var("PASSTHRU_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// A database of one test, dropped when this drops.
#[derive(Debug)]
pub struct TestDatabase {
    /// `postgres://USER@HOST:PORT/NAME`
    pub url: String,
    name: String,
    server: String,
}

fn psql(server: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([server, "-v", "ON_ERROR_STOP=1", "-Atqc", sql])
        .output()
        .context("running psql (Debian package postgresql-client)")?;
    if !out.status.success() {
        bail!(
            "psql '{sql}' failed: {}. Is PostgreSQL running at {server} (scripts/deps.sh starts it)?",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

impl TestDatabase {
    /// Creates an empty database `pt_<label>_<random>`.
    pub fn create(label: &str) -> anyhow::Result<TestDatabase> {
        let server = postgres_server();
        let clean: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .take(24)
            .collect();
        let name = format!(
            "pt_{clean}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        psql(&server, &format!("CREATE DATABASE {name}"))?;
        let mut url = url::Url::parse(&server)?;
        url.set_path(&format!("/{name}"));
        Ok(TestDatabase {
            url: url.to_string(),
            name,
            server,
        })
    }

    /// Runs `sql` in this database (psql), returning its unaligned output.
    pub fn query(&self, sql: &str) -> anyhow::Result<String> {
        psql(&self.url, sql)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let _ = psql(
            &self.server,
            &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name),
        );
    }
}

/// A free TCP port on 127.0.0.1 (bound, then let go).
pub fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// A nats-server of one test, on 127.0.0.1; killed when this drops.
#[derive(Debug)]
pub struct NatsServer {
    pub port: u16,
    /// The HTTP monitoring port (`-m`), if asked for ([`NatsServer::start_monitored`]).
    pub monitor_port: Option<u16>,
    child: Option<Child>,
    log: PathBuf,
}

impl NatsServer {
    /// Starts `nats-server` on a free port; its log is `dir/nats.log`.
    pub fn start(dir: &Path) -> anyhow::Result<NatsServer> {
        std::fs::create_dir_all(dir)?;
        let mut n = NatsServer {
            port: free_port()?,
            monitor_port: None,
            child: None,
            log: dir.join("nats.log"),
        };
        n.run()?;
        Ok(n)
    }

    /// Like [`NatsServer::start`], with the HTTP monitoring endpoint (`-m PORT`) on another
    /// free port: `GET http://127.0.0.1:PORT/varz` gives the server's message and byte counts.
    pub fn start_monitored(dir: &Path) -> anyhow::Result<NatsServer> {
        std::fs::create_dir_all(dir)?;
        let mut n = NatsServer {
            port: free_port()?,
            monitor_port: Some(free_port()?),
            child: None,
            log: dir.join("nats.log"),
        };
        n.run()?;
        Ok(n)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn run(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let monitor: Vec<String> = self
            .monitor_port
            .map(|m| vec!["-m".to_string(), m.to_string()])
            .unwrap_or_default();
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(&monitor)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .context("starting nats-server (Debian package nats-server)")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                bail!("nats-server did not start; see {}", self.log.display());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the server (SIGKILL).
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.run()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn nats_server_bin() -> PathBuf {
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    PathBuf::from("nats-server")
}

/// Every message on a NATS server (subject `>`), written to a file as it arrives: subject,
/// then payload, one message per line pair. Put the file under the runs root and the password
/// scan reads it.
#[derive(Debug)]
pub struct Capture {
    pub file: PathBuf,
    task: tokio::task::JoinHandle<()>,
    count: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Capture {
    /// Subscribes to everything on `nats_url` and appends it to `file`.
    pub async fn start(nats_url: &str, file: &Path) -> anyhow::Result<Capture> {
        use futures_util::StreamExt as _;
        use std::io::Write as _;
        let client = async_nats::connect(nats_url)
            .await
            .map_err(|e| anyhow!("capture: cannot connect to {nats_url}: {e}"))?;
        let mut sub = client
            .subscribe(">")
            .await
            .map_err(|e| anyhow!("capture: cannot subscribe: {e}"))?;
        client.flush().await.map_err(|e| anyhow!("capture: {e}"))?;
        let mut out = std::fs::File::create(file)?;
        let count = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = count.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Some(msg) = sub.next().await {
                let _ = writeln!(out, "{}", msg.subject);
                let _ = out.write_all(&msg.payload);
                let _ = writeln!(out);
                let _ = out.flush();
                seen.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
        });
        Ok(Capture {
            file: file.to_path_buf(),
            task,
            count,
        })
    }

    /// Messages captured so far.
    pub fn messages(&self) -> u64 {
        self.count.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// What was captured so far.
    pub fn text(&self) -> String {
        std::fs::read(&self.file)
            .map(|b| String::from_utf8_lossy(&b).to_string())
            .unwrap_or_default()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A PostgreSQL server of one test (its own cluster: `initdb` into a fresh directory owned
/// by the `postgres` user, on a free port of 127.0.0.1), so that a test may stop and start it
/// without disturbing the others. Stopped (immediately) and removed when this drops. Needs
/// root (the server runs as `postgres` through `runuser`) and the Debian package
/// `postgresql` (`/usr/lib/postgresql/VERSION/bin`).
#[derive(Debug)]
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    running: bool,
}

/// The newest `/usr/lib/postgresql/VERSION/bin` that has `initdb`.
fn postgres_bin_dir() -> anyhow::Result<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("reading /usr/lib/postgresql (Debian package postgresql)")?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .ok_or_else(|| anyhow!("no /usr/lib/postgresql/VERSION/bin/initdb"))
}

impl PrivatePostgres {
    /// Makes a fresh cluster (trust authentication, superuser `postgres`) and starts it.
    pub fn start() -> anyhow::Result<PrivatePostgres> {
        let bin = postgres_bin_dir()?;
        let dir = std::env::temp_dir().join(format!(
            "passthru-pg-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ));
        std::fs::create_dir_all(dir.join("data"))?;
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .output()?;
        if !chown.status.success() {
            bail!(
                "chown postgres {}: {}",
                dir.display(),
                String::from_utf8_lossy(&chown.stderr)
            );
        }
        let mut pg = PrivatePostgres {
            port: free_port()?,
            dir,
            bin,
            running: false,
        };
        pg.as_postgres(
            "initdb",
            &["--auth=trust", "-U", "postgres", "--no-sync", "-D"],
            &[pg.data()],
        )?;
        pg.start_again()?;
        Ok(pg)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Runs `BIN/tool args... paths...` as the `postgres` user; its output on failure.
    fn as_postgres(&self, tool: &str, args: &[&str], paths: &[String]) -> anyhow::Result<()> {
        let out = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join(tool))
            .args(args)
            .args(paths)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {tool} as postgres"))?;
        if !out.status.success() {
            bail!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:PORT/postgres`
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Creates the database `name` and returns its URL.
    pub fn create_database(&self, name: &str) -> anyhow::Result<String> {
        psql(&self.server_url(), &format!("CREATE DATABASE {name}"))?;
        Ok(format!(
            "postgres://postgres@127.0.0.1:{}/{name}",
            self.port
        ))
    }

    /// Starts the server again (after [`PrivatePostgres::stop`]) on the same port and data;
    /// returns once it accepts connections.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {}",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("postgres.log").display().to_string();
        self.as_postgres(
            "pg_ctl",
            &["-w", "-t", "30", "-o", &options, "-l", &log, "-D"],
            &[self.data(), "start".to_string()],
        )?;
        self.running = true;
        Ok(())
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, as in a restart).
    pub fn stop(&mut self) -> anyhow::Result<()> {
        self.as_postgres(
            "pg_ctl",
            &["-w", "-t", "30", "-m", "fast", "-D"],
            &[self.data(), "stop".to_string()],
        )?;
        self.running = false;
        Ok(())
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        if self.running {
            let _ = self.as_postgres(
                "pg_ctl",
                &["-w", "-m", "immediate", "-D"],
                &[self.data(), "stop".to_string()],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
