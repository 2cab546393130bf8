//! The agent's locks, each an exclusive `flock` held for the life of the process:
//!
//! - the state dir's (`agent.lock`), so that a second agent (or a `register` while an agent
//!   runs) on the same state dir refuses to start;
//! - the host's ([`acquire_host`], by default [`DEFAULT_HOST_LOCK`]), so that a second agent
//!   on the same host refuses to start even with a state dir of its own: one authentication
//!   agent per server, as Azure requires. The tests, which run several agents on one machine,
//!   give each its own (`run --host-lock`, or `PASSTHRU_AGENT_HOST_LOCK`).
//!
//! The kernel releases a lock when its holder ends, however it ends: a stale lock file
//! never blocks a start.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::state_dir::{FILE_MODE, LOCK_FILE};

/// The host-wide lock every agent takes unless told otherwise (`run --host-lock`): in the
/// directory the package makes for the service user (tmpfiles.d, and the unit's
/// `RuntimeDirectory=`), which only that user and root may write, so that no other local
/// user can take the lock first.
pub const DEFAULT_HOST_LOCK: &str = "/run/passthru-agent/host.lock";
/// Mode of a host lock's directory when the agent makes it.
const HOST_LOCK_DIR_MODE: u32 = 0o755;

/// Why the lock could not be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "another passthru-agent{holder} is already using the state dir {dir} (it holds {lock}). \
         Stop it first, or give this agent its own --state-dir (each agent needs its own \
         registration)."
    )]
    Held {
        /// The state dir.
        dir: String,
        /// The lock file.
        lock: String,
        /// ` (pid N)` when the holder wrote its pid, else empty.
        holder: String,
    },
    /// Another agent runs on this host (whatever its state dir).
    #[error(
        "another passthru-agent{holder} is already running on this host (it holds {lock}): one \
         authentication agent per server. Stop it first (systemctl stop passthru-agent), or \
         let that agent serve this forest too (another [[forest]] table in its configuration); \
         a second agent belongs on another server"
    )]
    HostHeld {
        /// The host lock file.
        lock: String,
        /// ` (pid N, state dir D)` from what the holder wrote, else empty.
        holder: String,
    },
    /// The host lock's directory could not be made, or its file opened.
    #[error(
        "cannot take the host-wide agent lock {path}: {source}. Run the agent as the user \
         that runs this host's agent (the package's service runs as passthru-agent, and \
         makes /run/passthru-agent for it) or as root, or give it another lock file with \
         --host-lock PATH"
    )]
    HostIo {
        /// The host lock file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The lock file could not be opened or locked.
    #[error("cannot lock {path}: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct StateLock {
    _file: File,
    path: PathBuf,
}

impl StateLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The held host-wide lock; released when dropped (or when the process ends).
#[derive(Debug)]
pub struct HostLock {
    _file: File,
    path: PathBuf,
}

impl HostLock {
    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Takes the host-wide lock `path` (making its directory, mode 0755, when missing) for the
/// agent of `state_dir`, without waiting; records the pid and the state dir in it for the
/// message a second agent prints.
pub fn acquire_host(path: &Path, state_dir: &Path) -> Result<HostLock, LockError> {
    let io = |source| LockError::HostIo {
        path: path.display().to_string(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        if !parent.is_dir() {
            use std::os::unix::fs::DirBuilderExt as _;
            match std::fs::DirBuilder::new()
                .mode(HOST_LOCK_DIR_MODE)
                .create(parent)
            {
                // Whatever the umask: other users must be able to read the holder's name.
                Ok(()) => std::fs::set_permissions(
                    parent,
                    std::fs::Permissions::from_mode(HOST_LOCK_DIR_MODE),
                )
                .map_err(io)?,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut content = String::new();
            let _ = file.read_to_string(&mut content);
            return Err(LockError::HostHeld {
                lock: path.display().to_string(),
                holder: host_holder(&content),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(
        file,
        "pid {}\nstate-dir {}\n",
        std::process::id(),
        state_dir.display()
    )
    .map_err(io)?;
    Ok(HostLock {
        _file: file,
        path: path.to_path_buf(),
    })
}

/// ` (pid N, state dir D)` from a host lock's content (what [`acquire_host`] writes), with
/// what of it is there; empty when nothing is.
fn host_holder(content: &str) -> String {
    let mut parts = Vec::new();
    for line in content.lines() {
        if let Some(pid) = line
            .strip_prefix("pid ")
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            parts.push(format!("pid {pid}"));
        } else if let Some(dir) = line.strip_prefix("state-dir ") {
            // Shown as text: a name with control characters is escaped.
            parts.push(format!("state dir {}", dir.escape_debug()));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

/// The pid the holder of the state dir's lock recorded, if any.
pub fn holder_pid(dir: &Path) -> Option<u32> {
    std::fs::read_to_string(dir.join(LOCK_FILE))
        .ok()?
        .trim()
        .strip_prefix("pid ")?
        .parse()
        .ok()
}

/// Takes the exclusive lock of the state dir `dir` (which must exist), without waiting.
pub fn acquire(dir: &Path) -> Result<StateLock, LockError> {
    let path = dir.join(LOCK_FILE);
    let io = |source| LockError::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(&path)
        .map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            let mut content = String::new();
            let _ = file.read_to_string(&mut content);
            let holder = content
                .trim()
                .strip_prefix("pid ")
                .and_then(|p| p.parse::<u32>().ok())
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default();
            return Err(LockError::Held {
                dir: dir.display().to_string(),
                lock: path.display().to_string(),
                holder,
            });
        }
        Err(TryLockError::Error(e)) => return Err(io(e)),
    }
    // Ours now: record who holds it, for the message a second agent prints.
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    writeln!(file, "pid {}", std::process::id()).map_err(io)?;
    Ok(StateLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;

    #[test]
    fn a_second_holder_is_refused_until_the_first_lets_go() -> Result<(), Box<dyn std::error::Error>>
    {
        let tmp = TempDir::new("lock")?;
        let first = acquire(tmp.path())?;
        let second = acquire(tmp.path());
        let message = second
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(matches!(second, Err(LockError::Held { .. })));
        assert!(
            message.contains("already using the state dir")
                && message.contains(&format!("(pid {})", std::process::id())),
            "{message}"
        );
        drop(first);
        let third = acquire(tmp.path());
        assert!(third.is_ok(), "{third:?}");
        Ok(())
    }

    /// A second agent with a state dir of its own but the same host lock is refused, told
    /// the first one's pid and state dir; once the first lets go, the next one starts.
    #[test]
    fn a_second_agent_on_the_host_is_refused_naming_the_first(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("host-lock")?;
        // The directory is made when missing, 0755.
        let lock = tmp.path().join("run").join("host.lock");
        let first_state = tmp.path().join("state-a");
        let first = acquire_host(&lock, &first_state)?;
        assert_eq!(first.path(), lock.as_path());
        assert_eq!(
            std::fs::metadata(tmp.path().join("run"))?
                .permissions()
                .mode()
                & 0o777,
            HOST_LOCK_DIR_MODE
        );
        assert_eq!(
            std::fs::metadata(&lock)?.permissions().mode() & 0o777,
            FILE_MODE
        );
        let second = acquire_host(&lock, &tmp.path().join("state-b"));
        let message = second
            .as_ref()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            matches!(second, Err(LockError::HostHeld { .. })),
            "{second:?}"
        );
        assert!(
            message.contains("already running on this host")
                && message.contains(&format!(
                    "(pid {}, state dir {})",
                    std::process::id(),
                    first_state.display()
                ))
                && message.contains("one authentication agent per server"),
            "{message}"
        );
        drop(first);
        let third = acquire_host(&lock, &tmp.path().join("state-c"))?;
        let content = std::fs::read_to_string(third.path())?;
        assert!(content.ends_with("state-c\n"), "{content}");
        Ok(())
    }

    #[test]
    fn a_host_lock_that_cannot_be_made_says_what_to_do() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("host-lock-io")?;
        // Its directory's parent is a file: the directory cannot be made.
        std::fs::write(tmp.path().join("file"), b"")?;
        let err = acquire_host(
            &tmp.path().join("file").join("run").join("host.lock"),
            tmp.path(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(
            err.contains("cannot take the host-wide agent lock") && err.contains("--host-lock"),
            "{err}"
        );
        Ok(())
    }

    #[test]
    fn the_holder_is_read_from_what_it_wrote() {
        assert_eq!(
            host_holder("pid 42\nstate-dir /var/lib/passthru-agent\n"),
            " (pid 42, state dir /var/lib/passthru-agent)"
        );
        assert_eq!(host_holder("pid 42\n"), " (pid 42)");
        assert_eq!(host_holder(""), "");
        assert_eq!(
            host_holder("pid x\nstate-dir a\u{1b}b\n"),
            " (state dir a\\u{1b}b)"
        );
    }
}
