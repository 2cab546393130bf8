//! The agent's configuration file (`--config`): one `[[forest]]` table per Active Directory
//! forest, an optional `[agent]` table, an optional `[cloud]` table (the cloud's
//! addresses, the HTTP proxy to reach it through), an optional `[trace]` table (the trace
//! log's rotation) and an optional `[updates]` table (signed auto-update, in [`updates`]).
//! The TOML is checked by hand so that every mistake is reported at once, each
//! with the file and the key path (`forest[1].ca_file`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use toml::{Table, Value};
use url::Url;

use crate::proxy::ProxyConfig;

/// How many validations run at once when `[agent] max_concurrency` is not set.
pub const DEFAULT_MAX_CONCURRENCY: usize = 64;
/// Largest accepted `max_concurrency`.
pub const MAX_MAX_CONCURRENCY: i64 = 10_000;
/// Clock difference to the cloud accepted when `[agent] clock_skew_tolerance_seconds` is not
/// set.
pub const DEFAULT_CLOCK_SKEW_TOLERANCE_SECONDS: u64 = 300;
/// Largest accepted `clock_skew_tolerance_seconds` (one day).
pub const MAX_CLOCK_SKEW_TOLERANCE_SECONDS: i64 = 86_400;

const TOP_KEYS: &[&str] = &["forest", "agent", "cloud", "trace", "updates"];

pub mod updates;
pub use updates::UpdateSettings;
const FOREST_KEYS: &[&str] = &[
    "name",
    "upn_suffixes",
    "domain_controllers",
    "ca_file",
    "service_account",
    "service_password_file",
    "sync_interval_seconds",
    "bind_dn_template",
    "writeback_protected_accounts",
    "writeback_base_dn",
    "tls_server_name",
];
/// How often a forest is synced when `sync_interval_seconds` is not set.
pub const DEFAULT_SYNC_INTERVAL_SECONDS: u64 = 60;
/// Largest accepted `sync_interval_seconds` (one day).
pub const MAX_SYNC_INTERVAL_SECONDS: i64 = 86_400;
const AGENT_KEYS: &[&str] = &["max_concurrency", "clock_skew_tolerance_seconds"];
const CLOUD_KEYS: &[&str] = &["urls", "proxy", "proxy_auth_file"];
const TRACE_KEYS: &[&str] = &["max_bytes", "keep"];
/// Smallest accepted `[trace] max_bytes` (a few lines).
pub const MIN_TRACE_MAX_BYTES: i64 = 1024;
/// Largest accepted `[trace] max_bytes` (1 TiB).
pub const MAX_TRACE_MAX_BYTES: i64 = 1 << 40;
/// Largest accepted `[trace] keep`.
pub const MAX_TRACE_KEEP: i64 = 1000;

/// A checked configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// The forests this agent serves, in file order.
    pub forests: Vec<ForestSettings>,
    /// How many validations may run at once.
    pub max_concurrency: usize,
    /// Largest accepted difference between a request's issue time and the agent's clock.
    pub clock_skew_tolerance: Duration,
    /// `[cloud] urls`: the addresses of the cloud's instances (`https://host[:port]`, no
    /// repeats), which the agent dials instead of the address recorded at registration.
    /// `None` without a `[cloud]` table.
    pub cloud_urls: Option<Vec<Url>>,
    /// `[cloud] proxy` and `proxy_auth_file`: the HTTP CONNECT proxy to reach the cloud
    /// through (resolved with the environment by [`crate::proxy::ProxySettings::resolve`]).
    pub proxy: Option<ProxyConfig>,
    /// `[trace] max_bytes` and `keep`: when the trace log is rotated and how many rotated
    /// files stay.
    pub trace: crate::trace_log::Rotation,
    /// `[updates]`: signed auto-update.
    pub updates: UpdateSettings,
}

/// One `[[forest]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForestSettings {
    /// The forest's DNS name.
    pub name: String,
    /// UPN suffixes routed to this forest, lower case.
    pub upn_suffixes: Vec<String>,
    /// `ldaps://` URLs of domain controllers, tried in order.
    pub domain_controllers: Vec<Url>,
    /// CA certificate(s) that issued the domain controllers' certificates (absolute path).
    pub ca_file: PathBuf,
    /// Directory sync (and password writeback's resets), when the forest has a service
    /// account.
    pub sync: Option<SyncSettings>,
    /// A plain LDAP directory instead of Active Directory: the bind DN made from the UPN
    /// (`uid={local},ou=people,dc=example,dc=com`); see
    /// [`passthru_directory::ForestConfig::bind_dn_template`].
    pub bind_dn_template: Option<String>,
    /// `tls_server_name`: the name the DCs' certificates are checked against instead of
    /// each DC's host (DCs addressed by IP address).
    pub tls_server_name: Option<String>,
    /// Which accounts password writeback may write: protected accounts (`adminCount=1`) only
    /// with `writeback_protected_accounts = true`; only users under `writeback_base_dn` when
    /// it is set.
    pub writeback: passthru_directory::WritebackScope,
}

/// A forest's directory sync settings (the password stays in its file until the agent
/// starts; it is never in this struct).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSettings {
    /// The service account's UPN: reading is enough for sync; password writeback needs the
    /// Reset Password and Change Password rights on the users.
    pub service_account: String,
    /// The file holding its password (absolute path; owner-only permissions).
    pub password_file: PathBuf,
    /// How often the forest is read.
    pub interval: Duration,
}

impl SyncSettings {
    /// Reads the service account's password (trailing newlines removed).
    pub fn read_password(&self) -> std::io::Result<zeroize::Zeroizing<String>> {
        let raw = zeroize::Zeroizing::new(std::fs::read_to_string(&self.password_file)?);
        Ok(zeroize::Zeroizing::new(
            raw.trim_end_matches(['\r', '\n']).to_string(),
        ))
    }
}

/// One mistake in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Key path, such as `forest[1].ca_file` (empty for the file as a whole).
    pub path: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{file}: cannot read the configuration file: {source}")]
    Read {
        /// The file, as given.
        file: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{file}: not valid TOML: {message}")]
    Syntax {
        /// The file, as given.
        file: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// The file is TOML, but some settings are wrong; every problem is listed.
    #[error("{}", ProblemList { file, problems })]
    Invalid {
        /// The file, as given.
        file: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

struct ProblemList<'a> {
    file: &'a str,
    problems: &'a [Problem],
}

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{} in the configuration:",
            self.file,
            if n == 1 { "" } else { "s" }
        )?;
        for p in self.problems {
            if p.path.is_empty() {
                write!(f, "\n{}: {}", self.file, p.message)?;
            } else {
                write!(f, "\n{}: {}: {}", self.file, p.path, p.message)?;
            }
        }
        Ok(())
    }
}

impl AgentConfig {
    /// Reads and checks a configuration file. Relative `ca_file` paths are taken relative to
    /// the directory of the configuration file.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        AgentConfig::parse(&text, &file, &base)
    }

    /// Checks configuration text; `file` names it in messages and `base_dir` anchors relative
    /// paths.
    pub fn parse(text: &str, file: &str, base_dir: &Path) -> Result<AgentConfig, ConfigError> {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                file: file.to_string(),
                message: e.to_string().trim().replace('\n', " "),
            })?;
        let mut checker = Checker {
            problems: Vec::new(),
            base_dir: base_dir.to_path_buf(),
        };
        let config = checker.config(&table);
        match config {
            Some(config) if checker.problems.is_empty() => Ok(config),
            _ => Err(ConfigError::Invalid {
                file: file.to_string(),
                problems: checker.problems,
            }),
        }
    }

    /// Reads only the `[cloud]` table's proxy settings of a configuration file (for
    /// `register --config`, before the rest of the file is written): every other table may
    /// be absent or incomplete; the `[cloud]` table is checked as `run` checks it.
    pub fn load_proxy(path: &Path) -> Result<Option<ProxyConfig>, ConfigError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            file: file.clone(),
            source,
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        AgentConfig::parse_proxy(&text, &file, &base)
    }

    /// [`AgentConfig::load_proxy`] on text.
    pub fn parse_proxy(
        text: &str,
        file: &str,
        base_dir: &Path,
    ) -> Result<Option<ProxyConfig>, ConfigError> {
        let table: Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Syntax {
                file: file.to_string(),
                message: e.to_string().trim().replace('\n', " "),
            })?;
        let mut checker = Checker {
            problems: Vec::new(),
            base_dir: base_dir.to_path_buf(),
        };
        let cloud = checker.cloud_value(table.get("cloud"));
        match cloud {
            Some(cloud) if checker.problems.is_empty() => Ok(cloud.proxy),
            _ => Err(ConfigError::Invalid {
                file: file.to_string(),
                problems: checker.problems,
            }),
        }
    }

    /// Every forest's UPN suffixes, lower case, without repeats (for the cloud's routing).
    pub fn upn_suffixes(&self) -> Vec<String> {
        let mut all: Vec<String> = Vec::new();
        for suffix in self.forests.iter().flat_map(|f| f.upn_suffixes.iter()) {
            if !all.contains(suffix) {
                all.push(suffix.clone());
            }
        }
        all
    }
}

struct Checker {
    problems: Vec<Problem>,
    base_dir: PathBuf,
}

/// The `[cloud]` table's settings.
#[derive(Debug, Default)]
struct CloudSettings {
    urls: Option<Vec<Url>>,
    proxy: Option<ProxyConfig>,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::Table(_) => "a table",
    }
}

fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

impl Checker {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            path: path.into(),
            message: message.into(),
        });
    }

    fn unknown_keys(&mut self, table: &Table, prefix: &str, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                self.problem(
                    format!("{prefix}{key}"),
                    format!("unknown key (expected one of: {})", known.join(", ")),
                );
            }
        }
    }

    fn config(&mut self, table: &Table) -> Option<AgentConfig> {
        self.unknown_keys(table, "", TOP_KEYS);
        let (max_concurrency, clock_skew_tolerance) = match table.get("agent") {
            None => (
                Some(DEFAULT_MAX_CONCURRENCY),
                Some(Duration::from_secs(DEFAULT_CLOCK_SKEW_TOLERANCE_SECONDS)),
            ),
            Some(Value::Table(agent)) => self.agent(agent),
            Some(other) => {
                self.problem(
                    "agent",
                    format!("must be a table ([agent]), not {}", type_name(other)),
                );
                (None, None)
            }
        };
        let cloud = self.cloud_value(table.get("cloud"));
        let forests = match table.get("forest") {
            None => {
                self.problem(
                    "forest",
                    "no forest configured: add a [[forest]] table (name, upn_suffixes, \
                     domain_controllers, ca_file) for each Active Directory forest",
                );
                None
            }
            Some(Value::Array(items)) if items.is_empty() => {
                self.problem(
                    "forest",
                    "no forest configured: add a [[forest]] table for each Active Directory forest",
                );
                None
            }
            Some(Value::Array(items)) => self.forests(items),
            Some(Value::Table(_)) => {
                self.problem(
                    "forest",
                    "must be an array of tables: write [[forest]], not [forest]",
                );
                None
            }
            Some(other) => {
                self.problem(
                    "forest",
                    format!(
                        "must be an array of tables ([[forest]]), not {}",
                        type_name(other)
                    ),
                );
                None
            }
        };
        let trace = match table.get("trace") {
            None => Some(crate::trace_log::Rotation::default()),
            Some(Value::Table(trace)) => self.trace(trace),
            Some(other) => {
                self.problem(
                    "trace",
                    format!(
                        "must be a table ([trace] with max_bytes and keep), not {}",
                        type_name(other)
                    ),
                );
                None
            }
        };
        let updates = self.updates_table(table.get("updates"));
        Some(AgentConfig {
            updates: updates?,
            forests: forests?,
            max_concurrency: max_concurrency?,
            clock_skew_tolerance: clock_skew_tolerance?,
            cloud_urls: cloud.as_ref()?.urls.clone(),
            proxy: cloud?.proxy,
            trace: trace?,
        })
    }

    /// `[trace]`: `max_bytes` (size at which the trace log is rotated) and `keep` (rotated
    /// files kept).
    fn trace(&mut self, trace: &Table) -> Option<crate::trace_log::Rotation> {
        self.unknown_keys(trace, "trace.", TRACE_KEYS);
        let max_bytes = match trace.get("max_bytes") {
            None => Some(crate::trace_log::DEFAULT_MAX_BYTES),
            Some(Value::Integer(n)) if (MIN_TRACE_MAX_BYTES..=MAX_TRACE_MAX_BYTES).contains(n) => {
                u64::try_from(*n).ok()
            }
            Some(Value::Integer(_)) => {
                self.problem(
                    "trace.max_bytes",
                    format!(
                        "must be between {MIN_TRACE_MAX_BYTES} and {MAX_TRACE_MAX_BYTES} (bytes; the default is {})",
                        crate::trace_log::DEFAULT_MAX_BYTES
                    ),
                );
                None
            }
            Some(other) => {
                self.problem(
                    "trace.max_bytes",
                    format!("must be an integer (bytes), not {}", type_name(other)),
                );
                None
            }
        };
        let keep = match trace.get("keep") {
            None => Some(crate::trace_log::DEFAULT_KEEP),
            Some(Value::Integer(n)) if (1..=MAX_TRACE_KEEP).contains(n) => u32::try_from(*n).ok(),
            Some(Value::Integer(_)) => {
                self.problem(
                    "trace.keep",
                    format!(
                        "must be between 1 and {MAX_TRACE_KEEP} (rotated files kept; the default is {})",
                        crate::trace_log::DEFAULT_KEEP
                    ),
                );
                None
            }
            Some(other) => {
                self.problem(
                    "trace.keep",
                    format!("must be an integer, not {}", type_name(other)),
                );
                None
            }
        };
        Some(crate::trace_log::Rotation {
            max_bytes: max_bytes?,
            keep: keep?,
        })
    }

    /// The `[cloud]` table, if any.
    fn cloud_value(&mut self, value: Option<&Value>) -> Option<CloudSettings> {
        match value {
            None => Some(CloudSettings::default()),
            Some(Value::Table(cloud)) => self.cloud(cloud),
            Some(Value::Array(_)) => {
                self.problem(
                    "cloud",
                    "must be one table: write [cloud] with urls = [...], not [[cloud]]",
                );
                None
            }
            Some(other) => {
                self.problem(
                    "cloud",
                    format!(
                        "must be a table ([cloud] with urls = [\"https://...\"]), not {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    /// `[cloud]`: `urls` (the `https://HOST[:PORT]` addresses of the cloud's instances),
    /// `proxy` and `proxy_auth_file`; `urls` may be left out when a proxy is set.
    fn cloud(&mut self, cloud: &Table) -> Option<CloudSettings> {
        self.unknown_keys(cloud, "cloud.", CLOUD_KEYS);
        let proxy = self.proxy(cloud);
        let urls = if cloud.contains_key("urls")
            || !(cloud.contains_key("proxy") || cloud.contains_key("proxy_auth_file"))
        {
            self.cloud_urls(cloud).map(Some)
        } else {
            Some(None)
        };
        Some(CloudSettings {
            urls: urls?,
            proxy: proxy?,
        })
    }

    /// `[cloud] proxy` (`http://HOST:PORT`) and `proxy_auth_file` (set only with `proxy`).
    fn proxy(&mut self, cloud: &Table) -> Option<Option<ProxyConfig>> {
        let address = match cloud.get("proxy") {
            None => None,
            Some(Value::String(raw)) => match crate::proxy::settings::parse_proxy_url(raw, false) {
                Err(message) => {
                    self.problem("cloud.proxy", message);
                    return None;
                }
                Ok(parsed) if parsed.credentials.is_some() => {
                    self.problem(
                        "cloud.proxy",
                        format!(
                            "must not carry a user name or password (this file is \
                                 readable by others): write \"{}\" and put user:password \
                                 in a file (mode 0600) named by cloud.proxy_auth_file",
                            parsed.address
                        ),
                    );
                    return None;
                }
                Ok(parsed) => Some(parsed.address),
            },
            Some(other) => {
                self.problem(
                    "cloud.proxy",
                    format!(
                        "must be a string (proxy = \"http://HOST:PORT\"), not {}",
                        type_name(other)
                    ),
                );
                return None;
            }
        };
        let auth_file = if cloud.contains_key("proxy_auth_file") {
            let raw = self.string(
                cloud,
                "cloud",
                "proxy_auth_file",
                "the file holding the proxy's user:password (mode 0600)",
            )?;
            if raw.trim().is_empty() {
                self.problem("cloud.proxy_auth_file", "must not be empty");
                return None;
            }
            if address.is_none() {
                self.problem(
                    "cloud.proxy_auth_file",
                    "set only with cloud.proxy (the proxy these credentials are for)",
                );
                return None;
            }
            let path = self.base_dir.join(raw.trim());
            // The credentials are read to check them, then dropped (zeroized); the agent
            // reads them again when it resolves the proxy.
            if let Err(message) = crate::proxy::settings::read_auth_file(&path) {
                self.problem("cloud.proxy_auth_file", message);
                return None;
            }
            Some(path)
        } else {
            None
        };
        Some(address.map(|address| ProxyConfig { address, auth_file }))
    }

    /// `[cloud] urls`.
    fn cloud_urls(&mut self, cloud: &Table) -> Option<Vec<Url>> {
        let (items, mut ok) = self.string_array(
            cloud,
            "cloud",
            "urls",
            "the addresses of the cloud's instances, e.g. \
             urls = [\"https://cloud1.contoso.example\", \"https://cloud2.contoso.example\"]",
        )?;
        // Each accepted URL with its key path, to name the first of a repeated pair.
        let mut out: Vec<(String, Url)> = Vec::new();
        for (path, raw) in items {
            let Some(url) = self.cloud_url(&path, raw) else {
                ok = false;
                continue;
            };
            let same = out.iter().find(|(_, earlier)| {
                earlier.host() == url.host()
                    && earlier.port_or_known_default() == url.port_or_known_default()
            });
            if let Some((earlier_path, _)) = same {
                let earlier_path = earlier_path.clone();
                self.problem(
                    path,
                    format!("'{raw}' is the same address as {earlier_path}: list each once"),
                );
                ok = false;
            } else {
                out.push((path, url));
            }
        }
        ok.then(|| out.into_iter().map(|(_, url)| url).collect())
    }

    /// One of `[cloud] urls`: `https://HOST[:PORT]`, nothing else. A user name or password
    /// in it is not repeated in the message.
    fn cloud_url(&mut self, path: &str, raw: &str) -> Option<Url> {
        let trimmed = raw.trim();
        if !trimmed.contains("://") {
            self.problem(
                path,
                format!("'{raw}' is not a URL: write \"https://{trimmed}\""),
            );
            return None;
        }
        let url = match Url::parse(trimmed) {
            Ok(url) => url,
            Err(e) => {
                self.problem(
                    path,
                    format!("'{raw}' is not a URL ({e}); expected https://HOST[:PORT]"),
                );
                return None;
            }
        };
        let host = url.host_str().unwrap_or_default();
        let plain = match url.port() {
            Some(port) => format!("https://{host}:{port}"),
            None => format!("https://{host}"),
        };
        if !url.username().is_empty() || url.password().is_some() {
            self.problem(
                path,
                format!(
                    "must not carry a user name or password (the agent signs in with its \
                     certificate): write \"{plain}\""
                ),
            );
            None
        } else if url.scheme() != "https" {
            self.problem(
                path,
                format!(
                    "'{raw}' must be an https:// URL, not {}://: write \"{plain}\"",
                    url.scheme()
                ),
            );
            None
        } else if host.is_empty() {
            self.problem(
                path,
                format!("'{raw}' has no host; expected https://HOST[:PORT]"),
            );
            None
        } else if !(url.path().is_empty() || url.path() == "/")
            || url.query().is_some()
            || url.fragment().is_some()
        {
            self.problem(
                path,
                format!(
                    "'{raw}' must be a plain https://HOST[:PORT] URL (no path, query or \
                     fragment: the agent adds its own path): write \"{plain}\""
                ),
            );
            None
        } else {
            Some(url)
        }
    }

    fn agent(&mut self, agent: &Table) -> (Option<usize>, Option<Duration>) {
        self.unknown_keys(agent, "agent.", AGENT_KEYS);
        let max_concurrency = match agent.get("max_concurrency") {
            None => Some(DEFAULT_MAX_CONCURRENCY),
            Some(Value::Integer(n)) if (1..=MAX_MAX_CONCURRENCY).contains(n) => {
                usize::try_from(*n).ok()
            }
            Some(Value::Integer(_)) => {
                self.problem(
                    "agent.max_concurrency",
                    format!("must be between 1 and {MAX_MAX_CONCURRENCY}"),
                );
                None
            }
            Some(other) => {
                self.problem(
                    "agent.max_concurrency",
                    format!("must be an integer, not {}", type_name(other)),
                );
                None
            }
        };
        let tolerance = match agent.get("clock_skew_tolerance_seconds") {
            None => Some(Duration::from_secs(DEFAULT_CLOCK_SKEW_TOLERANCE_SECONDS)),
            Some(Value::Integer(n)) if (1..=MAX_CLOCK_SKEW_TOLERANCE_SECONDS).contains(n) => {
                u64::try_from(*n).ok().map(Duration::from_secs)
            }
            Some(Value::Integer(_)) => {
                self.problem(
                    "agent.clock_skew_tolerance_seconds",
                    format!("must be between 1 and {MAX_CLOCK_SKEW_TOLERANCE_SECONDS}"),
                );
                None
            }
            Some(other) => {
                self.problem(
                    "agent.clock_skew_tolerance_seconds",
                    format!("must be an integer, not {}", type_name(other)),
                );
                None
            }
        };
        (max_concurrency, tolerance)
    }

    fn forests(&mut self, items: &[Value]) -> Option<Vec<ForestSettings>> {
        let mut forests = Vec::new();
        let mut all_ok = true;
        for (i, item) in items.iter().enumerate() {
            let prefix = format!("forest[{i}]");
            let Value::Table(t) = item else {
                self.problem(prefix, format!("must be a table, not {}", type_name(item)));
                all_ok = false;
                continue;
            };
            match self.forest(t, &prefix) {
                Some(f) => forests.push((i, f)),
                None => all_ok = false,
            }
        }
        // Names and suffixes must each belong to one forest only.
        for (n, (i, forest)) in forests.iter().enumerate() {
            for (j, earlier) in forests.iter().take(n) {
                if earlier.name.eq_ignore_ascii_case(&forest.name) {
                    self.problem(
                        format!("forest[{i}].name"),
                        format!("'{}' is also the name of forest[{j}]", forest.name),
                    );
                    all_ok = false;
                }
                for suffix in &forest.upn_suffixes {
                    if earlier.upn_suffixes.contains(suffix) {
                        self.problem(
                            format!("forest[{i}].upn_suffixes"),
                            format!(
                                "'{suffix}' is also a suffix of forest[{j}]: a suffix must \
                                 route to one forest"
                            ),
                        );
                        all_ok = false;
                    }
                }
            }
        }
        all_ok.then(|| forests.into_iter().map(|(_, f)| f).collect())
    }

    fn forest(&mut self, t: &Table, prefix: &str) -> Option<ForestSettings> {
        self.unknown_keys(t, &format!("{prefix}."), FOREST_KEYS);
        let name = self.string(
            t,
            prefix,
            "name",
            "the forest's DNS name, e.g. name = \"corp.example.com\"",
        );
        let name = name.and_then(|n| {
            if n.trim().is_empty() {
                self.problem(format!("{prefix}.name"), "must not be empty");
                None
            } else {
                Some(n.trim().to_string())
            }
        });
        let upn_suffixes = self.upn_suffixes(t, prefix);
        let domain_controllers = self.domain_controllers(t, prefix);
        let ca_file = self.ca_file(t, prefix);
        let sync = self.sync(t, prefix);
        let bind_dn_template = self.bind_dn_template(t, prefix);
        let writeback = self.writeback_scope(t, prefix);
        let tls_server_name = self.tls_server_name(t, prefix);
        if matches!((&sync, &bind_dn_template), (Some(Some(_)), Some(Some(_)))) {
            self.problem(
                format!("{prefix}.bind_dn_template"),
                "directory sync and password writeback need Active Directory: remove the \
                 service account, or the bind_dn_template",
            );
            return None;
        }
        Some(ForestSettings {
            name: name?,
            upn_suffixes: upn_suffixes?,
            domain_controllers: domain_controllers?,
            ca_file: ca_file?,
            sync: sync?,
            bind_dn_template: bind_dn_template?,
            writeback: writeback?,
            tls_server_name: tls_server_name?,
        })
    }

    /// `tls_server_name`: absent, or a DNS name (or IP address) the DCs' certificates hold.
    fn tls_server_name(&mut self, t: &Table, prefix: &str) -> Option<Option<String>> {
        if !t.contains_key("tls_server_name") {
            return Some(None);
        }
        let raw = self.string(
            t,
            prefix,
            "tls_server_name",
            "the name the DCs' certificates hold, for DCs addressed by IP, e.g. \"dc1.corp.example.com\"",
        )?;
        let raw = raw.trim().to_ascii_lowercase();
        if rustls::pki_types::ServerName::try_from(raw.clone()).is_err() {
            self.problem(
                format!("{prefix}.tls_server_name"),
                format!("'{raw}' is not a DNS name or IP address"),
            );
            return None;
        }
        Some(Some(raw))
    }

    /// `writeback_protected_accounts` (a boolean, false when absent) and
    /// `writeback_base_dn` (a DN, absent: the whole forest).
    fn writeback_scope(
        &mut self,
        t: &Table,
        prefix: &str,
    ) -> Option<passthru_directory::WritebackScope> {
        let protected_accounts = match t.get("writeback_protected_accounts") {
            None => Some(false),
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.problem(
                    format!("{prefix}.writeback_protected_accounts"),
                    format!("must be true or false, not {}", type_name(other)),
                );
                None
            }
        };
        let base_dn = if t.contains_key("writeback_base_dn") {
            let raw = self.string(
                t,
                prefix,
                "writeback_base_dn",
                "the DN whose subtree password writeback is limited to, e.g. \"OU=Staff,DC=corp,DC=example,DC=com\"",
            );
            raw.and_then(|raw| {
                let raw = raw.trim().to_string();
                if raw.contains('=') {
                    Some(Some(raw))
                } else {
                    self.problem(
                        format!("{prefix}.writeback_base_dn"),
                        format!("'{raw}' is not a DN, e.g. \"OU=Staff,DC=corp,DC=example,DC=com\""),
                    );
                    None
                }
            })
        } else {
            Some(None)
        };
        Some(passthru_directory::WritebackScope {
            protected_accounts: protected_accounts?,
            base_dn: base_dn?,
        })
    }

    /// `bind_dn_template`: absent (`Some(None)`, Active Directory), or a DN naming `{local}`
    /// or `{upn}`.
    fn bind_dn_template(&mut self, t: &Table, prefix: &str) -> Option<Option<String>> {
        if !t.contains_key("bind_dn_template") {
            return Some(None);
        }
        let raw = self.string(
            t,
            prefix,
            "bind_dn_template",
            "for a plain LDAP directory, the bind DN with {local} for the UPN's part before '@', e.g. \"uid={local},ou=people,dc=example,dc=com\"",
        )?;
        let raw = raw.trim().to_string();
        if !raw.contains('=') || (!raw.contains("{local}") && !raw.contains("{upn}")) {
            self.problem(
                format!("{prefix}.bind_dn_template"),
                format!(
                    "'{raw}' is not a DN naming {{local}} or {{upn}}, e.g. \
                     \"uid={{local}},ou=people,dc=example,dc=com\""
                ),
            );
            return None;
        }
        Some(Some(raw))
    }

    /// `service_account`, `service_password_file` and `sync_interval_seconds`: all absent
    /// (`Some(None)`: no sync), or a usable account (`Some(Some(..))`).
    fn sync(&mut self, t: &Table, prefix: &str) -> Option<Option<SyncSettings>> {
        let has = |k: &str| t.contains_key(k);
        if !has("service_account") && !has("service_password_file") {
            if has("sync_interval_seconds") {
                self.problem(
                    format!("{prefix}.sync_interval_seconds"),
                    "set only with service_account and service_password_file (sync needs them)",
                );
                return None;
            }
            return Some(None);
        }
        let account = self.string(
            t,
            prefix,
            "service_account",
            "the UPN of the read-only account that reads the directory for sync",
        );
        let account = account.and_then(|a| {
            let a = a.trim().to_string();
            let ok = a
                .split_once('@')
                .is_some_and(|(l, d)| !l.is_empty() && is_dns_name(d));
            if ok {
                Some(a)
            } else {
                self.problem(
                    format!("{prefix}.service_account"),
                    format!("'{a}' is not a UPN (user@domain)"),
                );
                None
            }
        });
        let file = self.password_file(t, prefix);
        let interval = match t.get("sync_interval_seconds") {
            None => Some(Duration::from_secs(DEFAULT_SYNC_INTERVAL_SECONDS)),
            Some(Value::Integer(n)) if (1..=MAX_SYNC_INTERVAL_SECONDS).contains(n) => {
                u64::try_from(*n).ok().map(Duration::from_secs)
            }
            Some(Value::Integer(_)) => {
                self.problem(
                    format!("{prefix}.sync_interval_seconds"),
                    format!("must be between 1 and {MAX_SYNC_INTERVAL_SECONDS}"),
                );
                None
            }
            Some(other) => {
                self.problem(
                    format!("{prefix}.sync_interval_seconds"),
                    format!("must be an integer, not {}", type_name(other)),
                );
                None
            }
        };
        Some(Some(SyncSettings {
            service_account: account?,
            password_file: file?,
            interval: interval?,
        }))
    }

    /// The service account's password file: present, a regular file, readable, not empty,
    /// and not readable or writable by group or others.
    fn password_file(&mut self, t: &Table, prefix: &str) -> Option<PathBuf> {
        let raw = self.string(
            t,
            prefix,
            "service_password_file",
            "the file holding the service account's password (mode 0600)",
        )?;
        let key = format!("{prefix}.service_password_file");
        if raw.trim().is_empty() {
            self.problem(key, "must not be empty");
            return None;
        }
        let path = self.base_dir.join(raw.trim());
        let shown = path.display().to_string();
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.problem(key, format!("file {shown} does not exist"));
                return None;
            }
            Err(e) => {
                self.problem(key, format!("cannot use {shown}: {e}"));
                return None;
            }
        };
        if !meta.is_file() {
            self.problem(key, format!("{shown} is not a file"));
            return None;
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                self.problem(
                    key,
                    format!(
                        "{shown} is readable or writable by other users (mode {mode:o}): \
                         run chmod 600 {shown}"
                    ),
                );
                return None;
            }
        }
        match std::fs::read_to_string(&path) {
            Err(e) => {
                self.problem(key, format!("cannot read {shown}: {e}"));
                None
            }
            Ok(text) => {
                let empty = text.trim_end_matches(['\r', '\n']).is_empty();
                drop(zeroize::Zeroizing::new(text));
                if empty {
                    self.problem(key, format!("{shown} is empty: write the password in it"));
                    None
                } else {
                    Some(path)
                }
            }
        }
    }

    fn string(&mut self, t: &Table, prefix: &str, key: &str, what: &str) -> Option<String> {
        match t.get(key) {
            None => {
                self.problem(format!("{prefix}.{key}"), format!("missing key: {what}"));
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => {
                self.problem(
                    format!("{prefix}.{key}"),
                    format!("must be a string, not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// A non-empty array of strings: its string elements with their key paths, and whether
    /// every element was a string (the others are reported with their index).
    fn string_array<'a>(
        &mut self,
        t: &'a Table,
        prefix: &str,
        key: &str,
        what: &str,
    ) -> Option<(Vec<(String, &'a str)>, bool)> {
        let path = format!("{prefix}.{key}");
        match t.get(key) {
            None => {
                self.problem(path, format!("missing key: {what}"));
                None
            }
            Some(Value::Array(items)) if items.is_empty() => {
                self.problem(path, format!("must not be empty: {what}"));
                None
            }
            Some(Value::Array(items)) => {
                let mut out = Vec::new();
                let mut ok = true;
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => out.push((format!("{path}[{i}]"), s.as_str())),
                        other => {
                            self.problem(
                                format!("{path}[{i}]"),
                                format!("must be a string, not {}", type_name(other)),
                            );
                            ok = false;
                        }
                    }
                }
                Some((out, ok))
            }
            Some(other) => {
                self.problem(
                    path,
                    format!("must be an array of strings, not {}", type_name(other)),
                );
                None
            }
        }
    }

    fn upn_suffixes(&mut self, t: &Table, prefix: &str) -> Option<Vec<String>> {
        let (items, mut ok) = self.string_array(
            t,
            prefix,
            "upn_suffixes",
            "the UPN suffixes of this forest's users, e.g. upn_suffixes = [\"corp.example.com\"]",
        )?;
        let mut out: Vec<String> = Vec::new();
        for (path, raw) in items {
            let suffix = raw.trim().to_ascii_lowercase();
            if let Some(stripped) = suffix.strip_prefix('@') {
                self.problem(
                    path,
                    format!("write the suffix without '@': \"{stripped}\""),
                );
                ok = false;
            } else if !is_dns_name(&suffix) {
                self.problem(
                    path,
                    format!("'{raw}' is not a DNS name (the part of a UPN after '@')"),
                );
                ok = false;
            } else if out.contains(&suffix) {
                self.problem(path, format!("'{suffix}' is listed twice"));
                ok = false;
            } else {
                out.push(suffix);
            }
        }
        ok.then_some(out)
    }

    fn domain_controllers(&mut self, t: &Table, prefix: &str) -> Option<Vec<Url>> {
        let (items, mut ok) = self.string_array(
            t,
            prefix,
            "domain_controllers",
            "ldaps:// URLs of the forest's domain controllers, e.g. \
             domain_controllers = [\"ldaps://dc1.corp.example.com:636\"]",
        )?;
        let mut out = Vec::new();
        for (path, raw) in items {
            match Url::parse(raw.trim()) {
                Err(e) => {
                    self.problem(
                        path,
                        format!("'{raw}' is not a URL ({e}); expected ldaps://HOST[:PORT]"),
                    );
                    ok = false;
                }
                Ok(url) if url.scheme().eq_ignore_ascii_case("ldap") => {
                    self.problem(
                        path,
                        format!(
                            "'{raw}' uses plain ldap://, which is refused: Active Directory \
                             refuses simple binds without TLS and the password would cross the \
                             network in clear; use ldaps://HOST:636"
                        ),
                    );
                    ok = false;
                }
                Ok(url) if url.scheme() != "ldaps" => {
                    self.problem(
                        path,
                        format!("'{raw}' must be an ldaps:// URL, not {}://", url.scheme()),
                    );
                    ok = false;
                }
                Ok(url) if url.host_str().is_none_or(str::is_empty) => {
                    self.problem(
                        path,
                        format!("'{raw}' has no host; expected ldaps://HOST[:PORT]"),
                    );
                    ok = false;
                }
                Ok(url)
                    if !(url.path().is_empty() || url.path() == "/")
                        || url.query().is_some()
                        || url.fragment().is_some()
                        || !url.username().is_empty() =>
                {
                    self.problem(
                        path,
                        format!("'{raw}' must be a plain ldaps://HOST[:PORT] URL (no DN, user, query or fragment)"),
                    );
                    ok = false;
                }
                Ok(url) => out.push(url),
            }
        }
        ok.then_some(out)
    }

    fn ca_file(&mut self, t: &Table, prefix: &str) -> Option<PathBuf> {
        let raw = self.string(
            t,
            prefix,
            "ca_file",
            "the PEM file of the CA that issued the domain controllers' certificates",
        )?;
        let path_key = format!("{prefix}.ca_file");
        if raw.trim().is_empty() {
            self.problem(path_key, "must not be empty");
            return None;
        }
        let path = self.base_dir.join(raw.trim());
        let shown = path.display();
        match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.problem(path_key, format!("file {shown} does not exist"));
                None
            }
            Err(e) => {
                self.problem(path_key, format!("cannot use {shown}: {e}"));
                None
            }
            Ok(meta) if !meta.is_file() => {
                self.problem(path_key, format!("{shown} is not a file"));
                None
            }
            Ok(_) => match std::fs::read(&path) {
                Err(e) => {
                    self.problem(path_key, format!("cannot read {shown}: {e}"));
                    None
                }
                Ok(bytes) => {
                    let certs: Result<Vec<CertificateDer<'static>>, _> =
                        CertificateDer::pem_slice_iter(&bytes).collect();
                    match certs {
                        Ok(c) if !c.is_empty() => Some(path),
                        _ => {
                            self.problem(
                                path_key,
                                format!(
                                    "{shown} holds no PEM certificate (expected \
                                     -----BEGIN CERTIFICATE----- blocks)"
                                ),
                            );
                            None
                        }
                    }
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    const CERT: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQk3p\n-----END CERTIFICATE-----\n";

    fn problems(result: Result<AgentConfig, ConfigError>) -> Vec<Problem> {
        match result {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            _ => Vec::new(),
        }
    }

    fn has(problems: &[Problem], path: &str, needle: &str) -> bool {
        problems
            .iter()
            .any(|p| p.path == path && p.message.contains(needle))
    }

    #[test]
    fn a_good_file_with_defaults() -> std::io::Result<()> {
        let dir = TempDir::new("config-good")?;
        std::fs::write(dir.path().join("dc-ca.pem"), CERT)?;
        let text = r#"
            [[forest]]
            name = "corp.example.test"
            upn_suffixes = ["Corp.Example.Test", "example.test"]
            domain_controllers = ["ldaps://dc1.corp.example.test:636", "ldaps://127.0.0.1"]
            ca_file = "dc-ca.pem"

            [[forest]]
            name = "fabrikam.test"
            upn_suffixes = ["fabrikam.test"]
            domain_controllers = ["ldaps://127.0.0.2:636"]
            ca_file = "dc-ca.pem"
        "#;
        let config = AgentConfig::parse(text, "agent.toml", dir.path());
        assert!(config.is_ok(), "{config:?}");
        let Ok(config) = config else { return Ok(()) };
        assert_eq!(config.max_concurrency, DEFAULT_MAX_CONCURRENCY);
        assert_eq!(config.clock_skew_tolerance, Duration::from_secs(300));
        assert_eq!(config.forests.len(), 2);
        assert_eq!(config.forests[0].ca_file, dir.path().join("dc-ca.pem"));
        assert_eq!(
            config.upn_suffixes(),
            vec!["corp.example.test", "example.test", "fabrikam.test"]
        );
        Ok(())
    }

    #[test]
    fn writeback_scope_keys() -> std::io::Result<()> {
        let dir = TempDir::new("config-writeback")?;
        std::fs::write(dir.path().join("dc-ca.pem"), CERT)?;
        let forest = |extra: &str| {
            format!(
                "[[forest]]\nname = \"corp.test\"\nupn_suffixes = [\"corp.test\"]\n\
                 domain_controllers = [\"ldaps://127.0.0.1\"]\nca_file = \"dc-ca.pem\"\n{extra}"
            )
        };
        // By default: protected accounts refused, the whole forest.
        let plain = AgentConfig::parse(&forest(""), "agent.toml", dir.path());
        assert!(
            matches!(&plain, Ok(c) if c.forests[0].writeback == passthru_directory::WritebackScope::default()),
            "{plain:?}"
        );
        assert!(!passthru_directory::WritebackScope::default().protected_accounts);
        let set = AgentConfig::parse(
            &forest("writeback_protected_accounts = true\nwriteback_base_dn = \" OU=Staff,DC=corp,DC=test \"\n"),
            "agent.toml",
            dir.path(),
        );
        assert!(
            matches!(&set, Ok(c) if c.forests[0].writeback == passthru_directory::WritebackScope {
                protected_accounts: true,
                base_dn: Some("OU=Staff,DC=corp,DC=test".into()),
            }),
            "{set:?}"
        );
        let p = problems(AgentConfig::parse(
            &forest("writeback_protected_accounts = \"yes\"\nwriteback_base_dn = \"Staff\"\n"),
            "agent.toml",
            dir.path(),
        ));
        assert!(
            has(
                &p,
                "forest[0].writeback_protected_accounts",
                "true or false"
            ),
            "{p:?}"
        );
        assert!(has(&p, "forest[0].writeback_base_dn", "not a DN"), "{p:?}");
        Ok(())
    }

    #[test]
    fn tls_server_names_for_dcs_addressed_by_ip() -> std::io::Result<()> {
        let dir = TempDir::new("config-tls-name")?;
        std::fs::write(dir.path().join("dc-ca.pem"), CERT)?;
        let forest = |extra: &str| {
            format!(
                "[[forest]]\nname = \"corp.test\"\nupn_suffixes = [\"corp.test\"]\n\
                 domain_controllers = [\"ldaps://10.0.0.5\"]\nca_file = \"dc-ca.pem\"\n{extra}"
            )
        };
        let config = AgentConfig::parse(&forest(""), "agent.toml", dir.path());
        assert!(matches!(&config, Ok(c) if c.forests[0].tls_server_name.is_none()));
        let config = AgentConfig::parse(
            &forest("tls_server_name = \"DC1.corp.test\"\n"),
            "agent.toml",
            dir.path(),
        );
        assert!(
            matches!(&config, Ok(c) if c.forests[0].tls_server_name.as_deref() == Some("dc1.corp.test")),
            "{config:?}"
        );
        for bad in [
            "tls_server_name = \"not a name\"\n",
            "tls_server_name = 5\n",
        ] {
            let p = problems(AgentConfig::parse(&forest(bad), "agent.toml", dir.path()));
            assert!(has(&p, "forest[0].tls_server_name", ""), "{bad}: {p:?}");
        }
        Ok(())
    }

    #[test]
    fn bind_dn_templates_for_plain_ldap() -> std::io::Result<()> {
        let dir = TempDir::new("config-template")?;
        std::fs::write(dir.path().join("dc-ca.pem"), CERT)?;
        std::fs::write(dir.path().join("svc.pw"), "s3cret\n")?;
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(
                dir.path().join("svc.pw"),
                std::fs::Permissions::from_mode(0o600),
            )?;
        }
        let forest = |extra: &str| {
            format!(
                "[[forest]]\nname = \"people.test\"\nupn_suffixes = [\"people.test\"]\n\
                 domain_controllers = [\"ldaps://127.0.0.1\"]\nca_file = \"dc-ca.pem\"\n{extra}"
            )
        };
        let good = forest("bind_dn_template = \"uid={local},ou=people,dc=people,dc=test\"\n");
        let config = AgentConfig::parse(&good, "agent.toml", dir.path());
        assert!(
            matches!(&config, Ok(c) if c.forests[0].bind_dn_template.as_deref() == Some("uid={local},ou=people,dc=people,dc=test")),
            "{config:?}"
        );
        let plain = AgentConfig::parse(&forest(""), "agent.toml", dir.path());
        assert!(
            matches!(&plain, Ok(c) if c.forests[0].bind_dn_template.is_none()),
            "{plain:?}"
        );
        let p = problems(AgentConfig::parse(
            &forest("bind_dn_template = \"ou=people,dc=people,dc=test\"\n"),
            "agent.toml",
            dir.path(),
        ));
        assert!(has(&p, "forest[0].bind_dn_template", "{local}"), "{p:?}");
        let p = problems(AgentConfig::parse(
            &forest("bind_dn_template = \"uid={local},dc=people,dc=test\"\nservice_account = \"svc@people.test\"\nservice_password_file = \"svc.pw\"\n"),
            "agent.toml",
            dir.path(),
        ));
        assert!(
            has(&p, "forest[0].bind_dn_template", "need Active Directory"),
            "{p:?}"
        );
        Ok(())
    }

    #[test]
    fn sync_settings_and_their_mistakes() -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("config-sync")?;
        std::fs::write(dir.path().join("dc-ca.pem"), CERT)?;
        let secret = dir.path().join("svc.pw");
        std::fs::write(&secret, "s3cret\n")?;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600))?;
        let forest = |extra: &str| {
            format!(
                "[[forest]]\nname = \"corp.test\"\nupn_suffixes = [\"corp.test\"]\n\
                 domain_controllers = [\"ldaps://127.0.0.1\"]\nca_file = \"dc-ca.pem\"\n{extra}"
            )
        };
        let good = forest(
            "service_account = \"svc-sync@corp.test\"\nservice_password_file = \"svc.pw\"\nsync_interval_seconds = 30\n",
        );
        let config = AgentConfig::parse(&good, "agent.toml", dir.path());
        assert!(config.is_ok(), "{config:?}");
        let Ok(config) = config else { return Ok(()) };
        let sync = config.forests[0].sync.clone();
        assert_eq!(
            sync.as_ref()
                .map(|s| (s.service_account.as_str(), s.interval)),
            Some(("svc-sync@corp.test", Duration::from_secs(30)))
        );
        let password = sync.map(|s| s.read_password()).transpose()?;
        assert_eq!(password.as_deref().map(String::as_str), Some("s3cret"));
        // Defaults, and no sync without an account.
        let plain = AgentConfig::parse(&forest(""), "agent.toml", dir.path());
        assert!(
            matches!(&plain, Ok(c) if c.forests[0].sync.is_none()),
            "{plain:?}"
        );

        // A password file others can read, a missing one, a bad account, a bad interval.
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644))?;
        let p = problems(AgentConfig::parse(&good, "agent.toml", dir.path()));
        assert!(
            has(&p, "forest[0].service_password_file", "chmod 600"),
            "{p:?}"
        );
        let p = problems(AgentConfig::parse(
            &forest("service_account = \"svc\"\nservice_password_file = \"none.pw\"\nsync_interval_seconds = 0\n"),
            "agent.toml",
            dir.path(),
        ));
        assert!(has(&p, "forest[0].service_account", "not a UPN"), "{p:?}");
        assert!(
            has(&p, "forest[0].service_password_file", "does not exist"),
            "{p:?}"
        );
        assert!(
            has(&p, "forest[0].sync_interval_seconds", "between 1 and"),
            "{p:?}"
        );
        let p = problems(AgentConfig::parse(
            &forest("sync_interval_seconds = 10\n"),
            "agent.toml",
            dir.path(),
        ));
        assert!(
            has(&p, "forest[0].sync_interval_seconds", "service_account"),
            "{p:?}"
        );
        Ok(())
    }

    #[test]
    fn every_problem_is_reported_at_once_with_its_key_path() -> std::io::Result<()> {
        let dir = TempDir::new("config-bad")?;
        std::fs::write(dir.path().join("ok.pem"), CERT)?;
        std::fs::write(dir.path().join("not-pem.pem"), "hello")?;
        let text = r#"
            colour = "blue"

            [agent]
            max_concurrency = 0
            clock_skew_tolerance_seconds = "five"
            verbose = true

            [[forest]]
            name = "corp.example.test"
            upn_suffixes = ["@corp.example.test", 7]
            domain_controllers = ["ldap://dc1.corp.example.test", "not a url", "https://x"]
            ca_file = "/x/y.pem"
            extra = 1

            [[forest]]
            upn_suffixes = []
            domain_controllers = "ldaps://dc"
            ca_file = "not-pem.pem"

            [[forest]]
            name = "ok.test"
            upn_suffixes = ["ok.test"]
            domain_controllers = ["ldaps://dc.ok.test"]
            ca_file = "ok.pem"
        "#;
        let result = AgentConfig::parse(text, "agent.toml", dir.path());
        let text_form = result
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let p = problems(result);
        assert!(has(&p, "colour", "unknown key"), "{p:#?}");
        assert!(has(&p, "agent.max_concurrency", "between 1"), "{p:#?}");
        assert!(has(
            &p,
            "agent.clock_skew_tolerance_seconds",
            "must be an integer, not a string"
        ));
        assert!(has(&p, "agent.verbose", "unknown key"));
        assert!(has(&p, "forest[0].upn_suffixes[0]", "without '@'"));
        assert!(has(
            &p,
            "forest[0].upn_suffixes[1]",
            "must be a string, not an integer"
        ));
        assert!(has(
            &p,
            "forest[0].domain_controllers[0]",
            "plain ldap://, which is refused"
        ));
        assert!(has(&p, "forest[0].domain_controllers[1]", "is not a URL"));
        assert!(has(
            &p,
            "forest[0].domain_controllers[2]",
            "must be an ldaps:// URL"
        ));
        assert!(has(&p, "forest[0].ca_file", "file /x/y.pem does not exist"));
        assert!(has(&p, "forest[0].extra", "unknown key"));
        assert!(has(&p, "forest[1].name", "missing key"));
        assert!(has(&p, "forest[1].upn_suffixes", "must not be empty"));
        assert!(has(
            &p,
            "forest[1].domain_controllers",
            "must be an array of strings, not a string"
        ));
        assert!(has(&p, "forest[1].ca_file", "holds no PEM certificate"));
        assert_eq!(p.len(), 15, "{p:#?}");
        assert!(text_form.starts_with("agent.toml: 15 problems in the configuration:"));
        assert!(text_form.contains("\nagent.toml: forest[0].ca_file: file /x/y.pem does not exist"));
        Ok(())
    }

    #[test]
    fn no_forest_and_wrong_shapes() {
        let base = Path::new("/");
        let p = problems(AgentConfig::parse("", "a.toml", base));
        assert!(has(&p, "forest", "no forest configured"), "{p:?}");
        let p = problems(AgentConfig::parse("forest = []", "a.toml", base));
        assert!(has(&p, "forest", "no forest configured"), "{p:?}");
        let p = problems(AgentConfig::parse("[forest]\nname = \"x\"", "a.toml", base));
        assert!(has(&p, "forest", "write [[forest]]"), "{p:?}");
        let p = problems(AgentConfig::parse(
            "agent = 3\nforest = [1]",
            "a.toml",
            base,
        ));
        assert!(has(&p, "agent", "must be a table"), "{p:?}");
        assert!(
            has(&p, "forest[0]", "must be a table, not an integer"),
            "{p:?}"
        );
    }

    #[test]
    fn duplicates_across_forests() -> std::io::Result<()> {
        let dir = TempDir::new("config-dup")?;
        std::fs::write(dir.path().join("ca.pem"), CERT)?;
        let text = r#"
            [[forest]]
            name = "a.test"
            upn_suffixes = ["a.test", "shared.test"]
            domain_controllers = ["ldaps://dc.a.test"]
            ca_file = "ca.pem"
            [[forest]]
            name = "A.test"
            upn_suffixes = ["Shared.test"]
            domain_controllers = ["ldaps://dc.b.test"]
            ca_file = "ca.pem"
        "#;
        let p = problems(AgentConfig::parse(text, "a.toml", dir.path()));
        assert!(
            has(&p, "forest[1].name", "also the name of forest[0]"),
            "{p:?}"
        );
        assert!(
            has(
                &p,
                "forest[1].upn_suffixes",
                "'shared.test' is also a suffix of forest[0]"
            ),
            "{p:?}"
        );
        Ok(())
    }

    fn with_forest(dir: &Path, extra: &str) -> std::io::Result<String> {
        std::fs::write(dir.join("dc-ca.pem"), CERT)?;
        Ok(format!(
            "{extra}\n[[forest]]\nname = \"corp.test\"\nupn_suffixes = [\"corp.test\"]\n\
             domain_controllers = [\"ldaps://127.0.0.1\"]\nca_file = \"dc-ca.pem\"\n"
        ))
    }

    #[test]
    fn cloud_urls_are_optional_and_kept_in_order() -> std::io::Result<()> {
        let dir = TempDir::new("config-cloud")?;
        let plain = AgentConfig::parse(&with_forest(dir.path(), "")?, "a.toml", dir.path());
        assert!(
            matches!(&plain, Ok(c) if c.cloud_urls.is_none()),
            "{plain:?}"
        );
        let text = with_forest(
            dir.path(),
            r#"[cloud]
            urls = ["https://cloud1.contoso.example:8443", " https://Cloud2.Contoso.example/ ",
                    "https://10.0.0.3", "https://[::1]:9443"]"#,
        )?;
        let config = AgentConfig::parse(&text, "a.toml", dir.path());
        let urls: Vec<String> = config
            .as_ref()
            .ok()
            .and_then(|c| c.cloud_urls.as_ref())
            .map(|u| u.iter().map(|u| u.as_str().to_string()).collect())
            .unwrap_or_default();
        assert_eq!(
            urls,
            vec![
                "https://cloud1.contoso.example:8443/",
                "https://cloud2.contoso.example/",
                "https://10.0.0.3/",
                "https://[::1]:9443/",
            ],
            "{config:?}"
        );
        // One address is fine too.
        let one = with_forest(dir.path(), "[cloud]\nurls = [\"https://a.test\"]")?;
        let config = AgentConfig::parse(&one, "a.toml", dir.path());
        assert!(
            matches!(&config, Ok(c) if c.cloud_urls.as_ref().map(Vec::len) == Some(1)),
            "{config:?}"
        );
        Ok(())
    }

    #[test]
    fn cloud_url_mistakes_each_say_what_to_write() -> std::io::Result<()> {
        let dir = TempDir::new("config-cloud-bad")?;
        let text = with_forest(
            dir.path(),
            r#"[cloud]
            urls = [
                "http://a.test:8443",
                "wss://b.test",
                "https://c.test/passthru",
                "https://d.test/?x=1",
                "https://admin:s3cret@e.test",
                "f.test:8443",
                "https://",
                7,
                "https://g.test:8443",
                "https://G.test:8443/",
                "https://h.test",
                "https://h.test:443",
                "https://i.test#top",
            ]
            url = "https://x.test"
            "#,
        )?;
        let result = AgentConfig::parse(&text, "agent.toml", dir.path());
        let text_form = result
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        let p = problems(result);
        assert!(
            has(
                &p,
                "cloud.urls[0]",
                "must be an https:// URL, not http://: write \"https://a.test:8443\""
            ),
            "{p:#?}"
        );
        assert!(
            has(&p, "cloud.urls[1]", "not wss://: write \"https://b.test\""),
            "{p:#?}"
        );
        assert!(
            has(&p, "cloud.urls[2]", "no path, query or fragment"),
            "{p:#?}"
        );
        assert!(
            has(&p, "cloud.urls[2]", "write \"https://c.test\""),
            "{p:#?}"
        );
        assert!(
            has(&p, "cloud.urls[3]", "write \"https://d.test\""),
            "{p:#?}"
        );
        assert!(
            has(
                &p,
                "cloud.urls[4]",
                "must not carry a user name or password"
            ),
            "{p:#?}"
        );
        assert!(
            has(&p, "cloud.urls[5]", "write \"https://f.test:8443\""),
            "{p:#?}"
        );
        assert!(has(&p, "cloud.urls[6]", "is not a URL"), "{p:#?}");
        assert!(
            has(&p, "cloud.urls[7]", "must be a string, not an integer"),
            "{p:#?}"
        );
        assert!(
            has(&p, "cloud.urls[9]", "the same address as cloud.urls[8]"),
            "{p:#?}"
        );
        assert!(
            has(&p, "cloud.urls[11]", "the same address as cloud.urls[10]"),
            "{p:#?}"
        );
        assert!(
            has(&p, "cloud.urls[12]", "write \"https://i.test\""),
            "{p:#?}"
        );
        assert!(
            has(
                &p,
                "cloud.url",
                "unknown key (expected one of: urls, proxy, proxy_auth_file)"
            ),
            "{p:#?}"
        );
        assert_eq!(p.len(), 12, "{p:#?}");
        // The password is not repeated.
        assert!(!text_form.contains("s3cret"), "{text_form}");
        assert!(
            text_form.contains("\nagent.toml: cloud.urls[0]: "),
            "{text_form}"
        );
        Ok(())
    }

    #[test]
    fn cloud_table_shapes() -> std::io::Result<()> {
        let dir = TempDir::new("config-cloud-shape")?;
        let check = |extra: &str, path: &str, needle: &str| -> std::io::Result<()> {
            let p = problems(AgentConfig::parse(
                &with_forest(dir.path(), extra)?,
                "a.toml",
                dir.path(),
            ));
            assert!(has(&p, path, needle), "{extra}: {p:#?}");
            assert_eq!(p.len(), 1, "{extra}: {p:#?}");
            Ok(())
        };
        check(
            "[cloud]",
            "cloud.urls",
            "missing key: the addresses of the cloud's instances",
        )?;
        check("[cloud]\nurls = []", "cloud.urls", "must not be empty")?;
        check(
            "[cloud]\nurls = \"https://a.test\"",
            "cloud.urls",
            "must be an array of strings, not a string",
        )?;
        check(
            "[[cloud]]\nurls = [\"https://a.test\"]",
            "cloud",
            "write [cloud] with urls = [...], not [[cloud]]",
        )?;
        check("cloud = \"https://a.test\"", "cloud", "must be a table")?;
        Ok(())
    }

    #[test]
    fn the_proxy_keys() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::new("config-proxy")?;
        let auth = dir.path().join("proxy.auth");
        std::fs::write(&auth, "svc-proxy:s3cret\n")?;
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600))?;
        // A proxy alone (no urls), with a relative auth file.
        let text = with_forest(
            dir.path(),
            "[cloud]\nproxy = \"http://proxy.contoso.example:3128\"\nproxy_auth_file = \"proxy.auth\"",
        )?;
        let config = AgentConfig::parse(&text, "a.toml", dir.path())?;
        assert_eq!(config.cloud_urls, None);
        let proxy = config.proxy.ok_or("no proxy")?;
        assert_eq!(
            proxy.address.to_string(),
            "http://proxy.contoso.example:3128"
        );
        assert_eq!(proxy.auth_file.as_deref(), Some(auth.as_path()));
        // With urls; without a proxy there is none.
        let text = with_forest(
            dir.path(),
            "[cloud]\nurls = [\"https://a.test\"]\nproxy = \"http://10.0.0.1:8080\"",
        )?;
        let config = AgentConfig::parse(&text, "a.toml", dir.path())?;
        assert_eq!(config.cloud_urls.map(|u| u.len()), Some(1));
        assert!(config.proxy.is_some_and(|p| p.auth_file.is_none()));
        let config = AgentConfig::parse(&with_forest(dir.path(), "")?, "a.toml", dir.path())?;
        assert_eq!(config.proxy, None);

        let check = |extra: &str, path: &str, needle: &str| -> std::io::Result<()> {
            let result = AgentConfig::parse(&with_forest(dir.path(), extra)?, "a.toml", dir.path());
            let text = result
                .as_ref()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let p = problems(result);
            assert!(has(&p, path, needle), "{extra}: {p:#?}");
            assert_eq!(p.len(), 1, "{extra}: {p:#?}");
            assert!(!text.contains("s3cret"), "{text}");
            Ok(())
        };
        check(
            "[cloud]\nproxy = \"https://proxy.test:3128\"",
            "cloud.proxy",
            "TLS to the proxy is not supported: write \"http://proxy.test:3128\"",
        )?;
        check(
            "[cloud]\nproxy = \"http://proxy.test\"",
            "cloud.proxy",
            "has no port",
        )?;
        check(
            "[cloud]\nproxy = \"socks5://proxy.test:1080\"",
            "cloud.proxy",
            "only HTTP proxies",
        )?;
        check(
            "[cloud]\nproxy = \"http://u:s3cret@proxy.test:3128\"",
            "cloud.proxy",
            "must not carry a user name or password",
        )?;
        check("[cloud]\nproxy = 3128", "cloud.proxy", "must be a string")?;
        check(
            "[cloud]\nproxy_auth_file = \"proxy.auth\"",
            "cloud.proxy_auth_file",
            "set only with cloud.proxy",
        )?;
        check(
            "[cloud]\nproxy = \"http://proxy.test:3128\"\nproxy_auth_file = \"missing.auth\"",
            "cloud.proxy_auth_file",
            "does not exist",
        )?;
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644))?;
        check(
            "[cloud]\nproxy = \"http://proxy.test:3128\"\nproxy_auth_file = \"proxy.auth\"",
            "cloud.proxy_auth_file",
            "chmod 600",
        )?;
        std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600))?;
        std::fs::write(&auth, "s3cret\n")?;
        check(
            "[cloud]\nproxy = \"http://proxy.test:3128\"\nproxy_auth_file = \"proxy.auth\"",
            "cloud.proxy_auth_file",
            "user:password on one line",
        )?;
        Ok(())
    }

    #[test]
    fn register_reads_only_the_proxy() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("config-proxy-only")?;
        // No forest yet: fine for register.
        let proxy = AgentConfig::parse_proxy(
            "[cloud]\nproxy = \"http://proxy.test:3128\"\n\n[[forest]]\nname = \"unfinished\"\n",
            "a.toml",
            dir.path(),
        )?;
        assert_eq!(
            proxy.map(|p| p.address.to_string()).as_deref(),
            Some("http://proxy.test:3128")
        );
        assert_eq!(AgentConfig::parse_proxy("", "a.toml", dir.path())?, None);
        let p = match AgentConfig::parse_proxy(
            "[cloud]\nproxy = \"proxy.test:3128\"",
            "a.toml",
            dir.path(),
        ) {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => return Err(format!("not refused: {other:?}").into()),
        };
        assert!(
            has(&p, "cloud.proxy", "write \"http://proxy.test:3128\""),
            "{p:#?}"
        );
        Ok(())
    }

    #[test]
    fn trace_rotation_defaults_values_and_mistakes() -> std::io::Result<()> {
        let dir = TempDir::new("config-trace")?;
        let parse = |extra: &str| -> std::io::Result<Result<AgentConfig, ConfigError>> {
            Ok(AgentConfig::parse(
                &with_forest(dir.path(), extra)?,
                "a.toml",
                dir.path(),
            ))
        };
        let defaults = parse("")?.map(|c| c.trace).ok();
        assert_eq!(
            defaults,
            Some(crate::trace_log::Rotation {
                max_bytes: 10 * 1024 * 1024,
                keep: 5
            })
        );
        let set = parse("[trace]\nmax_bytes = 4096\nkeep = 2")?
            .map(|c| c.trace)
            .ok();
        assert_eq!(
            set,
            Some(crate::trace_log::Rotation {
                max_bytes: 4096,
                keep: 2
            })
        );
        let only_keep = parse("[trace]\nkeep = 9")?.map(|c| c.trace).ok();
        assert_eq!(
            only_keep,
            Some(crate::trace_log::Rotation {
                max_bytes: 10 * 1024 * 1024,
                keep: 9
            })
        );
        for (extra, path, needle) in [
            (
                "[trace]\nmax_bytes = 100",
                "trace.max_bytes",
                "must be between 1024 and",
            ),
            (
                "[trace]\nmax_bytes = \"10M\"",
                "trace.max_bytes",
                "must be an integer (bytes), not a string",
            ),
            (
                "[trace]\nkeep = 0",
                "trace.keep",
                "must be between 1 and 1000",
            ),
            (
                "[trace]\nkeep = 1.5",
                "trace.keep",
                "must be an integer, not a float",
            ),
            (
                "[trace]\nmax_size = 4096",
                "trace.max_size",
                "unknown key (expected one of: max_bytes, keep)",
            ),
            (
                "trace = 5",
                "trace",
                "must be a table ([trace] with max_bytes and keep)",
            ),
        ] {
            let p = problems(parse(extra)?);
            assert!(has(&p, path, needle), "{extra}: {p:#?}");
            assert_eq!(p.len(), 1, "{extra}: {p:#?}");
        }
        Ok(())
    }

    #[test]
    fn syntax_errors_name_the_file() {
        let err = AgentConfig::parse("[[forest]\n", "agent.toml", Path::new("/"));
        assert!(matches!(err, Err(ConfigError::Syntax { ref file, .. }) if file == "agent.toml"));
        let err = AgentConfig::load(Path::new("/nonexistent/agent.toml"));
        assert!(matches!(err, Err(ConfigError::Read { .. })));
    }
}
