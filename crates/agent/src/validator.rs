//! The seam between the agent and the directory: [`Validator`] checks one user's password.
//! The real implementation is [`crate::directory_validator::DirectoryValidator`]; tests use
//! fakes.

use std::future::Future;

use passthru_proto::sync::{SyncBatch, SyncDone, SyncForest, SyncRun};
use passthru_proto::wire::DirectoryUser;
use passthru_proto::{AgentError, Win32};
use tokio::sync::mpsc;

/// What the directory said about a password.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// The password is right; the user's on-premises identity.
    Accepted(DirectoryUser),
    /// The directory refused the bind, with the Win32 reason.
    Denied(Win32),
    /// Password writeback: the password policy refused the new password.
    Refused(passthru_proto::PasswordRefusal),
}

/// Checks a password against the directory.
pub trait Validator: Send + Sync + 'static {
    /// Checks `password` for the user `upn`. `Err` means no answer could be had (directory
    /// unreachable or too slow, UPN routed to no forest, unexpected directory error).
    fn validate(
        &self,
        upn: &str,
        password: &str,
    ) -> impl Future<Output = Result<Verdict, AgentError>> + Send;

    /// Password writeback: changes (`old` given) or resets (`old` empty) the password of
    /// `upn`, as `operation` says. `Accepted` means the new password is set.
    fn write_password(
        &self,
        upn: &str,
        old: &str,
        operation: &passthru_proto::PasswordOperation,
    ) -> impl Future<Output = Result<Verdict, AgentError>> + Send {
        let _ = (upn, old, operation);
        async { Err(AgentError::WritebackNotPermitted) }
    }

    /// The health of the domain controllers behind this validator (none for a fake).
    fn domain_controllers(&self) -> Vec<passthru_proto::wire::DcStatus> {
        Vec::new()
    }

    /// The forests this validator can sync (those with a service account).
    fn sync_forests(&self) -> Vec<SyncForest> {
        Vec::new()
    }

    /// Performs one sync run: sends its batches into `out` (dropped when the run ends) and
    /// returns its end, or what went wrong, said for an administrator.
    fn sync(
        &self,
        run: SyncRun,
        out: mpsc::Sender<SyncBatch>,
    ) -> impl Future<Output = Result<SyncDone, String>> + Send {
        drop(out);
        let forest = run.forest;
        async move {
            Err(format!(
                "this agent has no service account for forest {forest}"
            ))
        }
    }
}
