//! systemd's service notifications (`sd_notify`), for the package's `Type=notify` unit:
//! `READY=1` once `serve` listens (its store open, every listener bound), `WATCHDOG=1` every
//! half `WATCHDOG_USEC` from a task on the server's runtime, each time only after the store
//! answered a cheap read (so a stuck runtime, or a store that stopped answering, gets the
//! instance restarted), `STOPPING=1` when a signal starts the drain. Without `NOTIFY_SOCKET`
//! (not run by systemd) each is a no-op; a notification that cannot be sent is logged, never
//! fatal.

use std::future::Future;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

/// Longest wait for the store's answer before a ping (a ping skipped is not yet a restart:
/// the watchdog allows twice the interval).
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

fn send(state: NotifyState<'_>) {
    if let Err(e) = sd_notify::notify(&[state]) {
        tracing::warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// `READY=1`.
pub(crate) fn ready() {
    send(NotifyState::Ready);
}

/// `STOPPING=1`.
pub(crate) fn stopping() {
    send(NotifyState::Stopping);
}

/// How often to ping the watchdog: half the time the service manager allows
/// (`WATCHDOG_USEC`, for this process), or `None` when it keeps no watchdog.
fn watchdog_interval() -> Option<Duration> {
    sd_notify::watchdog_enabled()
        .filter(|allowed| !allowed.is_zero())
        .map(|allowed| (allowed / 2).max(Duration::from_millis(1)))
}

/// Pings the watchdog from a task on the current runtime, each time after `check` (the
/// store's cheap read) succeeded within its time-out, until `stop` turns `true`. Nothing
/// when the service manager keeps no watchdog.
pub(crate) fn spawn_watchdog<F, Fut, E>(check: F, mut stop: watch::Receiver<bool>)
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
                Ok(Err(e)) => tracing::warn!(error = %e, "the store failed its check: the systemd watchdog is not pinged"),
                Err(_) => tracing::warn!(timeout_ms = timeout.as_millis() as u64, "the store did not answer its check in time: the systemd watchdog is not pinged"),
            }
        }
    });
}
