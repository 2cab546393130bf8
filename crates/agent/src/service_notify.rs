//! systemd's service notifications (`sd_notify`), for the package's `Type=notify` unit:
//! `READY=1` once `run` has checked its state dir and configuration and starts its connection
//! loop (readiness does not wait for the cloud: an agent that cannot reach it keeps trying,
//! and says so in its log), `WATCHDOG=1` every half `WATCHDOG_USEC` from a task on the
//! agent's runtime (so a runtime that no longer runs its tasks is restarted), `STOPPING=1`
//! when a signal starts the drain. Without `NOTIFY_SOCKET` (not run by systemd) each is a
//! no-op; a notification that cannot be sent is logged, never fatal.

use std::time::Duration;

use sd_notify::NotifyState;
use tokio::sync::watch;

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

/// Pings the watchdog from a task on the current runtime until `stop` turns `true`
/// (nothing when the service manager keeps no watchdog).
pub(crate) fn spawn_watchdog(mut stop: watch::Receiver<bool>) {
    let Some(every) = watchdog_interval() else {
        return;
    };
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
            send(NotifyState::Watchdog);
        }
    });
}
