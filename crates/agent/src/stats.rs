//! The agent's own counters (validations by outcome and Win32 code, directory errors and
//! round trips), cumulative since the process started. The agent listens on nothing: the
//! session sends a [`AgentStatsReport`] to the cloud every heartbeat, and the cloud exposes
//! them as Prometheus metrics labelled with the agent.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use passthru_proto::wire::AgentStatsReport;
use passthru_proto::{Outcome, Win32};

/// Counters shared by every connection of the process.
#[derive(Debug, Default)]
pub struct AgentStats {
    inner: Mutex<AgentStatsReport>,
}

impl AgentStats {
    fn lock(&self) -> MutexGuard<'_, AgentStatsReport> {
        // Each update is a handful of additions: a poisoned lock holds consistent counters.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one validation's `outcome`; `directory` is the time spent asking the directory,
    /// when it was asked.
    pub fn record(&self, outcome: &Outcome, directory: Option<Duration>) {
        let mut r = self.lock();
        match outcome {
            Outcome::Success(_) => r.success += 1,
            Outcome::Denied { win32 } => {
                *r.denied.entry(win32.code().to_string()).or_default() += 1
            }
            Outcome::PolicyRefused { .. } => {
                let code = Win32::PasswordRestriction.code().to_string();
                *r.denied.entry(code).or_default() += 1
            }
            Outcome::Error { error } => {
                let name = match serde_json::to_value(error) {
                    Ok(serde_json::Value::String(s)) => s,
                    _ => "other".to_string(),
                };
                *r.errors.entry(name).or_default() += 1;
            }
            _ => *r.errors.entry("other".to_string()).or_default() += 1,
        }
        if let Some(d) = directory {
            r.directory_seconds_sum += d.as_secs_f64();
            r.directory_count += 1;
        }
    }

    /// The counters now, with `in_flight` validations running.
    pub fn report(&self, in_flight: u64) -> AgentStatsReport {
        let mut r = self.lock().clone();
        r.in_flight = in_flight;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use passthru_proto::{AgentError, Win32};

    #[test]
    fn counts_by_outcome() {
        let s = AgentStats::default();
        s.record(
            &Outcome::Denied {
                win32: Win32::LogonFailure,
            },
            Some(Duration::from_millis(2)),
        );
        s.record(
            &Outcome::Denied {
                win32: Win32::LogonFailure,
            },
            Some(Duration::from_millis(2)),
        );
        s.record(
            &Outcome::Error {
                error: AgentError::DirectoryUnreachable,
            },
            None,
        );
        let r = s.report(3);
        assert_eq!(r.denied.get("1326"), Some(&2));
        assert_eq!(r.errors.get("directory_unreachable"), Some(&1));
        assert_eq!(r.directory_count, 2);
        assert!(r.directory_seconds_sum > 0.003);
        assert_eq!(r.in_flight, 3);
        assert_eq!(r.success, 0);
    }
}
