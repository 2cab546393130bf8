//! The agent's connection loop against a fake cloud on 127.0.0.1: mutual TLS, Welcome/Hello,
//! sealed requests answered (success, denial, replay, expiry; each answer that opened its
//! envelope authenticated with that envelope's key), a reconnect after the cloud drops the
//! link, and the drain on shutdown; with several cloud addresses, a closed one skipped and a
//! lost one left for another at once.

use std::error::Error;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use passthru_agent::admission::{Admission, Identity};
use passthru_agent::connect::Endpoint;
use passthru_agent::run::stay_connected;
use passthru_agent::session::{AgentContext, HelloInfo};
use passthru_agent::state_dir::{AgentState, Registration, StateDir};
use passthru_agent::tls_config;
use passthru_agent::trace_log::TraceLog;
use passthru_agent::validator::{Validator, Verdict};
use passthru_proto::answer::{AnswerRefusal, Binding};
use passthru_proto::seal::{seal_bound, RequestHeader};
use passthru_proto::wire::{AgentToCloud, CloudToAgent, DirectoryUser, PROTOCOL_VERSION};
use passthru_proto::{AgentError, AgentKeyPair, AnswerKey, Outcome, ValidationPayload, Win32};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;
use zeroize::Zeroizing;

type TestResult = Result<(), Box<dyn Error>>;

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("passthru-agent-it-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Accepts "right" for alice; everything else is a wrong password.
struct FakeDirectory;

impl Validator for FakeDirectory {
    async fn validate(&self, upn: &str, password: &str) -> Result<Verdict, AgentError> {
        if upn == "alice@corp.example.test" && password == "right" {
            Ok(Verdict::Accepted(DirectoryUser {
                object_guid: Uuid::nil(),
                user_principal_name: upn.to_string(),
                sam_account_name: Some("alice".into()),
                display_name: None,
                mail: None,
                consistency_guid: None,
            }))
        } else {
            Ok(Verdict::Denied(Win32::LogonFailure))
        }
    }
}

/// What the fake cloud saw on one connection.
#[derive(Debug)]
enum Seen {
    Path(String),
    FromAgent(AgentToCloud),
    Closed,
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

struct Pki {
    server: rustls::ServerConfig,
    server_ca_pem: String,
    client_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    client_key: PrivateKeyDer<'static>,
}

fn pki() -> Result<Pki, Box<dyn Error>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let ca = |name: &str| -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        CertifiedIssuer::self_signed(p, KeyPair::generate()?)
    };
    let server_ca = ca("deployment CA")?;
    let agent_ca = ca("agent CA")?;
    let server_key = KeyPair::generate()?;
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?
        .signed_by(&server_key, &server_ca)?;
    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params.signed_by(&client_key, &agent_ca)?;

    let mut agent_roots = rustls::RootCertStore::empty();
    agent_roots.add(agent_ca.der().clone())?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(agent_roots),
        provider.clone(),
    )
    .build()?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pki {
        server,
        server_ca_pem: server_ca.pem(),
        client_chain: vec![client_cert.der().clone()],
        client_key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
    })
}

/// A fake cloud: each connection gets Welcome, then the frames the test sends on `to_agent`;
/// everything the agent sends comes back on the returned receiver. `(n, None)` drops
/// connection n; `(0, None)` stops the whole cloud, listener included (as if killed).
async fn fake_cloud(
    server: rustls::ServerConfig,
    agent_id: Uuid,
    tenant_id: Uuid,
) -> Result<
    (
        std::net::SocketAddr,
        mpsc::UnboundedReceiver<(usize, Seen)>,
        mpsc::UnboundedSender<(usize, Option<CloudToAgent>)>,
    ),
    Box<dyn Error>,
> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<(usize, Option<CloudToAgent>)>();
    tokio::spawn(async move {
        let mut conn = 0usize;
        while let Ok((tcp, _)) = listener.accept().await {
            conn += 1;
            let Ok(tls) = acceptor.accept(tcp).await else {
                continue;
            };
            let seen = seen_tx.clone();
            #[allow(clippy::result_large_err)] // the signature is tungstenite's
            let callback = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                            resp| {
                let _ = seen.send((conn, Seen::Path(req.uri().path().to_string())));
                Ok(resp)
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(tls, callback).await else {
                continue;
            };
            let (mut sink, mut stream) = ws.split();
            let welcome = CloudToAgent::Welcome {
                agent_id,
                tenant_id,
                server_time_ms: now_ms(),
                heartbeat_seconds: 1,
            };
            let Ok(w) = serde_json::to_string(&welcome) else {
                return;
            };
            if sink.send(Message::text(w)).await.is_err() {
                continue;
            }
            // Serve this connection until the test says to drop it (None) or it closes.
            loop {
                tokio::select! {
                    cmd = cmd_rx.recv() => match cmd {
                        Some((c, Some(msg))) if c == conn => {
                            let Ok(text) = serde_json::to_string(&msg) else { break };
                            if sink.send(Message::text(text)).await.is_err() { break }
                        }
                        Some((0, None)) => return,
                        Some((c, None)) if c == conn => break,
                        Some(_) => {}
                        None => return,
                    },
                    frame = stream.next() => match frame {
                        Some(Ok(Message::Text(t))) => {
                            // Statistics come every heartbeat, between the answers: not checked here.
                            match serde_json::from_str::<AgentToCloud>(t.as_str()) {
                                Ok(AgentToCloud::Stats(_)) => {}
                                Ok(m) => {
                                    let _ = seen_tx.send((conn, Seen::FromAgent(m)));
                                }
                                Err(_) => {}
                            }
                        }
                        Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                            let _ = seen_tx.send((conn, Seen::Closed));
                            break;
                        }
                        Some(Ok(_)) => {}
                    },
                }
            }
        }
    });
    Ok((addr, seen_rx, cmd_tx))
}

async fn next_seen(
    rx: &mut mpsc::UnboundedReceiver<(usize, Seen)>,
) -> Result<(usize, Seen), Box<dyn Error>> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await?
        .ok_or_else(|| "the fake cloud stopped".into())
}

fn sealed(
    public: &[u8],
    tenant_id: Uuid,
    agent_id: Uuid,
    password: &str,
    expires_in_ms: i64,
) -> Result<(passthru_proto::SealedRequest, AnswerKey), Box<dyn Error>> {
    let now = now_ms();
    let header = RequestHeader {
        request_id: Uuid::new_v4(),
        tenant_id,
        agent_id,
        issued_at_ms: now,
        expires_at_ms: now.saturating_add_signed(expires_in_ms),
    };
    let payload = ValidationPayload {
        username: "alice@corp.example.test".into(),
        password: Zeroizing::new(password.into()),
        operation: Default::default(),
    };
    Ok(seal_bound(public, header, &payload)?)
}

/// How the cloud would take an answer the fake cloud saw, checked with its request's key.
fn binding(seen: &Seen, key: &AnswerKey) -> Result<Binding, AnswerRefusal> {
    match seen {
        Seen::FromAgent(AgentToCloud::Result {
            request_id,
            outcome,
            repeated,
            mac,
            ..
        }) => key.check(*request_id, outcome, *repeated, mac.as_deref()),
        _ => Err(AnswerRefusal::Missing),
    }
}

#[tokio::test]
async fn validates_reconnects_and_drains() -> TestResult {
    let tmp = TempDir::new()?;
    let pki = pki()?;
    let agent_id = Uuid::new_v4();
    let tenant_id = Uuid::new_v4();
    let (addr, mut seen, cloud) = fake_cloud(pki.server, agent_id, tenant_id).await?;

    let ca_path = tmp.0.join("cloud-ca.pem");
    std::fs::write(&ca_path, &pki.server_ca_pem)?;
    let hpke = AgentKeyPair::generate();
    let public = hpke.public_bytes().to_vec();
    let state = AgentState {
        registration: Registration {
            agent_id,
            tenant_id,
            tenant_name: "contoso".into(),
            cloud_url: format!("https://{addr}"),
            agent_endpoint: format!("https://{addr}"),
            registered_at: "2026-01-01T00:00:00Z".into(),
        },
        client_cert_chain: pki.client_chain,
        client_key: pki.client_key,
        hpke,
        cloud_ca: Some(ca_path),
        renewed: None,
    };
    let tls = tls_config::client_config(&state)?;
    let endpoint = Endpoint::new(&state.registration.agent_endpoint, tenant_id)?;
    let trace_path = tmp.0.join("trace.log");
    let ctx = Arc::new(AgentContext {
        admission: Admission::new(
            Identity {
                tenant_id,
                agent_id,
                keys: state.hpke,
            },
            Duration::from_secs(300),
            1000,
        ),
        validator: FakeDirectory,
        limit: Arc::new(Semaphore::new(4)),
        trace: TraceLog::open(&trace_path)?,
        hello: HelloInfo {
            version: "9.9.9".into(),
            host: "agent-host".into(),
            upn_suffixes: vec!["corp.example.test".into()],
            sync_forests: Vec::new(),
        },
        skew_tolerance: Duration::from_secs(300),
        stats: Default::default(),
        wrong_passwords: passthru_agent::wrong_passwords::WrongPasswords::new(
            passthru_agent::wrong_passwords::WINDOW,
        )
        .map_err(|_| "no random key")?,
        renewal: None,
        updater: None,
        admin_log: passthru_agent::admin_log::AdminLog::disabled(),
    });
    let (stop, shutdown) = watch::channel(false);
    let agent = tokio::spawn(async move {
        stay_connected(ctx, std::slice::from_ref(&endpoint), tls, shutdown, None).await
    });

    // First connection: the path, then Hello.
    let (c, path) = next_seen(&mut seen).await?;
    assert!(
        matches!(path, Seen::Path(ref p) if *p == format!("/{tenant_id}/agent/v1/connect")),
        "{path:?}"
    );
    let (_, hello) = next_seen(&mut seen).await?;
    assert!(
        matches!(hello, Seen::FromAgent(AgentToCloud::Hello { protocol: PROTOCOL_VERSION, ref upn_suffixes, .. }) if upn_suffixes == &vec!["corp.example.test".to_string()]),
        "{hello:?}"
    );

    // Right password, wrong password, replay, expired.
    let (ok, ok_key) = sealed(&public, tenant_id, agent_id, "right", 10_000)?;
    cloud.send((c, Some(CloudToAgent::Validate(ok.clone()))))?;
    let (_, answer) = next_seen(&mut seen).await?;
    assert!(
        matches!(answer, Seen::FromAgent(AgentToCloud::Result { request_id, outcome: Outcome::Success(_), .. }) if request_id == ok.request_id),
        "{answer:?}"
    );
    assert_eq!(binding(&answer, &ok_key), Ok(Binding::Bound));
    let (wrong, wrong_key) = sealed(&public, tenant_id, agent_id, "wrong", 10_000)?;
    cloud.send((c, Some(CloudToAgent::Validate(wrong.clone()))))?;
    let (_, answer) = next_seen(&mut seen).await?;
    assert_eq!(binding(&answer, &wrong_key), Ok(Binding::Bound));
    // Another request's key does not verify it.
    assert_eq!(binding(&answer, &ok_key), Err(AnswerRefusal::Mismatch));
    assert!(
        matches!(
            answer,
            Seen::FromAgent(AgentToCloud::Result {
                outcome: Outcome::Denied {
                    win32: Win32::LogonFailure
                },
                ..
            })
        ),
        "{answer:?}"
    );
    cloud.send((c, Some(CloudToAgent::Validate(ok.clone()))))?;
    let (_, answer) = next_seen(&mut seen).await?;
    assert!(
        matches!(
            answer,
            Seen::FromAgent(AgentToCloud::Result {
                outcome: Outcome::Error {
                    error: AgentError::Replayed
                },
                ..
            })
        ),
        "{answer:?}"
    );
    let (expired, _) = sealed(&public, tenant_id, agent_id, "right", -1)?;
    cloud.send((c, Some(CloudToAgent::Validate(expired.clone()))))?;
    let (_, answer) = next_seen(&mut seen).await?;
    assert!(
        matches!(
            answer,
            Seen::FromAgent(AgentToCloud::Result {
                outcome: Outcome::Error {
                    error: AgentError::Expired
                },
                ..
            })
        ),
        "{answer:?}"
    );

    // The cloud drops the connection: the agent comes back on its own.
    cloud.send((c, None))?;
    let (c2, path) = loop {
        let (c2, s) = next_seen(&mut seen).await?;
        if let Seen::Path(_) = s {
            break (c2, s);
        }
    };
    assert!(c2 > c, "{path:?}");
    let (_, hello) = next_seen(&mut seen).await?;
    assert!(matches!(hello, Seen::FromAgent(AgentToCloud::Hello { .. })));
    // The replay cache survives the reconnect.
    cloud.send((c2, Some(CloudToAgent::Validate(ok.clone()))))?;
    let (_, answer) = next_seen(&mut seen).await?;
    assert!(
        matches!(
            answer,
            Seen::FromAgent(AgentToCloud::Result {
                outcome: Outcome::Error {
                    error: AgentError::Replayed
                },
                ..
            })
        ),
        "{answer:?}"
    );

    // Shutdown: Draining, then the connection closes and the loop returns.
    stop.send(true)?;
    let (_, draining) = next_seen(&mut seen).await?;
    assert!(
        matches!(draining, Seen::FromAgent(AgentToCloud::Draining)),
        "{draining:?}"
    );
    let (_, closed) = next_seen(&mut seen).await?;
    assert!(matches!(closed, Seen::Closed), "{closed:?}");
    tokio::time::timeout(Duration::from_secs(15), agent).await??;

    // Four failures were traced, with their codes, and no password or user name.
    let trace = std::fs::read_to_string(&trace_path)?;
    let lines: Vec<&str> = trace.lines().collect();
    assert_eq!(lines.len(), 4, "{trace}");
    assert!(lines[0].ends_with(&format!(
        "RequestId: '{}'. Reason: '1326'.",
        wrong.request_id
    )));
    assert!(lines[1].ends_with(&format!("RequestId: '{}'. Reason: '80010'.", ok.request_id)));
    assert!(lines[2].ends_with(&format!(
        "RequestId: '{}'. Reason: '80002'.",
        expired.request_id
    )));
    assert!(!trace.contains("right") && !trace.contains("wrong") && !trace.contains("alice"));
    Ok(())
}

#[tokio::test]
async fn a_cloud_certificate_from_another_ca_is_refused_with_a_clear_error() -> TestResult {
    let tmp = TempDir::new()?;
    let cloud_pki = pki()?;
    let other = pki()?;
    let (addr, _seen, _cloud) =
        fake_cloud(cloud_pki.server, Uuid::new_v4(), Uuid::new_v4()).await?;
    let ca_path = tmp.0.join("cloud-ca.pem");
    std::fs::write(&ca_path, &other.server_ca_pem)?;
    let state = AgentState {
        registration: Registration {
            agent_id: Uuid::new_v4(),
            tenant_id: Uuid::new_v4(),
            tenant_name: "contoso".into(),
            cloud_url: format!("https://{addr}"),
            agent_endpoint: format!("https://{addr}"),
            registered_at: String::new(),
        },
        client_cert_chain: cloud_pki.client_chain,
        client_key: cloud_pki.client_key,
        hpke: AgentKeyPair::generate(),
        cloud_ca: Some(ca_path),
        renewed: None,
    };
    let tls = tls_config::client_config(&state)?;
    let endpoint = Endpoint::new(&state.registration.agent_endpoint, Uuid::new_v4())?;
    let err = passthru_agent::connect::connect(&endpoint, tls).await.err();
    assert!(
        matches!(
            err,
            Some(passthru_agent::link_error::LinkError::UntrustedCertificate { .. })
        ),
        "{err:?}"
    );
    Ok(())
}

/// The agent's TLS configuration and context (trace log in a directory), and its HPKE public
/// key.
type AgentSide = (
    Arc<rustls::ClientConfig>,
    Arc<AgentContext<FakeDirectory>>,
    Vec<u8>,
);

/// An agent for `pki`'s cloud, its files in `dir`.
fn agent_side(
    dir: &std::path::Path,
    pki: &Pki,
    agent_id: Uuid,
    tenant_id: Uuid,
) -> Result<AgentSide, Box<dyn Error>> {
    let ca_path = dir.join("cloud-ca.pem");
    std::fs::write(&ca_path, &pki.server_ca_pem)?;
    let state = AgentState {
        registration: Registration {
            agent_id,
            tenant_id,
            tenant_name: "contoso".into(),
            cloud_url: "https://127.0.0.1:1".into(),
            agent_endpoint: "https://127.0.0.1:1".into(),
            registered_at: String::new(),
        },
        client_cert_chain: pki.client_chain.clone(),
        client_key: pki.client_key.clone_key(),
        hpke: AgentKeyPair::generate(),
        cloud_ca: Some(ca_path),
        renewed: None,
    };
    let tls = tls_config::client_config(&state)?;
    let public = state.hpke.public_bytes().to_vec();
    let ctx = Arc::new(AgentContext {
        admission: Admission::new(
            Identity {
                tenant_id,
                agent_id,
                keys: state.hpke,
            },
            Duration::from_secs(300),
            1000,
        ),
        validator: FakeDirectory,
        limit: Arc::new(Semaphore::new(4)),
        trace: TraceLog::open(&dir.join("trace.log"))?,
        hello: HelloInfo {
            version: "9.9.9".into(),
            host: "agent-host".into(),
            upn_suffixes: vec!["corp.example.test".into()],
            sync_forests: Vec::new(),
        },
        skew_tolerance: Duration::from_secs(300),
        stats: Default::default(),
        wrong_passwords: passthru_agent::wrong_passwords::WrongPasswords::new(
            passthru_agent::wrong_passwords::WINDOW,
        )
        .map_err(|_| "no random key")?,
        renewal: None,
        updater: None,
        admin_log: passthru_agent::admin_log::AdminLog::disabled(),
    });
    Ok((tls, ctx, public))
}

/// Waits (at most `limit`) for the agent's Hello on a fake cloud's connection.
async fn hello_within(
    seen: &mut mpsc::UnboundedReceiver<(usize, Seen)>,
    limit: Duration,
) -> Result<usize, Box<dyn Error>> {
    tokio::time::timeout(limit, async {
        while let Some((c, s)) = seen.recv().await {
            if let Seen::FromAgent(AgentToCloud::Hello { .. }) = s {
                return Ok(c);
            }
        }
        Err("the fake cloud stopped".into())
    })
    .await
    .map_err(|_| format!("no hello within {limit:?}"))?
}

/// Waits (at most 5 s) until the state dir records `address` as the connection.
async fn recorded(state: &StateDir, address: Option<&str>) -> TestResult {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let now = state.connection().map(|r| r.address);
        if now.as_ref().map(|a| a.as_deref()) == Some(address) {
            return Ok(());
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("recorded {now:?}, not {address:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_closed_cloud_address_is_skipped_at_once() -> TestResult {
    let tmp = TempDir::new()?;
    let pki = pki()?;
    let (agent_id, tenant_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (tls, ctx, _public) = agent_side(&tmp.0, &pki, agent_id, tenant_id)?;
    let (addr, mut seen, _cloud) = fake_cloud(pki.server.clone(), agent_id, tenant_id).await?;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let endpoints = vec![
        Endpoint::new(&format!("https://{closed}"), tenant_id)?,
        Endpoint::new(&format!("https://{addr}"), tenant_id)?,
    ];
    let state = StateDir::new(tmp.0.join("state"));
    state.create()?;
    let (stop, shutdown) = watch::channel(false);
    let agent_state = state.clone();
    let started = tokio::time::Instant::now();
    let agent = tokio::spawn(async move {
        stay_connected(ctx, &endpoints, tls, shutdown, Some(&agent_state)).await
    });
    // Whichever address the agent starts at, the live one is reached without a backoff
    // delay (a refused dial moves on at once).
    hello_within(&mut seen, Duration::from_secs(2)).await?;
    assert!(started.elapsed() < Duration::from_secs(2));
    recorded(&state, Some(&format!("https://{addr}"))).await?;
    stop.send(true)?;
    tokio::time::timeout(Duration::from_secs(15), agent).await??;
    Ok(())
}

#[tokio::test]
async fn losing_one_cloud_instance_moves_to_another_at_once() -> TestResult {
    let tmp = TempDir::new()?;
    let pki = pki()?;
    let (agent_id, tenant_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (tls, ctx, public) = agent_side(&tmp.0, &pki, agent_id, tenant_id)?;
    let (a, mut seen_a, cloud_a) = fake_cloud(pki.server.clone(), agent_id, tenant_id).await?;
    let (b, mut seen_b, cloud_b) = fake_cloud(pki.server.clone(), agent_id, tenant_id).await?;
    let endpoints = vec![
        Endpoint::new(&format!("https://{a}"), tenant_id)?,
        Endpoint::new(&format!("https://{b}"), tenant_id)?,
    ];
    let state = StateDir::new(tmp.0.join("state"));
    state.create()?;
    let (stop, shutdown) = watch::channel(false);
    let agent_state = state.clone();
    let agent = tokio::spawn(async move {
        stay_connected(ctx, &endpoints, tls, shutdown, Some(&agent_state)).await
    });

    // The agent connects to one of the two (at random)...
    let first_is_a = tokio::time::timeout(Duration::from_secs(10), async {
        tokio::select! {
            _ = hello_within(&mut seen_a, Duration::from_secs(10)) => true,
            _ = hello_within(&mut seen_b, Duration::from_secs(10)) => false,
        }
    })
    .await?;
    let (first, killed, mut other_seen, other, other_cloud) = if first_is_a {
        (a, cloud_a, seen_b, b, cloud_b)
    } else {
        (b, cloud_b, seen_a, a, cloud_a)
    };
    recorded(&state, Some(&format!("https://{first}"))).await?;

    // ...which dies: the agent is on the other one at once (no backoff delay), and says so.
    let lost = tokio::time::Instant::now();
    killed.send((0, None))?;
    let c = hello_within(&mut other_seen, Duration::from_secs(2)).await?;
    assert!(
        lost.elapsed() < Duration::from_secs(2),
        "{:?}",
        lost.elapsed()
    );
    recorded(&state, Some(&format!("https://{other}"))).await?;

    // It serves there, and drains there on shutdown.
    let (ok, ok_key) = sealed(&public, tenant_id, agent_id, "right", 10_000)?;
    other_cloud.send((c, Some(CloudToAgent::Validate(ok.clone()))))?;
    let answer = loop {
        let (_, s) = next_seen(&mut other_seen).await?;
        if let Seen::FromAgent(AgentToCloud::Result { .. }) = s {
            break s;
        }
    };
    assert!(
        matches!(answer, Seen::FromAgent(AgentToCloud::Result { request_id, outcome: Outcome::Success(_), .. }) if request_id == ok.request_id),
        "{answer:?}"
    );
    assert_eq!(binding(&answer, &ok_key), Ok(Binding::Bound));
    stop.send(true)?;
    let draining = loop {
        let (_, s) = next_seen(&mut other_seen).await?;
        if let Seen::FromAgent(m) = s {
            break m;
        }
    };
    assert!(matches!(draining, AgentToCloud::Draining), "{draining:?}");
    tokio::time::timeout(Duration::from_secs(15), agent).await??;
    Ok(())
}

/// With updates on, the agent asks for a release over its connection about every check
/// interval (its version and platform), and judges what it is offered with its pinned key:
/// a release signed with another key, and one older than itself, are refused, each with one
/// admin log line; nothing is downloaded.
#[tokio::test]
async fn asks_for_updates_and_refuses_what_the_pinned_key_did_not_sign() -> TestResult {
    use passthru_agent::admin_log::AdminLog;
    use passthru_agent::update::publish::{sign_manifest, KeyPair};
    use passthru_agent::update::staging::Staging;
    use passthru_agent::update::verify::PublisherKey;
    use passthru_agent::update::{Updater, UpdaterSetup};
    use passthru_proto::release::{this_target, Manifest, PRODUCT};

    let tmp = TempDir::new()?;
    let pki = pki()?;
    let agent_id = Uuid::new_v4();
    let tenant_id = Uuid::new_v4();
    let (addr, mut seen, cloud) = fake_cloud(pki.server, agent_id, tenant_id).await?;
    let ca_path = tmp.0.join("cloud-ca.pem");
    std::fs::write(&ca_path, &pki.server_ca_pem)?;
    let state = AgentState {
        registration: Registration {
            agent_id,
            tenant_id,
            tenant_name: "contoso".into(),
            cloud_url: format!("https://{addr}"),
            agent_endpoint: format!("https://{addr}"),
            registered_at: "2026-01-01T00:00:00Z".into(),
        },
        client_cert_chain: pki.client_chain,
        client_key: pki.client_key,
        hpke: AgentKeyPair::generate(),
        cloud_ca: Some(ca_path),
        renewed: None,
    };
    let tls = tls_config::client_config(&state)?;
    let endpoint = Endpoint::new(&state.registration.agent_endpoint, tenant_id)?;
    let publisher = KeyPair::generate()?;
    let updater = Updater::new(
        UpdaterSetup {
            own_version: "0.2.0".into(),
            target: this_target(),
            key: PublisherKey::new(publisher.public_key(), "test"),
            check_interval: Duration::from_secs(1),
            tenant_id,
        },
        Staging::new(&tmp.0),
        AdminLog::open(&tmp.0)?,
    );
    let ctx = Arc::new(AgentContext {
        admission: Admission::new(
            Identity {
                tenant_id,
                agent_id,
                keys: state.hpke,
            },
            Duration::from_secs(300),
            1000,
        ),
        validator: FakeDirectory,
        limit: Arc::new(Semaphore::new(4)),
        trace: TraceLog::open(&tmp.0.join("trace.log"))?,
        hello: HelloInfo {
            version: "0.2.0".into(),
            host: "agent-host".into(),
            upn_suffixes: vec!["corp.example.test".into()],
            sync_forests: Vec::new(),
        },
        skew_tolerance: Duration::from_secs(300),
        stats: Default::default(),
        wrong_passwords: passthru_agent::wrong_passwords::WrongPasswords::new(
            passthru_agent::wrong_passwords::WINDOW,
        )
        .map_err(|_| "no random key")?,
        renewal: None,
        updater: Some(updater),
        admin_log: AdminLog::disabled(),
    });
    let (stop, shutdown) = watch::channel(false);
    let agent = tokio::spawn(async move {
        stay_connected(ctx, std::slice::from_ref(&endpoint), tls, shutdown, None).await
    });

    // Hello, then a check within the interval (heartbeats tick every second here).
    let mut checks = 0;
    let started = std::time::Instant::now();
    while checks < 2 {
        let (c, s) = next_seen(&mut seen).await?;
        if let Seen::FromAgent(AgentToCloud::UpdateCheck { version, target }) = &s {
            assert_eq!(
                (version.as_str(), target.as_str()),
                ("0.2.0", this_target().as_str())
            );
            checks += 1;
            let manifest = |version: &str| Manifest {
                product: PRODUCT.into(),
                version: version.into(),
                target: this_target(),
                sha256: "ab".repeat(32),
                size: 10,
                min_cloud_version: "0.0.0".into(),
            };
            let offer = if checks == 1 {
                sign_manifest(&KeyPair::generate()?, &manifest("0.3.0"))
            } else {
                sign_manifest(&publisher, &manifest("0.1.0"))
            };
            cloud.send((
                c,
                Some(CloudToAgent::UpdateOffer {
                    signed_manifest: offer.to_json(),
                }),
            ))?;
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let log_path = tmp.0.join("admin.log");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.lines().count() >= 2 || std::time::Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 2, "{log}");
    assert!(
        lines[0].contains("[update] refused an offered release: bad signature"),
        "{log}"
    );
    assert!(
        lines[1].contains("[update] refused version 0.1.0: downgrade (it is not newer than this agent's version 0.2.0)"),
        "{log}"
    );
    assert!(!tmp.0.join("updates").join("passthru-agent-0.3.0").exists());
    stop.send(true)?;
    agent.await?;
    Ok(())
}
