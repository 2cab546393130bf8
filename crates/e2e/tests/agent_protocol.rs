//! The real `passthru-agent` process against a scripted cloud endpoint: the test registers the
//! agent with the real cloud, stops the cloud, and serves the agent endpoint itself on the same
//! port with the cloud's own certificate and agent CA. It then sends crafted sealed requests:
//! a valid one, the same one again (replay), an expired one, an altered one, one sealed to
//! another key, and one from a skewed clock. Each must get its own refusal; the AD checks run
//! against the real Samba forest. The success carries a MAC made with the key of the envelope
//! it opened; the refusals, made without opening it, carry none.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use passthru_proto::answer::Binding;
use passthru_proto::seal::{self, AgentKeyPair, RequestHeader, ValidationPayload};
use passthru_proto::wire::{AgentError, AgentToCloud, CloudToAgent, Outcome};
use passthru_proto::SealedRequest;
use passthru_testkit::bed;
use passthru_testkit::fixture::{AgentStage, PtaSetup};
use passthru_testkit::procs::fresh_dir;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use uuid::Uuid;
use zeroize::Zeroizing;

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn tls_acceptor(data_dir: &std::path::Path) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(data_dir.join("tls/server.pem"))?
            .collect::<Result<_, _>>()?;
    let key = PrivateKeyDer::from_pem_file(data_dir.join("tls/server-key.pem"))?;
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(data_dir.join("agent-ca/ca.pem"))? {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_refuses_replayed_expired_altered_and_foreign_requests() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut t = PtaSetup::new(&fresh_dir("protocol")?, &corp)
        .without_domain()
        .without_app()
        .agent(AgentStage::Registered)
        .pta(false)
        .start()?;
    let mut agent = t.take_agent()?;
    let reg: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(
        agent.state_dir.join("agent.json"),
    )?)?;
    let agent_id: Uuid = reg["agent_id"].as_str().unwrap_or_default().parse()?;
    let tenant_id: Uuid = reg["tenant_id"].as_str().unwrap_or_default().parse()?;
    let keys = AgentKeyPair::from_private_bytes(&std::fs::read(agent.state_dir.join("hpke-key"))?)?;
    let listen = t.cloud.listen.clone();
    t.cloud.stop();

    // Serve the agent endpoint ourselves, then start the agent.
    let acceptor = tls_acceptor(&t.cloud.data_dir)?;
    let listener = tokio::net::TcpListener::bind(&listen).await?;
    agent.run()?;
    let (tcp, _) = tokio::time::timeout(Duration::from_secs(30), listener.accept()).await??;
    let tls = acceptor.accept(tcp).await?;
    let mut ws = tokio_tungstenite::accept_async(tls).await?;
    let welcome = CloudToAgent::Welcome {
        agent_id,
        tenant_id,
        server_time_ms: now_ms(),
        heartbeat_seconds: 30,
    };
    ws.send(Message::Text(serde_json::to_string(&welcome)?.into()))
        .await?;

    // Sends a sealed request and collects the next Result (skipping Hello and pings): its
    // request id, outcome, `repeated` flag and MAC.
    type Answer = (Uuid, Outcome, bool, Option<String>);
    async fn exchange<S>(ws: &mut S, sealed: SealedRequest) -> anyhow::Result<Answer>
    where
        S: futures_util::Sink<Message, Error = WsError>
            + futures_util::Stream<Item = Result<Message, WsError>>
            + Unpin,
    {
        let m = serde_json::to_string(&CloudToAgent::Validate(sealed))?;
        ws.send(Message::Text(m.into())).await?;
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(20), ws.next())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the agent closed the connection"))??;
            if let Message::Text(t) = msg {
                if let AgentToCloud::Result {
                    request_id,
                    outcome,
                    repeated,
                    mac,
                    ..
                } = serde_json::from_str(t.as_str())?
                {
                    return Ok((request_id, outcome, repeated, mac));
                }
            }
        }
    }

    let good = corp.user("good")?;
    let payload = ValidationPayload {
        username: good.upn.clone(),
        password: Zeroizing::new(good.password.clone()),
        operation: Default::default(),
    };
    let header = |issued: u64, expires: u64| RequestHeader {
        request_id: Uuid::new_v4(),
        tenant_id,
        agent_id,
        issued_at_ms: issued,
        expires_at_ms: expires,
    };
    let refused = |error: AgentError| Outcome::Error { error };

    // 1. A valid request: the DC accepts the password.
    let now = now_ms();
    let (valid, answer_key) =
        seal::seal_bound(keys.public_bytes(), header(now, now + 10_000), &payload)?;
    let (id, outcome, repeated, mac) = exchange(&mut ws, valid.clone()).await?;
    assert_eq!(id, valid.request_id);
    assert!(
        matches!(outcome, Outcome::Success(ref u) if u.user_principal_name.eq_ignore_ascii_case(&good.upn)),
        "{outcome:?}"
    );
    assert_eq!(
        answer_key.check(id, &outcome, repeated, mac.as_deref()),
        Ok(Binding::Bound)
    );

    // 2. The same envelope again: a replay, answered without opening it (no MAC).
    let (id, outcome, _, mac) = exchange(&mut ws, valid.clone()).await?;
    assert_eq!(id, valid.request_id);
    assert_eq!(outcome, refused(AgentError::Replayed));
    assert_eq!(mac, None);

    // 3. Expired before it arrived.
    let now = now_ms();
    let expired = seal::seal(
        keys.public_bytes(),
        header(now - 20_000, now - 10_000),
        &payload,
    )?;
    assert_eq!(
        exchange(&mut ws, expired).await?.1,
        refused(AgentError::Expired)
    );

    // 4. Altered in transit (the deadline moved): it no longer opens.
    let now = now_ms();
    let mut altered = seal::seal(keys.public_bytes(), header(now, now + 10_000), &payload)?;
    altered.expires_at_ms += 5_000;
    assert_eq!(
        exchange(&mut ws, altered).await?.1,
        refused(AgentError::DecryptFailed)
    );

    // 5. Sealed to a key this agent does not hold.
    let stranger = AgentKeyPair::generate();
    let foreign = seal::seal(stranger.public_bytes(), header(now, now + 10_000), &payload)?;
    assert_eq!(
        exchange(&mut ws, foreign).await?.1,
        refused(AgentError::NoKey)
    );

    // 6. The sender's clock is an hour behind.
    let now = now_ms();
    let skewed = seal::seal(
        keys.public_bytes(),
        header(now - 3_600_000, now + 10_000),
        &payload,
    )?;
    assert_eq!(
        exchange(&mut ws, skewed).await?.1,
        refused(AgentError::ClockSkew)
    );

    // Every refusal left a trace line; the successful one did not.
    let trace = agent.trace();
    assert_eq!(trace.lines().count(), 5, "{trace}");
    assert!(!trace.contains(&good.password));
    let _ = ws.close(None).await;
    agent.stop_with(15);
    Ok(())
}
