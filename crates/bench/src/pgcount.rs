//! A counting TCP proxy in front of PostgreSQL, for `passthru-bench signins --store postgres`:
//! the cloud's store URL points here, every byte is forwarded unchanged, and the proxy
//! counts the bytes each way and the frontend protocol messages that run statements.
//!
//! So that the messages can be read, the proxy answers a client's SSLRequest (and
//! GSSENCRequest) itself with `N` (the server's "no"): a client with the default
//! `sslmode=prefer` then speaks plain text, to the real server behind. The figures therefore
//! leave out TLS on the store connection (in a deployment across hosts it would add a
//! record header and tag per TLS record and the cipher's CPU).
//!
//! What is counted, per [`PgCounts`]: `Q` (a simple query: one or more statements as text,
//! e.g. `BEGIN`), `P` (Parse: a statement prepared), `B` (Bind), `E` (Execute: a prepared
//! statement run) and `S` (Sync: the end of an extended-protocol exchange, after which the
//! client waits for `ReadyForQuery`, so Sync + Query is the number of round trips).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

/// Counters of everything that went through the proxy.
#[derive(Debug, Default)]
pub struct PgCounts {
    pub to_server_bytes: AtomicU64,
    pub from_server_bytes: AtomicU64,
    pub queries: AtomicU64,
    pub parses: AtomicU64,
    pub binds: AtomicU64,
    pub executes: AtomicU64,
    pub syncs: AtomicU64,
    pub connections: AtomicU64,
}

/// A snapshot of [`PgCounts`].
#[derive(Debug, Default, Clone, Copy)]
pub struct PgSnapshot {
    pub to_server_bytes: u64,
    pub from_server_bytes: u64,
    pub queries: u64,
    pub parses: u64,
    pub binds: u64,
    pub executes: u64,
    pub syncs: u64,
    pub connections: u64,
}

impl PgSnapshot {
    /// `self - earlier`, counter by counter.
    pub fn since(&self, earlier: &PgSnapshot) -> PgSnapshot {
        PgSnapshot {
            to_server_bytes: self.to_server_bytes.saturating_sub(earlier.to_server_bytes),
            from_server_bytes: self
                .from_server_bytes
                .saturating_sub(earlier.from_server_bytes),
            queries: self.queries.saturating_sub(earlier.queries),
            parses: self.parses.saturating_sub(earlier.parses),
            binds: self.binds.saturating_sub(earlier.binds),
            executes: self.executes.saturating_sub(earlier.executes),
            syncs: self.syncs.saturating_sub(earlier.syncs),
            connections: self.connections.saturating_sub(earlier.connections),
        }
    }

    /// Adds `other`, counter by counter.
    pub fn add(&mut self, other: &PgSnapshot) {
        self.to_server_bytes += other.to_server_bytes;
        self.from_server_bytes += other.from_server_bytes;
        self.queries += other.queries;
        self.parses += other.parses;
        self.binds += other.binds;
        self.executes += other.executes;
        self.syncs += other.syncs;
        self.connections += other.connections;
    }

    /// Statements run: Execute messages plus simple queries.
    pub fn statements(&self) -> u64 {
        self.executes + self.queries
    }

    /// Round trips: Sync messages plus simple queries.
    pub fn round_trips(&self) -> u64 {
        self.syncs + self.queries
    }
}

impl PgCounts {
    pub fn snapshot(&self) -> PgSnapshot {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        PgSnapshot {
            to_server_bytes: l(&self.to_server_bytes),
            from_server_bytes: l(&self.from_server_bytes),
            queries: l(&self.queries),
            parses: l(&self.parses),
            binds: l(&self.binds),
            executes: l(&self.executes),
            syncs: l(&self.syncs),
            connections: l(&self.connections),
        }
    }

    fn count(&self, message_type: u8) {
        let c = match message_type {
            b'Q' => &self.queries,
            b'P' => &self.parses,
            b'B' => &self.binds,
            b'E' => &self.executes,
            b'S' => &self.syncs,
            _ => return,
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// The proxy: listening on `127.0.0.1:port`, forwarding to `upstream` (`HOST:PORT`).
#[derive(Debug)]
pub struct PgProxy {
    pub port: u16,
    pub counts: Arc<PgCounts>,
    task: tokio::task::JoinHandle<()>,
}

impl PgProxy {
    /// Listens on a free port of 127.0.0.1 and forwards every connection to `upstream`.
    pub async fn start(upstream: &str) -> anyhow::Result<PgProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(PgCounts::default());
        let (c, upstream) = (counts.clone(), upstream.to_string());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (c, upstream) = (c.clone(), upstream.clone());
                tokio::spawn(async move {
                    if let Err(e) = relay(client, &upstream, c).await {
                        tracing_free_log(&format!("pg proxy: {e:#}"));
                    }
                });
            }
        });
        Ok(PgProxy { port, counts, task })
    }

    /// `url` (a `postgres://` URL) with its host and port replaced by this proxy's.
    pub fn url_for(&self, url: &str) -> anyhow::Result<String> {
        let mut u = url::Url::parse(url)?;
        u.set_host(Some("127.0.0.1"))?;
        u.set_port(Some(self.port))
            .map_err(|_| anyhow::anyhow!("cannot set the port of {url}"))?;
        Ok(u.to_string())
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Errors of a proxied connection go to standard error (the bench has no logger).
fn tracing_free_log(line: &str) {
    eprintln!("{line}");
}

/// Protocol codes of the startup packets a client may send before its StartupMessage.
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

async fn relay(mut client: TcpStream, upstream: &str, counts: Arc<PgCounts>) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    counts.connections.fetch_add(1, Ordering::Relaxed);
    // The startup phase: answer encryption requests with N, forward the StartupMessage.
    let startup = loop {
        let len = client
            .read_u32()
            .await
            .context("reading a startup packet")? as usize;
        anyhow::ensure!((8..=10_000).contains(&len), "startup packet of {len} bytes");
        let mut body = vec![0u8; len - 4];
        client.read_exact(&mut body).await?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client.write_all(b"N").await?;
            continue;
        }
        let mut packet = (len as u32).to_be_bytes().to_vec();
        packet.extend_from_slice(&body);
        break packet;
    };
    let mut server = TcpStream::connect(upstream)
        .await
        .with_context(|| format!("connecting to {upstream}"))?;
    server.set_nodelay(true)?;
    server.write_all(&startup).await?;
    counts
        .to_server_bytes
        .fetch_add(startup.len() as u64, Ordering::Relaxed);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up_counts = counts.clone();
    let up = async move {
        let mut scan = Scanner::default();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = cr.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            let chunk = buf.get(..n).unwrap_or_default();
            scan.feed(chunk, &up_counts);
            up_counts
                .to_server_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            sw.write_all(chunk).await?;
        }
        sw.shutdown().await?;
        anyhow::Ok(())
    };
    let down = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = sr.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            counts
                .from_server_bytes
                .fetch_add(n as u64, Ordering::Relaxed);
            cw.write_all(buf.get(..n).unwrap_or_default()).await?;
        }
        cw.shutdown().await?;
        anyhow::Ok(())
    };
    let (a, b) = tokio::join!(up, down);
    // A connection the pool or the cloud closed ends with a reset now and then: not a
    // measurement error.
    drop((a, b));
    Ok(())
}

/// Splits the frontend's byte stream (after the startup) into messages: a type byte and a
/// 32-bit length that counts itself.
#[derive(Debug, Default)]
struct Scanner {
    header: Vec<u8>,
    skip: usize,
}

impl Scanner {
    fn feed(&mut self, mut bytes: &[u8], counts: &PgCounts) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let k = self.skip.min(bytes.len());
                self.skip -= k;
                bytes = bytes.get(k..).unwrap_or_default();
                continue;
            }
            let k = (5 - self.header.len()).min(bytes.len());
            self.header
                .extend_from_slice(bytes.get(..k).unwrap_or_default());
            bytes = bytes.get(k..).unwrap_or_default();
            if let [t, a, b, c, d] = self.header[..] {
                counts.count(t);
                self.skip = (u32::from_be_bytes([a, b, c, d]) as usize).saturating_sub(4);
                self.header.clear();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_split_across_reads_are_counted_once() {
        let counts = PgCounts::default();
        let mut s = Scanner::default();
        // Parse (len 8: 4 bytes of body), Bind (len 4), Execute (len 9), Sync, Query.
        let mut stream = vec![b'P', 0, 0, 0, 8, 1, 2, 3, 4, b'B', 0, 0, 0, 4];
        stream.extend([b'E', 0, 0, 0, 9, 0, 0, 0, 0, 0, b'S', 0, 0, 0, 4]);
        stream.extend([b'Q', 0, 0, 0, 7, b'x', b'y', 0]);
        for chunk in stream.chunks(3) {
            s.feed(chunk, &counts);
        }
        let snap = counts.snapshot();
        assert_eq!(
            (
                snap.parses,
                snap.binds,
                snap.executes,
                snap.syncs,
                snap.queries
            ),
            (1, 1, 1, 1, 1)
        );
        assert_eq!(snap.statements(), 2);
        assert_eq!(snap.round_trips(), 2);
    }
}
