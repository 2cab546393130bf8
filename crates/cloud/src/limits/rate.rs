//! Rate limits of the sign-in endpoints: a token bucket (GCRA, `governor`) per client
//! address and one per tenant. A request over its address's limit is refused before it is
//! charged to its tenant, so one address's flood costs its tenant only that address's own
//! rate, and the others' sign-ins go on. Excess requests get HTTP 429, `Retry-After`, and
//! AADSTS90055.
//!
//! The client address is the TCP peer's (never `X-Forwarded-For`: the cloud terminates TLS
//! itself). An IPv6 client is keyed by its /64, which one host usually holds whole. The map
//! of addresses is bounded: past `tracked_addresses` live keys, addresses not yet in it
//! share one bucket (so a flood from very many addresses costs bounded memory and gets
//! throttled together), and keys whose bucket is full again are dropped every few seconds.

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use super::Limits;
use crate::http::ClientInfo;
use crate::store::Store;

/// A keyed rate-limit state store with at most `cap` keys: keys that do not fit share the
/// `overflow` bucket.
#[derive(Debug)]
pub(crate) struct Bounded<K: Hash + Eq + Clone> {
    map: DashMapStateStore<K>,
    overflow: InMemoryState,
    cap: usize,
}

impl<K: Hash + Eq + Clone> Bounded<K> {
    fn new(cap: usize) -> Bounded<K> {
        Bounded {
            map: DashMapStateStore::default(),
            overflow: InMemoryState::default(),
            cap: cap.max(1),
        }
    }
}

impl<K: Hash + Eq + Clone> StateStore for Bounded<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        // Concurrent first requests of new keys may pass the length check together: the map
        // can exceed `cap` by the number of requests in flight, never more.
        if !self.map.contains_key(key) && self.map.len() >= self.cap {
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        self.map.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for Bounded<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.map, drop_below);
    }
    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&self.map);
    }
    fn len(&self) -> usize {
        self.map.len()
    }
    fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

type Limiter<K, C> = RateLimiter<K, Bounded<K>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Why a request was refused, and when the client may try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Throttled {
    /// The client address sent too many requests.
    Address(Duration),
    /// The tenant got too many requests from all addresses together.
    Tenant(Duration),
}

/// The two kinds of buckets.
#[derive(Debug)]
pub struct RateLimits<C: Clock = DefaultClock> {
    clock: C,
    address: Option<Limiter<IpAddr, C>>,
    tenant: Option<Limiter<Uuid, C>>,
    refused_address: AtomicU64,
    refused_tenant: AtomicU64,
}

fn quota(rate: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(rate)?;
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits<DefaultClock> {
    /// The limits of `serve`, on the system's monotonic clock.
    pub fn new(limits: &Limits) -> RateLimits<DefaultClock> {
        RateLimits::with_clock(limits, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// The limits on `clock` (tests pass a clock they move).
    pub fn with_clock(limits: &Limits, clock: C) -> RateLimits<C> {
        RateLimits {
            address: quota(limits.per_address_rate, limits.per_address_burst).map(|q| {
                RateLimiter::new(q, Bounded::new(limits.tracked_addresses), clock.clone())
            }),
            tenant: quota(limits.per_tenant_rate, limits.per_tenant_burst)
                .map(|q| RateLimiter::new(q, Bounded::new(100_000), clock.clone())),
            clock,
            refused_address: AtomicU64::new(0),
            refused_tenant: AtomicU64::new(0),
        }
    }

    /// Charges one request to its address, then (if that passed) to its tenant.
    pub(crate) fn check(
        &self,
        addr: Option<IpAddr>,
        tenant: Option<Uuid>,
    ) -> Result<(), Throttled> {
        if let (Some(limiter), Some(ip)) = (&self.address, addr) {
            if let Err(not_until) = limiter.check_key(&client_key(ip)) {
                self.refused_address.fetch_add(1, Ordering::Relaxed);
                return Err(Throttled::Address(
                    not_until.wait_time_from(self.clock.now()),
                ));
            }
        }
        if let (Some(limiter), Some(t)) = (&self.tenant, tenant) {
            if let Err(not_until) = limiter.check_key(&t) {
                self.refused_tenant.fetch_add(1, Ordering::Relaxed);
                return Err(Throttled::Tenant(
                    not_until.wait_time_from(self.clock.now()),
                ));
            }
        }
        Ok(())
    }

    /// Addresses whose state is kept.
    pub(crate) fn tracked_addresses(&self) -> usize {
        self.address.as_ref().map_or(0, |l| l.len())
    }

    /// Drops the keys whose bucket is full again (they are as good as new), and returns the
    /// requests refused since the last call (per address, per tenant).
    pub(crate) fn housekeeping(&self) -> (u64, u64) {
        if let Some(l) = &self.address {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.tenant {
            l.retain_recent();
        }
        (
            self.refused_address.swap(0, Ordering::Relaxed),
            self.refused_tenant.swap(0, Ordering::Relaxed),
        )
    }
}

/// The key of a client address: IPv4 as is (an IPv4-mapped IPv6 address too), IPv6 by /64.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

/// The tenant segment of a path the limits apply to: every path but the admin API (its
/// callers hold a token), the agent endpoint (mutual TLS) and the health check.
pub(crate) fn limited_tenant(path: &str) -> Option<&str> {
    let mut segs = path.trim_start_matches('/').split('/');
    let first = segs.next().unwrap_or("");
    if first == "healthz" && path.trim_start_matches('/') == "healthz" {
        return None;
    }
    match segs.next() {
        Some("admin") => None,
        // The agent's routes, which authenticate it by its client certificate.
        Some("agent")
            if segs.next() == Some("v1")
                && matches!(segs.next(), Some("connect") | Some("releases")) =>
        {
            None
        }
        _ => Some(first),
    }
}

/// What the middleware needs.
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) rate: Arc<RateLimits>,
    pub(crate) store: Store,
}

/// The middleware: 429 for a request over its address's or its tenant's limit.
pub(crate) async fn enforce(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    let Some(segment) = limited_tenant(req.uri().path()) else {
        return next.run(req).await;
    };
    let addr = req.extensions().get::<ClientInfo>().map(|c| c.addr.ip());
    // The tenant by name or id (the store's cache answers; an unknown name has no bucket
    // and its requests only count for their address).
    let tenant = if gate.rate.tenant.is_some() && !segment.is_empty() && segment.len() <= 256 {
        gate.store
            .tenant(segment)
            .await
            .ok()
            .flatten()
            .map(|t| t.id)
    } else {
        None
    };
    match gate.rate.check(addr, tenant) {
        Ok(()) => next.run(req).await,
        Err(t) => {
            let corr = crate::http::correlation_id(req.headers());
            let (wait, detail) = match t {
                Throttled::Address(w) => (w, "This client address sent too many requests."),
                Throttled::Tenant(w) => (w, "This organization received too many requests."),
            };
            tracing::debug!(client = ?addr, ?t, "request throttled");
            super::too_many(wait, detail, corr)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limits(rate: u32, burst: u32) -> Limits {
        Limits {
            per_address_rate: rate,
            per_address_burst: burst,
            per_tenant_rate: 1_000,
            per_tenant_burst: 1_000,
            ..Limits::default()
        }
    }

    fn ip(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!("{s}"))
    }

    #[test]
    fn an_address_over_its_burst_waits_and_others_do_not() {
        let clock = FakeRelativeClock::default();
        let r = RateLimits::with_clock(&limits(2, 5), clock.clone());
        let t = Some(Uuid::new_v4());
        for _ in 0..5 {
            assert_eq!(r.check(ip("127.0.0.5"), t), Ok(()));
        }
        let sixth = r.check(ip("127.0.0.5"), t);
        let Err(Throttled::Address(wait)) = sixth else {
            unreachable!("the sixth request passed: {sixth:?}");
        };
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another address is not affected.
        for _ in 0..5 {
            assert_eq!(r.check(ip("127.0.0.6"), t), Ok(()));
        }
        // Half a second later the flooder has one request again.
        clock.advance(Duration::from_millis(500));
        assert_eq!(r.check(ip("127.0.0.5"), t), Ok(()));
        assert!(r.check(ip("127.0.0.5"), t).is_err());
        assert_eq!(r.housekeeping().0, 2);
    }

    #[test]
    fn an_address_refused_is_not_charged_to_its_tenant() {
        let clock = FakeRelativeClock::default();
        let l = Limits {
            per_address_rate: 1,
            per_address_burst: 3,
            per_tenant_rate: 1,
            per_tenant_burst: 10,
            ..Limits::default()
        };
        let r = RateLimits::with_clock(&l, clock);
        let t = Some(Uuid::new_v4());
        let mut passed = 0;
        for _ in 0..1_000 {
            passed += usize::from(r.check(ip("10.0.0.1"), t).is_ok());
        }
        assert_eq!(passed, 3);
        // The tenant's bucket lost only those 3: 7 others still pass.
        for i in 0..7 {
            assert_eq!(r.check(ip(&format!("10.0.1.{i}")), t), Ok(()));
        }
        assert!(matches!(
            r.check(ip("10.0.2.1"), t),
            Err(Throttled::Tenant(_))
        ));
    }

    #[test]
    fn ipv6_is_keyed_by_its_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(
            client_key(addr("2001:db8:1:2:aaaa::1")),
            addr("2001:db8:1:2::")
        );
        assert_eq!(client_key(addr("::ffff:192.0.2.7")), addr("192.0.2.7"));
    }

    #[test]
    fn the_address_map_stays_bounded_under_a_flood_of_addresses() {
        let clock = FakeRelativeClock::default();
        let l = Limits {
            tracked_addresses: 1_000,
            ..limits(1, 2)
        };
        let r = RateLimits::with_clock(&l, clock.clone());
        // 50,000 distinct addresses, one request each.
        let mut refused = 0;
        for i in 0..50_000u32 {
            let a = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            refused += usize::from(r.check(Some(a), None).is_err());
        }
        assert!(r.tracked_addresses() <= 1_000, "{}", r.tracked_addresses());
        // The addresses past the cap shared one bucket of 2.
        assert_eq!(refused, 50_000 - 1_000 - 2);
        // Once their buckets are full again the keys go.
        clock.advance(Duration::from_secs(5));
        r.housekeeping();
        assert_eq!(r.tracked_addresses(), 0);
    }

    #[test]
    fn paths_that_are_limited() {
        assert_eq!(
            limited_tenant("/contoso/oauth2/v2.0/token"),
            Some("contoso")
        );
        assert_eq!(limited_tenant("/common/userrealm/a@b.c"), Some("common"));
        assert_eq!(limited_tenant("/contoso/login/password"), Some("contoso"));
        assert_eq!(limited_tenant("/contoso/admin/users"), None);
        assert_eq!(limited_tenant("/contoso/agent/v1/connect"), None);
        assert_eq!(
            limited_tenant("/contoso/agent/v1/releases/0.2.0/package"),
            None
        );
        assert_eq!(limited_tenant("/healthz"), None);
        assert_eq!(limited_tenant("/contoso/agent/v1/other"), Some("contoso"));
    }
}
