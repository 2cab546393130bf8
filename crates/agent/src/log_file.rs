//! An append-only log file rotated by size, shared by the agent's logs (trace, admin,
//! session): past `max_bytes`, `NAME` becomes `NAME.1`, older copies move up one and the one
//! past `keep` is deleted, so a log never takes more than `(keep + 1) * max_bytes` of the disk.
//! Files are created 0600. Each line is one write under a lock, so lines never interleave.

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

use crate::state_dir::FILE_MODE;

/// When a log is rotated (see the module's documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Largest size of one file, in bytes.
    pub max_bytes: u64,
    /// Rotated files kept (`NAME.1` to `NAME.KEEP`).
    pub keep: u32,
}

#[derive(Debug)]
struct Open {
    file: File,
    /// Bytes in the file (as opened, plus what this process wrote since).
    size: u64,
}

/// An open, rotated log file. Clones share the open file (one descriptor).
#[derive(Debug, Clone)]
pub struct LogFile {
    path: PathBuf,
    rotation: Rotation,
    open: Arc<Mutex<Open>>,
}

fn open_append(path: &Path) -> std::io::Result<Open> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    let size = file.metadata()?.len();
    Ok(Open { file, size })
}

/// `NAME.N`.
pub(crate) fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_os_string();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Renames `from` to `to`; a missing `from` is nothing to do.
fn rename_if_there(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// `2026-11-29T03:01:02.123456Z`: the time stamp every agent log line starts with.
pub fn stamp(at: OffsetDateTime) -> String {
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    at.to_offset(UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| "0000-00-00T00:00:00.000000Z".to_string())
}

impl LogFile {
    /// Opens (or creates, mode 0600) the log at `path` for appending.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<LogFile> {
        let rotation = Rotation {
            max_bytes: rotation.max_bytes.max(1),
            keep: rotation.keep.max(1),
        };
        Ok(LogFile {
            path: path.to_path_buf(),
            rotation,
            open: Arc::new(Mutex::new(open_append(path)?)),
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the path again (after logrotate, or anyone, renamed the file): the lines that
    /// follow go to a new file.
    pub fn reopen(&self) -> std::io::Result<()> {
        // Opened under the lock: a line written once the new file exists goes to it.
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *open = open_append(&self.path)?;
        Ok(())
    }

    /// Appends `line` and a newline, rotating first when the file would outgrow its limit.
    pub fn append_line(&self, line: &str) -> std::io::Result<()> {
        let mut bytes = Vec::with_capacity(line.len() + 1);
        bytes.extend_from_slice(line.as_bytes());
        bytes.push(b'\n');
        self.append(&bytes)
    }

    /// Appends `bytes` (whole lines) in one write.
    pub fn append(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        if open.size > 0 && open.size.saturating_add(len) > self.rotation.max_bytes {
            // A rotation that fails drops the line rather than letting the file grow.
            *open = self.rotate()?;
        }
        open.file.write_all(bytes)?;
        open.size = open.size.saturating_add(len);
        Ok(())
    }

    /// Moves `NAME.N` up one (the oldest goes), `NAME` to `NAME.1`, and opens a new `NAME`.
    fn rotate(&self) -> std::io::Result<Open> {
        let keep = self.rotation.keep;
        match std::fs::remove_file(rotated(&self.path, keep)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..keep).rev() {
            rename_if_there(&rotated(&self.path, n), &rotated(&self.path, n + 1))?;
        }
        rename_if_there(&self.path, &rotated(&self.path, 1))?;
        open_append(&self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn stamps_are_utc_with_microseconds() {
        assert_eq!(
            stamp(datetime!(2026-11-29 04:01:02.123456789 +01:00)),
            "2026-11-29T03:01:02.123456Z"
        );
    }
}
