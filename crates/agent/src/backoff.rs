//! Reconnect delays: exponential backoff with full jitter (a random delay between zero and
//! `min(cap, base * 2^attempt)`), reset after a connection that lasted.

use std::time::Duration;

use rand_core::RngCore as _;

/// First ceiling.
pub const BASE: Duration = Duration::from_millis(500);
/// Largest ceiling.
pub const CAP: Duration = Duration::from_secs(30);
/// A connection that lasted longer than this resets the backoff.
pub const STABLE_AFTER: Duration = Duration::from_secs(30);

/// Backoff state.
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
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
            attempt: 0,
        }
    }

    /// The ceiling of the next delay.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(31)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The next delay, `unit` in [0, 1) being the random draw; moves to the next attempt.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let delay = self.ceiling().mul_f64(unit.clamp(0.0, 1.0));
        self.attempt = self.attempt.saturating_add(1).min(32);
        delay
    }

    /// Back to the first attempt.
    pub fn reset(&mut self) {
        self.attempt = 0;
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
        let ceilings: Vec<u64> = (0..9)
            .map(|_| {
                let c = b.ceiling().as_millis() as u64;
                b.next_delay(0.5);
                c
            })
            .collect();
        assert_eq!(
            ceilings,
            vec![500, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        for _ in 0..100 {
            b.next_delay(0.0);
        }
        assert_eq!(b.ceiling(), CAP);
        b.reset();
        assert_eq!(b.ceiling(), BASE);
    }

    #[test]
    fn full_jitter_spans_zero_to_ceiling() {
        let mut b = Backoff::default();
        assert_eq!(b.next_delay(0.0), Duration::ZERO);
        assert_eq!(b.next_delay(0.5), Duration::from_millis(500));
        assert!(b.next_delay(0.999_999) < Duration::from_secs(2));
        for _ in 0..1000 {
            let u = random_unit();
            assert!((0.0..1.0).contains(&u));
        }
    }
}
