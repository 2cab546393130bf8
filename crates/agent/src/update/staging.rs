//! Where updates live: `STATE_DIR/updates/` (mode 0700), the one place the agent may write
//! under systemd's `ProtectSystem=strict` besides the rest of its state dir:
//!
//! - `passthru-agent-VERSION` (0700): a verified package, and `passthru-agent-VERSION.sig`
//!   (0600) its signed manifest, kept to verify it again before every start;
//! - `current`: a symbolic link to the version the agent runs (replaced atomically by a
//!   rename); the installed binary starts it when it is newer than itself
//!   ([`crate::update::launcher`]);
//! - `refused.json`: versions rolled back, never tried again;
//! - `.passthru-agent-VERSION.part`: a download in progress.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The updates directory, in the state dir.
pub const UPDATES_DIR: &str = "updates";
/// The link to the version the agent runs.
pub const CURRENT_LINK: &str = "current";
/// Versions rolled back.
pub const REFUSED_FILE: &str = "refused.json";
/// A staged package's name: this, then its version.
pub const BINARY_PREFIX: &str = "passthru-agent-";
/// A staged package's signed manifest: its name and this.
pub const SIGNED_SUFFIX: &str = ".sig";
/// Mode of the directory and of a staged package.
pub const EXEC_MODE: u32 = 0o700;
/// Mode of the other files.
pub const FILE_MODE: u32 = 0o600;
/// Versions `refused.json` remembers at most (the oldest go first).
const MAX_REFUSED: usize = 100;

/// One version rolled back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefusedVersion {
    /// The version.
    pub version: String,
    /// When (RFC 3339).
    pub at: String,
    /// Why.
    pub reason: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RefusedList {
    #[serde(default)]
    refused: Vec<RefusedVersion>,
}

/// Whether `version` is a version that is safe in a file name (semantic versioning's
/// characters only).
pub fn safe_version(version: &str) -> bool {
    passthru_proto::release::parse_version(version).is_ok()
        && version
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+'))
}

/// The updates directory of one state dir.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

fn io_context(what: &str, path: &Path) -> impl FnOnce(std::io::Error) -> std::io::Error {
    let text = format!("{what} {}", path.display());
    move |e| std::io::Error::new(e.kind(), format!("{text}: {e}"))
}

impl Staging {
    /// The updates directory of the state dir `state_dir`.
    pub fn new(state_dir: &Path) -> Staging {
        Staging {
            dir: state_dir.join(UPDATES_DIR),
        }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes the directory (0700) when missing, or tightens it to 0700.
    pub fn ensure(&self) -> std::io::Result<()> {
        DirBuilder::new()
            .recursive(true)
            .mode(EXEC_MODE)
            .create(&self.dir)
            .map_err(io_context("cannot create", &self.dir))?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(EXEC_MODE))
            .map_err(io_context("cannot set the mode of", &self.dir))
    }

    /// The staged package of `version`.
    pub fn binary(&self, version: &str) -> PathBuf {
        self.dir.join(format!("{BINARY_PREFIX}{version}"))
    }

    /// The signed manifest of `version`.
    pub fn signed_manifest(&self, version: &str) -> PathBuf {
        self.dir
            .join(format!("{BINARY_PREFIX}{version}{SIGNED_SUFFIX}"))
    }

    /// Where the package of `version` is downloaded to before it is verified.
    pub fn partial(&self, version: &str) -> PathBuf {
        self.dir.join(format!(".{BINARY_PREFIX}{version}.part"))
    }

    /// Opens (truncating) the download file of `version`, mode 0600 until it is verified.
    pub fn create_partial(&self, version: &str) -> std::io::Result<File> {
        self.ensure()?;
        let path = self.partial(version);
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&path)
            .map_err(io_context("cannot create", &path))
    }

    fn sync_dir(&self) -> std::io::Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_context("cannot flush", &self.dir))
    }

    /// Stages the verified download of `version`: its signed manifest (0600) written, then
    /// the package made 0700 and moved into place. Returns the package's path.
    pub fn stage(&self, version: &str, signed_manifest: &str) -> std::io::Result<PathBuf> {
        let partial = self.partial(version);
        let sig = self.signed_manifest(version);
        let temp = self
            .dir
            .join(format!(".sig.tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .and_then(|mut f| {
                f.write_all(signed_manifest.as_bytes())?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, &sig))
            .map_err(io_context("cannot write", &sig));
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written?;
        std::fs::set_permissions(&partial, std::fs::Permissions::from_mode(EXEC_MODE))
            .map_err(io_context("cannot set the mode of", &partial))?;
        let binary = self.binary(version);
        std::fs::rename(&partial, &binary)
            .map_err(io_context("cannot move into place", &binary))?;
        self.sync_dir()?;
        Ok(binary)
    }

    /// The version `current` names, when it is a link to a staged package's name.
    pub fn current(&self) -> Option<String> {
        let target = std::fs::read_link(self.dir.join(CURRENT_LINK)).ok()?;
        let name = target.to_str()?;
        let version = name.strip_prefix(BINARY_PREFIX)?;
        (!name.contains('/') && safe_version(version)).then(|| version.to_string())
    }

    /// Points `current` at `version` atomically (a new link renamed over the old one).
    pub fn set_current(&self, version: &str) -> std::io::Result<()> {
        let temp = self
            .dir
            .join(format!(".current.tmp-{}", uuid::Uuid::new_v4().simple()));
        let link = self.dir.join(CURRENT_LINK);
        let result = std::os::unix::fs::symlink(format!("{BINARY_PREFIX}{version}"), &temp)
            .and_then(|()| std::fs::rename(&temp, &link))
            .map_err(io_context("cannot point to the new version:", &link));
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result?;
        self.sync_dir()
    }

    /// Removes `current` (the installed binary runs itself from then on).
    pub fn clear_current(&self) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(CURRENT_LINK)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The versions rolled back (an unreadable file reads as none: then a version rolled
    /// back may be tried once more, and rolled back again).
    pub fn refused(&self) -> Vec<RefusedVersion> {
        std::fs::read(self.dir.join(REFUSED_FILE))
            .ok()
            .and_then(|b| serde_json::from_slice::<RefusedList>(&b).ok())
            .map(|l| l.refused)
            .unwrap_or_default()
    }

    /// Whether `version` was rolled back.
    pub fn is_refused(&self, version: &str) -> bool {
        self.refused().iter().any(|r| r.version == version)
    }

    /// Records `version` as rolled back, and removes its package.
    pub fn refuse(&self, version: &str, reason: &str, at: &str) -> std::io::Result<()> {
        self.ensure()?;
        let mut list = RefusedList {
            refused: self.refused(),
        };
        list.refused.retain(|r| r.version != version);
        list.refused.push(RefusedVersion {
            version: version.to_string(),
            at: at.to_string(),
            reason: reason.to_string(),
        });
        if list.refused.len() > MAX_REFUSED {
            let extra = list.refused.len() - MAX_REFUSED;
            list.refused.drain(..extra);
        }
        let path = self.dir.join(REFUSED_FILE);
        let temp = self
            .dir
            .join(format!(".refused.tmp-{}", uuid::Uuid::new_v4().simple()));
        let mut json = serde_json::to_vec_pretty(&list).unwrap_or_default();
        json.push(b'\n');
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(FILE_MODE)
            .open(&temp)
            .and_then(|mut f| {
                f.write_all(&json)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&temp, &path))
            .map_err(io_context("cannot write", &path));
        if result.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        result?;
        self.remove_version(version);
        self.sync_dir()
    }

    /// Removes the package, signed manifest and download of `version` (what is missing is
    /// no error).
    pub fn remove_version(&self, version: &str) {
        for path in [
            self.binary(version),
            self.signed_manifest(version),
            self.partial(version),
        ] {
            let _ = std::fs::remove_file(path);
        }
    }

    /// Removes every staged version but those in `keep` (and `current`'s); returns those
    /// removed.
    pub fn prune(&self, keep: &[&str]) -> Vec<String> {
        let current = self.current();
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut removed = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let Some(version) = name
                .strip_prefix(BINARY_PREFIX)
                .filter(|v| !v.ends_with(SIGNED_SUFFIX))
            else {
                continue;
            };
            if keep.contains(&version) || current.as_deref() == Some(version) {
                continue;
            }
            self.remove_version(version);
            removed.push(version.to_string());
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    #[test]
    fn a_download_is_staged_0700_with_its_signed_manifest_0600(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("staging")?;
        let staging = Staging::new(tmp.path());
        let mut part = staging.create_partial("0.2.0")?;
        part.write_all(b"package")?;
        drop(part);
        let binary = staging.stage("0.2.0", "{\"signed\":1}")?;
        assert_eq!(binary, tmp.path().join("updates/passthru-agent-0.2.0"));
        let mode = |p: &Path| -> std::io::Result<u32> {
            Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
        };
        assert_eq!(mode(staging.dir())?, 0o700);
        assert_eq!(mode(&binary)?, 0o700);
        assert_eq!(mode(&staging.signed_manifest("0.2.0"))?, 0o600);
        assert_eq!(std::fs::read(&binary)?, b"package");
        assert!(!staging.partial("0.2.0").exists());
        Ok(())
    }

    #[test]
    fn current_is_swapped_atomically_and_read_back() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("staging-current")?;
        let staging = Staging::new(tmp.path());
        staging.ensure()?;
        assert_eq!(staging.current(), None);
        staging.set_current("0.2.0")?;
        assert_eq!(staging.current().as_deref(), Some("0.2.0"));
        staging.set_current("0.3.0-rc.1")?;
        assert_eq!(staging.current().as_deref(), Some("0.3.0-rc.1"));
        assert_eq!(
            std::fs::read_link(staging.dir().join(CURRENT_LINK))?,
            PathBuf::from("passthru-agent-0.3.0-rc.1")
        );
        // Only the link remains: no temporary left behind.
        let names: Vec<String> = std::fs::read_dir(staging.dir())?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec![CURRENT_LINK.to_string()]);
        // A link somewhere else is not a version.
        std::fs::remove_file(staging.dir().join(CURRENT_LINK))?;
        std::os::unix::fs::symlink(
            "/usr/bin/passthru-agent-1.0.0",
            staging.dir().join(CURRENT_LINK),
        )?;
        assert_eq!(staging.current(), None);
        staging.clear_current()?;
        staging.clear_current()?;
        assert_eq!(staging.current(), None);
        Ok(())
    }

    #[test]
    fn refused_versions_are_remembered_and_their_packages_removed(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("staging-refused")?;
        let staging = Staging::new(tmp.path());
        assert!(!staging.is_refused("0.2.0"));
        let mut part = staging.create_partial("0.2.0")?;
        part.write_all(b"p")?;
        drop(part);
        staging.stage("0.2.0", "{}")?;
        staging.refuse(
            "0.2.0",
            "did not connect within 10 s",
            "2026-12-07T12:00:00Z",
        )?;
        assert!(staging.is_refused("0.2.0"));
        assert!(!staging.binary("0.2.0").exists());
        assert!(!staging.signed_manifest("0.2.0").exists());
        staging.refuse("0.2.0", "again", "2026-12-07T12:01:00Z")?;
        staging.refuse("0.3.0", "exited", "2026-12-07T12:02:00Z")?;
        let list = staging.refused();
        assert_eq!(list.len(), 2, "{list:?}");
        assert_eq!(list[0].reason, "again");
        // A damaged file reads as empty, without an error.
        std::fs::write(staging.dir().join(REFUSED_FILE), b"{not json")?;
        assert!(staging.refused().is_empty());
        Ok(())
    }

    #[test]
    fn prune_keeps_what_it_is_told_and_current() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("staging-prune")?;
        let staging = Staging::new(tmp.path());
        for v in ["0.1.0", "0.2.0", "0.3.0"] {
            let mut part = staging.create_partial(v)?;
            part.write_all(v.as_bytes())?;
            drop(part);
            staging.stage(v, "{}")?;
        }
        staging.set_current("0.2.0")?;
        let mut removed = staging.prune(&["0.3.0"]);
        removed.sort();
        assert_eq!(removed, vec!["0.1.0".to_string()]);
        assert!(staging.binary("0.2.0").exists() && staging.binary("0.3.0").exists());
        assert!(!staging.signed_manifest("0.1.0").exists());
        Ok(())
    }

    #[test]
    fn only_versions_make_file_names() {
        assert!(safe_version("0.2.0"));
        assert!(safe_version("1.0.0-rc.1+build.5"));
        assert!(!safe_version("../0.2.0"));
        assert!(!safe_version("0.2.0/x"));
        assert!(!safe_version(""));
    }
}
