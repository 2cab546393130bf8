//! The state dir's lock: an exclusive lock on `agent.lock`, held for the life of the process,
//! so that a second agent (or a `register` while an agent runs) on the same state dir refuses
//! to start.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use crate::state_dir::{FILE_MODE, LOCK_FILE};

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
}
