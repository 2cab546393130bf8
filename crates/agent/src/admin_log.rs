//! The admin log (`STATE_DIR/admin.log`, mode 0600, always on): one line per event an
//! administrator cares about: registration, certificate renewal, connection state changes,
//! start and stop with the configuration read, log reopening and session-log switches,
//! updates. Never a password, a token or key material: callers pass plain facts.
//!
//! `2026-12-07T12:01:02.123456Z [connection] connected to https://login.contoso.example:443`

use std::path::Path;

use time::OffsetDateTime;

use crate::log_file::{stamp, LogFile, Rotation};
use crate::state_dir::ADMIN_LOG_FILE;

/// Size at which the admin log is rotated (it grows by a few lines a day).
pub const MAX_BYTES: u64 = 1024 * 1024;
/// Rotated admin logs kept.
pub const KEEP: u32 = 3;

/// The admin log. Clones share the open file.
#[derive(Debug, Clone)]
pub struct AdminLog {
    file: Option<LogFile>,
}

/// One admin log line (without the newline): the time, the category in brackets, the message
/// on one line (line breaks and other control characters become spaces).
pub fn admin_line(at: OffsetDateTime, category: &str, message: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect()
    };
    format!("{} [{}] {}", stamp(at), clean(category), clean(message))
}

impl AdminLog {
    /// Opens (or creates, 0600) `admin.log` in the state dir `state_dir`.
    pub fn open(state_dir: &Path) -> std::io::Result<AdminLog> {
        let file = LogFile::open(
            &state_dir.join(ADMIN_LOG_FILE),
            Rotation {
                max_bytes: MAX_BYTES,
                keep: KEEP,
            },
        )?;
        Ok(AdminLog { file: Some(file) })
    }

    /// A log that writes nothing (tests of code that takes one).
    pub fn disabled() -> AdminLog {
        AdminLog { file: None }
    }

    /// Appends one line, now. A write that fails is reported to the process log, not to the
    /// caller: the admin log never stops the agent.
    pub fn record(&self, category: &str, message: &str) {
        self.record_at(crate::clock::now_utc(), category, message);
    }

    /// Appends one line at `at`.
    pub fn record_at(&self, at: OffsetDateTime, category: &str, message: &str) {
        let Some(file) = &self.file else {
            return;
        };
        if let Err(e) = file.append_line(&admin_line(at, category, message)) {
            tracing::warn!(path = %file.path().display(), error = %e, "cannot write the admin log");
        }
    }

    /// The open file, to reopen it on SIGHUP.
    pub(crate) fn file(&self) -> Option<&LogFile> {
        self.file.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;
    use time::macros::datetime;

    #[test]
    fn lines_are_one_line_each() {
        let at = datetime!(2026-12-07 12:01:02.123456 UTC);
        assert_eq!(
            admin_line(at, "connection", "connected to https://x:443"),
            "2026-12-07T12:01:02.123456Z [connection] connected to https://x:443"
        );
        assert_eq!(
            admin_line(at, "config", "bad\nline\r\tend"),
            "2026-12-07T12:01:02.123456Z [config] bad line  end"
        );
    }

    #[test]
    fn appends_with_mode_0600() -> Result<(), Box<dyn std::error::Error>> {
        let dir = crate::test_support::TempDir::new("admin-log")?;
        let log = AdminLog::open(dir.path())?;
        log.record("start", "one");
        log.clone().record("stop", "two");
        AdminLog::disabled().record("x", "never written");
        let path = dir.path().join(ADMIN_LOG_FILE);
        let text = std::fs::read_to_string(&path)?;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(lines[0].ends_with(" [start] one"));
        assert!(lines[1].ends_with(" [stop] two"));
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }
}
