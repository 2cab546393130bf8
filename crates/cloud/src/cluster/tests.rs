//! Two instances in one process over a real nats-server (started here on a free port): a
//! request at one is answered by an agent at the other, only sealed data crosses, and the
//! answer's MAC is checked by the instance that sealed the request.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use passthru_proto::seal::ValidationPayload;
use passthru_proto::wire::{CloudToAgent, DirectoryUser, Outcome};
use passthru_proto::{AgentKeyPair, PasswordOperation, Win32};
use uuid::Uuid;

use super::Cluster;
use crate::dispatcher::{DispatchError, Dispatcher};
use crate::gateway::{AgentConn, Gateway};

/// A nats-server of this test, killed when dropped.
struct Nats(Child, u16);

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nats() -> anyhow::Result<Nats> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .unwrap_or("nats-server");
    let child = Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("starting nats-server ({e}): PASSTHRU_NEED_CLUSTER=1 bash scripts/deps.sh installs it"))?;
    let n = Nats(child, port);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        anyhow::ensure!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(n)
}

/// How the fake agent at instance B answers.
#[derive(Clone, Copy)]
enum Answer {
    /// Opens the envelope and answers with the MAC of its context.
    Honest,
    /// Opens it, MACs a denial, and sends a success with that MAC.
    Altered,
}

const PASSWORD: &str = "cluster-test-Passw0rd!";

/// Instances A and B on one bus; one agent connected to B answering `answer`; the tenant.
async fn two_instances(
    port: u16,
    answer: Answer,
) -> anyhow::Result<(Arc<Cluster>, Arc<Cluster>, Uuid, Uuid)> {
    let url = format!("nats://127.0.0.1:{port}");
    let deployment = Uuid::new_v4().simple().to_string();
    let (ga, gb) = (Arc::new(Gateway::default()), Arc::new(Gateway::default()));
    let key = crate::secret_box::SecretBox::from_key(&[7u8; 32]).bus_key();
    let a = Cluster::join(&url, &deployment, ga, key.clone()).await?;
    let b = Cluster::join(&url, &deployment, gb.clone(), key).await?;
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    std::mem::forget(_stop_tx);
    super::tasks::start_relaying(a.clone(), stop.clone()).await?;
    super::tasks::start_relaying(b.clone(), stop).await?;
    let tenant = Uuid::new_v4();
    let keys = AgentKeyPair::generate();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let agent_id = Uuid::new_v4();
    let conn = Arc::new(AgentConn::new(
        agent_id,
        tenant,
        "b-host".into(),
        "1".into(),
        vec!["corp.example.test".into()],
        keys.public_bytes().to_vec(),
        tx,
    ));
    gb.register(conn.clone());
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let CloudToAgent::Validate(sealed) = msg else {
                continue;
            };
            let id = sealed.request_id;
            let Ok((payload, key)) = keys.open_bound(&sealed) else {
                continue;
            };
            let right = payload.password.as_str() == PASSWORD;
            let outcome = if right {
                Outcome::Success(DirectoryUser {
                    object_guid: Uuid::new_v4(),
                    user_principal_name: payload.username.clone(),
                    sam_account_name: None,
                    display_name: None,
                    mail: None,
                    consistency_guid: None,
                })
            } else {
                Outcome::Denied {
                    win32: Win32::LogonFailure,
                }
            };
            let (sent, mac) = match answer {
                Answer::Honest => (outcome.clone(), key.mac(id, &outcome, false)),
                Answer::Altered => {
                    let denied = Outcome::Denied {
                        win32: Win32::LogonFailure,
                    };
                    (
                        Outcome::Success(DirectoryUser {
                            object_guid: Uuid::new_v4(),
                            user_principal_name: payload.username.clone(),
                            sam_account_name: None,
                            display_name: None,
                            mail: None,
                            consistency_guid: None,
                        }),
                        key.mac(id, &denied, false),
                    )
                }
            };
            let reply = crate::dispatcher::Reply {
                request_id: id,
                outcome: sent,
                agent_id,
                agent_host: "b-host".into(),
                agent_micros: 1,
                repeated: false,
                passed_over: Vec::new(),
            };
            let _ = gb.complete(&conn, id, reply, Some(&mac));
        }
    });
    // A hears B's announcement of its agent.
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.connected(tenant).is_empty() {
        anyhow::ensure!(Instant::now() < deadline, "A never heard of B's agent");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok((a, b, tenant, agent_id))
}

fn payload(password: &str) -> ValidationPayload {
    ValidationPayload {
        username: "alice@corp.example.test".into(),
        password: zeroize::Zeroizing::new(password.into()),
        operation: PasswordOperation::Validate,
    }
}

/// A's request is answered by B's agent (right and wrong password), and what crossed the bus
/// holds neither password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_at_one_instance_is_answered_by_an_agent_at_another() -> anyhow::Result<()> {
    let n = nats()?;
    let spy = async_nats::connect(format!("nats://127.0.0.1:{}", n.1)).await?;
    let mut all = spy.subscribe(">").await?;
    spy.flush().await?;
    let (a, _b, tenant, agent_id) = two_instances(n.1, Answer::Honest).await?;
    let reply = a
        .dispatch(tenant, &payload(PASSWORD), Duration::from_secs(5))
        .await?;
    assert!(
        matches!(reply.outcome, Outcome::Success(_)),
        "{:?}",
        reply.outcome
    );
    assert_eq!(reply.agent_id, agent_id);
    let wrong = "cluster-test-Wr0ng!";
    let reply = a
        .dispatch(tenant, &payload(wrong), Duration::from_secs(5))
        .await?;
    assert!(matches!(
        reply.outcome,
        Outcome::Denied {
            win32: Win32::LogonFailure
        }
    ));
    // What crossed: relayed requests (sealed) and their answers; no password.
    let mut seen = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), all.next()).await {
        seen.push((m.subject.to_string(), m.payload.to_vec()));
    }
    let relays = seen.iter().filter(|(s, _)| s.contains(".relay.")).count();
    assert_eq!(
        relays,
        2,
        "two relayed requests: {:?}",
        seen.iter().map(|s| &s.0).collect::<Vec<_>>()
    );
    for (_, body) in &seen {
        for p in [PASSWORD, wrong] {
            assert!(
                !body.windows(p.len()).any(|w| w == p.as_bytes()),
                "a password crossed the bus"
            );
        }
    }
    Ok(())
}

/// An answer whose MAC does not match what it says is refused by the instance that sealed
/// the request (the relaying instance cannot check it, and does not need to be trusted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_altered_answer_is_refused_by_the_sealing_instance() -> anyhow::Result<()> {
    let n = nats()?;
    let (a, _b, tenant, _) = two_instances(n.1, Answer::Altered).await?;
    let r = a
        .dispatch(tenant, &payload(PASSWORD), Duration::from_secs(5))
        .await;
    assert!(matches!(r, Err(DispatchError::AnswerRefused(_))), "{r:?}");
    Ok(())
}

/// A tenant with no agent anywhere, never seen: "no agent" at once, not after the deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_anywhere_fails_at_once() -> anyhow::Result<()> {
    let n = nats()?;
    let (a, _b, _, _) = two_instances(n.1, Answer::Honest).await?;
    let started = Instant::now();
    let r = a
        .dispatch(Uuid::new_v4(), &payload(PASSWORD), Duration::from_secs(5))
        .await;
    assert!(matches!(r, Err(DispatchError::NoAgent)), "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    Ok(())
}

/// A stranger on the NATS server, without the deployment's key: its relayed request (a
/// password it sealed to the agent's public key) gets no answer and never reaches the
/// agent, and the agent it announces with a key of its own is never picked, so no
/// password is ever sealed to that key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_on_the_bus_can_neither_ask_an_agent_nor_announce_one() -> anyhow::Result<()> {
    use super::wire::{Presence, PresentAgent, RelayRequest};
    use passthru_proto::seal::{Encapsulation, RequestHeader};
    let n = nats()?;
    let (a, b, tenant, agent_id) = two_instances(n.1, Answer::Honest).await?;
    let stranger = async_nats::connect(format!("nats://127.0.0.1:{}", n.1)).await?;
    // The agent's public key, as B announces it (it is public), and B's relay subject.
    let present = a.remote.agents(tenant, Instant::now());
    let (_, agent) = present
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no agent announced"))?;
    let key = super::unb64(&agent.hpke_public_key).ok_or_else(|| anyhow::anyhow!("key"))?;
    let header = RequestHeader {
        request_id: Uuid::new_v4(),
        tenant_id: tenant,
        agent_id,
        issued_at_ms: crate::clock::unix_ms() as u64,
        expires_at_ms: crate::clock::unix_ms() as u64 + 5_000,
    };
    let (sealed, _) = Encapsulation::new(&key)?.seal(header, &payload("guess-1"))?;
    let forged = serde_json::to_vec(&RelayRequest {
        tenant_id: tenant,
        agent_id,
        sealed,
        timeout_ms: 2_000,
        may_move_on: true,
    })?;
    // Without a tag, and with a tag made with another key.
    let other_key = crate::secret_box::SecretBox::from_key(&[9u8; 32]).bus_key();
    for body in [forged.clone(), {
        let mut ctx = ring::hmac::Context::with_key(&other_key);
        ctx.update(b"whatever");
        let mut v = ctx.sign().as_ref().to_vec();
        v.extend_from_slice(&forged);
        v
    }] {
        let answer = stranger
            .send_request(
                b.subjects.relay(b.instance),
                async_nats::Request::new()
                    .payload(body.into())
                    .timeout(Some(Duration::from_millis(700))),
            )
            .await;
        assert!(answer.is_err(), "a stranger's request was answered");
    }
    assert_eq!(
        b.gateway.connected(tenant)[0].served,
        0,
        "the agent was never asked"
    );
    // A forged presence: an agent of the tenant with the stranger's key.
    let fake = PresentAgent {
        tenant_id: tenant,
        agent_id: Uuid::new_v4(),
        host: "evil".into(),
        version: "1".into(),
        upn_suffixes: vec!["corp.example.test".into()],
        write_suffixes: Vec::new(),
        hpke_public_key: super::b64(AgentKeyPair::generate().public_bytes()),
        sealed_sessions: false,
        in_flight: 0,
        served: 0,
        draining: false,
        last_heard_ms: 0,
    };
    let p = serde_json::to_vec(&Presence {
        instance: Uuid::new_v4(),
        agents: vec![fake.clone()],
        part: 0,
        parts: 1,
    })?;
    stranger.publish(a.subjects.presence(), p.into()).await?;
    stranger.flush().await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        a.remote
            .agents(tenant, Instant::now())
            .iter()
            .all(|(_, x)| x.agent_id != fake.agent_id),
        "a forged announcement was taken"
    );
    Ok(())
}
