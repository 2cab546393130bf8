//! systemd's service notifications (`sd_notify`), for the packages' `Type=notify` units, shared
//! by both binaries: `READY=1`, `WATCHDOG=1` every half `WATCHDOG_USEC` from a task on the
//! process's runtime, each time only after the caller's health check passed (the cloud: a
//! cheap store read; the agent: none, so a runtime that no longer runs its tasks is what gets
//! it restarted), and `STOPPING=1`. When each is sent is the binaries' business (`serve`: once
//! its store is open and every listener bound; `run`: once its state dir and configuration
//! are loaded). Without `NOTIFY_SOCKET` (not run by systemd) each is a no-op; a notification
//! that cannot be sent is logged, never fatal.

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

/// Longest wait for the health check's answer before a ping (a ping skipped is not yet a restart:
/// the watchdog allows twice the interval).
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

fn send(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// `READY=1`.
pub fn ready() {
    send(NotifyState::Ready);
}

/// `STOPPING=1`.
pub fn stopping() {
    send(NotifyState::Stopping);
}

/// `MAINPID=pid`: the service's main process is now `pid` (the agent's new version, which a
/// self-update started, before the old process exits).
pub fn main_pid(pid: u32) {
    send(NotifyState::MainPid(pid));
}

/// How often to ping the watchdog: half the time the service manager allows
/// (`WATCHDOG_USEC`, for this process), or `None` when it keeps no watchdog.
fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|allowed| !allowed.is_zero())
        .map(|allowed| (allowed / 2).max(Duration::from_millis(1)))
}

/// Pings the watchdog from a task on the current runtime, each time after `check` (the
/// cloud: the store's cheap read) succeeded within its time-out, until `stop` turns `true`. Nothing
/// when the service manager keeps no watchdog.
pub fn spawn_watchdog<F, Fut, E>(check: F, mut stop: watch::Receiver<bool>)
where
    F: Fn() -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let Some(every) = watchdog_interval() else {
        return;
    };
    let timeout = STORE_CHECK_TIMEOUT.min(every);
    tracing::debug!(
        interval_ms = every.as_millis() as u64,
        "pinging the systemd watchdog"
    );
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let stopped = tokio::select! {
                _ = tick.tick() => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopped {
                return;
            }
            match tokio::time::timeout(timeout, check()).await {
                Ok(Ok(())) => send(NotifyState::Watchdog),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the health check failed: the systemd watchdog is not pinged")
                }
                Err(_) => tracing::warn!(
                    timeout_ms = timeout.as_millis() as u64,
                    "the health check did not answer in time: the systemd watchdog is not pinged"
                ),
            }
        }
    });
}
