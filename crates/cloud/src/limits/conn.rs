//! Connections: at most `max_connections` open, and `max_connections_per_address` from one
//! client address (a connection over either is closed at once, before its TLS handshake).
//! The permit travels with the socket ([`Counted`]), so an agent's WebSocket, which leaves
//! the HTTP server at its upgrade, still counts. A connection with no request in flight for
//! the idle timeout is closed ([`Activity`]).

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The connection caps.
#[derive(Debug)]
pub(crate) struct ConnLimits {
    total: Arc<Semaphore>,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    max_per_address: usize,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnRefused {
    /// The server has `max_connections` open.
    Total,
    /// This address has `max_connections_per_address` open.
    Address,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct ConnPermit {
    _total: OwnedSemaphorePermit,
    key: IpAddr,
    limits: Arc<ConnLimits>,
}

impl ConnLimits {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            total: Arc::new(Semaphore::new(max_total.clamp(1, Semaphore::MAX_PERMITS))),
            per_address: Mutex::new(HashMap::new()),
            max_per_address: max_per_address.max(1),
        })
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, usize>> {
        // Counts are consistent after every operation: a poisoned lock is usable.
        self.per_address.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Admits a connection from `ip`, or says why not. The map holds only addresses with
    /// open connections, so it is no larger than the connection cap.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnPermit, ConnRefused> {
        let total = self
            .total
            .clone()
            .try_acquire_owned()
            .map_err(|_| ConnRefused::Total)?;
        let key = super::rate::client_key(ip);
        {
            let mut map = self.map();
            let n = map.entry(key).or_insert(0);
            if *n >= self.max_per_address {
                return Err(ConnRefused::Address);
            }
            *n += 1;
        }
        Ok(ConnPermit {
            _total: total,
            key,
            limits: self.clone(),
        })
    }

    /// Open connections from `ip`.
    #[cfg(test)]
    pub(crate) fn open_from(&self, ip: IpAddr) -> usize {
        self.map()
            .get(&super::rate::client_key(ip))
            .copied()
            .unwrap_or(0)
    }
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        let mut map = self.limits.map();
        if let Some(n) = map.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.key);
            }
        }
    }
}

/// A socket that holds its connection's permit for as long as it lives.
#[derive(Debug)]
pub(crate) struct Counted<IO> {
    io: IO,
    _permit: ConnPermit,
}

impl<IO> Counted<IO> {
    pub(crate) fn new(io: IO, permit: ConnPermit) -> Counted<IO> {
        Counted {
            io,
            _permit: permit,
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Counted<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Counted<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// What a connection is doing: requests in flight, and when the last one started or ended.
#[derive(Debug)]
pub(crate) struct Activity {
    started: Instant,
    in_flight: AtomicUsize,
    last_ms: AtomicU64,
}

impl Activity {
    pub(crate) fn new() -> Arc<Activity> {
        Arc::new(Activity {
            started: Instant::now(),
            in_flight: AtomicUsize::new(0),
            last_ms: AtomicU64::new(0),
        })
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Resolves once the connection has had no request in flight for `timeout`.
    pub(crate) async fn idle_for(&self, timeout: Duration) {
        loop {
            let quiet = Duration::from_millis(
                self.now_ms()
                    .saturating_sub(self.last_ms.load(Ordering::Relaxed)),
            );
            if self.in_flight.load(Ordering::Relaxed) == 0 && quiet >= timeout {
                return;
            }
            tokio::time::sleep(
                timeout
                    .saturating_sub(quiet)
                    .max(Duration::from_millis(100)),
            )
            .await;
        }
    }
}

struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.last_ms.store(self.0.now_ms(), Ordering::Relaxed);
    }
}

/// The middleware: counts the request as in flight on its connection's [`Activity`] (an
/// extension the server adds per connection).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let Some(activity) = req.extensions().get::<Arc<Activity>>().cloned() else {
        return next.run(req).await;
    };
    activity.in_flight.fetch_add(1, Ordering::Relaxed);
    activity.last_ms.store(activity.now_ms(), Ordering::Relaxed);
    let _busy = Busy(&activity);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_total_and_per_address_and_frees_on_drop() {
        let limits = ConnLimits::new(5, 2);
        let a: IpAddr = [127, 0, 0, 5].into();
        let b: IpAddr = [127, 0, 0, 6].into();
        let a1 = limits.admit(a);
        let a2 = limits.admit(a);
        assert!(a1.is_ok() && a2.is_ok());
        assert_eq!(limits.admit(a).err(), Some(ConnRefused::Address));
        let bs: Vec<_> = (0..2).map(|_| limits.admit(b)).collect();
        assert!(bs.iter().all(Result::is_ok));
        let c: IpAddr = [127, 0, 0, 7].into();
        let c1 = limits.admit(c);
        assert!(c1.is_ok());
        assert_eq!(limits.admit(c).err(), Some(ConnRefused::Total));
        drop(a1);
        assert_eq!(limits.open_from(a), 1);
        assert!(limits.admit(a).is_ok());
        drop((a2, bs, c1));
        assert_eq!(limits.open_from(a), 0);
        assert!(limits.map().is_empty());
    }

    #[tokio::test]
    async fn idle_only_without_requests_in_flight() {
        let activity = Activity::new();
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let idle = tokio::time::timeout(
            Duration::from_millis(800),
            activity.idle_for(Duration::from_millis(200)),
        )
        .await;
        assert!(
            idle.is_err(),
            "a connection with a request in flight is not idle"
        );
        drop(Busy(&activity));
        let started = Instant::now();
        let idle = tokio::time::timeout(
            Duration::from_secs(5),
            activity.idle_for(Duration::from_millis(200)),
        )
        .await;
        assert!(idle.is_ok());
        assert!(started.elapsed() >= Duration::from_millis(200));
    }
}
