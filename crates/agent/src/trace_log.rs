//! The trace log (`STATE_DIR/trace.log`, mode 0600): one line per failed validation, with the
//! request id and the reason code, never a user name or a password. Rotated by size
//! (`[trace] max_bytes` and `keep` in the configuration: `trace.log.1` ... `trace.log.KEEP`),
//! and reopened on SIGHUP for an outside logrotate.
//!
//! `2026-11-29T03:01:02.123456Z Passthrough Authentication request failed. RequestId: '<uuid>'. Reason: '1328'.`

use std::path::Path;

use passthru_proto::Outcome;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::log_file::LogFile;

/// The `Reason` of a failed outcome: the Win32 code of a denial, or the AADSTS code of an
/// agent error ([`passthru_proto::AgentError::trace_reason`]); `None` for a success.
pub fn failure_reason(outcome: &Outcome) -> Option<String> {
    match outcome {
        Outcome::Success(_) => None,
        Outcome::Denied { win32 } => Some(win32.code().to_string()),
        Outcome::Error { error } => Some(error.trace_reason()),
        _ => Some("unknown".to_string()),
    }
}

/// One trace line (without the newline), at `at` in UTC with microseconds.
pub fn trace_line(at: OffsetDateTime, request_id: Uuid, reason: &str) -> String {
    let stamp = crate::log_file::stamp(at);
    format!(
        "{stamp} Passthrough Authentication request failed. RequestId: '{request_id}'. Reason: '{reason}'."
    )
}

/// When the trace log is rotated: past `max_bytes`, `trace.log` becomes `trace.log.1`, the
/// older copies move up one (`.1` to `.2`, ...), and the one past `keep` is deleted. So the
/// log never takes more than `(keep + 1) * max_bytes` of the disk, whatever the rate of
/// failures (a password spray).
pub use crate::log_file::Rotation;

/// `[trace] max_bytes` when not set: 10 MiB.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// `[trace] keep` when not set.
pub const DEFAULT_KEEP: u32 = 5;

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_bytes: DEFAULT_MAX_BYTES,
            keep: DEFAULT_KEEP,
        }
    }
}

/// The open trace log. Clones share the open file (one descriptor).
#[derive(Debug, Clone)]
pub struct TraceLog {
    file: LogFile,
}

impl TraceLog {
    /// Opens (or creates, mode 0600) the trace log for appending, rotated by the defaults.
    pub fn open(path: &Path) -> std::io::Result<TraceLog> {
        TraceLog::open_with(path, Rotation::default())
    }

    /// Opens (or creates, mode 0600) the trace log for appending, rotated by `rotation`.
    pub fn open_with(path: &Path, rotation: Rotation) -> std::io::Result<TraceLog> {
        Ok(TraceLog {
            file: LogFile::open(path, rotation)?,
        })
    }

    /// The rotated file underneath.
    pub fn file(&self) -> &LogFile {
        &self.file
    }

    /// Opens the log's path again (after logrotate, or anyone, renamed the file): the lines
    /// that follow go to a new `trace.log`.
    pub fn reopen(&self) -> std::io::Result<()> {
        self.file.reopen()
    }

    /// Appends a line for `outcome` if it is a failure.
    pub fn record(
        &self,
        at: OffsetDateTime,
        request_id: Uuid,
        outcome: &Outcome,
    ) -> std::io::Result<()> {
        let Some(reason) = failure_reason(outcome) else {
            return Ok(());
        };
        self.file.append_line(&trace_line(at, request_id, &reason))
    }
}

/// Reopens the agent's log files on every SIGHUP (for logrotate's `postrotate kill -HUP`),
/// until the process ends, and says so in the admin log. The handler is in place when this
/// returns.
pub fn reopen_on_sighup(
    files: Vec<LogFile>,
    session: Option<std::sync::Arc<crate::session_log::SessionLog>>,
    admin: crate::admin_log::AdminLog,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let mut failed = Vec::new();
            for file in &files {
                if let Err(e) = file.reopen() {
                    tracing::error!(path = %file.path().display(), error = %e, "SIGHUP: cannot reopen a log; still writing to the old file");
                    failed.push(format!("{}: {e}", file.path().display()));
                }
            }
            if let Some(Err(e)) = session.as_ref().map(|s| s.reopen()) {
                failed.push(format!("session log: {e}"));
            }
            if failed.is_empty() {
                tracing::info!("SIGHUP: logs reopened");
                admin.record("log", "SIGHUP: logs reopened");
            } else {
                admin.record(
                    "log",
                    &format!("SIGHUP: cannot reopen {}", failed.join("; ")),
                );
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    use passthru_proto::wire::DirectoryUser;
    use passthru_proto::{AgentError, Win32};
    use time::macros::datetime;

    use crate::test_support::TempDir;

    #[test]
    fn line_format() -> Result<(), uuid::Error> {
        let id = Uuid::parse_str("df63f4a4-68b9-44ae-8d81-6ad2d844d84e")?;
        let at = datetime!(2026-11-29 04:01:02.123456789 +01:00);
        assert_eq!(
            trace_line(at, id, "1328"),
            "2026-11-29T03:01:02.123456Z Passthrough Authentication request failed. RequestId: 'df63f4a4-68b9-44ae-8d81-6ad2d844d84e'. Reason: '1328'."
        );
        Ok(())
    }

    #[test]
    fn reasons() {
        let denied = Outcome::Denied {
            win32: Win32::AccountLockedOut,
        };
        assert_eq!(failure_reason(&denied).as_deref(), Some("1909"));
        let error = Outcome::Error {
            error: AgentError::DecryptFailed,
        };
        assert_eq!(failure_reason(&error).as_deref(), Some("80010"));
        let ok = Outcome::Success(DirectoryUser {
            object_guid: Uuid::nil(),
            user_principal_name: "a@b".into(),
            sam_account_name: None,
            display_name: None,
            mail: None,
            consistency_guid: None,
        });
        assert_eq!(failure_reason(&ok), None);
    }

    #[test]
    fn appends_failures_only_with_mode_0600() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("trace")?;
        let path = dir.path().join("trace.log");
        let log = TraceLog::open(&path)?;
        let at = datetime!(2026-01-02 03:04:05.000001 UTC);
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        log.record(
            at,
            a,
            &Outcome::Denied {
                win32: Win32::InvalidLogonHours,
            },
        )?;
        log.record(
            at,
            Uuid::new_v4(),
            &Outcome::Success(DirectoryUser {
                object_guid: Uuid::nil(),
                user_principal_name: "a@b".into(),
                sam_account_name: None,
                display_name: None,
                mail: None,
                consistency_guid: None,
            }),
        )?;
        log.record(
            at,
            b,
            &Outcome::Error {
                error: AgentError::ClockSkew,
            },
        )?;
        drop(log);
        let text = std::fs::read_to_string(&path)?;
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].starts_with("2026-01-02T03:04:05.000001Z "));
        assert!(lines[0].ends_with(&format!("RequestId: '{a}'. Reason: '1328'.")));
        assert!(lines[1].ends_with(&format!("RequestId: '{b}'. Reason: '80013'.")));
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        Ok(())
    }

    fn denied() -> Outcome {
        Outcome::Denied {
            win32: Win32::InvalidLogonHours,
        }
    }

    fn mode(p: &Path) -> std::io::Result<u32> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    }

    /// Many failures with a small limit: at most `keep + 1` files, each within the limit and
    /// 0600, the newest lines in `trace.log`, the oldest dropped, no line lost or cut in the
    /// files kept.
    #[test]
    fn rotates_by_size_and_keeps_keep_files() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("trace-rotate")?;
        let path = dir.path().join("trace.log");
        let rotation = Rotation {
            max_bytes: 1024,
            keep: 3,
        };
        let log = TraceLog::open_with(&path, rotation)?;
        let at = datetime!(2026-01-02 03:04:05.000001 UTC);
        let ids: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
        for id in &ids {
            log.record(at, *id, &denied())?;
        }
        drop(log);
        let mut names: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<_, _>>()?;
        names.sort();
        assert_eq!(
            names,
            ["trace.log", "trace.log.1", "trace.log.2", "trace.log.3"]
        );
        // Oldest first: .3, .2, .1, trace.log.
        let mut kept = Vec::new();
        for name in names.iter().rev() {
            let p = dir.path().join(name);
            let len = std::fs::metadata(&p)?.len();
            assert!(len <= rotation.max_bytes, "{name}: {len} bytes");
            assert_eq!(mode(&p)?, 0o600, "{name}");
            let text = std::fs::read_to_string(&p)?;
            assert!(text.ends_with('\n'), "{name} ends with a whole line");
            for line in text.lines() {
                assert!(line.contains("Reason: '1328'."), "{line}");
                kept.push(line.to_string());
            }
        }
        // The files kept hold the newest lines, in order, without a gap.
        assert!(
            kept.len() > 3 * 6 && kept.len() < ids.len(),
            "{}",
            kept.len()
        );
        let newest = &ids[ids.len() - kept.len()..];
        for (line, id) in kept.iter().zip(newest) {
            assert!(line.contains(&id.to_string()), "{line} is not {id}'s line");
        }
        let last = std::fs::read_to_string(&path)?;
        assert!(last.contains(&ids[ids.len() - 1].to_string()));
        Ok(())
    }

    /// An existing log is appended to, its size counted: the limit holds across restarts.
    #[test]
    fn a_reopened_log_counts_what_it_holds() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("trace-restart")?;
        let path = dir.path().join("trace.log");
        let rotation = Rotation {
            max_bytes: 1024,
            keep: 1,
        };
        let at = datetime!(2026-01-02 03:04:05.000001 UTC);
        for _ in 0..3 {
            let log = TraceLog::open_with(&path, rotation)?;
            for _ in 0..5 {
                log.record(at, Uuid::new_v4(), &denied())?;
            }
        }
        for p in [path.clone(), dir.path().join("trace.log.1")] {
            let len = std::fs::metadata(&p)?.len();
            assert!(len > 0 && len <= 1024, "{}: {len}", p.display());
        }
        assert!(!dir.path().join("trace.log.2").exists());
        Ok(())
    }

    /// After an outside rename (logrotate), SIGHUP makes the agent write to a new
    /// `trace.log` (0600); the renamed file keeps what was written before.
    #[tokio::test]
    async fn sighup_reopens_after_an_outside_rename() -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("trace-hup")?;
        let path = dir.path().join("trace.log");
        let log = TraceLog::open(&path)?;
        reopen_on_sighup(
            vec![log.file().clone()],
            None,
            crate::admin_log::AdminLog::disabled(),
        )?;
        let at = datetime!(2026-01-02 03:04:05.000001 UTC);
        let (before, after) = (Uuid::new_v4(), Uuid::new_v4());
        log.record(at, before, &denied())?;
        let moved = dir.path().join("trace.log-20260102");
        std::fs::rename(&path, &moved)?;
        let status = std::process::Command::new("kill")
            .args(["-HUP", &std::process::id().to_string()])
            .status()?;
        assert!(status.success());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !path.exists() {
            assert!(
                std::time::Instant::now() < deadline,
                "no new trace.log after SIGHUP"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        log.record(at, after, &denied())?;
        let old = std::fs::read_to_string(&moved)?;
        let new = std::fs::read_to_string(&path)?;
        assert!(old.contains(&before.to_string()) && !old.contains(&after.to_string()));
        assert!(new.contains(&after.to_string()) && !new.contains(&before.to_string()));
        assert_eq!(mode(&path)?, 0o600);
        Ok(())
    }
}
