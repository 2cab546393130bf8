//! Health of one domain controller: Up, or Down since some time with a next probe due.
//!
//! Pure state (time is a parameter), so the transitions are unit-tested with a fake clock;
//! [`crate::dc::DomainController`] holds one behind a mutex and logs the transitions.

use std::time::{Duration, Instant, SystemTime};

/// When a Down domain controller is probed again: `first` after it went down, then twice as
/// long after each failed probe, at most `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbePolicy {
    /// Delay of the first probe after a DC went down (default 500 ms).
    pub first: Duration,
    /// Longest delay between two probes (default 30 s).
    pub max: Duration,
}

impl Default for ProbePolicy {
    fn default() -> ProbePolicy {
        ProbePolicy {
            first: Duration::from_millis(500),
            max: Duration::from_secs(30),
        }
    }
}

impl ProbePolicy {
    /// The delay before the next probe after `failures` consecutive failures (1 = it just
    /// went down).
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(16);
        self.first
            .saturating_mul(1u32 << doublings)
            .min(self.max)
            .max(self.first.min(self.max))
    }
}

/// A change of state worth a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Transition {
    /// It was up and failed.
    WentDown,
    /// It was down (for this long) and answered.
    CameBack { down_for: Duration },
}

/// The health of one domain controller.
#[derive(Debug, Clone)]
pub(crate) struct HealthState {
    up: bool,
    /// When it entered the current state (monotonic, for the schedule).
    since: Instant,
    /// The same moment in wall-clock time, for reports.
    since_wall: SystemTime,
    consecutive_failures: u32,
    next_probe: Instant,
    last_error: Option<String>,
}

impl HealthState {
    /// A new domain controller is presumed up.
    pub fn new(now: Instant) -> HealthState {
        HealthState {
            up: true,
            since: now,
            since_wall: SystemTime::now(),
            consecutive_failures: 0,
            next_probe: now,
            last_error: None,
        }
    }

    pub fn is_up(&self) -> bool {
        self.up
    }

    pub fn consecutive_failures(&self) -> u32 {
        self.consecutive_failures
    }

    pub fn since_wall(&self) -> SystemTime {
        self.since_wall
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    pub fn next_probe(&self) -> Instant {
        self.next_probe
    }

    /// Whether a Down DC's probe is due at `now`.
    pub fn probe_due(&self, now: Instant) -> bool {
        !self.up && now >= self.next_probe
    }

    /// The DC answered (a verdict, any LDAP answer, a successful probe).
    pub fn record_success(&mut self, now: Instant) -> Option<Transition> {
        self.consecutive_failures = 0;
        self.last_error = None;
        if self.up {
            return None;
        }
        let down_for = now.saturating_duration_since(self.since);
        self.up = true;
        self.since = now;
        self.since_wall = SystemTime::now();
        Some(Transition::CameBack { down_for })
    }

    /// A transport failure (connect refused, TLS failure, timeout, connection lost), from a
    /// validation or a probe: it is Down at once, and probed again later.
    pub fn record_failure(
        &mut self,
        now: Instant,
        detail: &str,
        policy: &ProbePolicy,
    ) -> Option<Transition> {
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        self.last_error = Some(detail.to_string());
        self.next_probe = now + policy.delay(self.consecutive_failures);
        if !self.up {
            return None;
        }
        self.up = false;
        self.since = now;
        self.since_wall = SystemTime::now();
        Some(Transition::WentDown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_starts_under_a_second_and_is_capped() {
        let p = ProbePolicy::default();
        assert_eq!(p.delay(1), 500 * MS);
        assert_eq!(p.delay(2), 1000 * MS);
        assert_eq!(p.delay(3), 2000 * MS);
        assert_eq!(p.delay(7), Duration::from_secs(30));
        assert_eq!(p.delay(u32::MAX), Duration::from_secs(30));
        assert_eq!(p.delay(0), 500 * MS);
        let odd = ProbePolicy {
            first: Duration::from_secs(5),
            max: Duration::from_secs(1),
        };
        assert_eq!(odd.delay(1), Duration::from_secs(1));
    }

    #[test]
    fn failure_marks_down_and_success_brings_back() {
        let p = ProbePolicy::default();
        let t0 = Instant::now();
        let mut h = HealthState::new(t0);
        assert!(h.is_up());
        assert!(!h.probe_due(t0 + Duration::from_secs(100)));
        // An answer from an up DC changes nothing.
        assert_eq!(h.record_success(t0), None);

        assert_eq!(
            h.record_failure(t0 + MS, "connection refused", &p),
            Some(Transition::WentDown)
        );
        assert!(!h.is_up());
        assert_eq!(h.consecutive_failures(), 1);
        assert_eq!(h.last_error(), Some("connection refused"));
        // First probe within 1 s.
        assert!(!h.probe_due(t0 + 400 * MS));
        assert!(h.probe_due(t0 + 501 * MS));

        // A failed probe: still down, no new transition, backoff doubles.
        assert_eq!(h.record_failure(t0 + 501 * MS, "refused", &p), None);
        assert_eq!(h.consecutive_failures(), 2);
        assert_eq!(h.next_probe(), t0 + 1501 * MS);
        assert!(!h.probe_due(t0 + 1500 * MS));
        assert!(h.probe_due(t0 + 1501 * MS));

        assert_eq!(
            h.record_success(t0 + 2001 * MS),
            Some(Transition::CameBack {
                down_for: 2000 * MS
            })
        );
        assert!(h.is_up());
        assert_eq!(h.consecutive_failures(), 0);
        assert_eq!(h.last_error(), None);
        assert!(!h.probe_due(t0 + Duration::from_secs(100)));

        // Down again: the backoff starts over.
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(
            h.record_failure(t1, "timed out", &p),
            Some(Transition::WentDown)
        );
        assert_eq!(h.next_probe(), t1 + 500 * MS);
    }
}
