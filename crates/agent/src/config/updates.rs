//! The `[updates]` table: signed auto-update (see [`crate::update`]).
//!
//! ```toml
//! [updates]
//! enabled = true                      # default true
//! public_key = "BASE64"               # or public_key_file = "/etc/passthru-agent/update-key.pub"
//! check_interval_seconds = 3600       # default 3600 (with jitter)
//! rollback_after_seconds = 120        # default 120
//! ```

use std::path::PathBuf;
use std::time::Duration;

use toml::{Table, Value};

use super::{type_name, Checker};

/// How often the agent asks the cloud for a release when `check_interval_seconds` is not set.
pub const DEFAULT_CHECK_INTERVAL_SECONDS: u64 = 3600;
/// Smallest accepted `check_interval_seconds`.
pub const MIN_CHECK_INTERVAL_SECONDS: i64 = 1;
/// Largest accepted `check_interval_seconds` (a week).
pub const MAX_CHECK_INTERVAL_SECONDS: i64 = 7 * 86_400;
/// How long a new version has to connect before it is rolled back, when
/// `rollback_after_seconds` is not set.
pub const DEFAULT_ROLLBACK_AFTER_SECONDS: u64 = 120;
/// Smallest accepted `rollback_after_seconds`.
pub const MIN_ROLLBACK_AFTER_SECONDS: i64 = 5;
/// Largest accepted `rollback_after_seconds`.
pub const MAX_ROLLBACK_AFTER_SECONDS: i64 = 3600;
/// Length of an Ed25519 public key.
pub const PUBLIC_KEY_BYTES: usize = 32;

const UPDATES_KEYS: &[&str] = &[
    "enabled",
    "public_key",
    "public_key_file",
    "check_interval_seconds",
    "rollback_after_seconds",
];

/// `[updates]`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateSettings {
    /// Whether the agent updates itself (and runs a version it staged before).
    pub enabled: bool,
    /// The publisher's Ed25519 public key pinned at install time (`public_key`, or the
    /// content of `public_key_file`); `None` when neither is set (then only a key built in
    /// with `PASSTHRU_UPDATE_PUBLIC_KEY` lets the agent update).
    pub public_key: Option<[u8; PUBLIC_KEY_BYTES]>,
    /// Where the pinned key came from (`[updates] public_key`, or the file), for messages.
    pub public_key_from: Option<String>,
    /// About how often the agent asks the cloud for a release (each wait drawn between
    /// three quarters and five quarters of it).
    pub check_interval: Duration,
    /// How long a new version has to connect to the cloud before the agent rolls back.
    pub rollback_after: Duration,
}

impl Default for UpdateSettings {
    fn default() -> UpdateSettings {
        UpdateSettings {
            enabled: true,
            public_key: None,
            public_key_from: None,
            check_interval: Duration::from_secs(DEFAULT_CHECK_INTERVAL_SECONDS),
            rollback_after: Duration::from_secs(DEFAULT_ROLLBACK_AFTER_SECONDS),
        }
    }
}

/// Reads a publisher public key: 32 bytes, base64 (standard or URL-safe, padding optional),
/// surrounding white space ignored.
pub fn parse_public_key(text: &str) -> Result<[u8; PUBLIC_KEY_BYTES], String> {
    use base64::Engine as _;
    let t = text.trim();
    let raw = base64::engine::general_purpose::STANDARD
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(t))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(t))
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
        .map_err(|_| {
            "is not base64: give the public key `passthru-agent release keygen` printed".to_string()
        })?;
    <[u8; PUBLIC_KEY_BYTES]>::try_from(raw.as_slice()).map_err(|_| {
        format!(
            "is {} bytes, not the {PUBLIC_KEY_BYTES} of an Ed25519 public key: give the public \
             key `passthru-agent release keygen` printed",
            raw.len()
        )
    })
}

impl Checker {
    /// `[updates]` (absent: the defaults).
    pub(super) fn updates_table(&mut self, value: Option<&Value>) -> Option<UpdateSettings> {
        match value {
            None => Some(UpdateSettings::default()),
            Some(Value::Table(t)) => self.updates(t),
            Some(other) => {
                self.problem(
                    "updates",
                    format!(
                        "must be a table ([updates] with public_key = \"...\"), not {}",
                        type_name(other)
                    ),
                );
                None
            }
        }
    }

    fn updates(&mut self, t: &Table) -> Option<UpdateSettings> {
        self.unknown_keys(t, "updates.", UPDATES_KEYS);
        let enabled = match t.get("enabled") {
            None => Some(true),
            Some(Value::Boolean(b)) => Some(*b),
            Some(other) => {
                self.problem(
                    "updates.enabled",
                    format!("must be true or false, not {}", type_name(other)),
                );
                None
            }
        };
        let key = self.update_key(t);
        let check_interval = self.seconds(
            t,
            "updates.check_interval_seconds",
            "check_interval_seconds",
            (MIN_CHECK_INTERVAL_SECONDS, MAX_CHECK_INTERVAL_SECONDS),
            DEFAULT_CHECK_INTERVAL_SECONDS,
        );
        let rollback_after = self.seconds(
            t,
            "updates.rollback_after_seconds",
            "rollback_after_seconds",
            (MIN_ROLLBACK_AFTER_SECONDS, MAX_ROLLBACK_AFTER_SECONDS),
            DEFAULT_ROLLBACK_AFTER_SECONDS,
        );
        let (public_key, public_key_from) = key?;
        Some(UpdateSettings {
            enabled: enabled?,
            public_key,
            public_key_from,
            check_interval: check_interval?,
            rollback_after: rollback_after?,
        })
    }

    /// An integer of seconds within `range` (the default when absent).
    fn seconds(
        &mut self,
        t: &Table,
        path: &str,
        key: &str,
        (lo, hi): (i64, i64),
        default: u64,
    ) -> Option<Duration> {
        match t.get(key) {
            None => Some(Duration::from_secs(default)),
            Some(Value::Integer(n)) if (lo..=hi).contains(n) => {
                u64::try_from(*n).ok().map(Duration::from_secs)
            }
            Some(Value::Integer(_)) => {
                self.problem(
                    path,
                    format!("must be between {lo} and {hi} (seconds; the default is {default})"),
                );
                None
            }
            Some(other) => {
                self.problem(
                    path,
                    format!("must be an integer (seconds), not {}", type_name(other)),
                );
                None
            }
        }
    }

    /// `public_key` or `public_key_file` (not both): the key and where it came from.
    #[allow(clippy::type_complexity)]
    fn update_key(
        &mut self,
        t: &Table,
    ) -> Option<(Option<[u8; PUBLIC_KEY_BYTES]>, Option<String>)> {
        match (t.get("public_key"), t.get("public_key_file")) {
            (None, None) => Some((None, None)),
            (Some(_), Some(_)) => {
                self.problem(
                    "updates.public_key_file",
                    "set public_key or public_key_file, not both",
                );
                None
            }
            (Some(Value::String(s)), None) => match parse_public_key(s) {
                Ok(k) => Some((Some(k), Some("[updates] public_key".to_string()))),
                Err(e) => {
                    self.problem("updates.public_key", e);
                    None
                }
            },
            (Some(other), None) => {
                self.problem(
                    "updates.public_key",
                    format!("must be a string (base64), not {}", type_name(other)),
                );
                None
            }
            (None, Some(Value::String(s))) => {
                let path_key = "updates.public_key_file";
                if s.trim().is_empty() {
                    self.problem(path_key, "must not be empty");
                    return None;
                }
                let path: PathBuf = self.base_dir.join(s.trim());
                let shown = path.display().to_string();
                match std::fs::read_to_string(&path) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        self.problem(path_key, format!("file {shown} does not exist"));
                        None
                    }
                    Err(e) => {
                        self.problem(path_key, format!("cannot read {shown}: {e}"));
                        None
                    }
                    Ok(text) => match parse_public_key(&text) {
                        Ok(k) => Some((Some(k), Some(shown))),
                        Err(e) => {
                            self.problem(path_key, format!("{shown} {e}"));
                            None
                        }
                    },
                }
            }
            (None, Some(other)) => {
                self.problem(
                    "updates.public_key_file",
                    format!("must be a string (a path), not {}", type_name(other)),
                );
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AgentConfig, ConfigError, Problem};
    use crate::test_support::TempDir;

    const CERT: &str =
        "-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQk3p\n-----END CERTIFICATE-----\n";
    /// 32 bytes of 7, base64.
    const KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

    fn parse(dir: &std::path::Path, updates: &str) -> Result<AgentConfig, ConfigError> {
        std::fs::write(dir.join("dc-ca.pem"), CERT).ok();
        // Top-level keys first: after [[forest]] they would be the forest's.
        let (top, table) = if updates.starts_with('[') {
            ("", updates)
        } else {
            (updates, "")
        };
        let text = format!(
            "{top}\n[[forest]]\nname = \"corp.test\"\nupn_suffixes = [\"corp.test\"]\n\
             domain_controllers = [\"ldaps://127.0.0.1\"]\nca_file = \"dc-ca.pem\"\n\n{table}\n"
        );
        AgentConfig::parse(&text, "agent.toml", dir)
    }

    fn problems(r: Result<AgentConfig, ConfigError>) -> Vec<Problem> {
        match r {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            _ => Vec::new(),
        }
    }

    fn has(p: &[Problem], path: &str, needle: &str) -> bool {
        p.iter()
            .any(|p| p.path == path && p.message.contains(needle))
    }

    #[test]
    fn defaults_and_values() -> std::io::Result<()> {
        let dir = TempDir::new("config-updates")?;
        let plain = parse(dir.path(), "");
        assert!(
            matches!(&plain, Ok(c) if c.updates == UpdateSettings::default()),
            "{plain:?}"
        );
        let d = UpdateSettings::default();
        assert!(d.enabled && d.public_key.is_none());
        assert_eq!(d.check_interval, Duration::from_secs(3600));
        assert_eq!(d.rollback_after, Duration::from_secs(120));
        let set = parse(
            dir.path(),
            &format!(
                "[updates]\nenabled = false\npublic_key = \"{KEY}\"\n\
                 check_interval_seconds = 3\nrollback_after_seconds = 10"
            ),
        );
        let c = set.map_err(|e| std::io::Error::other(e.to_string()))?;
        assert!(!c.updates.enabled);
        assert_eq!(c.updates.public_key, Some([7u8; 32]));
        assert_eq!(
            c.updates.public_key_from.as_deref(),
            Some("[updates] public_key")
        );
        assert_eq!(c.updates.check_interval, Duration::from_secs(3));
        assert_eq!(c.updates.rollback_after, Duration::from_secs(10));
        // From a file, relative to the configuration's directory, white space ignored.
        std::fs::write(dir.path().join("update.pub"), format!("{KEY}\n"))?;
        let from_file = parse(dir.path(), "[updates]\npublic_key_file = \"update.pub\"");
        assert!(
            matches!(&from_file, Ok(c) if c.updates.public_key == Some([7u8; 32])
                && c.updates.public_key_from.as_deref().is_some_and(|f| f.ends_with("update.pub"))),
            "{from_file:?}"
        );
        Ok(())
    }

    #[test]
    fn every_mistake_is_named_with_its_key_path() -> std::io::Result<()> {
        let dir = TempDir::new("config-updates-bad")?;
        let p = problems(parse(
            dir.path(),
            "[updates]\nenabled = \"yes\"\npublic_key = \"AAAA\"\n\
             check_interval_seconds = 0\nrollback_after_seconds = \"2m\"\nkey = 1",
        ));
        assert!(has(&p, "updates.enabled", "true or false"), "{p:#?}");
        assert!(has(&p, "updates.public_key", "not the 32"), "{p:#?}");
        assert!(
            has(&p, "updates.check_interval_seconds", "between 1 and"),
            "{p:#?}"
        );
        assert!(
            has(&p, "updates.rollback_after_seconds", "must be an integer"),
            "{p:#?}"
        );
        assert!(has(&p, "updates.key", "unknown key"), "{p:#?}");
        let p = problems(parse(
            dir.path(),
            &format!("[updates]\npublic_key = \"{KEY}\"\npublic_key_file = \"k\""),
        ));
        assert!(has(&p, "updates.public_key_file", "not both"), "{p:#?}");
        let p = problems(parse(
            dir.path(),
            "[updates]\npublic_key_file = \"absent.pub\"",
        ));
        assert!(
            has(&p, "updates.public_key_file", "does not exist"),
            "{p:#?}"
        );
        let p = problems(parse(dir.path(), "[updates]\npublic_key = \"not base64!\""));
        assert!(has(&p, "updates.public_key", "not base64"), "{p:#?}");
        let p = problems(parse(dir.path(), "updates = 1"));
        assert!(has(&p, "updates", "must be a table"), "{p:#?}");
        let p = problems(parse(dir.path(), "[updates]\nrollback_after_seconds = 1"));
        assert!(
            has(&p, "updates.rollback_after_seconds", "between 5 and 3600"),
            "{p:#?}"
        );
        Ok(())
    }
}
