//! LDAP to Active Directory: the agent asks [`Directory::validate`] whether a password is
//! right, and gets a [`Verdict`] (accepted, with the user's on-premises identity, or denied,
//! with the Win32 code the domain controller gave) or a [`DirectoryError`] when no domain
//! controller could answer.
//!
//! - Routing: a UPN goes to the forest whose UPN suffix matches the part after '@'
//!   (case-insensitive, the longest matching suffix wins; a suffix also matches its
//!   subdomains).
//! - Validation: a simple bind over LDAPS with the UPN as bind DN (the DC's certificate is
//!   verified against the forest's CA file); a refused bind (LDAP result 49) is denied with
//!   the Win32 code of AD's `data` sub-code; an accepted one is followed, on the same
//!   connection, by a search for the user's objectGUID, ms-DS-ConsistencyGuid, UPN,
//!   sAMAccountName, displayName and mail.
//! - Failover and health: each DC is Up or Down. A transport failure (connection refused,
//!   TLS failure, timeout, connection lost) marks it Down at once; a refused bind or any
//!   other LDAP answer does not. Validations try the Up DCs in configured order and skip the
//!   Down ones, so a dead DC costs its timeout once, not on every sign-in; only when every
//!   Up DC failed (or none is up) are the Down ones tried too (fewest failures first), so a
//!   forest never fails without trying and a recovered DC is found even before its probe.
//!   The verdict of a DC that answered is final.
//! - Background probes: a task per [`Directory`] (started by
//!   [`Directory::start_health_checks`], or by the first DC that goes down) probes each Down
//!   DC (TCP, TLS, anonymous rootDSE read, within the connect timeout) 500 ms after it went
//!   down, then with a doubling delay up to 30 s ([`ProbePolicy`]); a DC that answers is Up
//!   again and its connection pooled. [`Directory::health`] reports each DC; transitions are
//!   logged (warn when one goes down, info when it comes back).
//! - Connection reuse: up to 64 idle LDAPS connections per DC are kept and re-bound for each
//!   validation. A pooled connection that fails on reuse is dropped with the rest of the
//!   pool and the validation retried once on a new connection before the DC counts as down
//!   (a DC restart costs no sign-in).
//!
//! - Directory sync: [`Directory::sync_run`] reads a forest's users and groups with its
//!   service account (see [`sync`]).
//! - Password writeback: [`Directory::write_password`] changes or resets a password (see
//!   [`writeback`]); a policy refusal names its rule ([`password_rules`]).
//!
//! Passwords are never logged, escaped or kept: they go into the bind request and nowhere
//! else.

mod dc;
pub mod dc_tls;
pub mod diagnose;
mod entry;
#[cfg(test)]
mod escaping_properties;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzz_entry;
mod health;
mod objects;
pub mod password_rules;
pub mod sync;
mod values;
pub mod writeback;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use passthru_proto::wire::DirectoryUser;
use passthru_proto::{AgentError, Win32};
use url::Url;

use crate::dc::{DcFailure, DomainController};
pub use crate::health::ProbePolicy;
pub use crate::sync::SyncCredentials;
pub use crate::writeback::{PasswordWrite, WriteVerdict, WritebackScope};

/// How often the background task looks for Down DCs whose probe is due.
const PROBE_TICK: Duration = Duration::from_millis(100);

/// The health of one domain controller, for status pages and statistics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DcHealth {
    /// The forest's name.
    pub forest: String,
    /// The DC's URL.
    pub url: Url,
    /// Whether it is used (false: skipped, and probed in the background).
    pub up: bool,
    /// Since when it is in this state (or since the directory was set up).
    pub since: SystemTime,
    /// Transport failures (validations and probes) since it last answered.
    pub consecutive_failures: u32,
    /// The last failure, while it is down.
    pub last_error: Option<String>,
}

/// One forest the agent serves (the agent reads these from its TOML configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForestConfig {
    /// A name for logs (usually the forest's DNS name).
    pub name: String,
    /// UPN suffixes routed to this forest (`corp.example.test`).
    pub upn_suffixes: Vec<String>,
    /// Domain controllers, tried in this order: `ldaps://host[:port]` URLs.
    pub domain_controllers: Vec<Url>,
    /// PEM file with the CA certificate(s) that verify the domain controllers.
    pub ca_file: PathBuf,
    /// `None` (Active Directory): users bind with their UPN, and a refused bind names its
    /// reason in AD's `data` sub-code. `Some(template)` (a plain LDAP directory such as
    /// OpenLDAP, which takes only DNs): users bind as the template's DN, with `{local}`
    /// replaced by the UPN's part before '@' and `{upn}` by the whole UPN (each escaped as a
    /// DN value); a refused bind (LDAP 49) is 1326; the user's identity is read from the
    /// bound entry (`entryUUID`, `uid`, `displayName` or `cn`, `mail`).
    pub bind_dn_template: Option<String>,
    /// The name the DCs' certificates are checked against instead of each DC's host (for
    /// DCs addressed by IP address); `None`: the host of each URL.
    pub tls_server_name: Option<String>,
}

/// The bind DN for `upn` from a forest's `bind_dn_template`.
pub fn bind_dn_from_template(template: &str, upn: &str) -> String {
    let local = upn.rsplit_once('@').map_or(upn, |(l, _)| l);
    // One pass, so that a value containing a placeholder's text is never expanded again.
    let mut out = String::with_capacity(template.len() + upn.len());
    let mut rest = template;
    while let Some(at) = rest.find('{') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("{local}") {
            out.push_str(&ldap3::dn_escape(local));
            rest = after;
        } else if let Some(after) = tail.strip_prefix("{upn}") {
            out.push_str(&ldap3::dn_escape(upn));
            rest = after;
        } else {
            out.push('{');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    out
}

/// Timeouts of the directory's network calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake with one domain controller (default 3 s).
    pub connect: Duration,
    /// Each LDAP operation: the bind, each search (default 5 s).
    pub operation: Duration,
}

impl Default for Timeouts {
    fn default() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(3),
            operation: Duration::from_secs(5),
        }
    }
}

/// What the directory said about a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The password is right; the user's on-premises identity.
    Accepted(DirectoryUser),
    /// The directory refused the password; the Win32 code says why.
    Denied(Win32),
}

/// Why the directory could not give a verdict.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DirectoryError {
    /// No domain controller of the forest could be reached (connection refused, TLS failure,
    /// connection lost, DC busy), and at least one did not merely time out.
    #[error("no domain controller of forest {forest} could be reached: {detail}")]
    Unreachable {
        /// The forest's name.
        forest: String,
        /// What happened with each domain controller.
        detail: String,
    },
    /// Every domain controller of the forest timed out.
    #[error("every domain controller of forest {forest} timed out: {detail}")]
    Timeout {
        /// The forest's name.
        forest: String,
        /// What happened with each domain controller.
        detail: String,
    },
    /// The UPN's suffix matches no configured forest.
    #[error("no configured forest serves the UPN suffix {suffix:?}")]
    NotRoutable {
        /// The part of the UPN after '@' (empty when there is no '@').
        suffix: String,
    },
    /// A domain controller answered with something other than a verdict (an unknown bind
    /// sub-code, an unexpected LDAP result, an accepted bind without a readable user).
    #[error("unexpected answer from the directory: {0}")]
    Unexpected(String),
    /// The configuration is invalid (a missing or unreadable CA file, a DC URL that is not
    /// `ldaps://`, a forest without suffixes or DCs, a suffix served by two forests).
    #[error("invalid directory configuration: {0}")]
    Config(String),
    /// The domain controller refused the bind of the forest's sync service account (wrong
    /// password, account locked out, disabled, expired, ...).
    #[error(
        "forest {forest}: the domain controller refused the sync service account {account} \
         ({}): check its password in the agent's configuration, and that the account is \
         enabled, not locked out and its password not expired ({detail})",
        win32.map_or("unknown reason".to_string(), |w| format!("{}: {}", w.code(), w.message()))
    )]
    ServiceAccount {
        /// The forest's name.
        forest: String,
        /// The service account's name.
        account: String,
        /// Why, as AD's Win32 code, when the DC said.
        win32: Option<Win32>,
        /// The DC's diagnostic message.
        detail: String,
    },
    /// The receiver of a sync run's batches went away (the connection to the cloud ended):
    /// the run was stopped.
    #[error(
        "sync of forest {forest} abandoned: the connection to the cloud ended during the run; \
         the cloud starts a new run once the agent is connected again"
    )]
    Abandoned {
        /// The forest's name.
        forest: String,
    },
    /// Password writeback is not possible: the forest has no service account on this agent,
    /// or the account lacks the right to change or reset the user's password.
    #[error("forest {forest}: password writeback is not possible: {detail}")]
    WritebackNotPermitted {
        /// The forest's name.
        forest: String,
        /// What is missing, and what to do.
        detail: String,
    },
    /// The user is a protected account (`adminCount=1`) and the forest's configuration on
    /// this agent does not allow writing their password.
    #[error(
        "forest {forest}: the password of {dn} is not written: it is a protected account \
         (adminCount=1, an administrator now or formerly). Change it in Active Directory, or \
         set writeback_protected_accounts = true in the forest's [[forest]] table"
    )]
    WritebackProtectedAccount {
        /// The forest's name.
        forest: String,
        /// The user's DN.
        dn: String,
    },
    /// The user is not under the forest's `writeback_base_dn`.
    #[error(
        "forest {forest}: the password of {dn} is not written: the user is not under \
         writeback_base_dn {base_dn:?}"
    )]
    WritebackOutsideBaseDn {
        /// The forest's name.
        forest: String,
        /// The user's DN.
        dn: String,
        /// The configured base DN.
        base_dn: String,
    },
}

impl DirectoryError {
    /// The error the agent reports to the cloud.
    pub fn agent_error(&self) -> AgentError {
        match self {
            DirectoryError::Unreachable { .. } => AgentError::DirectoryUnreachable,
            DirectoryError::Timeout { .. } => AgentError::DirectoryTimeout,
            DirectoryError::NotRoutable { .. } => AgentError::NotRoutable,
            DirectoryError::WritebackNotPermitted { .. } => AgentError::WritebackNotPermitted,
            DirectoryError::WritebackProtectedAccount { .. } => {
                AgentError::WritebackProtectedAccount
            }
            DirectoryError::WritebackOutsideBaseDn { .. } => AgentError::WritebackOutsideScope,
            DirectoryError::Unexpected(_)
            | DirectoryError::Config(_)
            | DirectoryError::ServiceAccount { .. }
            | DirectoryError::Abandoned { .. } => AgentError::DirectoryError,
        }
    }
}

/// One configured forest: its suffixes, its domain controllers (each with its connection
/// pool) and the TLS configuration that trusts its CA.
#[derive(Debug)]
pub struct Forest {
    name: String,
    upn_suffixes: Vec<String>,
    ca_file: PathBuf,
    dcs: Vec<Arc<DomainController>>,
    tls: Arc<rustls::ClientConfig>,
    bind_dn_template: Option<String>,
}

impl Forest {
    /// The forest's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its UPN suffixes, normalised (lower case, no leading '@' or '.').
    pub fn upn_suffixes(&self) -> &[String] {
        &self.upn_suffixes
    }

    /// Its domain controllers, in the order they are tried.
    pub fn domain_controllers(&self) -> Vec<&Url> {
        self.dcs.iter().map(|dc| dc.url()).collect()
    }

    /// The CA file its domain controllers are verified against.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// Idle pooled connections, over all its domain controllers.
    pub fn idle_connections(&self) -> usize {
        self.dcs.iter().map(|dc| dc.idle()).sum()
    }

    /// The health of each of its domain controllers, in configured order.
    pub fn health(&self) -> Vec<DcHealth> {
        self.dcs.iter().map(|dc| dc.health()).collect()
    }

    /// The DCs to try, in order: the Up ones in configured order, then the Down ones, fewest
    /// consecutive failures (then soonest probe) first. A Down DC is thus only tried when
    /// every Up one failed for this validation, or none is up: the forest never fails
    /// without trying, and a recovered DC is found even before its probe.
    fn candidates(&self) -> Vec<&Arc<DomainController>> {
        let (mut order, mut down): (Vec<_>, Vec<_>) = self.dcs.iter().partition(|dc| dc.is_up());
        down.sort_by_key(|dc| dc.down_rank());
        order.extend(down);
        order
    }

    async fn validate(
        &self,
        upn: &str,
        password: &str,
        timeouts: &Timeouts,
    ) -> Result<Verdict, DirectoryError> {
        let mut failures = Vec::new();
        let mut all_timed_out = true;
        for dc in self.candidates() {
            let template = self.bind_dn_template.as_deref();
            match dc
                .validate(upn, password, template, &self.tls, timeouts)
                .await
            {
                Ok(verdict) => return Ok(verdict),
                Err(DcFailure::Final(e)) => return Err(e),
                Err(DcFailure::Down { timed_out, detail }) => {
                    all_timed_out &= timed_out;
                    failures.push(format!("{}: {detail}", dc.url()));
                }
                Err(DcFailure::Busy { detail }) => {
                    tracing::warn!(forest = %self.name, dc = %dc.url(), "domain controller skipped: {detail}");
                    all_timed_out = false;
                    failures.push(format!("{}: {detail}", dc.url()));
                }
            }
        }
        let detail = failures.join("; ");
        let forest = self.name.clone();
        if all_timed_out {
            Err(DirectoryError::Timeout { forest, detail })
        } else {
            Err(DirectoryError::Unreachable { forest, detail })
        }
    }
}

/// The forests of an agent, and the way to validate passwords against them.
#[derive(Debug)]
pub struct Directory {
    forests: Vec<Forest>,
    timeouts: Timeouts,
    /// Whether the background probe task runs.
    probing: AtomicBool,
    /// Entries per page in sync runs.
    sync_page_size: i32,
}

/// Lower case, without a leading '@' or surrounding dots and blanks.
fn normalize_suffix(s: &str) -> String {
    s.trim()
        .trim_start_matches('@')
        .trim_matches('.')
        .to_lowercase()
}

/// Whether `domain` (normalised) is `suffix` or a subdomain of it.
fn suffix_matches(domain: &str, suffix: &str) -> bool {
    domain == suffix
        || domain
            .strip_suffix(suffix)
            .is_some_and(|head| head.ends_with('.'))
}

impl Directory {
    /// A directory for `forests` with the default [`Timeouts`].
    pub fn new(forests: Vec<ForestConfig>) -> Result<Directory, DirectoryError> {
        Directory::with_timeouts(forests, Timeouts::default())
    }

    /// A directory for `forests`: loads each CA file and checks the configuration.
    pub fn with_timeouts(
        forests: Vec<ForestConfig>,
        timeouts: Timeouts,
    ) -> Result<Directory, DirectoryError> {
        Directory::with_policy(forests, timeouts, ProbePolicy::default())
    }

    /// A directory for `forests`, with its timeouts and its schedule of probes of Down DCs.
    pub fn with_policy(
        forests: Vec<ForestConfig>,
        timeouts: Timeouts,
        policy: ProbePolicy,
    ) -> Result<Directory, DirectoryError> {
        let mut built: Vec<Forest> = Vec::with_capacity(forests.len());
        for config in forests {
            let name = config.name.trim().to_string();
            let mut upn_suffixes = Vec::new();
            for s in &config.upn_suffixes {
                let n = normalize_suffix(s);
                if n.is_empty() || n.contains('@') || n.chars().any(char::is_whitespace) {
                    return Err(DirectoryError::Config(format!(
                        "forest {name}: invalid UPN suffix {s:?}"
                    )));
                }
                let taken =
                    built.iter().any(|f| f.upn_suffixes.contains(&n)) || upn_suffixes.contains(&n);
                if taken {
                    return Err(DirectoryError::Config(format!(
                        "UPN suffix {n} is listed twice"
                    )));
                }
                upn_suffixes.push(n);
            }
            if upn_suffixes.is_empty() {
                return Err(DirectoryError::Config(format!(
                    "forest {name} has no UPN suffix"
                )));
            }
            if config.domain_controllers.is_empty() {
                return Err(DirectoryError::Config(format!(
                    "forest {name} has no domain controller"
                )));
            }
            let mut dcs = Vec::new();
            for url in config.domain_controllers {
                if url.scheme() != "ldaps" || url.host_str().is_none_or(str::is_empty) {
                    return Err(DirectoryError::Config(format!(
                        "forest {name}: domain controller {url} is not an ldaps://host URL \
                         (simple binds need TLS)"
                    )));
                }
                dcs.push(Arc::new(DomainController::new(&name, url, policy)));
            }
            let tls = dc_tls::tls_config(&config.ca_file, config.tls_server_name.as_deref())?;
            let bind_dn_template = config.bind_dn_template.filter(|t| !t.trim().is_empty());
            if let Some(t) = &bind_dn_template {
                if !t.contains("{local}") && !t.contains("{upn}") {
                    return Err(DirectoryError::Config(format!(
                        "forest {name}: bind_dn_template {t:?} names neither {{local}} nor {{upn}}"
                    )));
                }
            }
            built.push(Forest {
                name,
                upn_suffixes,
                ca_file: config.ca_file,
                dcs,
                tls,
                bind_dn_template,
            });
        }
        Ok(Directory {
            forests: built,
            timeouts,
            probing: AtomicBool::new(false),
            sync_page_size: sync::DEFAULT_PAGE_SIZE as i32,
        })
    }

    /// The health of every domain controller, forest by forest, in configured order.
    pub fn health(&self) -> Vec<DcHealth> {
        self.forests.iter().flat_map(Forest::health).collect()
    }

    /// Starts the background task that probes Down DCs (once; later calls do nothing). It
    /// ends when the directory is dropped. Returns whether it runs: false outside a Tokio
    /// runtime. [`Directory::validate`] starts it when a DC goes down.
    pub fn start_health_checks(&self) -> bool {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return false;
        };
        if self.probing.swap(true, Ordering::SeqCst) {
            return true;
        }
        let dcs: Vec<(Weak<DomainController>, Arc<rustls::ClientConfig>)> = self
            .forests
            .iter()
            .flat_map(|f| f.dcs.iter().map(|dc| (Arc::downgrade(dc), f.tls.clone())))
            .collect();
        let timeouts = self.timeouts;
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(PROBE_TICK).await;
                let now = Instant::now();
                let mut alive = false;
                for (dc, tls) in &dcs {
                    let Some(dc) = dc.upgrade() else {
                        continue;
                    };
                    alive = true;
                    if dc.probe_due(now) && !dc.is_probing() {
                        let tls = tls.clone();
                        tokio::spawn(async move { dc.probe(&tls, &timeouts).await });
                    }
                }
                if !alive {
                    break;
                }
            }
        });
        true
    }

    /// Probes every Down DC now, whatever its schedule, one after the other (for tests, and
    /// for an operator's "check now"); a DC already being probed is left to that probe.
    pub async fn probe_down_dcs(&self) {
        for forest in &self.forests {
            for dc in forest.dcs.iter().filter(|dc| !dc.is_up()) {
                dc.probe(&forest.tls, &self.timeouts).await;
            }
        }
    }

    /// The configured forests.
    pub fn forests(&self) -> &[Forest] {
        &self.forests
    }

    /// The timeouts in use.
    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    /// The forest serving `upn`: the part after the last '@' is compared with each UPN suffix,
    /// case-insensitively; a suffix matches itself and its subdomains; the longest wins.
    pub fn route(&self, upn: &str) -> Option<&Forest> {
        let (_, domain) = upn.rsplit_once('@')?;
        let domain = normalize_suffix(domain);
        if domain.is_empty() {
            return None;
        }
        let mut best: Option<(&Forest, usize)> = None;
        for forest in &self.forests {
            for suffix in &forest.upn_suffixes {
                let longer = best.is_none_or(|(_, len)| suffix.len() > len);
                if longer && suffix_matches(&domain, suffix) {
                    best = Some((forest, suffix.len()));
                }
            }
        }
        best.map(|(forest, _)| forest)
    }

    /// The forest serving `upn` (else [`DirectoryError::NotRoutable`]), and whether the UPN
    /// has a name before '@' (a UPN without one is answered 1326 without asking).
    pub(crate) fn route_upn(&self, upn: &str) -> Result<(&Forest, bool), DirectoryError> {
        let forest = self.route(upn).ok_or_else(|| DirectoryError::NotRoutable {
            suffix: upn
                .rsplit_once('@')
                .map(|(_, s)| s.to_string())
                .unwrap_or_default(),
        })?;
        let local = upn.rsplit_once('@').map(|(l, _)| l).unwrap_or_default();
        Ok((forest, !local.trim().is_empty()))
    }

    /// Checks `password` for `upn` with the user's forest.
    ///
    /// An empty password (which AD would take as an unauthenticated bind and accept) and a
    /// UPN with nothing before '@' are denied with 1326 without asking the directory.
    pub async fn validate(&self, upn: &str, password: &str) -> Result<Verdict, DirectoryError> {
        let (forest, named) = self.route_upn(upn)?;
        if password.is_empty() || !named {
            return Ok(Verdict::Denied(Win32::LogonFailure));
        }
        let result = forest.validate(upn, password, &self.timeouts).await;
        if !self.probing.load(Ordering::Relaxed) && forest.dcs.iter().any(|dc| !dc.is_up()) {
            self.start_health_checks();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_file(label: &str) -> anyhow::Result<PathBuf> {
        let dir = std::env::temp_dir().join(format!(
            "passthru-directory-unit-{}-{label}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("ca.pem");
        passthru_testkit::tls::write_unrelated_ca(&path)?;
        Ok(path)
    }

    fn forest(name: &str, suffixes: &[&str], ca: &Path) -> anyhow::Result<ForestConfig> {
        Ok(ForestConfig {
            name: name.into(),
            upn_suffixes: suffixes.iter().map(|s| s.to_string()).collect(),
            domain_controllers: vec![Url::parse("ldaps://127.0.0.1:1")?],
            ca_file: ca.to_path_buf(),
            bind_dn_template: None,
            tls_server_name: None,
        })
    }

    #[test]
    fn bind_dns_from_templates_escape_the_names() -> anyhow::Result<()> {
        let t = "uid={local},ou=people,dc=x,dc=test";
        assert_eq!(
            bind_dn_from_template(t, "ann@x.test"),
            "uid=ann,ou=people,dc=x,dc=test"
        );
        assert_eq!(
            bind_dn_from_template(t, "a,b+c@x.test"),
            "uid=a\\2cb\\2bc,ou=people,dc=x,dc=test"
        );
        assert_eq!(
            bind_dn_from_template("cn={upn},dc=x", "ann@x.test"),
            "cn=ann@x.test,dc=x"
        );
        // A name holding a placeholder's text is not expanded again.
        assert_eq!(
            bind_dn_from_template("uid={local},o={x}", "{upn}@x.test"),
            "uid={upn},o={x}"
        );
        let ca = ca_file("template")?;
        let mut f = forest("x", &["x.test"], &ca)?;
        f.bind_dn_template = Some("ou=people,dc=x".into());
        assert!(matches!(
            Directory::new(vec![f]),
            Err(DirectoryError::Config(m)) if m.contains("{local}")
        ));
        Ok(())
    }

    fn routed<'a>(d: &'a Directory, upn: &str) -> Option<&'a str> {
        d.route(upn).map(Forest::name)
    }

    #[test]
    fn routes_by_suffix_case_insensitively_longest_first() -> anyhow::Result<()> {
        let ca = ca_file("route")?;
        let d = Directory::new(vec![
            forest("example", &["example.test"], &ca)?,
            forest("corp", &["@Corp.Example.Test", "corp.example"], &ca)?,
            forest("fabrikam", &["fabrikam.example.test."], &ca)?,
        ])?;
        assert_eq!(routed(&d, "alice@corp.example.test"), Some("corp"));
        assert_eq!(routed(&d, "ALICE@CORP.EXAMPLE.TEST"), Some("corp"));
        assert_eq!(routed(&d, "bob@corp.example"), Some("corp"));
        assert_eq!(routed(&d, "bob@fabrikam.example.test"), Some("fabrikam"));
        // A subdomain goes to the longest suffix that contains it.
        assert_eq!(routed(&d, "c@eu.corp.example.test"), Some("corp"));
        assert_eq!(routed(&d, "d@other.example.test"), Some("example"));
        assert_eq!(routed(&d, "e@example.test"), Some("example"));
        // The last '@' separates the suffix.
        assert_eq!(routed(&d, "we@ird@corp.example.test"), Some("corp"));
        // Label boundaries count: "xcorp.example.test" is not under "corp.example.test".
        assert_eq!(routed(&d, "f@xexample.test"), None);
        assert_eq!(routed(&d, "no-at-sign"), None);
        assert_eq!(routed(&d, "g@"), None);
        assert_eq!(routed(&d, "h@elsewhere.test"), None);
        assert_eq!(
            d.forests()[1].upn_suffixes(),
            ["corp.example.test", "corp.example"]
        );
        Ok(())
    }

    #[tokio::test]
    async fn unroutable_and_empty_inputs_never_reach_a_dc() -> anyhow::Result<()> {
        let ca = ca_file("inputs")?;
        let d = Directory::new(vec![forest("corp", &["corp.example.test"], &ca)?])?;
        let err = d.validate("x@elsewhere.test", "pw").await;
        assert_eq!(
            err,
            Err(DirectoryError::NotRoutable {
                suffix: "elsewhere.test".into()
            })
        );
        assert!(matches!(
            d.validate("nobody", "pw").await,
            Err(DirectoryError::NotRoutable { .. })
        ));
        // The only DC is dead (port 1): a verdict proves no connection was tried.
        assert_eq!(
            d.validate("x@corp.example.test", "").await,
            Ok(Verdict::Denied(Win32::LogonFailure))
        );
        assert_eq!(
            d.validate("@corp.example.test", "pw").await,
            Ok(Verdict::Denied(Win32::LogonFailure))
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_refusing_dc_is_marked_down_and_probed() -> anyhow::Result<()> {
        let ca = ca_file("health")?;
        let mut cfg = forest("corp", &["corp.example.test"], &ca)?;
        cfg.domain_controllers = vec![
            Url::parse("ldaps://127.0.0.1:1")?,
            Url::parse("ldaps://127.0.0.1:2")?,
        ];
        let d = Directory::new(vec![cfg])?;
        assert!(d
            .health()
            .iter()
            .all(|h| h.up && h.consecutive_failures == 0));
        let err = d.validate("x@corp.example.test", "pw").await;
        assert!(
            matches!(&err, Err(DirectoryError::Unreachable { .. })),
            "{err:?}"
        );
        let health = d.health();
        assert_eq!(health.len(), 2);
        assert!(health.iter().all(|h| !h.up && h.consecutive_failures == 1));
        assert!(health.iter().all(|h| h.last_error.is_some()));
        assert!(
            d.probing.load(Ordering::SeqCst),
            "the probe task was started"
        );
        // Every DC is down: they are still tried (and still refuse).
        let err = d.validate("x@corp.example.test", "pw").await;
        assert!(
            matches!(&err, Err(DirectoryError::Unreachable { .. })),
            "{err:?}"
        );
        assert!(d.health().iter().all(|h| h.consecutive_failures == 2));
        d.probe_down_dcs().await;
        assert!(d
            .health()
            .iter()
            .all(|h| !h.up && h.consecutive_failures == 3));
        Ok(())
    }

    #[test]
    fn up_dcs_first_in_configured_order_then_down_ones_best_first() -> anyhow::Result<()> {
        let ca = ca_file("order")?;
        let mut cfg = forest("corp", &["corp.example.test"], &ca)?;
        cfg.domain_controllers = (1..=4)
            .map(|p| Url::parse(&format!("ldaps://dc{p}.corp.example.test")))
            .collect::<Result<_, _>>()?;
        let d = Directory::new(vec![cfg])?;
        let f = &d.forests()[0];
        let order = |f: &Forest| -> Vec<String> {
            f.candidates()
                .iter()
                .filter_map(|dc| dc.url().host_str().map(|h| h[..3].to_string()))
                .collect()
        };
        assert_eq!(order(f), ["dc1", "dc2", "dc3", "dc4"]);
        // dc1 failed twice, dc3 once: the up ones first, then dc3 (fewer failures), dc1.
        f.dcs[0].mark_down("refused");
        f.dcs[0].mark_down("refused");
        f.dcs[2].mark_down("refused");
        assert_eq!(order(f), ["dc2", "dc4", "dc3", "dc1"]);
        // A DC that answers again takes back its configured place.
        f.dcs[0].mark_up();
        assert_eq!(order(f), ["dc1", "dc2", "dc4", "dc3"]);
        let h = d.health();
        assert!(h[0].up && h[0].consecutive_failures == 0 && h[0].last_error.is_none());
        assert!(!h[2].up && h[2].last_error.as_deref() == Some("refused"));
        Ok(())
    }

    #[test]
    fn configuration_errors_are_clear() -> anyhow::Result<()> {
        let ca = ca_file("config")?;
        let missing = PathBuf::from("/nonexistent/passthru/ca.pem");
        let err = Directory::new(vec![forest("corp", &["corp.test"], &missing)?]).err();
        let Some(DirectoryError::Config(msg)) = err else {
            anyhow::bail!("expected a config error, got {err:?}");
        };
        assert!(msg.contains("/nonexistent/passthru/ca.pem"), "{msg}");

        let empty = ca.with_file_name("empty.pem");
        std::fs::write(&empty, "not a certificate\n")?;
        let err = Directory::new(vec![forest("corp", &["corp.test"], &empty)?]).err();
        assert!(
            matches!(&err, Some(DirectoryError::Config(m)) if m.contains("empty.pem")),
            "{err:?}"
        );

        let mut plain = forest("corp", &["corp.test"], &ca)?;
        plain.domain_controllers = vec![Url::parse("ldap://127.0.0.1:389")?];
        let err = Directory::new(vec![plain]).err();
        assert!(
            matches!(&err, Some(DirectoryError::Config(m)) if m.contains("ldaps")),
            "{err:?}"
        );

        let mut none = forest("corp", &["corp.test"], &ca)?;
        none.domain_controllers.clear();
        assert!(matches!(
            Directory::new(vec![none]),
            Err(DirectoryError::Config(_))
        ));
        assert!(matches!(
            Directory::new(vec![forest("corp", &[], &ca)?]),
            Err(DirectoryError::Config(_))
        ));
        assert!(matches!(
            Directory::new(vec![
                forest("a", &["corp.test"], &ca)?,
                forest("b", &["CORP.test"], &ca)?
            ]),
            Err(DirectoryError::Config(_))
        ));
        Ok(())
    }

    #[test]
    fn validate_is_send_and_directory_is_shareable() -> anyhow::Result<()> {
        fn send<T: Send>(_: &T) {}
        fn shared<T: Send + Sync>() {}
        shared::<Directory>();
        let d = Directory::new(Vec::new())?;
        let fut = d.validate("a@b.test", "pw");
        send(&fut);
        Ok(())
    }

    #[test]
    fn errors_map_to_agent_errors() {
        let f = || "f".to_string();
        let cases = [
            (
                DirectoryError::Unreachable {
                    forest: f(),
                    detail: f(),
                },
                AgentError::DirectoryUnreachable,
            ),
            (
                DirectoryError::Timeout {
                    forest: f(),
                    detail: f(),
                },
                AgentError::DirectoryTimeout,
            ),
            (
                DirectoryError::NotRoutable { suffix: f() },
                AgentError::NotRoutable,
            ),
            (DirectoryError::Unexpected(f()), AgentError::DirectoryError),
            (DirectoryError::Config(f()), AgentError::DirectoryError),
            (
                DirectoryError::ServiceAccount {
                    forest: f(),
                    account: f(),
                    win32: Some(Win32::LogonFailure),
                    detail: f(),
                },
                AgentError::DirectoryError,
            ),
            (
                DirectoryError::Abandoned { forest: f() },
                AgentError::DirectoryError,
            ),
        ];
        for (e, a) in cases {
            assert_eq!(e.agent_error(), a, "{e}");
        }
        assert_eq!(Timeouts::default().connect, Duration::from_secs(3));
        assert_eq!(Timeouts::default().operation, Duration::from_secs(5));
    }
}
