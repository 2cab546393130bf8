//! The trace log (`STATE_DIR/trace.log`, mode 0600): one line per failed validation, with the
//! request id and the reason code, never a user name or a password.
//!
//! `2026-11-29T03:01:02.123456Z Passthrough Authentication request failed. RequestId: '<uuid>'. Reason: '1328'.`

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use passthru_proto::Outcome;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::state_dir::FILE_MODE;

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
    let format =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z");
    let stamp = at
        .to_offset(UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| "0000-00-00T00:00:00.000000Z".to_string());
    format!(
        "{stamp} Passthrough Authentication request failed. RequestId: '{request_id}'. Reason: '{reason}'."
    )
}

/// The open trace log. Clones share the open file (one descriptor).
#[derive(Debug, Clone)]
pub struct TraceLog {
    file: Arc<Mutex<File>>,
}

impl TraceLog {
    /// Opens (or creates, mode 0600) the trace log for appending.
    pub fn open(path: &Path) -> std::io::Result<TraceLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(FILE_MODE)
            .open(path)?;
        Ok(TraceLog {
            file: Arc::new(Mutex::new(file)),
        })
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
        let mut line = trace_line(at, request_id, &reason);
        line.push('\n');
        // One write per line, so concurrent lines never interleave.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(line.as_bytes())
    }
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
}
