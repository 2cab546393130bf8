use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{
    suffix_matches, AgentConn, Completion, DispatchError, Gateway, Reply, SPARE_ENCAPSULATIONS,
};
use passthru_proto::answer::AnswerRefusal;
use passthru_proto::seal::{RequestHeader, SealError, ValidationPayload};
use passthru_proto::wire::{AgentError, CloudToAgent, DirectoryUser, Outcome};
use passthru_proto::{AgentKeyPair, PasswordOperation, Win32};
use tokio::sync::mpsc;
use uuid::Uuid;

/// How a scripted agent answers the request it receives.
#[derive(Clone, Copy, Debug)]
enum Answering {
    /// Opens the envelope and answers with the MAC of its context.
    Opened,
    /// Has no HPKE key: answers success without a MAC.
    NoMac,
    /// Has no HPKE key: answers success with a made-up MAC.
    MadeUpMac,
    /// Opens the envelope, MACs a denial, sends a success with that MAC.
    Altered,
    /// An admission refusal without MAC, claiming `repeated`.
    UnboundRefusal,
}

fn success() -> Outcome {
    Outcome::Success(DirectoryUser {
        object_guid: Uuid::new_v4(),
        user_principal_name: "alice@corp.example.test".into(),
        sam_account_name: None,
        display_name: None,
        mail: None,
        consistency_guid: None,
    })
}

/// A gateway with one connected agent whose requests `answering` answers; the result of
/// one validation through it and what `complete` said.
async fn validate_once(answering: Answering) -> (Result<Reply, DispatchError>, Option<Completion>) {
    let keys = AgentKeyPair::generate();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let tenant_id = Uuid::new_v4();
    let conn = Arc::new(AgentConn::new(
        Uuid::new_v4(),
        tenant_id,
        "host".into(),
        "1".into(),
        vec!["corp.example.test".into()],
        keys.public_bytes().to_vec(),
        tx,
    ));
    let gateway = Arc::new(Gateway::default());
    gateway.register(conn.clone());
    let agent = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let Some(CloudToAgent::Validate(sealed)) = rx.recv().await else {
                return None;
            };
            let id = sealed.request_id;
            let opened = keys.open_bound(&sealed).ok().map(|(_, key)| key);
            let (outcome, repeated, mac) = match (answering, &opened) {
                (Answering::Opened, Some(key)) => {
                    let o = success();
                    let mac = key.mac(id, &o, false);
                    (o, false, Some(mac))
                }
                (Answering::Altered, Some(key)) => {
                    let denied = Outcome::Denied {
                        win32: Win32::LogonFailure,
                    };
                    (success(), false, Some(key.mac(id, &denied, false)))
                }
                (Answering::NoMac, _) => (success(), false, None),
                (Answering::MadeUpMac, _) => (success(), false, Some(base64_of([7u8; 32]))),
                (Answering::UnboundRefusal, _) => (
                    Outcome::Error {
                        error: AgentError::DecryptFailed,
                    },
                    true,
                    None,
                ),
                _ => return None,
            };
            let reply = Reply {
                request_id: id,
                outcome,
                agent_id: conn.agent_id,
                agent_host: conn.host.clone(),
                agent_micros: 1,
                repeated,
                passed_over: Vec::new(),
            };
            // An answer from another connection (even of the same agent) is dropped,
            // and the request keeps waiting for its own agent.
            let (other_tx, _other_rx) = tokio::sync::mpsc::channel(1);
            let other = AgentConn::new(
                conn.agent_id,
                tenant_id,
                "elsewhere".into(),
                "1".into(),
                Vec::new(),
                Vec::new(),
                other_tx,
            );
            let stray = gateway.complete(&other, id, reply.clone(), mac.as_deref());
            assert_eq!(stray, Completion::Unknown);
            Some(gateway.complete(&conn, id, reply, mac.as_deref()))
        })
    };
    let payload = ValidationPayload::validate(
        "alice@corp.example.test",
        zeroize::Zeroizing::new("not-a-secret".into()),
    );
    let result = gateway
        .validate(tenant_id, &payload, Duration::from_secs(5))
        .await;
    (result, agent.await.ok().flatten())
}

fn base64_of(bytes: [u8; 32]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn an_answer_from_the_key_that_opened_the_envelope_is_delivered() {
    let (result, completion) = validate_once(Answering::Opened).await;
    assert_eq!(completion, Some(Completion::Delivered));
    assert!(
        matches!(
            result,
            Ok(Reply {
                outcome: Outcome::Success(_),
                ..
            })
        ),
        "{result:?}"
    );
}

#[tokio::test]
async fn an_answer_without_the_requests_key_is_refused() {
    for (answering, refusal) in [
        (Answering::NoMac, AnswerRefusal::Missing),
        (Answering::MadeUpMac, AnswerRefusal::Mismatch),
        (Answering::Altered, AnswerRefusal::Mismatch),
    ] {
        let (result, completion) = validate_once(answering).await;
        assert_eq!(
            completion,
            Some(Completion::Refused(refusal)),
            "{answering:?}"
        );
        assert!(
            matches!(result, Err(DispatchError::AnswerRefused(r)) if r == refusal),
            "{answering:?}: {result:?}"
        );
    }
}

/// 300 requests in flight at once on one connection, answered in reverse order: those
/// answered with their own envelope's key are delivered, those answered with another
/// request's key are refused, each request with its own verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_in_flight_checks_its_own_key() {
    const N: usize = 300;
    let keys = AgentKeyPair::generate();
    let (tx, mut rx) = tokio::sync::mpsc::channel(N);
    let tenant_id = Uuid::new_v4();
    let conn = Arc::new(AgentConn::new(
        Uuid::new_v4(),
        tenant_id,
        "host".into(),
        "1".into(),
        vec!["corp.example.test".into()],
        keys.public_bytes().to_vec(),
        tx,
    ));
    let gateway = Arc::new(Gateway::default());
    gateway.register(conn.clone());
    let agent = {
        let (gateway, conn) = (gateway.clone(), conn.clone());
        tokio::spawn(async move {
            let mut opened = Vec::new();
            while opened.len() < N {
                let Some(CloudToAgent::Validate(sealed)) = rx.recv().await else {
                    break;
                };
                conn.heard();
                if let Ok((payload, key)) = keys.open_bound(&sealed) {
                    opened.push((sealed.request_id, payload.username.clone(), key));
                }
            }
            let mut refused = 0;
            for i in (0..opened.len()).rev() {
                let (id, user, key) = &opened[i];
                let key = if user.starts_with("ok") {
                    key
                } else {
                    &opened[(i + 1) % opened.len()].2
                };
                let outcome = success();
                let mac = key.mac(*id, &outcome, false);
                let reply = Reply {
                    request_id: *id,
                    outcome,
                    agent_id: conn.agent_id,
                    agent_host: conn.host.clone(),
                    agent_micros: 1,
                    repeated: false,
                    passed_over: Vec::new(),
                };
                conn.heard();
                if gateway.complete(&conn, *id, reply, Some(&mac)) != Completion::Delivered {
                    refused += 1;
                }
            }
            refused
        })
    };
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..N {
        let gateway = gateway.clone();
        let user = if i % 2 == 0 { "ok" } else { "bad" };
        calls.spawn(async move {
            let payload = ValidationPayload::validate(
                &format!("{user}-{i}@corp.example.test"),
                zeroize::Zeroizing::new("not-a-secret".into()),
            );
            let result = gateway
                .validate(tenant_id, &payload, Duration::from_secs(20))
                .await;
            (user, result)
        });
    }
    let (mut delivered, mut refused, mut wrong) = (0, 0, Vec::new());
    while let Some(Ok((user, result))) = calls.join_next().await {
        match (user, result) {
            ("ok", Ok(_)) => delivered += 1,
            ("bad", Err(DispatchError::AnswerRefused(AnswerRefusal::Mismatch))) => refused += 1,
            (user, other) => wrong.push(format!("{user}: {other:?}")),
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
    assert_eq!((delivered, refused), (N / 2, N / 2));
    assert_eq!(agent.await.ok(), Some(N / 2));
    // The refusals count among the agent's errors (`agents list`).
    let tally = gateway.unflushed(conn.agent_id).unwrap_or_default();
    assert_eq!(tally.errors.get("answer_refused"), Some(&(N as u64 / 2)));
}

#[tokio::test]
async fn an_admission_refusal_without_mac_only_fails_the_request() -> Result<(), DispatchError> {
    let (result, completion) = validate_once(Answering::UnboundRefusal).await;
    assert_eq!(completion, Some(Completion::Delivered));
    let reply = result?;
    assert_eq!(
        reply.outcome,
        Outcome::Error {
            error: AgentError::DecryptFailed
        }
    );
    // Unauthenticated: its claim that the password was a repeat is ignored.
    assert!(!reply.repeated);
    Ok(())
}

#[test]
fn spare_encapsulations_are_capped_used_once_and_open() -> Result<(), SealError> {
    let keys = AgentKeyPair::generate();
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let (tenant_id, agent_id) = (Uuid::new_v4(), Uuid::new_v4());
    let conn = AgentConn::new(
        agent_id,
        tenant_id,
        "host".into(),
        "1".into(),
        Vec::new(),
        keys.public_bytes().to_vec(),
        tx,
    );
    for _ in 0..SPARE_ENCAPSULATIONS + 3 {
        conn.refill();
    }
    assert_eq!(conn.spare().len(), SPARE_ENCAPSULATIONS);
    let payload = ValidationPayload::validate(
        "spare@corp.example.test",
        zeroize::Zeroizing::new("not-a-secret".into()),
    );
    let mut seen = std::collections::HashSet::new();
    // The spares, then one made on demand.
    for _ in 0..=SPARE_ENCAPSULATIONS {
        let header = RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id,
            agent_id,
            issued_at_ms: 1_000,
            expires_at_ms: 11_000,
        };
        let (sealed, _) = conn.encapsulation()?.seal(header, &payload)?;
        assert!(
            seen.insert(sealed.enc.clone()),
            "an ephemeral key was used twice"
        );
        assert_eq!(keys.open(&sealed)?.username, payload.username);
    }
    assert!(conn.spare().is_empty());
    Ok(())
}

/// Two connected agents of one tenant serving `corp.example.test`, with their queues.
fn two_agents(
    gateway: &Gateway,
    tenant_id: Uuid,
) -> Vec<(Arc<AgentConn>, mpsc::Receiver<CloudToAgent>)> {
    (0..2)
        .map(|i| {
            let (tx, rx) = mpsc::channel(8);
            let conn = Arc::new(AgentConn::new(
                Uuid::new_v4(),
                tenant_id,
                format!("agent{i}"),
                "1".into(),
                vec!["corp.example.test".into()],
                AgentKeyPair::generate().public_bytes().to_vec(),
                tx,
            ));
            gateway.register(conn.clone());
            (conn, rx)
        })
        .collect()
}

/// Sends `payload` through the gateway, drops the connection of the agent that received
/// it, and returns the dispatch result and whether the other agent received it too.
async fn first_agent_drops(
    payload: ValidationPayload,
) -> Result<(Result<Reply, DispatchError>, bool), String> {
    let gateway = Arc::new(Gateway::default());
    let tenant_id = Uuid::new_v4();
    let mut agents = two_agents(&gateway, tenant_id);
    let dispatch = tokio::spawn({
        let gateway = gateway.clone();
        async move {
            gateway
                .validate(tenant_id, &payload, Duration::from_secs(3))
                .await
        }
    });
    // The agent the request went to first.
    let mut first = None;
    for _ in 0..1000 {
        first = agents
            .iter_mut()
            .position(|(_, rx)| matches!(rx.try_recv(), Ok(CloudToAgent::Validate(_))));
        if first.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let first = first.ok_or("no agent received the request")?;
    // Its connection ends before it answers.
    gateway.unregister(&agents[first].0);
    let result = tokio::time::timeout(Duration::from_secs(10), dispatch)
        .await
        .map_err(|_| "the dispatch never ended")?
        .map_err(|e| e.to_string())?;
    let other = &mut agents[1 - first].1;
    let resent = matches!(other.try_recv(), Ok(CloudToAgent::Validate(_)));
    Ok((result, resent))
}

#[tokio::test]
async fn a_lost_write_is_never_sent_to_another_agent() -> Result<(), String> {
    let change = ValidationPayload {
        username: "w@corp.example.test".into(),
        password: zeroize::Zeroizing::new("not-a-secret-old".into()),
        operation: PasswordOperation::Change {
            new_password: zeroize::Zeroizing::new("not-a-secret-new".into()),
        },
    };
    let started = Instant::now();
    let (result, resent) = first_agent_drops(change).await?;
    assert!(!resent, "a change was sent to a second agent");
    assert_eq!(result.err(), Some(DispatchError::Timeout));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the lost write ended at once, not at the deadline"
    );
    let reset = ValidationPayload {
        username: "w@corp.example.test".into(),
        password: zeroize::Zeroizing::new(String::new()),
        operation: PasswordOperation::Reset {
            new_password: zeroize::Zeroizing::new("not-a-secret-new".into()),
            must_change: true,
        },
    };
    let (result, resent) = first_agent_drops(reset).await?;
    assert!(!resent, "a reset was sent to a second agent");
    assert_eq!(result.err(), Some(DispatchError::Timeout));
    // A validation still moves on to the other agent (which does not answer here).
    let check = ValidationPayload::validate(
        "v@corp.example.test",
        zeroize::Zeroizing::new("not-a-secret".into()),
    );
    let (_, resent) = first_agent_drops(check).await?;
    assert!(resent, "a validation moves on from an agent that went away");
    Ok(())
}

#[test]
fn suffixes_match_themselves_and_subdomains_only() {
    assert!(suffix_matches("corp.example.test", "corp.example.test"));
    assert!(suffix_matches("EU.Corp.Example.Test", "corp.example.test"));
    assert!(!suffix_matches("xcorp.example.test", "corp.example.test"));
    assert!(!suffix_matches("example.test", "corp.example.test"));
    assert!(!suffix_matches("", "corp.example.test"));
}

/// After a renewal the agent's new connection (new HPKE key) takes every request and the old
/// connection none: nothing new is sealed to the old key, which opens none of them.
#[tokio::test]
async fn after_a_renewal_requests_are_sealed_to_the_new_key_only() {
    let (old_keys, new_keys) = (AgentKeyPair::generate(), AgentKeyPair::generate());
    let (tenant_id, agent_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (old_tx, mut old_rx) = mpsc::channel(64);
    let (new_tx, mut new_rx) = mpsc::channel(64);
    let conn = |keys: &AgentKeyPair, tx| {
        Arc::new(AgentConn::new(
            agent_id,
            tenant_id,
            "host".into(),
            "1".into(),
            vec!["corp.example.test".into()],
            keys.public_bytes().to_vec(),
            tx,
        ))
    };
    let (old, new) = (conn(&old_keys, old_tx), conn(&new_keys, new_tx));
    let gateway = Arc::new(Gateway::default());
    gateway.register(old.clone());
    gateway.register(new.clone());
    assert_eq!(gateway.retire_older(&new), 1);
    assert!(gateway.is_connected(tenant_id, agent_id));
    let payload = ValidationPayload::validate(
        "alice@corp.example.test",
        zeroize::Zeroizing::new("not-a-secret".into()),
    );
    for _ in 0..20 {
        // Nobody answers: each request times out quickly; what matters is where it went.
        let _ = gateway
            .validate(tenant_id, &payload, Duration::from_millis(20))
            .await;
    }
    assert!(
        old_rx.try_recv().is_err(),
        "a request went to the retired connection"
    );
    let mut seen = 0;
    while let Ok(message) = new_rx.try_recv() {
        let CloudToAgent::Validate(sealed) = message else {
            continue;
        };
        assert!(new_keys.open_bound(&sealed).is_ok());
        assert!(
            old_keys.open_bound(&sealed).is_err(),
            "the old key opened a new request"
        );
        seen += 1;
    }
    assert!(seen >= 20, "{seen} requests reached the renewed connection");
    gateway.unregister(&new);
    assert!(gateway.is_connected(tenant_id, agent_id));
    gateway.unregister(&old);
    assert!(!gateway.is_connected(tenant_id, agent_id));
}

/// A request another instance sealed to the agent's old key (it had not yet heard of the
/// renewal) is not sent on the renewed connection: it would open nothing there. The sealing
/// instance is told no agent took it, so it may send it elsewhere.
#[tokio::test]
async fn a_relayed_request_sealed_to_a_retired_key_is_not_sent() -> anyhow::Result<()> {
    let (old_keys, new_keys) = (AgentKeyPair::generate(), AgentKeyPair::generate());
    let (tenant_id, agent_id) = (Uuid::new_v4(), Uuid::new_v4());
    let (tx, mut rx) = mpsc::channel(8);
    let renewed = Arc::new(AgentConn::new(
        agent_id,
        tenant_id,
        "host".into(),
        "1".into(),
        vec!["corp.example.test".into()],
        new_keys.public_bytes().to_vec(),
        tx,
    ));
    let gateway = Gateway::default();
    gateway.register(renewed);
    let sealed_to = |keys: &AgentKeyPair| {
        let header = RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id,
            agent_id,
            issued_at_ms: 1,
            expires_at_ms: u64::MAX,
        };
        let payload = ValidationPayload::validate(
            "alice@corp.example.test",
            zeroize::Zeroizing::new("not-a-secret".into()),
        );
        passthru_proto::seal::seal(keys.public_bytes(), header, &payload)
    };
    let stale = sealed_to(&old_keys)?;
    let r = gateway
        .relay(tenant_id, agent_id, stale, Duration::from_millis(50), true)
        .await;
    assert!(matches!(r, super::Relayed::NoAgent), "{r:?}");
    assert!(rx.try_recv().is_err(), "the stale request was sent");
    let fresh = sealed_to(&new_keys)?;
    let r = gateway
        .relay(tenant_id, agent_id, fresh, Duration::from_millis(50), true)
        .await;
    assert!(matches!(r, super::Relayed::Timeout), "{r:?}");
    assert!(matches!(rx.try_recv(), Ok(CloudToAgent::Validate(_))));
    Ok(())
}

/// An agent that said it opens sealed sessions gets envelopes of one session (one
/// encapsulation, no spares made); each opens, and its answer's MAC, made with that request's
/// key, is accepted. An agent that did not say so keeps a context per envelope.
#[tokio::test]
async fn an_agent_that_opens_sessions_gets_envelopes_of_one_session() -> anyhow::Result<()> {
    let keys = AgentKeyPair::generate();
    let public = keys.public_bytes().to_vec();
    let (tx, mut rx) = tokio::sync::mpsc::channel(8);
    let tenant_id = Uuid::new_v4();
    let conn = Arc::new(
        AgentConn::new(
            Uuid::new_v4(),
            tenant_id,
            "host".into(),
            "1".into(),
            vec!["corp.example.test".into()],
            keys.public_bytes().to_vec(),
            tx,
        )
        .with_sealed_sessions(true),
    );
    assert!(conn.sealed_sessions());
    let gateway = Arc::new(Gateway::default());
    gateway.register(conn.clone());
    const N: usize = 5;
    let agent = {
        let (gateway, conn) = (gateway.clone(), conn.clone());
        tokio::spawn(async move {
            let opened = passthru_proto::OpenedSessions::default();
            let mut encs = std::collections::HashSet::new();
            for _ in 0..N {
                let Some(CloudToAgent::Validate(sealed)) = rx.recv().await else {
                    return None;
                };
                assert!(sealed.session);
                encs.insert(sealed.enc.clone());
                let (_, key) = keys.open_with(&sealed, &opened).ok()?;
                let o = success();
                let mac = key.mac(sealed.request_id, &o, false);
                let reply = Reply {
                    request_id: sealed.request_id,
                    outcome: o,
                    agent_id: conn.agent_id,
                    agent_host: conn.host.clone(),
                    agent_micros: 1,
                    repeated: false,
                    passed_over: Vec::new(),
                };
                let done = gateway.complete(&conn, sealed.request_id, reply, Some(&mac));
                assert_eq!(done, Completion::Delivered);
            }
            Some(encs.len())
        })
    };
    let payload = ValidationPayload::validate(
        "alice@corp.example.test",
        zeroize::Zeroizing::new("not-a-secret".into()),
    );
    for _ in 0..N {
        let reply = gateway
            .validate(tenant_id, &payload, Duration::from_secs(5))
            .await
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        assert!(matches!(reply.outcome, Outcome::Success(_)));
    }
    assert_eq!(agent.await?, Some(1), "one encapsulation for all");
    assert_eq!(conn.spare().len(), 0, "no spare encapsulations are made");
    // Without the agent's word: a context per envelope.
    let (tx, _rx) = tokio::sync::mpsc::channel(1);
    let old = AgentConn::new(
        Uuid::new_v4(),
        tenant_id,
        "old".into(),
        "1".into(),
        Vec::new(),
        public,
        tx,
    )
    .with_sealed_sessions(false);
    assert!(!old.sealed_sessions());
    Ok(())
}
