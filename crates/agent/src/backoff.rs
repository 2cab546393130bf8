//! Reconnect delays: exponential backoff with full jitter (a random delay between zero and
//! `min(cap, base * 2^attempt)`), reset after a connection that lasted. For the first
//! [`FAST_PHASE`] of an outage the ceiling stays at most [`FAST_CAP`], so that after a cloud
//! restart every agent is back within a few seconds; the full jitter spreads their
//! reconnections over that window (no thundering herd). A longer outage backs off to
//! [`CAP`].

use std::time::{Duration, Instant};

use rand_core::RngCore as _;

/// First ceiling.
pub const BASE: Duration = Duration::from_millis(500);
/// Largest ceiling.
pub const CAP: Duration = Duration::from_secs(30);
/// A connection that lasted longer than this resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long an outage counts as short (a cloud restart, a failover).
pub const FAST_PHASE: Duration = Duration::from_secs(60);
/// The largest ceiling during a short outage.
pub const FAST_CAP: Duration = Duration::from_secs(4);

/// Backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    /// The largest ceiling during the first [`FAST_PHASE`] of an outage.
    fast_cap: Duration,
    attempt: u32,
    /// When the first delay of this outage was drawn.
    outage_started: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(BASE, CAP)
    }
}

impl Backoff {
    /// Backoff from `base` up to `cap`.
    pub fn new(base: Duration, cap: Duration) -> Backoff {
        Backoff {
            base,
            cap,
            fast_cap: FAST_CAP,
            attempt: 0,
            outage_started: None,
        }
    }

    /// The same backoff with another ceiling for the first [`FAST_PHASE`] of an outage
    /// (instead of [`FAST_CAP`]).
    pub fn with_fast_cap(mut self, fast_cap: Duration) -> Backoff {
        self.fast_cap = fast_cap;
        self
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay at `now`, `unit` in [0, 1) being the random draw; moves to the next
    /// attempt. During the first [`FAST_PHASE`] of the outage the ceiling is at most
    /// [`FAST_CAP`] (or the one given to [`Backoff::with_fast_cap`]).
    pub fn next_delay(&mut self, unit: f64, now: Instant) -> Duration {
        let started = *self.outage_started.get_or_insert(now);
        let mut ceiling = self.ceiling();
        if now.saturating_duration_since(started) < FAST_PHASE {
            ceiling = ceiling.min(self.fast_cap);
        }
        let delay = ceiling.mul_f64(unit.clamp(0.0, 1.0));
        self.attempt = self.attempt.saturating_add(1).min(32);
        delay
    }

    /// Back to the first attempt (a connection lasted).
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.outage_started = None;
    }
}

/// A random number in [0, 1) from the operating system.
pub fn random_unit() -> f64 {
    let bits = rand_core::OsRng.next_u64() >> 11; // 53 random bits
    bits as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_double_up_to_the_cap_and_reset() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        let ceilings: Vec<u64> = (0..9)
            .map(|_| {
                let c = b.ceiling().as_millis() as u64;
                b.next_delay(0.5, t0);
                c
            })
            .collect();
        assert_eq!(
            ceilings,
            vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            b.next_delay(0.0, t0);
        }
        assert_eq!(b.ceiling(), CAP);
        b.reset();
        assert_eq!(b.ceiling(), BASE);
    }

    #[test]
    fn a_short_outage_keeps_delays_under_the_fast_cap() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        // Every delay of the first minute is at most 4 s, whatever the attempt.
        for i in 0..30 {
            let at = t0 + Duration::from_secs(2 * i);
            assert!(b.next_delay(0.999_999, at) <= FAST_CAP);
        }
        // Past the first minute, the full ceiling applies.
        let late = b.next_delay(0.999_999, t0 + FAST_PHASE + Duration::from_secs(1));
        assert!(late > FAST_CAP && late <= CAP, "{late:?}");
        // A new outage starts fast again.
        b.reset();
        let again = t0 + Duration::from_secs(3600);
        assert!(b.next_delay(0.999_999, again) <= BASE);
    }

    #[test]
    fn another_fast_cap() {
        let mut b = Backoff::default().with_fast_cap(Duration::from_secs(2));
        let t0 = Instant::now();
        for i in 0..30 {
            let at = t0 + Duration::from_secs(i);
            assert!(b.next_delay(0.999_999, at) < Duration::from_secs(2));
        }
        let late = b.next_delay(0.999_999, t0 + FAST_PHASE + Duration::from_secs(1));
        assert!(late > FAST_CAP && late <= CAP, "{late:?}");
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        assert_eq!(b.next_delay(0.0, t0), Duration::ZERO);
        assert_eq!(b.next_delay(0.5, t0), Duration::from_millis(500));
        assert!(b.next_delay(0.999_999, t0) < Duration::from_secs(2));
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
