//! Fair shares between tenants of what every tenant needs: the argon2 checks of cloud
//! passwords (a few cores' worth for all tenants) and agent requests in flight.
//!
//! [`TenantSlots`] caps what one tenant may have admitted at once (waiting or running);
//! past it a request is refused at once (429, AADSTS90055) instead of queueing without
//! bound. [`FairShare`] adds a global pool of `total` permits of which one tenant may hold
//! at most `per_tenant` at a time: a tenant's excess waits on its own queue, never in the
//! global one, so another tenant's check waits behind at most `per_tenant` checks of each
//! busy tenant, not behind a whole flood.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

/// A tenant has as many requests admitted as it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("this organization has too many requests of this kind in progress")]
pub struct Busy;

/// Per-tenant counters of admitted requests. The map holds one entry per tenant that ever
/// asked (tenants are rows of the store, never names a client makes up).
#[derive(Debug)]
pub(crate) struct TenantSlots {
    cap: usize,
    tenants: Mutex<HashMap<Uuid, Arc<AtomicUsize>>>,
}

/// One admitted request; dropping it frees the slot.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Default for TenantSlots {
    fn default() -> TenantSlots {
        TenantSlots::new(super::Limits::default().agent_requests_per_tenant)
    }
}

impl TenantSlots {
    pub(crate) fn new(cap: usize) -> TenantSlots {
        TenantSlots {
            cap: cap.max(1),
            tenants: Mutex::new(HashMap::new()),
        }
    }

    fn counter(&self, tenant: Uuid) -> Arc<AtomicUsize> {
        let mut map = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant).or_default().clone()
    }

    /// Admits one request of `tenant`, or refuses it when the tenant has `cap` admitted.
    pub(crate) fn enter(&self, tenant: Uuid) -> Result<Slot, Busy> {
        let counter = self.counter(tenant);
        let slot = Slot(counter.clone());
        if counter.fetch_add(1, Ordering::AcqRel) >= self.cap {
            return Err(Busy); // `slot` gives the increment back
        }
        Ok(slot)
    }
}

/// A pool of `total` permits shared fairly between tenants.
#[derive(Debug)]
pub(crate) struct FairShare {
    global: Arc<Semaphore>,
    per_tenant: usize,
    slots: TenantSlots,
    running: Mutex<HashMap<Uuid, Arc<Semaphore>>>,
}

/// A held permit of a [`FairShare`] (or of its global pool alone).
#[derive(Debug)]
pub(crate) struct FairPermit {
    _global: OwnedSemaphorePermit,
    _tenant: Option<OwnedSemaphorePermit>,
    _slot: Option<Slot>,
}

impl FairShare {
    /// `total` permits; one tenant holds at most `per_tenant` and has at most `admitted`
    /// waiting or running.
    pub(crate) fn new(total: usize, per_tenant: usize, admitted: usize) -> FairShare {
        FairShare {
            global: Arc::new(Semaphore::new(total.max(1))),
            per_tenant: per_tenant.clamp(1, total.max(1)),
            slots: TenantSlots::new(admitted),
            running: Mutex::new(HashMap::new()),
        }
    }

    fn tenant_pool(&self, tenant: Uuid) -> Arc<Semaphore> {
        let mut map = self.running.lock().unwrap_or_else(|p| p.into_inner());
        map.entry(tenant)
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_tenant)))
            .clone()
    }

    /// Waits for a permit for work of `tenant`; refused at once when the tenant already has
    /// `admitted` requests waiting or running.
    pub(crate) async fn acquire(&self, tenant: Uuid) -> Result<FairPermit, Busy> {
        let slot = self.slots.enter(tenant)?;
        let own = self
            .tenant_pool(tenant)
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        let global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        Ok(FairPermit {
            _global: global,
            _tenant: Some(own),
            _slot: Some(slot),
        })
    }

    /// Waits for a permit of the global pool alone (work of no tenant in particular, such
    /// as an administrator setting a password).
    pub(crate) async fn acquire_global(&self) -> Result<FairPermit, Busy> {
        let global = self
            .global
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Busy)?;
        Ok(FairPermit {
            _global: global,
            _tenant: None,
            _slot: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn slots_cap_each_tenant_and_free_on_drop() {
        let slots = TenantSlots::new(3);
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let held: Vec<Slot> = (0..3).filter_map(|_| slots.enter(a).ok()).collect();
        assert_eq!(held.len(), 3);
        assert_eq!(slots.enter(a).err(), Some(Busy));
        assert!(slots.enter(b).is_ok(), "another tenant has its own slots");
        drop(held);
        assert!(slots.enter(a).is_ok());
    }

    /// Tenant A floods a pool of 2 with 200 jobs of 20 ms (4 s of work); tenant B's one job
    /// starts within a couple of A's jobs, not after A's whole queue.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_flooding_tenant_does_not_starve_another() {
        let pool = Arc::new(FairShare::new(2, 1, 1_000));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let mut flood = Vec::new();
        for _ in 0..200 {
            let pool = pool.clone();
            flood.push(tokio::spawn(async move {
                let _p = pool.acquire(a).await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = std::time::Instant::now();
        let p = pool.acquire(b).await;
        let waited = started.elapsed();
        assert!(p.is_ok());
        assert!(
            waited < Duration::from_millis(200),
            "tenant B waited {waited:?} behind tenant A's flood"
        );
        drop(p);
        for f in flood {
            let _ = f.await;
        }
    }

    #[tokio::test]
    async fn a_tenant_past_its_admitted_cap_is_refused_at_once() {
        let pool = FairShare::new(1, 1, 2);
        let t = Uuid::new_v4();
        let first = pool.acquire(t).await;
        assert!(first.is_ok());
        // The second waits (admitted), the third is refused without waiting.
        let pool = Arc::new(pool);
        let p2 = pool.clone();
        let waiting = tokio::spawn(async move { p2.acquire(t).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(pool.acquire(t).await.err(), Some(Busy));
        drop(first);
        assert_eq!(waiting.await.ok(), Some(Ok(())));
    }
}
