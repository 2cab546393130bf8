//! The test bed as tests see it: the forests and their users, described in `testbed.json`
//! (written by `passthru-testbed up`, found through `PASSTHRU_TESTBED`), or provisioned by
//! the test process itself when that variable is not set.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde::{Deserialize, Serialize};

use crate::forest::{Forest, ForestSpec};
use crate::users::{self, Admin, TestUser};

/// Environment variable naming a `testbed.json` to use instead of provisioning.
pub const ENV: &str = "PASSTHRU_TESTBED";

/// A random password: `prefix`, 16 hex digits, and a tail that satisfies AD complexity.
pub fn secret(prefix: &str) -> String {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("{prefix}-{}.Qz7", &hex[..16])
}

/// One of the two standard forests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standard {
    /// CORP.EXAMPLE.TEST, NetBIOS CORP, on 127.0.0.1.
    Corp,
    /// FABRIKAM.EXAMPLE.TEST, NetBIOS FABRIKAM, on 127.0.0.2.
    Fabrikam,
}

impl Standard {
    /// `corp` or `fabrikam`.
    pub fn name(self) -> &'static str {
        match self {
            Standard::Corp => "corp",
            Standard::Fabrikam => "fabrikam",
        }
    }

    /// The forest for a name (`corp`, `fabrikam`).
    pub fn from_name(name: &str) -> Option<Standard> {
        match name.to_ascii_lowercase().as_str() {
            "corp" => Some(Standard::Corp),
            "fabrikam" => Some(Standard::Fabrikam),
            _ => None,
        }
    }

    /// Kerberos realm.
    pub fn realm(self) -> &'static str {
        match self {
            Standard::Corp => "CORP.EXAMPLE.TEST",
            Standard::Fabrikam => "FABRIKAM.EXAMPLE.TEST",
        }
    }

    /// NetBIOS domain name.
    pub fn netbios(self) -> &'static str {
        match self {
            Standard::Corp => "CORP",
            Standard::Fabrikam => "FABRIKAM",
        }
    }

    /// The loopback address `passthru-testbed` uses.
    pub fn ip(self) -> Ipv4Addr {
        match self {
            Standard::Corp => Ipv4Addr::new(127, 0, 0, 1),
            Standard::Fabrikam => Ipv4Addr::new(127, 0, 0, 2),
        }
    }
}

/// The whole test bed: what `testbed.json` holds.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Testbed {
    /// The running forests.
    pub forests: Vec<BedForest>,
}

impl Testbed {
    /// Reads a `testbed.json`.
    pub fn load(path: &Path) -> anyhow::Result<Testbed> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// The test bed `PASSTHRU_TESTBED` names, if set.
    pub fn from_env() -> anyhow::Result<Option<Testbed>> {
        match std::env::var_os(ENV) {
            Some(p) if !p.is_empty() => Testbed::load(Path::new(&p)).map(Some),
            _ => Ok(None),
        }
    }

    /// Writes it as JSON (atomically: a temporary file renamed).
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)
            .with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }

    /// The forest called `name` (`corp`, `fabrikam`).
    pub fn forest(&self, name: &str) -> anyhow::Result<&BedForest> {
        self.forests
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| anyhow!("the test bed has no forest {name}"))
    }

    /// Every password of the test bed (for the password scan).
    pub fn passwords(&self) -> Vec<String> {
        self.forests.iter().flat_map(BedForest::passwords).collect()
    }
}

/// A running forest of the test bed and its users.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BedForest {
    /// Short name (`corp`).
    pub name: String,
    /// Kerberos realm (`CORP.EXAMPLE.TEST`).
    pub realm: String,
    /// DNS name of the domain (`corp.example.test`).
    pub dns_name: String,
    /// NetBIOS domain name (`CORP`).
    pub netbios: String,
    /// The UPN suffix of its users (the DNS name).
    pub upn_suffix: String,
    /// The DC's address.
    pub ip: Ipv4Addr,
    /// `ldaps://IP:636`.
    pub ldaps_url: String,
    /// The CA file that verifies the DC.
    pub ca_file: PathBuf,
    /// The domain's DN.
    pub base_dn: String,
    /// The administrator's UPN.
    pub admin_upn: String,
    /// The administrator's password.
    pub admin_password: String,
    /// Wrong passwords before an account locks out.
    pub lockout_threshold: u32,
    /// Pid of the `samba` process.
    pub pid: Option<u32>,
    /// The forest's directory.
    pub dir: PathBuf,
    /// Its users.
    pub users: Vec<TestUser>,
}

impl BedForest {
    /// Describes a running forest and its users.
    pub fn describe(name: &str, forest: &Forest, users: Vec<TestUser>) -> BedForest {
        BedForest {
            name: name.to_string(),
            realm: forest.realm().to_string(),
            dns_name: forest.dns_name(),
            netbios: forest.netbios().to_string(),
            upn_suffix: forest.dns_name(),
            ip: forest.ip(),
            ldaps_url: forest.ldaps_url(),
            ca_file: forest.ca_file(),
            base_dn: forest.base_dn(),
            admin_upn: forest.admin_upn(),
            admin_password: forest.admin_password().to_string(),
            lockout_threshold: forest.spec().lockout_threshold,
            pid: forest.pid(),
            dir: forest.dir().to_path_buf(),
            users,
        }
    }

    /// The user whose sAMAccountName or UPN (or the UPN's part before '@') is `name`.
    pub fn user(&self, name: &str) -> anyhow::Result<&TestUser> {
        self.users
            .iter()
            .find(|u| {
                u.sam.eq_ignore_ascii_case(name)
                    || u.upn.eq_ignore_ascii_case(name)
                    || u.upn
                        .rsplit_once('@')
                        .is_some_and(|(local, _)| local.eq_ignore_ascii_case(name))
            })
            .ok_or_else(|| anyhow!("the forest {} has no user {name}", self.name))
    }

    /// Every password of this forest, the administrator's included.
    pub fn passwords(&self) -> Vec<String> {
        let mut p: Vec<String> = self.users.iter().map(|u| u.password.clone()).collect();
        p.push(self.admin_password.clone());
        p
    }

    /// A simple bind on a new connection (see [`users::bind`]).
    pub async fn bind(&self, upn: &str, password: &str) -> Result<(), (u32, String)> {
        users::bind(&self.ldaps_url, &self.ca_file, upn, password).await
    }

    /// An administrator connection, e.g. to create more users.
    pub async fn admin(&self) -> anyhow::Result<Admin> {
        Admin::connect(
            &self.ldaps_url,
            &self.ca_file,
            &self.admin_upn,
            &self.admin_password,
        )
        .await
    }
}

/// Runs `fut` to completion on a new thread with its own Tokio runtime, so that it may be
/// called from anywhere, inside a runtime or not.
pub fn block_on<T, F>(fut: F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>> + Send + 'static,
    T: Send + 'static,
{
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(fut)
    })
    .join()
    .map_err(|_| anyhow!("the provisioning thread panicked"))?
}

/// Timings of one [`provision_standard`].
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// `samba-tool domain provision` up to LDAPS answering.
    pub provision: Duration,
    /// Creating the users and putting each in its state (including the wait for the
    /// password to expire).
    pub users: Duration,
}

/// Provisions forest `which` in `dir` on `ip` and creates the standard users.
pub fn provision_standard(
    dir: &Path,
    which: Standard,
    ip: Ipv4Addr,
) -> anyhow::Result<(Forest, BedForest, Timings)> {
    let started = Instant::now();
    let forest = Forest::provision(dir, ForestSpec::new(which.realm(), which.netbios(), ip))
        .with_context(|| format!("provisioning {}", which.name()))?;
    let provisioned = started.elapsed();
    let users = users::standard_users(&forest.dns_name());
    let (url, ca, upn, pw) = (
        forest.ldaps_url(),
        forest.ca_file(),
        forest.admin_upn(),
        forest.admin_password().to_string(),
    );
    let threshold = forest.spec().lockout_threshold;
    let created = users.clone();
    let started = Instant::now();
    block_on(async move {
        let mut admin = Admin::connect(&url, &ca, &upn, &pw).await?;
        admin.create_users(&created, threshold).await?;
        admin.close().await;
        Ok(())
    })
    .with_context(|| format!("creating the users of {}", which.name()))?;
    let timings = Timings {
        provision: provisioned,
        users: started.elapsed(),
    };
    let bed = BedForest::describe(which.name(), &forest, users);
    Ok((forest, bed, timings))
}

/// Forests this process provisioned itself (no `PASSTHRU_TESTBED`). They live as long as
/// the process: their DCs end when it exits, as their stdin closes.
static OWN: Mutex<Vec<(Forest, BedForest)>> = Mutex::new(Vec::new());

/// The CORP forest: from `PASSTHRU_TESTBED` when set, else one this process provisions
/// (once) on a free loopback address.
pub fn corp() -> anyhow::Result<BedForest> {
    standard(Standard::Corp)
}

/// The FABRIKAM forest, like [`corp`].
pub fn fabrikam() -> anyhow::Result<BedForest> {
    standard(Standard::Fabrikam)
}

/// Forest `which`: from `PASSTHRU_TESTBED` when set, else provisioned by this process.
pub fn standard(which: Standard) -> anyhow::Result<BedForest> {
    if let Some(bed) = Testbed::from_env()? {
        return bed.forest(which.name()).cloned();
    }
    let mut own = OWN
        .lock()
        .map_err(|_| anyhow!("an earlier provisioning panicked"))?;
    if let Some((_, b)) = own.iter().find(|(_, b)| b.name == which.name()) {
        return Ok(b.clone());
    }
    let root = std::env::temp_dir().join(format!(
        "passthru-selfbed-{}",
        uuid::Uuid::new_v4().simple()
    ));
    prune_stale_selfbeds();
    std::fs::create_dir_all(&root)?;
    std::fs::write(root.join("owner.pid"), std::process::id().to_string())?;
    let ip = free_loopback_address()?;
    let (forest, bed, _) = provision_standard(&root.join(which.name()), which, ip)?;
    own.push((forest, bed.clone()));
    Ok(bed)
}

/// Removes self-provisioned forest directories whose owner process is gone.
fn prune_stale_selfbeds() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let is_bed = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("passthru-selfbed-"));
        if !is_bed {
            continue;
        }
        let owner = std::fs::read_to_string(path.join("owner.pid")).unwrap_or_default();
        let alive = !owner.trim().is_empty() && Path::new("/proc").join(owner.trim()).exists();
        if !alive {
            let _ = std::fs::remove_dir_all(&path);
        }
    }
}

/// Addresses [`free_loopback_address`] gave out in this process: a DC being provisioned
/// does not answer yet, so without this two threads could be given the same one.
static GIVEN: Mutex<Vec<Ipv4Addr>> = Mutex::new(Vec::new());

/// A loopback address in 127.0.100.0-127.0.199.255 where nothing answers on the DC ports,
/// and that this process has not given out before.
pub fn free_loopback_address() -> anyhow::Result<Ipv4Addr> {
    let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
    let start = std::process::id();
    for i in 0..2000u32 {
        let n = start.wrapping_add(i.wrapping_mul(7919)) % 25_000;
        let ip = Ipv4Addr::new(127, 0, 100 + (n / 250) as u8, 1 + (n % 250) as u8);
        if given.contains(&ip) {
            continue;
        }
        let busy = [636u16, 389, 88].iter().any(|&port| {
            TcpStream::connect_timeout(
                &SocketAddr::new(IpAddr::V4(ip), port),
                Duration::from_millis(200),
            )
            .is_ok()
        });
        if !busy {
            given.push(ip);
            return Ok(ip);
        }
    }
    bail!("no free loopback address found")
}
