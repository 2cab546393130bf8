//! What the benchmark binaries share: a forest of their own on a free loopback address,
//! process CPU time and memory from /proc, latency percentiles, a progress line on stderr,
//! and number formatting.

pub mod pgcount;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use passthru_proto::admin::{ADMIN_CLIENT_ID, ADMIN_SCOPE};
use serde_json::Value;

use passthru_testkit::bed::{free_loopback_address, BedForest};
use passthru_testkit::forest::{Forest, ForestSpec};
use passthru_testkit::procs::Cloud;

/// A forest provisioned for one benchmark run on a free loopback address (never 127.0.0.1
/// or 127.0.0.2, which the test bed uses), in a temporary directory: the DC stops and the
/// directory goes when it drops.
#[derive(Debug)]
pub struct OwnForest {
    forest: Option<Forest>,
    root: PathBuf,
    /// The forest as tests see it (no users listed).
    pub bed: BedForest,
}

impl OwnForest {
    /// Provisions `realm` (NetBIOS `netbios`) with `ldb:nosync = true` (no fsync at each
    /// LDB transaction, as Samba's own test environment runs: setup speed), and starts it.
    /// `label` names the temporary directory.
    pub async fn provision(label: &str, realm: &str, netbios: &str) -> anyhow::Result<OwnForest> {
        let root = std::env::temp_dir().join(format!(
            "passthru-{label}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let ip = free_loopback_address()?;
        let forest_dir = root.join("forest");
        let spec = ForestSpec::new(realm, netbios, ip);
        let provisioned = tokio::task::spawn_blocking(move || {
            let mut forest = Forest::provision(&forest_dir, spec)?;
            // Restarted once so that the DC reads the option.
            forest.stop();
            let conf = std::fs::read_to_string(forest.conf())?;
            let conf = conf.replacen("[global]\n", "[global]\n\tldb:nosync = true\n", 1);
            std::fs::write(forest.conf(), conf)?;
            forest.start()?;
            anyhow::Ok(forest)
        })
        .await?;
        let forest = match provisioned {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&root);
                return Err(e).with_context(|| format!("provisioning the forest {realm} on {ip}"));
            }
        };
        let bed = BedForest::describe(label, &forest, Vec::new());
        Ok(OwnForest {
            forest: Some(forest),
            root,
            bed,
        })
    }

    /// The running forest.
    pub fn forest(&self) -> Option<&Forest> {
        self.forest.as_ref()
    }

    /// The temporary directory (the forest is in `forest/` under it).
    pub fn root(&self) -> &std::path::Path {
        &self.root
    }
}

impl Drop for OwnForest {
    fn drop(&mut self) {
        drop(self.forest.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// The admin API of a running cloud with one HTTP client and one token (the CLI costs 50-100
/// ms of process start-up per call), as the tenant's Global Administrator.
#[derive(Debug, Clone)]
pub struct AdminApi {
    /// The client (trusting the cloud's CA, 30 s timeout).
    pub http: reqwest::Client,
    /// `https://HOST:PORT/TENANT`
    pub base: String,
    token: String,
}

impl AdminApi {
    /// Signs the tenant's Global Administrator in (password grant for the admin client).
    pub async fn new(cloud: &Cloud) -> anyhow::Result<AdminApi> {
        let http = passthru_testkit::http::client(&cloud.ca_file())?;
        let base = format!("{}/{}", cloud.url, cloud.tenant);
        let v: Value = http
            .post(format!("{base}/oauth2/v2.0/token"))
            .form(&[
                ("grant_type", "password"),
                ("client_id", ADMIN_CLIENT_ID),
                ("scope", ADMIN_SCOPE),
                ("username", cloud.admin_upn.as_str()),
                ("password", cloud.admin_password.as_str()),
            ])
            .send()
            .await?
            .json()
            .await?;
        let token = v["access_token"]
            .as_str()
            .ok_or_else(|| anyhow!("no admin token: {}", v["error_description"]))?
            .to_string();
        Ok(AdminApi { http, base, token })
    }

    /// `GET /{tenant}/admin/PATH`: `None` on 404.
    pub async fn get(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let r = self
            .http
            .get(format!("{}/admin/{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if r.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let status = r.status();
        let v: Value = r.json().await?;
        if !status.is_success() {
            bail!("GET admin/{path}: HTTP {status}: {v}");
        }
        Ok(Some(v))
    }

    /// `POST /{tenant}/admin/PATH` with a JSON body; the JSON answer.
    pub async fn post<B: serde::Serialize + ?Sized, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let r = self
            .http
            .post(format!("{}/admin/{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await?;
        let status = r.status();
        if !status.is_success() {
            let text = r.text().await.unwrap_or_default();
            bail!("POST admin/{path}: HTTP {status}: {text}");
        }
        Ok(r.json().await?)
    }
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat (has the process ended?)"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| anyhow!("/proc/{pid}/stat is not in the expected format"))?;
    let f: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5): 11 and 12 after the name.
    Ok((field(11) + field(12)) / 100.0) // USER_HZ is 100 on Linux
}

/// VmRSS and VmHWM (peak) of a process, KiB; zeros when it cannot be read.
pub fn rss_kib(pid: Option<u32>) -> (u64, u64) {
    let Some(pid) = pid else { return (0, 0) };
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|r| r.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// VmRSS and VmHWM of a process, MiB.
pub fn rss_mib(pid: Option<u32>) -> (f64, f64) {
    let (rss, hwm) = rss_kib(pid);
    (rss as f64 / 1024.0, hwm as f64 / 1024.0)
}

/// The machine's load averages (1, 5, 15 minutes), as `uptime` shows them.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".to_string())
}

/// A number with thousands separators.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `20s`, `500ms`, `2m` or a bare number of seconds.
pub fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let s = s.trim();
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| anyhow!("{s:?} is not a duration: use e.g. 20s, 500ms or 2m"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" | "min" => n * 60.0,
        _ => bail!("{s:?} is not a duration: use e.g. 20s, 500ms or 2m"),
    };
    if !secs.is_finite() || secs < 0.0 {
        bail!("{s:?} is not a duration");
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Latencies of one run, microseconds, sorted.
#[derive(Debug, Clone, Default)]
pub struct Latencies {
    sorted: Vec<u64>,
}

impl Latencies {
    /// From unsorted samples (microseconds).
    pub fn new(mut samples: Vec<u64>) -> Latencies {
        samples.sort_unstable();
        Latencies { sorted: samples }
    }

    /// Both sets of samples together.
    pub fn merged(a: &Latencies, b: &Latencies) -> Latencies {
        let mut all = Vec::with_capacity(a.len() + b.len());
        all.extend_from_slice(&a.sorted);
        all.extend_from_slice(&b.sorted);
        Latencies::new(all)
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The `q` quantile (0.5, 0.99, 0.999) in milliseconds, nearest rank; 0 without samples.
    pub fn ms(&self, q: f64) -> f64 {
        if self.sorted.is_empty() {
            return 0.0;
        }
        let rank = (q * self.sorted.len() as f64).ceil() as usize;
        let i = rank.clamp(1, self.sorted.len()) - 1;
        self.sorted[i] as f64 / 1000.0
    }
}

/// A progress line on stderr, redrawn every second until dropped: elapsed and total time,
/// a bar, the count done, errors and the rate over the last second.
#[derive(Debug)]
pub struct Progress {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    /// Draws `label` progress over `total`, reading `done` and `errors`.
    pub fn start(
        label: &str,
        total: Duration,
        done: Arc<AtomicU64>,
        errors: Arc<AtomicU64>,
    ) -> Progress {
        let stop = Arc::new(AtomicBool::new(false));
        let label = label.to_string();
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            use std::io::Write as _;
            let started = Instant::now();
            let mut last = 0u64;
            let mut last_at = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last_at.elapsed() < Duration::from_secs(1) && !flag.load(Ordering::Relaxed) {
                    continue;
                }
                let n = done.load(Ordering::Relaxed);
                let rate = (n - last.min(n)) as f64 / last_at.elapsed().as_secs_f64();
                last = n;
                last_at = Instant::now();
                let elapsed = started.elapsed().min(total);
                let frac = elapsed.as_secs_f64() / total.as_secs_f64().max(0.001);
                let width = 24usize;
                let filled = ((frac * width as f64) as usize).min(width);
                let bar = format!("{}{}", "#".repeat(filled), ".".repeat(width - filled));
                let mut err = std::io::stderr().lock();
                let _ = write!(
                    err,
                    "\r  {label:<7} [{bar}] {:>3.0}/{:.0} s  {:>9} done  {} errors  {:>6.0}/s ",
                    elapsed.as_secs_f64(),
                    total.as_secs_f64(),
                    thousands(n),
                    errors.load(Ordering::Relaxed),
                    rate
                );
                let _ = err.flush();
            }
            let _ = writeln!(std::io::stderr());
        });
        Progress {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The soft limit of open files of this process (from /proc/self/limits).
pub fn open_files_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `serve` arguments that lift the rate limits (a fixture of the test kit, as any test may need
/// them too; the benches measure the relay and the OpenID Connect paths, not the limiter).
pub use passthru_testkit::procs::UNTHROTTLED;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() -> anyhow::Result<()> {
        assert_eq!(parse_duration("20s")?, Duration::from_secs(20));
        assert_eq!(parse_duration("20")?, Duration::from_secs(20));
        assert_eq!(parse_duration("500ms")?, Duration::from_millis(500));
        assert_eq!(parse_duration("2m")?, Duration::from_secs(120));
        assert!(parse_duration("x").is_err());
        assert!(parse_duration("3h").is_err());
        Ok(())
    }

    #[test]
    fn percentiles_by_nearest_rank() {
        let l = Latencies::new((1..=1000).rev().map(|i| i * 1000).collect());
        assert_eq!(l.ms(0.5), 500.0);
        assert_eq!(l.ms(0.99), 990.0);
        assert_eq!(l.ms(0.999), 999.0);
        assert_eq!(Latencies::default().ms(0.5), 0.0);
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(20_000), "20,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
