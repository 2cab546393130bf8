//! Domain controller health against a real Samba AD DC: a dead DC is skipped after it failed
//! once, a stopped DC fails fast and is found again by the background probe when it comes
//! back, and a DC restart costs no sign-in (stale pooled connections are replaced).
//!
//! The DC is stopped and restarted, so this test provisions a forest of its own (on a free
//! loopback address in 127.0.100.0/16, never the test bed's), whatever `PASSTHRU_TESTBED`
//! says, and stops it at the end.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use passthru_directory::{Directory, DirectoryError, ForestConfig, ProbePolicy, Timeouts, Verdict};
use passthru_testkit::bed;
use passthru_testkit::forest::{Forest, ForestSpec};
use tokio::net::TcpListener;
use url::Url;

/// The forest and its directory, stopped and removed on drop.
struct OwnForest {
    forest: Option<Forest>,
    root: PathBuf,
}

impl Drop for OwnForest {
    fn drop(&mut self) {
        drop(self.forest.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl OwnForest {
    fn provision() -> anyhow::Result<OwnForest> {
        let root =
            std::env::temp_dir().join(format!("passthru-health-{}", uuid::Uuid::new_v4().simple()));
        let ip = bed::free_loopback_address()?;
        let mut own = OwnForest { forest: None, root };
        let spec = ForestSpec::new("HEALTH.EXAMPLE.TEST", "HEALTH", ip);
        own.forest =
            Some(Forest::provision(&own.root.join("health"), spec).context("provisioning")?);
        Ok(own)
    }

    fn forest(&mut self) -> anyhow::Result<&mut Forest> {
        self.forest
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no forest"))
    }

    fn config(&mut self, dcs: &[&str]) -> anyhow::Result<ForestConfig> {
        let f = self.forest()?;
        Ok(ForestConfig {
            name: f.dns_name(),
            upn_suffixes: vec![f.dns_name()],
            domain_controllers: dcs
                .iter()
                .map(|u| Url::parse(u))
                .collect::<Result<_, _>>()?,
            ca_file: f.ca_file(),
            bind_dn_template: None,
            tls_server_name: None,
        })
    }
}

fn accepted(v: Result<Verdict, DirectoryError>) -> anyhow::Result<()> {
    match v {
        Ok(Verdict::Accepted(_)) => Ok(()),
        other => bail!("expected Accepted, got {other:?}"),
    }
}

/// Accepts TCP connections and never says anything (a hung DC).
async fn silent_listener(ip: IpAddr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    Ok(addr)
}

const FAST: Duration = Duration::from_millis(500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_dcs_are_skipped_and_recovered_ones_used_again() -> anyhow::Result<()> {
    let mut own = tokio::task::block_in_place(OwnForest::provision)?;
    let (ip, url, upn, password) = {
        let f = own.forest()?;
        (
            f.ip(),
            f.ldaps_url(),
            f.admin_upn(),
            f.admin_password().to_string(),
        )
    };
    let timeouts = Timeouts {
        connect: Duration::from_secs(1),
        operation: Duration::from_secs(3),
    };
    let policy = ProbePolicy {
        first: Duration::from_millis(300),
        max: Duration::from_secs(1),
    };

    // (a) A hung DC listed first: the first validation pays its connect timeout, the next
    // ones skip it.
    let silent = format!("ldaps://{}", silent_listener(IpAddr::V4(ip)).await?);
    let d = Directory::with_policy(vec![own.config(&[&silent, &url])?], timeouts, policy)?;
    let started = Instant::now();
    accepted(d.validate(&upn, &password).await)?;
    let first = started.elapsed();
    assert!(first >= Duration::from_millis(900), "{first:?}");
    for i in 0..5 {
        let started = Instant::now();
        accepted(d.validate(&upn, &password).await)?;
        let took = started.elapsed();
        assert!(took < FAST, "validation {i} after the first took {took:?}");
    }
    let h = d.health();
    assert!(!h[0].up && h[0].last_error.is_some(), "{h:?}");
    assert!(h[1].up && h[1].consecutive_failures == 0, "{h:?}");
    // The background probes keep failing on it (each bounded by the connect timeout), and
    // the validations meanwhile stay fast.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let h = d.health();
    assert!(!h[0].up && h[0].consecutive_failures >= 2, "{h:?}");
    let started = Instant::now();
    accepted(d.validate(&upn, &password).await)?;
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
    drop(d);

    // (c) A DC restart between two validations: the pooled connection is stale; the next
    // validation still succeeds (on a new connection).
    let d = Directory::with_policy(vec![own.config(&[&url])?], timeouts, policy)?;
    accepted(d.validate(&upn, &password).await)?;
    assert_eq!(d.forests()[0].idle_connections(), 1);
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        let f = own.forest()?;
        f.stop();
        f.start()
    })?;
    accepted(d.validate(&upn, &password).await).context("the first validation after a restart")?;
    assert!(d.health()[0].up);
    assert_eq!(d.forests()[0].idle_connections(), 1);

    // (b) The DC stops: validations fail fast with "unreachable"; it comes back: the
    // background probe finds it without any validation, and it is used again.
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        own.forest()?.stop();
        Ok(())
    })?;
    for i in 0..3 {
        let started = Instant::now();
        let err = d.validate(&upn, &password).await;
        let took = started.elapsed();
        assert!(
            matches!(&err, Err(DirectoryError::Unreachable { .. })),
            "{err:?}"
        );
        assert!(took < FAST, "failed validation {i} took {took:?}");
        if let Err(e) = &err {
            assert!(!e.to_string().contains(&password));
        }
    }
    assert!(!d.health()[0].up);
    tokio::task::block_in_place(|| own.forest()?.start())?;
    let restarted = Instant::now();
    while !d.health()[0].up {
        if restarted.elapsed() > Duration::from_secs(5) {
            bail!("not up again 5 s after the restart: {:?}", d.health());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "the probe found the restarted DC after {:?}",
        restarted.elapsed()
    );
    // The probe's connection is pooled: the next sign-in is no new TLS handshake.
    assert_eq!(d.forests()[0].idle_connections(), 1);
    let started = Instant::now();
    accepted(d.validate(&upn, &password).await)?;
    assert!(started.elapsed() < FAST, "{:?}", started.elapsed());
    assert_eq!(d.health()[0].consecutive_failures, 0);
    Ok(())
}
