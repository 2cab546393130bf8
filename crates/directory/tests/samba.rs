//! `passthru-directory` against a real Samba AD forest: the test bed's CORP forest
//! (`PASSTHRU_TESTBED`), or one this test process provisions.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use ldap3::{Scope, SearchEntry};
use passthru_directory::{Directory, DirectoryError, ForestConfig, Timeouts, Verdict};
use passthru_proto::Win32;
use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::AccountState;
use tokio::net::{TcpListener, TcpStream};
use url::Url;
use uuid::Uuid;

fn corp() -> anyhow::Result<BedForest> {
    bed::corp()
}

fn config(f: &BedForest, dcs: &[&str]) -> anyhow::Result<ForestConfig> {
    Ok(ForestConfig {
        name: f.dns_name.clone(),
        upn_suffixes: vec![f.upn_suffix.clone()],
        domain_controllers: dcs
            .iter()
            .map(|u| Url::parse(u))
            .collect::<Result<_, _>>()?,
        ca_file: f.ca_file.clone(),
        bind_dn_template: None,
        tls_server_name: None,
    })
}

fn directory(f: &BedForest, dcs: &[&str]) -> anyhow::Result<Directory> {
    Ok(Directory::new(vec![config(f, dcs)?])?)
}

fn accepted(
    v: Result<Verdict, DirectoryError>,
) -> anyhow::Result<passthru_proto::wire::DirectoryUser> {
    match v {
        Ok(Verdict::Accepted(u)) => Ok(u),
        other => bail!("expected Accepted, got {other:?}"),
    }
}

/// objectGUID of `sam`, read by the administrator.
async fn guid_of(f: &BedForest, sam: &str) -> anyhow::Result<Uuid> {
    let mut admin = f.admin().await?;
    let base = admin.base_dn().to_string();
    let filter = format!("(sAMAccountName={})", ldap3::ldap_escape(sam));
    let (entries, _) = admin
        .ldap()
        .search(&base, Scope::Subtree, &filter, vec!["objectGUID"])
        .await?
        .success()?;
    let e = SearchEntry::construct(
        entries
            .into_iter()
            .next()
            .ok_or_else(|| anyhow!("no {sam}"))?,
    );
    let bytes: Vec<u8> = match (e.bin_attrs.get("objectGUID"), e.attrs.get("objectGUID")) {
        (Some(b), _) => b.first().cloned().unwrap_or_default(),
        (None, Some(s)) => s.first().map(|s| s.as_bytes().to_vec()).unwrap_or_default(),
        _ => bail!("{sam} has no objectGUID"),
    };
    admin.close().await;
    let arr: [u8; 16] = bytes
        .try_into()
        .map_err(|_| anyhow!("objectGUID is not 16 bytes"))?;
    Ok(Uuid::from_bytes_le(arr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_account_state_gives_its_code() -> anyhow::Result<()> {
    let f = corp()?;
    let d = directory(&f, &[&f.ldaps_url])?;
    let mut seen = Vec::new();
    for u in f.users.iter().filter(|u| u.expected_win32.is_some()) {
        let want = u
            .expected_win32
            .and_then(Win32::from_code)
            .ok_or_else(|| anyhow!("bad code for {}", u.upn))?;
        let got = d.validate(&u.upn, &u.password).await;
        assert_eq!(
            got,
            Ok(Verdict::Denied(want)),
            "user {} ({})",
            u.upn,
            u.state
        );
        seen.push(u.state);
    }
    for state in AccountState::ALL
        .iter()
        .filter(|s| **s != AccountState::Good)
    {
        assert!(seen.contains(state), "the test bed has no {state} user");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_passwords_are_accepted_with_the_users_identity() -> anyhow::Result<()> {
    let f = corp()?;
    let d = directory(&f, &[&f.ldaps_url])?;
    // Plain, non-ASCII and LDAP/JSON special characters, CJK and emoji, and a UPN made of
    // LDAP filter characters (the search for it must escape them).
    for name in ["good", "unicode", "cjk", "filter(x)"] {
        let u = f.user(name)?;
        let user =
            accepted(d.validate(&u.upn, &u.password).await).with_context(|| u.upn.clone())?;
        assert_eq!(user.user_principal_name, u.upn);
        assert_eq!(user.sam_account_name.as_deref(), Some(u.sam.as_str()));
        assert_eq!(user.display_name.as_deref(), Some(u.display_name.as_str()));
        assert_eq!(user.mail.as_deref(), Some(u.mail.as_str()));
        assert_eq!(user.object_guid, guid_of(&f, &u.sam).await?, "{}", u.upn);
        assert!(!user.object_guid.is_nil());
    }
    assert!(f.user("filter(x)")?.upn.starts_with("a*b(c)@"));
    assert!(f.user("unicode")?.password.contains("*()\"'\\"));

    // UPNs are case-insensitive; the answer carries the directory's spelling.
    let good = f.user("good")?;
    let upper = good.upn.to_uppercase();
    let user = accepted(d.validate(&upper, &good.password).await)?;
    assert_eq!(user.user_principal_name, good.upn);

    // An implicit UPN (sAMAccountName@DNS name; Administrator has no userPrincipalName).
    let admin = accepted(d.validate(&f.admin_upn, &f.admin_password).await)?;
    assert_eq!(admin.sam_account_name.as_deref(), Some("Administrator"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_are_1326() -> anyhow::Result<()> {
    let f = corp()?;
    let d = directory(&f, &[&f.ldaps_url])?;
    let spare = f.user("spare3")?;
    let wrong = bed::secret("Wr0ng");
    assert_eq!(
        d.validate(&spare.upn, &wrong).await,
        Ok(Verdict::Denied(Win32::LogonFailure))
    );
    // The connection whose bind failed is re-bound for the next validation.
    assert_eq!(f.forest_idle(&d), 1);
    accepted(d.validate(&spare.upn, &spare.password).await)?;
    assert_eq!(f.forest_idle(&d), 1);
    let ghost = format!("nobody-{}@{}", Uuid::new_v4().simple(), f.upn_suffix);
    assert_eq!(
        d.validate(&ghost, "Whatever-1").await,
        Ok(Verdict::Denied(Win32::LogonFailure))
    );
    // Refused before any bind.
    assert_eq!(
        d.validate(&spare.upn, "").await,
        Ok(Verdict::Denied(Win32::LogonFailure))
    );
    Ok(())
}

trait Idle {
    fn forest_idle(&self, d: &Directory) -> usize;
}

impl Idle for BedForest {
    fn forest_idle(&self, d: &Directory) -> usize {
        d.route(&format!("x@{}", self.upn_suffix))
            .map(|f| f.idle_connections())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_to_the_next_dc() -> anyhow::Result<()> {
    let f = corp()?;
    let good = f.user("good")?;
    // Nothing listens on port 1: refused at once, the next DC answers.
    let d = directory(&f, &["ldaps://127.0.0.1:1", &f.ldaps_url])?;
    let started = Instant::now();
    accepted(d.validate(&good.upn, &good.password).await)?;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A wrong password from the DC that answered is final: no other DC is asked (the
    // second one would be unreachable, which would turn the verdict into an error).
    let spare = f.user("spare4")?;
    let d = directory(&f, &[&f.ldaps_url, "ldaps://127.0.0.1:2"])?;
    assert_eq!(
        d.validate(&spare.upn, &bed::secret("Wr0ng")).await,
        Ok(Verdict::Denied(Win32::LogonFailure))
    );

    // No DC reachable.
    let d = directory(&f, &["ldaps://127.0.0.1:1", "ldaps://127.0.0.1:2"])?;
    let err = d.validate(&good.upn, &good.password).await;
    assert!(
        matches!(&err, Err(DirectoryError::Unreachable { .. })),
        "{err:?}"
    );
    if let Err(e) = &err {
        assert_eq!(
            e.agent_error(),
            passthru_proto::AgentError::DirectoryUnreachable
        );
        assert!(!e.to_string().contains(&good.password));
    }
    Ok(())
}

/// A TCP relay in front of the DC, on the DC's own address (so its certificate still
/// matches), that counts connections, can cut them all, or can swallow them silently.
struct Relay {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Relay {
    async fn start(ip: IpAddr, upstream: Option<SocketAddr>) -> anyhow::Result<Relay> {
        let listener = TcpListener::bind(SocketAddr::new(ip, 0)).await?;
        let addr = listener.local_addr()?;
        let accepted = Arc::new(AtomicUsize::new(0));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let counter = accepted.clone();
        let cuts = cut.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut cut_rx = cuts.subscribe();
                tokio::spawn(async move {
                    match upstream {
                        Some(up) => {
                            let Ok(mut server) = TcpStream::connect(up).await else {
                                return;
                            };
                            tokio::select! {
                                _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                                _ = cut_rx.changed() => {}
                            }
                        }
                        // Accept, then say nothing until cut.
                        None => {
                            let _ = cut_rx.changed().await;
                        }
                    }
                });
            }
        });
        Ok(Relay {
            addr,
            accepted,
            cut,
        })
    }

    fn url(&self) -> String {
        format!("ldaps://{}", self.addr)
    }

    fn connections(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    fn cut_all(&self) {
        self.cut.send_modify(|g| *g += 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_reused_and_stale_ones_replaced() -> anyhow::Result<()> {
    let f = corp()?;
    let good = f.user("good")?;
    let relay = Relay::start(
        IpAddr::V4(f.ip),
        Some(SocketAddr::new(IpAddr::V4(f.ip), 636)),
    )
    .await?;
    let d = directory(&f, &[&relay.url()])?;

    let first = Instant::now();
    accepted(d.validate(&good.upn, &good.password).await)?;
    let first = first.elapsed();
    let n = 20;
    let started = Instant::now();
    for _ in 0..n {
        accepted(d.validate(&good.upn, &good.password).await)?;
    }
    let per = started.elapsed() / n;
    eprintln!("first validation (TLS handshake, bind, rootDSE, search): {first:?}; then {per:?} each on the pooled connection");
    assert_eq!(
        relay.connections(),
        1,
        "one TLS connection for {} validations",
        n + 1
    );
    assert_eq!(f.forest_idle(&d), 1);

    // Concurrent validations each take their own connection, and every one is kept (up to
    // 64 per DC): a second burst as large opens none.
    let d = Arc::new(d);
    let burst = || {
        (0..12)
            .map(|_| {
                let (d, upn, pw) = (d.clone(), good.upn.clone(), good.password.clone());
                tokio::spawn(async move { d.validate(&upn, &pw).await })
            })
            .collect::<Vec<_>>()
    };
    for t in burst() {
        accepted(t.await?)?;
    }
    let opened = relay.connections();
    assert!(opened > 1);
    assert_eq!(f.forest_idle(&d), opened);
    for t in burst() {
        accepted(t.await?)?;
    }
    assert!(
        relay.connections() <= 12,
        "{} connections for two bursts of 12",
        relay.connections()
    );
    assert_eq!(f.forest_idle(&d), relay.connections());

    // The DC "restarts": every pooled connection dies; the next validation reconnects.
    relay.cut_all();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = relay.connections();
    accepted(d.validate(&good.upn, &good.password).await)?;
    assert_eq!(relay.connections(), before + 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_dc_times_out_and_is_skipped() -> anyhow::Result<()> {
    let f = corp()?;
    let good = f.user("good")?;
    let silent = Relay::start(IpAddr::V4(f.ip), None).await?;
    let timeouts = Timeouts {
        connect: Duration::from_millis(700),
        operation: Duration::from_secs(2),
    };
    let d = Directory::with_timeouts(vec![config(&f, &[&silent.url()])?], timeouts)?;
    let started = Instant::now();
    let err = d.validate(&good.upn, &good.password).await;
    assert!(
        matches!(&err, Err(DirectoryError::Timeout { .. })),
        "{err:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    if let Err(e) = &err {
        assert_eq!(
            e.agent_error(),
            passthru_proto::AgentError::DirectoryTimeout
        );
    }

    // Silent first, real second: the answer comes after one connect timeout.
    let d = Directory::with_timeouts(vec![config(&f, &[&silent.url(), &f.ldaps_url])?], timeouts)?;
    accepted(d.validate(&good.upn, &good.password).await)?;
    // One silent, one refusing: not all timed out, so unreachable.
    let d = Directory::with_timeouts(
        vec![config(&f, &[&silent.url(), "ldaps://127.0.0.1:1"])?],
        timeouts,
    )?;
    let err = d.validate(&good.upn, &good.password).await;
    assert!(
        matches!(&err, Err(DirectoryError::Unreachable { .. })),
        "{err:?}"
    );
    silent.cut_all();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dc_certificate_from_another_ca_is_refused() -> anyhow::Result<()> {
    let f = corp()?;
    let good = f.user("good")?;
    // The other forest's CA when the test bed has one, else a CA that signed nothing.
    let other_ca = match bed::Testbed::from_env()?
        .and_then(|b| b.forest("fabrikam").ok().map(|x| x.ca_file.clone()))
    {
        Some(ca) => ca,
        None => {
            let dir = passthru_testkit::procs::fresh_dir("directory-ca")?;
            let ca = dir.join("ca.pem");
            passthru_testkit::tls::write_unrelated_ca(&ca)?;
            ca
        }
    };
    let mut cfg = config(&f, &[&f.ldaps_url])?;
    cfg.ca_file = other_ca;
    let d = Directory::new(vec![cfg])?;
    let err = d.validate(&good.upn, &good.password).await;
    match &err {
        Err(DirectoryError::Unreachable { detail, .. }) => {
            assert!(detail.to_lowercase().contains("certificate"), "{detail}");
        }
        other => bail!("expected a TLS failure (Unreachable), got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_suffix_is_not_routable() -> anyhow::Result<()> {
    let f = corp()?;
    let d = directory(&f, &[&f.ldaps_url])?;
    let err = d
        .validate("someone@elsewhere.example.test", "Whatever-1")
        .await;
    assert_eq!(
        err,
        Err(DirectoryError::NotRoutable {
            suffix: "elsewhere.example.test".into()
        })
    );
    assert_eq!(
        err.err().map(|e| e.agent_error()),
        Some(passthru_proto::AgentError::NotRoutable)
    );
    Ok(())
}
