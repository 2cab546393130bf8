//! Trying a new version: the running agent, drained and without its locks, starts the staged
//! package as a child (`run` with its own arguments and [`TRIAL_ENV`] set) and waits, up to
//! `[updates] rollback_after_seconds`, for it to connect to the cloud: its `connection.json`
//! names its pid and an address. Connected: the child serves from then on and `run` hands
//! over to it. Not connected in time, or exited: the child is stopped (SIGTERM, then SIGKILL)
//! and the agent takes its place again (rollback).

use std::ffi::OsString;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::state_dir::StateDir;
use crate::update::launcher::LAUNCHED_ENV;

/// Set in the environment of a new version on trial.
pub const TRIAL_ENV: &str = "PASSTHRU_AGENT_UPDATE_TRIAL";
/// How often the child is looked at.
const POLL: Duration = Duration::from_millis(100);
/// How long a child stopped with SIGTERM has before SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// How a trial ended.
#[derive(Debug)]
pub enum TrialEnd {
    /// The new version connected: it serves from now on.
    Connected {
        /// Its process (not waited for: it outlives this one).
        child: Child,
        /// The address it connected to.
        address: String,
    },
    /// It failed and was stopped: `reason` says why (the admin log's words).
    Failed {
        /// Why.
        reason: String,
    },
    /// A shutdown was asked meanwhile: the child was stopped.
    Stopped,
}

/// Whether this process is a new version on trial ([`TRIAL_ENV`] set).
pub fn on_trial() -> bool {
    std::env::var_os(TRIAL_ENV).is_some()
}

/// Stops `child`: SIGTERM, up to [`STOP_GRACE`] to exit, then SIGKILL; reaps it.
pub async fn stop(child: &mut Child) -> Option<ExitStatus> {
    if let Ok(Some(status)) = child.try_wait() {
        return Some(status);
    }
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(child),
        rustix::process::Signal::TERM,
    );
    let deadline = Instant::now() + STOP_GRACE;
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    child.wait().ok()
}

/// Starts `program` with `args` as a new version on trial and waits (at most `deadline`)
/// until it connects, exits, or `shutdown` turns `true`.
pub async fn try_version(
    program: &Path,
    args: &[OsString],
    own_version: &str,
    state: &StateDir,
    deadline: Duration,
    shutdown: &mut watch::Receiver<bool>,
) -> TrialEnd {
    let mut command = Command::new(program);
    command
        .args(args)
        .env(TRIAL_ENV, "1")
        .env(LAUNCHED_ENV, own_version);
    let mut child = match crate::update::spawn_retrying(&mut command) {
        Ok(c) => c,
        Err(e) => {
            return TrialEnd::Failed {
                reason: format!("it could not be started ({e})"),
            }
        }
    };
    let pid = child.id();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return TrialEnd::Failed {
                reason: format!("it exited ({status}) before it connected to the cloud"),
            };
        }
        if let Some(address) = state
            .connection()
            .filter(|c| c.pid == pid)
            .and_then(|c| c.address)
        {
            return TrialEnd::Connected { child, address };
        }
        if started.elapsed() >= deadline {
            stop(&mut child).await;
            return TrialEnd::Failed {
                reason: format!(
                    "it did not connect to the cloud within {} s ([updates] rollback_after_seconds)",
                    deadline.as_secs()
                ),
            };
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.wait_for(|s| *s) => {
                stop(&mut child).await;
                return TrialEnd::Stopped;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::TempDir;
    use std::os::unix::fs::PermissionsExt as _;

    fn script(dir: &Path, name: &str, body: &str) -> std::io::Result<std::path::PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))?;
        Ok(path)
    }

    #[tokio::test]
    async fn a_version_that_records_its_connection_is_taken(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("trial-ok")?;
        let state = StateDir::new(dir.path());
        // Writes what `run` writes once connected: its pid and an address.
        let program = script(
            dir.path(),
            "new",
            &format!(
                "test \"$PASSTHRU_AGENT_UPDATE_TRIAL\" = 1 || exit 3\n\
                 printf '{{\"pid\":%s,\"address\":\"https://cloud:443\",\"since\":\"x\"}}' $$ > {}/connection.json\n\
                 exec sleep 30",
                dir.path().display()
            ),
        )?;
        let (_tx, mut rx) = watch::channel(false);
        let end = try_version(
            &program,
            &[],
            "0.1.0",
            &state,
            Duration::from_secs(10),
            &mut rx,
        )
        .await;
        match end {
            TrialEnd::Connected { mut child, address } => {
                assert_eq!(address, "https://cloud:443");
                stop(&mut child).await;
            }
            other => return Err(format!("{other:?}").into()),
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_version_that_does_not_connect_is_stopped_at_the_deadline(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let dir = TempDir::new("trial-late")?;
        let state = StateDir::new(dir.path());
        let program = script(dir.path(), "hangs", "exec sleep 60")?;
        let (_tx, mut rx) = watch::channel(false);
        let started = std::time::Instant::now();
        let end = try_version(
            &program,
            &[],
            "0.1.0",
            &state,
            Duration::from_secs(1),
            &mut rx,
        )
        .await;
        assert!(
            matches!(&end, TrialEnd::Failed { reason } if reason.contains("did not connect to the cloud within 1 s")),
            "{end:?}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "SIGTERM ends it"
        );
        // One that exits at once.
        let program = script(dir.path(), "exits", "exit 7")?;
        let end = try_version(
            &program,
            &[],
            "0.1.0",
            &state,
            Duration::from_secs(10),
            &mut rx,
        )
        .await;
        assert!(
            matches!(&end, TrialEnd::Failed { reason } if reason.contains("exited") && reason.contains('7')),
            "{end:?}"
        );
        // One that cannot start.
        let end = try_version(
            &dir.path().join("absent"),
            &[],
            "0.1.0",
            &state,
            Duration::from_secs(1),
            &mut rx,
        )
        .await;
        assert!(
            matches!(&end, TrialEnd::Failed { reason } if reason.contains("could not be started")),
            "{end:?}"
        );
        Ok(())
    }

    #[tokio::test]
    async fn a_shutdown_during_the_trial_stops_the_child() -> Result<(), Box<dyn std::error::Error>>
    {
        let dir = TempDir::new("trial-shutdown")?;
        let state = StateDir::new(dir.path());
        // Ignores SIGTERM: SIGKILL ends it after the grace.
        let program = script(
            dir.path(),
            "stubborn",
            "trap '' TERM\nwhile :; do sleep 1; done",
        )?;
        let (tx, mut rx) = watch::channel(false);
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let _ = tx.send(true);
            tx
        });
        let end = try_version(
            &program,
            &[],
            "0.1.0",
            &state,
            Duration::from_secs(60),
            &mut rx,
        )
        .await;
        assert!(matches!(end, TrialEnd::Stopped), "{end:?}");
        drop(stopper.await?);
        Ok(())
    }
}
