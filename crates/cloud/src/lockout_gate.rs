//! Smart lockout under concurrency: at most `threshold - failures on record` password checks
//! of one account may be in flight at once, so however many wrong passwords arrive together,
//! no more reach the directory than the lock allows (each in-flight check could be wrong).
//! The others wait for a check to end, then read the account's count again: once it is
//! locked they get 50053 without any bind.
//!
//! A check's failure is written to the store before its place is given back, and a request
//! that read the store before a place of its account was given back reads it again before
//! it takes a place (a [`Ticket`] remembers when it read): so the count it compares with is
//! never older than the places it sees free. Accounts with nothing in flight are forgotten
//! in bulk when the table grows; a ticket older than that forgetting reads again.
//!
//! The gate is per process. With several cloud instances (`serve --bus`) a check also takes
//! a [`SharedPlace`] in the store, which counts the account's checks in flight at every
//! instance together with its failures on record, in one atomic step (see
//! [`crate::store::InstanceStore::take_check_place`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;
use uuid::Uuid;

/// Accounts remembered before idle ones are forgotten.
const SWEEP_AT: usize = 4096;

/// Smart lockout's in-flight places per account.
#[derive(Debug, Default)]
pub struct LockoutGate {
    /// Counts every place given back (and every sweep).
    seq: AtomicU64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    accounts: HashMap<(Uuid, String), Account>,
    /// Tickets older than this were taken before a sweep forgot an account.
    floor: u64,
}

#[derive(Debug)]
struct Account {
    in_flight: u32,
    /// `seq` when a place of this account was last given back.
    released: u64,
    freed: Arc<Notify>,
}

/// When a request read the account's count from the store (take it before the read).
#[derive(Debug, Clone, Copy)]
pub struct Ticket(u64);

/// What [`LockoutGate::enter`] gave.
#[derive(Debug)]
pub enum Entry {
    /// A place: the check may go ahead; dropping the place gives it back.
    Entered(Place),
    /// A place was given back since the ticket's read: read the count again.
    Stale,
    /// Every place is taken: wait for this, then read the count again.
    Full(Arc<Notify>),
}

/// One check in flight for an account.
#[derive(Debug)]
pub struct Place {
    gate: Arc<LockoutGate>,
    key: (Uuid, String),
}

impl LockoutGate {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take before reading the account's count from the store.
    pub fn ticket(&self) -> Ticket {
        Ticket(self.seq.load(Ordering::SeqCst))
    }

    /// Takes a place for `key` if fewer than `places` are taken and no place was given back
    /// since `ticket`.
    pub fn enter(self: &Arc<Self>, tenant: Uuid, key: &str, places: u32, ticket: Ticket) -> Entry {
        let mut inner = self.lock();
        if ticket.0 < inner.floor {
            return Entry::Stale;
        }
        let id = (tenant, key.to_string());
        if let Some(a) = inner.accounts.get_mut(&id) {
            if a.released > ticket.0 {
                return Entry::Stale;
            }
            if a.in_flight >= places.max(1) {
                return Entry::Full(a.freed.clone());
            }
            a.in_flight += 1;
        } else {
            if inner.accounts.len() >= SWEEP_AT {
                inner.accounts.retain(|_, a| a.in_flight > 0);
                inner.floor = self.seq.fetch_add(1, Ordering::SeqCst) + 1;
                if ticket.0 < inner.floor {
                    return Entry::Stale;
                }
            }
            inner.accounts.insert(
                id.clone(),
                Account {
                    in_flight: 1,
                    released: 0,
                    freed: Arc::new(Notify::new()),
                },
            );
        }
        Entry::Entered(Place {
            gate: self.clone(),
            key: id,
        })
    }

    /// Checks in flight for `key` (for tests and metrics).
    pub fn in_flight(&self, tenant: Uuid, key: &str) -> u32 {
        self.lock()
            .accounts
            .get(&(tenant, key.to_string()))
            .map_or(0, |a| a.in_flight)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        let mut inner = self.gate.lock();
        let seq = self.gate.seq.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(a) = inner.accounts.get_mut(&self.key) {
            a.in_flight = a.in_flight.saturating_sub(1);
            a.released = seq;
            a.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entered(e: Entry) -> Option<Place> {
        match e {
            Entry::Entered(p) => Some(p),
            _ => None,
        }
    }

    #[test]
    fn places_are_capped_and_a_read_before_a_release_is_stale() {
        let gate = Arc::new(LockoutGate::default());
        let t = Uuid::new_v4();
        let early = gate.ticket();
        let a = entered(gate.enter(t, "k", 2, gate.ticket()));
        let b = entered(gate.enter(t, "k", 2, gate.ticket()));
        assert!(a.is_some() && b.is_some());
        assert!(matches!(
            gate.enter(t, "k", 2, gate.ticket()),
            Entry::Full(_)
        ));
        assert_eq!(gate.in_flight(t, "k"), 2);
        // Another account, another tenant: their own places.
        assert!(entered(gate.enter(t, "other", 2, gate.ticket())).is_some());
        assert!(entered(gate.enter(Uuid::new_v4(), "k", 2, gate.ticket())).is_some());
        drop(a);
        // Read before the release: read again; read after: enters.
        assert!(matches!(gate.enter(t, "k", 2, early), Entry::Stale));
        assert!(entered(gate.enter(t, "k", 2, gate.ticket())).is_some());
        // A count at or over the threshold (no places left) still lets one check through,
        // which then locks.
        assert!(matches!(
            gate.enter(t, "k", 0, gate.ticket()),
            Entry::Full(_)
        ));
        drop(b);
        assert!(entered(gate.enter(t, "k", 0, gate.ticket())).is_some());
    }

    #[test]
    fn forgetting_idle_accounts_makes_older_tickets_stale() {
        let gate = Arc::new(LockoutGate::default());
        let t = Uuid::new_v4();
        let held = entered(gate.enter(t, "busy", 3, gate.ticket()));
        assert!(held.is_some());
        for i in 1..SWEEP_AT {
            drop(entered(gate.enter(t, &format!("n{i}"), 3, gate.ticket())));
        }
        assert_eq!(gate.lock().accounts.len(), SWEEP_AT);
        // The table is full: the next new account sweeps the idle ones, and every ticket
        // taken before that (this one too) must read again.
        let before = gate.ticket();
        assert!(matches!(gate.enter(t, "new", 3, before), Entry::Stale));
        assert_eq!(gate.lock().accounts.len(), 1, "accounts in flight are kept");
        assert_eq!(gate.in_flight(t, "busy"), 1);
        assert!(matches!(gate.enter(t, "n1", 3, before), Entry::Stale));
        assert!(entered(gate.enter(t, "new", 3, gate.ticket())).is_some());
    }
}

/// A place among an account's password checks in flight at every instance, kept in the
/// store; given back when dropped (after the check's failure, if any, was recorded).
#[derive(Debug)]
pub struct SharedPlace {
    pub(crate) store: crate::store::Store,
    pub(crate) id: Uuid,
}

impl Drop for SharedPlace {
    fn drop(&mut self) {
        let (store, id) = (self.store.clone(), self.id);
        // Best effort: a place not given back lapses at its expiry.
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = store.give_back_check_place(id).await {
                    tracing::warn!(error = %e, "could not give a smart lockout place back; it lapses at its expiry");
                }
            });
        }
    }
}

/// What an admitted password check holds until it is counted: its place here and, with
/// several instances, its place in the store.
#[derive(Debug)]
pub struct Admission {
    pub(crate) _local: Place,
    pub(crate) _shared: Option<SharedPlace>,
}
