//! Failover between two real domain controllers of one domain: a forest of its own, its
//! test users and sync service account created first, then a second DC joined to it with
//! `samba-tool domain join ... DC` on another loopback address. The directory lists DC1
//! first, then DC2.
//!
//! - Both DCs up: validations succeed (on DC1).
//! - DC1 stops: the next validation succeeds through DC2, the later ones skip DC1 and take
//!   well under a second; a wrong password through DC2 is still 1326; a sync run reads DC2,
//!   so its watermark names another DC and the run is a full import.
//! - DC1 comes back: the background probe marks it up, and validations use it again (with
//!   DC2 stopped they still succeed at once, and DC2 is never tried); so does sync.
//!
//! Nothing is skipped: when the join cannot work here, the test fails with samba-tool's
//! output. Both DCs are stopped and their directories removed at the end.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use passthru_directory::{
    Directory, DirectoryError, ForestConfig, ProbePolicy, SyncCredentials, Timeouts, Verdict,
};
use passthru_proto::sync::{SyncDone, SyncRun, Watermark};
use passthru_proto::Win32;
use passthru_testkit::bed;
use passthru_testkit::forest::{Forest, ForestSpec};
use passthru_testkit::second_dc::SecondDc;
use passthru_testkit::users::{self, Admin};
use passthru_testkit::{AccountState, TestUser};
use tokio::sync::mpsc;
use url::Url;
use uuid::Uuid;
use zeroize::Zeroizing;

/// Well under the one second a dead DC may cost.
const FAST: Duration = Duration::from_millis(500);

/// Both DCs and their directories: stopped (DC2 first) and removed on drop.
struct TwoDcs {
    dc2: Option<SecondDc>,
    dc1: Option<Forest>,
    root: PathBuf,
}

impl Drop for TwoDcs {
    fn drop(&mut self) {
        drop(self.dc2.take());
        drop(self.dc1.take());
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl TwoDcs {
    fn dc1(&mut self) -> anyhow::Result<&mut Forest> {
        self.dc1.as_mut().ok_or_else(|| anyhow!("no first DC"))
    }

    fn dc2(&mut self) -> anyhow::Result<&mut SecondDc> {
        self.dc2.as_mut().ok_or_else(|| anyhow!("no second DC"))
    }
}

fn accepted(v: Result<Verdict, DirectoryError>) -> anyhow::Result<()> {
    match v {
        Ok(Verdict::Accepted(_)) => Ok(()),
        other => bail!("expected Accepted, got {other:?}"),
    }
}

/// One sync run; the batches are received and dropped.
async fn sync(
    d: &Directory,
    forest: &str,
    creds: &SyncCredentials,
    watermark: Option<Watermark>,
) -> anyhow::Result<SyncDone> {
    let run = SyncRun {
        forest: forest.to_string(),
        run_id: Uuid::new_v4(),
        watermark,
        full: false,
        previous_total: None,
        reconcile: true,
    };
    let (tx, mut rx) = mpsc::channel(4);
    let drain = tokio::spawn(async move { while rx.recv().await.is_some() {} });
    let done = d.sync_run(forest, creds, &run, &tx).await;
    drop(tx);
    drain.await?;
    Ok(done?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_dc_of_the_domain_takes_over_and_the_first_is_used_again() -> anyhow::Result<()> {
    let mut two = TwoDcs {
        dc2: None,
        dc1: None,
        root: std::env::temp_dir().join(format!("passthru-dc2-{}", Uuid::new_v4().simple())),
    };
    let ip1 = bed::free_loopback_address()?;
    let spec = ForestSpec::new("DC2TEST.EXAMPLE.TEST", "DC2TEST", ip1);
    two.dc1 = Some(
        tokio::task::block_in_place(|| Forest::provision(&two.root.join("dc1"), spec))
            .context("provisioning the first DC")?,
    );
    // DC1 answers on ip1 now, so the second call finds another address.
    let ip2 = bed::free_loopback_address()?;
    if ip2 == ip1 {
        bail!("free_loopback_address gave {ip1} twice");
    }
    let (dns, url1, ca1, admin_upn, admin_password) = {
        let f = two.dc1()?;
        (
            f.dns_name(),
            f.ldaps_url(),
            f.ca_file(),
            f.admin_upn(),
            f.admin_password().to_string(),
        )
    };

    // Users first: only what exists at join time is on both DCs.
    let alice = TestUser::new("alice", &dns, AccountState::Good);
    let bob = TestUser::new("bob", &dns, AccountState::Good);
    let svc = TestUser::new("svcsync", &dns, AccountState::Good);
    let mut admin = Admin::connect(&url1, &ca1, &admin_upn, &admin_password).await?;
    for u in [&alice, &bob, &svc] {
        admin.create_user(u).await?;
    }
    admin.close().await;

    let dc2 = tokio::task::block_in_place(|| {
        let f = two.dc1.as_ref().ok_or_else(|| anyhow!("no first DC"))?;
        SecondDc::join(f, &two.root.join("dc2"), ip2)
    })
    .context("joining a second DC to the domain")?;
    eprintln!("DC2 joined in {:?} (DC1 {ip1}, DC2 {ip2})", dc2.join_time());
    let (url2, ca2, ca_both) = (dc2.ldaps_url(), dc2.ca_file(), dc2.forest_ca_file());
    two.dc2 = Some(dc2);

    // The users were replicated at join time: DC2 alone accepts them, with its own CA.
    users::bind(&url2, &ca2, &alice.upn, &alice.password)
        .await
        .map_err(|(rc, text)| anyhow!("alice's bind on DC2 alone failed ({rc}): {text}"))?;
    // Each DC's certificate is issued by a CA of its own: DC1's CA does not verify DC2.
    let cross = users::bind(&url2, &ca1, &alice.upn, &alice.password).await;
    assert!(cross.is_err(), "DC1's CA verified DC2's certificate");

    let config = ForestConfig {
        name: dns.clone(),
        upn_suffixes: vec![dns.clone()],
        domain_controllers: vec![Url::parse(&url1)?, Url::parse(&url2)?],
        ca_file: ca_both,
        bind_dn_template: None,
        tls_server_name: None,
    };
    let timeouts = Timeouts {
        connect: Duration::from_secs(1),
        operation: Duration::from_secs(3),
    };
    let policy = ProbePolicy {
        first: Duration::from_millis(200),
        max: Duration::from_millis(500),
    };
    let d = Directory::with_policy(vec![config], timeouts, policy)?;
    let creds = SyncCredentials {
        account: svc.upn.clone(),
        password: Zeroizing::new(svc.password.clone()),
    };

    // Both up: DC1 answers.
    for _ in 0..3 {
        accepted(d.validate(&alice.upn, &alice.password).await)?;
    }
    let h = d.health();
    assert!(h[0].up && h[1].up, "{h:?}");
    let first = sync(&d, &dns, &creds, None).await?;
    assert_eq!(first.dc_url.trim_end_matches('/'), url1, "{first:?}");
    assert!(first.full && first.complete, "{first:?}");

    // DC1 stops: DC2 takes over.
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        two.dc1()?.stop();
        Ok(())
    })?;
    let started = Instant::now();
    accepted(d.validate(&alice.upn, &alice.password).await)
        .context("the first validation after DC1 stopped")?;
    let failover = started.elapsed();
    eprintln!("first validation with DC1 stopped (through DC2): {failover:?}");
    assert!(failover < Duration::from_secs(1), "{failover:?}");
    let mut slowest = Duration::ZERO;
    for i in 0..5 {
        let started = Instant::now();
        accepted(d.validate(&alice.upn, &alice.password).await)?;
        let took = started.elapsed();
        assert!(took < FAST, "validation {i} through DC2 took {took:?}");
        slowest = slowest.max(took);
    }
    eprintln!("later validations through DC2: slowest {slowest:?}");
    let h = d.health();
    assert!(!h[0].up && h[0].last_error.is_some(), "{h:?}");
    assert!(h[1].up && h[1].consecutive_failures == 0, "{h:?}");

    // A wrong password through DC2 is still a wrong password.
    let wrong = d.validate(&bob.upn, &bed::secret("Wr0ng")).await;
    assert_eq!(wrong, Ok(Verdict::Denied(Win32::LogonFailure)), "{wrong:?}");
    accepted(d.validate(&bob.upn, &bob.password).await)?;

    // Sync reads DC2: another DC's watermark, so a full import.
    let second = sync(&d, &dns, &creds, Some(first.watermark.clone())).await?;
    assert_eq!(second.dc_url.trim_end_matches('/'), url2, "{second:?}");
    assert_ne!(second.watermark.dc, first.watermark.dc, "{second:?}");
    assert!(second.full && second.complete, "{second:?}");

    // DC1 comes back: the background probe finds it without any validation.
    let restarting = Instant::now();
    tokio::task::block_in_place(|| two.dc1()?.start()).context("restarting DC1")?;
    let ready = restarting.elapsed();
    let restarted = Instant::now();
    while !d.health()[0].up {
        if restarted.elapsed() > Duration::from_secs(5) {
            bail!(
                "DC1 not up again 5 s after LDAPS answered: {:?}",
                d.health()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "DC1 restarted: LDAPS answered after {ready:?}, the background probe marked it up \
         {:?} later ({:?} in all)",
        restarted.elapsed(),
        restarting.elapsed()
    );

    // Validations use DC1 again: with DC2 stopped they still succeed at once, and DC2 is
    // never tried (it stays up).
    tokio::task::block_in_place(|| -> anyhow::Result<()> {
        two.dc2()?.stop();
        Ok(())
    })?;
    for i in 0..3 {
        let started = Instant::now();
        accepted(d.validate(&alice.upn, &alice.password).await)?;
        let took = started.elapsed();
        assert!(took < FAST, "validation {i} back on DC1 took {took:?}");
    }
    let h = d.health();
    assert!(h[0].up && h[0].consecutive_failures == 0, "{h:?}");
    assert!(h[1].up && h[1].consecutive_failures == 0, "{h:?}");
    let third = sync(&d, &dns, &creds, Some(second.watermark.clone())).await?;
    assert_eq!(third.dc_url.trim_end_matches('/'), url1, "{third:?}");
    assert_eq!(third.watermark.dc, first.watermark.dc, "{third:?}");
    assert!(third.full, "back on DC1 after DC2's watermark: {third:?}");
    Ok(())
}
