//! Which cloud address the agent dials next, and how long it waits first.
//!
//! The agent holds one connection, to one of the cloud's addresses (`[cloud] urls`, or the
//! address recorded at registration). It starts at a random one, so that many agents spread
//! over the cloud's instances. When a dial fails or a connection is lost it moves to the next
//! address in the list (wrapping around) at once: no delay while addresses remain untried in
//! this round. Only when every address has failed in a row (a round: as many failures as
//! there are addresses) does it wait, with the exponential backoff and full jitter of
//! [`crate::backoff`], before the next round. With several addresses the ceiling of that
//! delay during the first minute of an outage is [`FAILOVER_FAST_CAP`] instead of
//! [`crate::backoff::FAST_CAP`], so that an agent that lost one instance of several is on
//! another well within 5 s even after earlier failures.
//!
//! A connection that stayed up at least [`ROUND_RESET_AFTER`] counts as a success: losing it
//! starts a new round (the lost address first, then every other one at once). A shorter one
//! (a cloud that accepts and then drops the agent) counts as a failure of its address, so a
//! cloud that keeps doing that is retried with backoff, not in a tight loop. As before, a
//! connection that lasted [`STABLE_AFTER`] also resets the backoff to its first step.

use std::time::{Duration, Instant};

use rand_core::RngCore as _;

use crate::backoff::{Backoff, BASE, CAP, STABLE_AFTER};

/// A connection that stayed up this long counts as a success: losing it starts a new round.
pub const ROUND_RESET_AFTER: Duration = Duration::from_secs(5);
/// With several addresses, the largest delay between rounds during the first minute of an
/// outage.
pub const FAILOVER_FAST_CAP: Duration = Duration::from_secs(2);

/// What to dial after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextDial {
    /// The index of the address to dial.
    pub index: usize,
    /// `None`: at once (addresses remain untried in this round); `Some`: after this delay
    /// (every address failed in a row).
    pub delay: Option<Duration>,
}

/// The rotation over the cloud's addresses.
#[derive(Debug, Clone)]
pub struct Rotation {
    count: usize,
    current: usize,
    /// Failures in the current round (always below `count`).
    failed_in_round: usize,
    backoff: Backoff,
}

impl Rotation {
    /// A rotation over `count` addresses (at least one) starting at `start` (taken modulo
    /// `count`).
    pub fn new(count: usize, start: usize) -> Rotation {
        let count = count.max(1);
        let backoff = if count > 1 {
            Backoff::new(BASE, CAP).with_fast_cap(FAILOVER_FAST_CAP)
        } else {
            Backoff::new(BASE, CAP)
        };
        Rotation {
            count,
            current: start % count,
            failed_in_round: 0,
            backoff,
        }
    }

    /// A rotation over `count` addresses starting at a random one.
    pub fn random_start(count: usize) -> Rotation {
        let draw = usize::try_from(rand_core::OsRng.next_u64()).unwrap_or(0);
        Rotation::new(count, draw % count.max(1))
    }

    /// The index of the address to dial now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// The dial to the current address failed (or ended before a connection was made), at
    /// `now`; `unit` in [0, 1) is the random draw of the jitter.
    pub fn dial_failed(&mut self, unit: f64, now: Instant) -> NextDial {
        self.advance(unit, now)
    }

    /// The connection to the current address was lost after staying up for `held`.
    pub fn connection_lost(&mut self, held: Duration, unit: f64, now: Instant) -> NextDial {
        if held > STABLE_AFTER {
            self.backoff.reset();
        }
        if held >= ROUND_RESET_AFTER {
            self.failed_in_round = 0;
        }
        self.advance(unit, now)
    }

    fn advance(&mut self, unit: f64, now: Instant) -> NextDial {
        self.current = (self.current + 1) % self.count;
        self.failed_in_round += 1;
        let delay = if self.failed_in_round >= self.count {
            self.failed_in_round = 0;
            Some(self.backoff.next_delay(unit, now))
        } else {
            None
        };
        NextDial {
            index: self.current,
            delay,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backoff::FAST_CAP;

    const HIGH: f64 = 0.999_999;

    fn at(index: usize) -> NextDial {
        NextDial { index, delay: None }
    }

    #[test]
    fn starts_where_told_and_spreads_at_random() {
        assert_eq!(Rotation::new(3, 0).current(), 0);
        assert_eq!(Rotation::new(3, 2).current(), 2);
        assert_eq!(Rotation::new(3, 7).current(), 1);
        assert_eq!(Rotation::new(0, 5).current(), 0);
        // Random starts stay in range and, over many draws, use every address.
        let mut seen = [false; 3];
        for _ in 0..300 {
            let start = Rotation::random_start(3).current();
            assert!(start < 3);
            seen[start] = true;
        }
        assert_eq!(seen, [true; 3]);
        assert_eq!(Rotation::random_start(1).current(), 0);
    }

    #[test]
    fn failed_dials_try_every_other_address_at_once_then_back_off() {
        let t0 = Instant::now();
        let mut r = Rotation::new(3, 1);
        // 1 fails: 2 and then 0 at once; 0 fails too: every address failed, delay, then 1.
        assert_eq!(r.dial_failed(HIGH, t0), at(2));
        assert_eq!(r.dial_failed(HIGH, t0), at(0));
        let third = r.dial_failed(0.5, t0);
        assert_eq!(third.index, 1);
        assert_eq!(third.delay, Some(BASE / 2));
        // The next round again goes round at once, then waits longer (the backoff grows).
        assert_eq!(r.dial_failed(HIGH, t0), at(2));
        assert_eq!(r.dial_failed(HIGH, t0), at(0));
        assert_eq!(
            r.dial_failed(0.5, t0),
            NextDial {
                index: 1,
                delay: Some(BASE)
            }
        );
    }

    #[test]
    fn one_address_backs_off_after_every_failure_as_before() {
        let t0 = Instant::now();
        let mut r = Rotation::new(1, 0);
        let delays: Vec<Option<Duration>> = (0..5).map(|_| r.dial_failed(0.5, t0).delay).collect();
        assert_eq!(
            delays,
            [250, 500, 1000, 2000, 2000]
                .map(|ms| Some(Duration::from_millis(ms)))
                .to_vec()
        );
        assert_eq!(r.current(), 0);
        // The usual first-minute ceiling of 4 s, not the failover one.
        let mut r = Rotation::new(1, 0);
        let longest = (0..10)
            .filter_map(|_| r.dial_failed(HIGH, t0).delay)
            .max()
            .unwrap_or_default();
        assert!(
            longest > FAILOVER_FAST_CAP && longest <= FAST_CAP,
            "{longest:?}"
        );
    }

    #[test]
    fn losing_a_connection_that_held_moves_to_the_next_address_at_once() {
        let t0 = Instant::now();
        let mut r = Rotation::new(3, 0);
        // A first round of failures (0 and 1 down), then 2 connects and holds for a minute.
        assert_eq!(r.dial_failed(HIGH, t0), at(1));
        assert_eq!(r.dial_failed(HIGH, t0), at(2));
        let lost_at = t0 + Duration::from_secs(60);
        // Its loss starts a new round: 0 and 1 at once, and only then a delay.
        assert_eq!(
            r.connection_lost(Duration::from_secs(60), HIGH, lost_at),
            at(0)
        );
        assert_eq!(r.dial_failed(HIGH, lost_at), at(1));
        let after = r.dial_failed(HIGH, lost_at);
        assert_eq!(after.index, 2);
        assert!(after.delay.is_some_and(|d| d < BASE), "{after:?}");
    }

    #[test]
    fn a_connection_dropped_at_once_counts_as_a_failure() {
        let t0 = Instant::now();
        let mut r = Rotation::new(2, 0);
        // A cloud that accepts and drops the agent again and again is not redialed in a
        // tight loop: every second drop waits.
        let mut delays = Vec::new();
        for _ in 0..6 {
            delays.push(
                r.connection_lost(Duration::from_millis(100), 0.5, t0)
                    .delay
                    .is_some(),
            );
        }
        assert_eq!(delays, [false, true, false, true, false, true]);
        // One that held for ROUND_RESET_AFTER is a success: the next address at once.
        assert_eq!(r.dial_failed(0.5, t0), at(1));
        assert_eq!(r.connection_lost(ROUND_RESET_AFTER, 0.5, t0), at(0));
    }

    #[test]
    fn losing_one_instance_of_several_reconnects_well_within_five_seconds() {
        // Whatever happened before (failed rounds, a short connection), the agent that
        // loses its instance dials another one at once or after at most FAILOVER_FAST_CAP
        // during the first minute of an outage.
        let t0 = Instant::now();
        for failed_rounds in 0..20u64 {
            let mut r = Rotation::new(3, 0);
            for _ in 0..failed_rounds * 3 {
                r.dial_failed(HIGH, t0);
            }
            // Two more failures, then the third address connects but is killed at once.
            r.dial_failed(HIGH, t0);
            r.dial_failed(HIGH, t0);
            assert_eq!(r.current(), 2);
            let next = r.connection_lost(Duration::from_millis(10), HIGH, t0);
            assert_ne!(next.index, 2);
            assert!(
                next.delay.unwrap_or_default() <= FAILOVER_FAST_CAP,
                "{failed_rounds}: {next:?}"
            );
        }
    }

    #[test]
    fn a_stable_connection_resets_the_backoff() {
        let t0 = Instant::now();
        let mut r = Rotation::new(2, 0);
        for _ in 0..10 {
            r.dial_failed(HIGH, t0);
        }
        // Long ago, a long outage: the ceiling grew past the first-minute one.
        let late = t0 + Duration::from_secs(120);
        r.dial_failed(HIGH, late);
        let slow = r.dial_failed(HIGH, late);
        assert!(slow.delay.is_some_and(|d| d > FAST_CAP), "{slow:?}");
        // A connection of a few minutes, lost: the next round, then the first delay again.
        let later = late + Duration::from_secs(600);
        assert_eq!(r.current(), 0);
        assert_eq!(r.connection_lost(STABLE_AFTER * 10, HIGH, later), at(1));
        let first = r.dial_failed(HIGH, later);
        assert!(first.delay.is_some_and(|d| d < BASE), "{first:?}");
    }
}
