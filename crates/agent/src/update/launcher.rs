//! The installed binary as a launcher: at `run`'s start, when `updates/current` names a
//! version newer than the installed one, that staged package is started instead (exec, same
//! arguments), after its signed manifest is verified again with the pinned key and its
//! SHA-256 and size checked against it. Anything wrong and the installed binary runs itself
//! (and the admin log says why), so an updated agent survives a restart (by hand or by
//! systemd) and a package upgrade to a newer version wins over an older staged one.

use std::ffi::OsString;
use std::path::PathBuf;

use passthru_proto::release;

use crate::update::staging::Staging;
use crate::update::verify::{check_package, file_digest, verify_signed, PublisherKey};

/// Set in the environment of a process the launcher started, so that it never starts
/// another.
pub const LAUNCHED_ENV: &str = "PASSTHRU_AGENT_LAUNCHED";

/// What `run` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Launch {
    /// The installed binary, with nothing to say (no staged version newer than it).
    Installed,
    /// The staged package of `version`, verified.
    Staged {
        /// Its version.
        version: String,
        /// The package.
        path: PathBuf,
    },
    /// The installed binary, although `current` names a newer version: `why` not.
    NotStarted {
        /// The version `current` names.
        version: String,
        /// Why it is not started (the admin log's line).
        why: String,
    },
}

/// What to start: `own` is the installed binary's version, `target` its platform.
pub fn choose(
    staging: &Staging,
    own: &str,
    target: &str,
    key: Option<&PublisherKey>,
    enabled: bool,
) -> Launch {
    let Some(version) = staging.current() else {
        return Launch::Installed;
    };
    if !release::is_newer(&version, own) {
        return Launch::Installed;
    }
    let not = |why: String| Launch::NotStarted {
        version: version.clone(),
        why,
    };
    if !enabled {
        return not("updates are turned off ([updates] enabled = false)".into());
    }
    let Some(key) = key else {
        return not("no publisher key is pinned to verify it with".into());
    };
    if staging.is_refused(&version) {
        return not("it was rolled back (updates/refused.json)".into());
    }
    let sig = staging.signed_manifest(&version);
    let signed = match std::fs::read(&sig) {
        Ok(b) => b,
        Err(e) => {
            return not(format!(
                "its signed manifest {} cannot be read: {e}",
                sig.display()
            ))
        }
    };
    let manifest = match verify_signed(&signed, key) {
        Ok((_, m)) => m,
        Err(refusal) => return not(refusal.to_string()),
    };
    if manifest.version != version || manifest.target != target {
        return not(format!(
            "its signed manifest is for version {} on {}",
            manifest.version, manifest.target
        ));
    }
    let path = staging.binary(&version);
    match file_digest(&path) {
        Err(e) => not(format!(
            "its package {} cannot be read: {e}",
            path.display()
        )),
        Ok((digest, size)) => match check_package(&manifest, &digest, size) {
            Err(refusal) => not(refusal.to_string()),
            Ok(()) => Launch::Staged { version, path },
        },
    }
}

/// The arguments this process was started with (after the program's name), to start another
/// binary the same way.
pub fn own_arguments() -> Vec<OsString> {
    std::env::args_os().skip(1).collect()
}

/// Replaces this process with `path`, started with `args` and [`LAUNCHED_ENV`] set; returns
/// only when that fails.
pub fn exec(path: &std::path::Path, args: &[OsString], own_version: &str) -> std::io::Error {
    use std::os::unix::process::CommandExt as _;
    std::process::Command::new(path)
        .args(args)
        .env(LAUNCHED_ENV, own_version)
        .exec()
}

/// `run`'s first step: when `updates/current` of the state dir names a verified version newer
/// than `own_version` (and updates are on, a key pinned), replaces this process with it;
/// otherwise returns, and the installed binary runs (the admin log says why a newer staged
/// version is not started). Not done in a process the launcher or an update started.
pub fn start_staged_if_newer(
    state_dir: &std::path::Path,
    config: &std::path::Path,
    own_version: &str,
    built_in_key: Option<&str>,
) {
    if std::env::var_os(LAUNCHED_ENV).is_some() || crate::update::trial::on_trial() {
        return;
    }
    let staging = Staging::new(state_dir);
    if staging.current().is_none() {
        return;
    }
    // A configuration that does not load is `run`'s to report.
    let Ok(config) = crate::config::AgentConfig::load(config) else {
        return;
    };
    let key = PublisherKey::pinned(&config.updates, built_in_key)
        .ok()
        .flatten();
    let log = crate::admin_log::AdminLog::open(state_dir)
        .unwrap_or_else(|_| crate::admin_log::AdminLog::disabled());
    let category = crate::update::updater::CATEGORY;
    match choose(
        &staging,
        own_version,
        &release::this_target(),
        key.as_ref(),
        config.updates.enabled,
    ) {
        Launch::Installed => {}
        Launch::NotStarted { version, why } => {
            let line = format!(
                "not starting the staged version {version}: {why}; the installed version {own_version} runs"
            );
            tracing::warn!("{line}");
            log.record(category, &line);
        }
        Launch::Staged { version, path } => {
            let line = format!(
                "starting the staged version {version} ({}, verified again) instead of the installed version {own_version}",
                path.display()
            );
            tracing::info!("{line}");
            log.record(category, &line);
            let e = exec(&path, &own_arguments(), own_version);
            let line = format!(
                "cannot start the staged version {version} ({e}); the installed version {own_version} runs"
            );
            tracing::error!("{line}");
            log.record(category, &line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use crate::update::publish::{sign_manifest, KeyPair};
    use crate::update::verify::hex;
    use passthru_proto::release::{this_target, Manifest, PRODUCT};
    use std::io::Write as _;

    fn stage(
        staging: &Staging,
        pair: &KeyPair,
        version: &str,
        package: &[u8],
    ) -> Result<(), Box<dyn std::error::Error>> {
        let m = Manifest {
            product: PRODUCT.into(),
            version: version.into(),
            target: this_target(),
            sha256: hex(ring::digest::digest(&ring::digest::SHA256, package).as_ref()),
            size: package.len() as u64,
            min_cloud_version: "0.0.0".into(),
        };
        let mut f = staging.create_partial(version)?;
        f.write_all(package)?;
        drop(f);
        staging.stage(version, &sign_manifest(pair, &m).to_json())?;
        Ok(())
    }

    #[test]
    fn a_verified_newer_current_is_started() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("launcher")?;
        let staging = Staging::new(dir.path());
        let pair = KeyPair::generate()?;
        let key = PublisherKey::new(pair.public_key(), "test");
        let t = this_target();
        assert_eq!(
            choose(&staging, "0.1.0", &t, Some(&key), true),
            Launch::Installed
        );
        stage(&staging, &pair, "0.2.0", b"new agent")?;
        staging.set_current("0.2.0")?;
        assert_eq!(
            choose(&staging, "0.1.0", &t, Some(&key), true),
            Launch::Staged {
                version: "0.2.0".into(),
                path: staging.binary("0.2.0"),
            }
        );
        // Not newer than the installed binary (a package upgrade came since): the installed.
        assert_eq!(
            choose(&staging, "0.2.0", &t, Some(&key), true),
            Launch::Installed
        );
        assert_eq!(
            choose(&staging, "0.3.0", &t, Some(&key), true),
            Launch::Installed
        );
        // Turned off, or no key: the installed, saying why.
        let why = |l: Launch| match l {
            Launch::NotStarted { why, .. } => why,
            other => format!("{other:?}"),
        };
        assert!(why(choose(&staging, "0.1.0", &t, Some(&key), false)).contains("turned off"));
        assert!(why(choose(&staging, "0.1.0", &t, None, true)).contains("no publisher key"));
        // Another key.
        let other = PublisherKey::new(KeyPair::generate()?.public_key(), "other");
        assert!(why(choose(&staging, "0.1.0", &t, Some(&other), true)).contains("bad signature"));
        Ok(())
    }

    #[test]
    fn a_tampered_staged_package_is_not_started() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("launcher-tampered")?;
        let staging = Staging::new(dir.path());
        let pair = KeyPair::generate()?;
        let key = PublisherKey::new(pair.public_key(), "test");
        stage(&staging, &pair, "0.2.0", b"new agent")?;
        staging.set_current("0.2.0")?;
        std::fs::write(staging.binary("0.2.0"), b"evil agent")?;
        let launch = choose(&staging, "0.1.0", &this_target(), Some(&key), true);
        assert!(
            matches!(&launch, Launch::NotStarted { why, .. } if why.contains("digest mismatch")),
            "{launch:?}"
        );
        // A missing signed manifest, or a rolled back version.
        std::fs::remove_file(staging.signed_manifest("0.2.0"))?;
        assert!(matches!(
            choose(&staging, "0.1.0", &this_target(), Some(&key), true),
            Launch::NotStarted { .. }
        ));
        stage(&staging, &pair, "0.2.0", b"new agent")?;
        staging.refuse("0.2.0", "did not connect", "now")?;
        staging.set_current("0.2.0")?;
        let launch = choose(&staging, "0.1.0", &this_target(), Some(&key), true);
        assert!(
            matches!(&launch, Launch::NotStarted { why, .. } if why.contains("rolled back")),
            "{launch:?}"
        );
        Ok(())
    }
}
