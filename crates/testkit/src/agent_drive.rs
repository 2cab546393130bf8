//! Drives one real agent process the way the cloud does, with nothing else in the way: what one
//! agent can do when the cloud, the HTTPS clients and the tokens are not on the same machine
//! (`passthru-bench agent`).
//!
//! [`AgentDriver`] listens with the cloud's own server certificate and key and requires a
//! client certificate from the cloud's agent CA (as the cloud does), accepts the agent's
//! WebSocket, sends `Welcome`, reads `Hello`, then sends `Validate` requests sealed beforehand
//! to the agent's HPKE key ([`seal_requests`], with `passthru_proto::seal::seal_bound`, the
//! cloud's own function) and keeps `window` of them in flight. Each answer's MAC is checked
//! with its request's key, as the cloud checks it. The agent is the release binary, with its
//! registration from the real cloud; only its endpoint is pointed at the driver.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use futures_util::{SinkExt as _, StreamExt as _};
use passthru_agent::clock::now_ms;
use passthru_agent::state_dir::StateDir;
use passthru_proto::seal::{seal_bound, RequestHeader};
use passthru_proto::wire::{AgentToCloud, CloudToAgent};
use passthru_proto::{AnswerKey, Outcome, SessionSealer, ValidationPayload};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::TestUser;

/// Time-out of each step of the agent's connection and of each answer.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

/// One request, sealed and encoded as the text frame the cloud sends.
#[derive(Debug)]
pub struct SealedFrame {
    /// Its request id.
    pub id: Uuid,
    /// The `Validate` message, JSON (shared: sending it copies no bytes).
    pub text: Utf8Bytes,
    /// What the agent's answer must be authenticated with.
    pub answer_key: AnswerKey,
}

/// Seals `count` validation requests for `users` in rotation to the agent key `public_key`,
/// on every core of this machine; each valid `lifetime` from now. With `sessions`, as the
/// cloud seals to an agent that opens sealed sessions (one session per sealing thread,
/// renewed by age and use as the cloud renews it); without, an HPKE context per envelope.
pub fn seal_requests(
    public_key: &[u8],
    tenant_id: Uuid,
    agent_id: Uuid,
    users: &[TestUser],
    count: usize,
    lifetime: Duration,
    sessions: bool,
) -> anyhow::Result<Vec<SealedFrame>> {
    if users.is_empty() {
        bail!("no users to sign in");
    }
    let now_ms = now_ms();
    let lifetime_ms = u64::try_from(lifetime.as_millis())?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = count.div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || -> anyhow::Result<Vec<SealedFrame>> {
                    let range = (t * per)..((t + 1) * per).min(count);
                    let mut out = Vec::with_capacity(range.len());
                    let sealer = SessionSealer::new(public_key)
                        .map_err(|e| anyhow!("the agent's key: {e}"))?;
                    for i in range {
                        let user = &users[i % users.len()];
                        let id = Uuid::new_v4();
                        let header = RequestHeader {
                            request_id: id,
                            tenant_id,
                            agent_id,
                            issued_at_ms: now_ms,
                            expires_at_ms: now_ms + lifetime_ms,
                        };
                        let payload = ValidationPayload::validate(
                            &user.upn,
                            Zeroizing::new(user.password.clone()),
                        );
                        let sealed = if sessions {
                            sealer.seal(header, &payload, Instant::now())
                        } else {
                            seal_bound(public_key, header, &payload)
                        };
                        let (sealed, answer_key) =
                            sealed.map_err(|e| anyhow!("sealing a request: {e}"))?;
                        let text = serde_json::to_string(&CloudToAgent::Validate(sealed))?;
                        out.push(SealedFrame {
                            id,
                            text: text.into(),
                            answer_key,
                        });
                    }
                    Ok(out)
                })
            })
            .collect();
        let mut all = Vec::with_capacity(count);
        for h in handles {
            all.extend(h.join().map_err(|_| anyhow!("a sealing thread failed"))??);
        }
        Ok(all)
    })
}

/// A registered agent, as the driver needs it.
#[derive(Debug, Clone)]
pub struct RegisteredAgent {
    /// Its tenant's id.
    pub tenant_id: Uuid,
    /// Its id.
    pub agent_id: Uuid,
    /// Its HPKE public key (32 bytes).
    pub public_key: Vec<u8>,
}

/// The cloud's side of one agent connection, for the benchmark.
pub struct AgentDriver {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for AgentDriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentDriver")
            .field("listener", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// What a drive did.
#[derive(Debug, Default)]
pub struct Driven {
    /// Validations answered with success.
    pub ok: u64,
    /// Other answers.
    pub errors: u64,
    /// The first of those, described.
    pub first_error: Option<String>,
    /// From the first request sent to the last answer.
    pub secs: f64,
    /// Each successful validation's round trip through the agent, microseconds.
    pub latencies: Vec<u64>,
}

impl AgentDriver {
    /// Listens on a free port of 127.0.0.1 with the TLS files of the cloud whose data dir is
    /// `cloud_data_dir` (`tls/server.pem`, `tls/server-key.pem`, `agent-ca/ca.pem`).
    pub async fn bind(cloud_data_dir: &Path) -> anyhow::Result<AgentDriver> {
        let tls = cloud_data_dir.join("tls");
        let read = |p: std::path::PathBuf| {
            std::fs::read(&p).with_context(|| format!("reading {}", p.display()))
        };
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(&read(tls.join("server.pem"))?)
                .collect::<Result<_, _>>()
                .context("parsing the cloud's server certificate")?;
        let key = PrivateKeyDer::from_pem_slice(&read(tls.join("server-key.pem"))?)
            .context("parsing the cloud's server key")?;
        let mut roots = rustls::RootCertStore::empty();
        for ca in CertificateDer::pem_slice_iter(&read(cloud_data_dir.join("agent-ca/ca.pem"))?) {
            roots.add(ca.context("parsing the agent CA")?)?;
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots))
            .build()
            .context("building the client certificate verifier")?;
        let config = rustls::ServerConfig::builder()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .context("the cloud's server certificate and key")?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        Ok(AgentDriver {
            listener,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// Points the registered agent whose state dir is `state_dir` at this driver (the
    /// `agent_endpoint` of its `agent.json`) and returns who it is and its HPKE public key.
    pub fn redirect(&self, state_dir: &Path) -> anyhow::Result<RegisteredAgent> {
        let state = StateDir::new(state_dir);
        let loaded = state.load().map_err(|e| anyhow!("{e}"))?;
        let mut registration = loaded.registration.clone();
        registration.agent_endpoint = self.endpoint()?;
        state
            .write_registration(&registration)
            .map_err(|e| anyhow!("{e}"))?;
        Ok(RegisteredAgent {
            tenant_id: registration.tenant_id,
            agent_id: registration.agent_id,
            public_key: loaded.hpke.public_bytes().to_vec(),
        })
    }

    /// The `https://127.0.0.1:PORT` endpoint an agent dials.
    pub fn endpoint(&self) -> anyhow::Result<String> {
        Ok(format!("https://{}", self.listener.local_addr()?))
    }

    /// Accepts the agent's connection: mTLS, the WebSocket upgrade, `Welcome`, `Hello`.
    pub async fn accept(&self, tenant_id: Uuid, agent_id: Uuid) -> anyhow::Result<AgentLink> {
        let (tcp, _) = tokio::time::timeout(Duration::from_secs(60), self.listener.accept())
            .await
            .context("the agent did not connect within 60 s")??;
        tcp.set_nodelay(true)?;
        let tls = tokio::time::timeout(STEP_TIMEOUT, self.acceptor.accept(tcp))
            .await
            .context("TLS handshake time-out")?
            .context("TLS handshake with the agent")?;
        let mut ws = tokio::time::timeout(STEP_TIMEOUT, tokio_tungstenite::accept_async(tls))
            .await
            .context("WebSocket upgrade time-out")?
            .context("WebSocket upgrade")?;
        let welcome = CloudToAgent::Welcome {
            agent_id,
            tenant_id,
            server_time_ms: now_ms(),
            heartbeat_seconds: 10,
        };
        ws.send(Message::Text(serde_json::to_string(&welcome)?.into()))
            .await?;
        loop {
            match next_message(&mut ws).await? {
                AgentToCloud::Hello { .. } => break,
                _ => continue,
            }
        }
        Ok(AgentLink { ws })
    }
}

/// An accepted agent.
pub struct AgentLink {
    ws: WebSocketStream<TlsStream<TcpStream>>,
}

impl std::fmt::Debug for AgentLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentLink").finish_non_exhaustive()
    }
}

async fn next_message(
    ws: &mut WebSocketStream<TlsStream<TcpStream>>,
) -> anyhow::Result<AgentToCloud> {
    loop {
        let msg = tokio::time::timeout(STEP_TIMEOUT, ws.next())
            .await
            .context("no message from the agent within 15 s")?
            .ok_or_else(|| anyhow!("the agent closed its connection"))??;
        if let Message::Text(t) = msg {
            return serde_json::from_str(t.as_str()).context("a message from the agent");
        }
    }
}

impl AgentLink {
    /// Sends `frames` in order, keeping `window` unanswered, until they are all sent or
    /// `duration` has passed, then waits for the answers of those sent.
    pub async fn drive(
        &mut self,
        frames: &[SealedFrame],
        next: &mut usize,
        window: usize,
        duration: Duration,
    ) -> anyhow::Result<Driven> {
        let window = window.max(1);
        let started = Instant::now();
        let stop = started + duration;
        // Each request in flight: when it was sent, and its frame.
        let mut sent_at: HashMap<Uuid, (Instant, usize)> = HashMap::with_capacity(window * 2);
        let mut d = Driven::default();
        loop {
            let mut fed = false;
            while sent_at.len() < window && *next < frames.len() && Instant::now() < stop {
                let f = &frames[*next];
                sent_at.insert(f.id, (Instant::now(), *next));
                *next += 1;
                self.ws.feed(Message::Text(f.text.clone())).await?;
                fed = true;
            }
            if fed {
                self.ws.flush().await?;
            }
            if sent_at.is_empty() {
                break;
            }
            if let AgentToCloud::Result {
                request_id,
                outcome,
                repeated,
                mac,
                ..
            } = next_message(&mut self.ws).await?
            {
                let Some((at, index)) = sent_at.remove(&request_id) else {
                    continue;
                };
                let key = &frames[index].answer_key;
                if let Err(refusal) = key.check(request_id, &outcome, repeated, mac.as_deref()) {
                    d.errors += 1;
                    d.first_error
                        .get_or_insert_with(|| format!("answer refused: {refusal}"));
                    continue;
                }
                match outcome {
                    Outcome::Success(_) => {
                        d.ok += 1;
                        d.latencies.push(at.elapsed().as_micros() as u64);
                    }
                    other => {
                        d.errors += 1;
                        d.first_error.get_or_insert_with(|| format!("{other:?}"));
                    }
                }
            }
        }
        d.secs = started.elapsed().as_secs_f64();
        Ok(d)
    }
}
