//! The agent endpoint: `GET /{tenant_id}/agent/v1/connect`, a WebSocket over the same TLS
//! port, accepted only with a client certificate issued by the private agent CA to an agent
//! of that very tenant that is not revoked.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::response::Response;
use axum::Extension;
use futures_util::{SinkExt as _, StreamExt as _};
use passthru_proto::wire::{AgentToCloud, CloudToAgent, PROTOCOL_VERSION};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::agent_auth::{calling_agent, forbidden};
use crate::clock::{unix_ms, unix_now};
use crate::dirsync;
use crate::dispatcher::Reply;
use crate::gateway::{AgentConn, Completion};
use crate::http::ClientInfo;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::agents::AgentStanding;
use crate::store::AgentRecord;
use passthru_proto::sync::SyncForest;

/// Largest message an agent may send: a sync batch of 500 objects, or a group with many
/// members.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// The read buffer of each agent connection. tungstenite's default (128 KiB) is zero-filled
/// on every read, so it would stay resident for each connected agent; one TLS record's worth
/// is enough (a larger frame, such as a sync batch, grows the buffer to its length).
const READ_BUFFER: usize = 16 * 1024;

/// How long an agent has to say Hello after the upgrade.
const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /{tenant_id}/agent/v1/connect`
pub async fn connect(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    ws: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let caller = calling_agent(&state, &client, &tenant).await?;
    let renewed = caller.renewed();
    let fp = caller.fingerprint.as_str();
    let mut agent = caller.agent;
    // The first connection made with a renewed certificate makes it (and the HPKE key that
    // came with it) current; the old ones are refused from then on.
    if renewed {
        match state.store.promote_agent_cert(agent.id, fp).await? {
            Some(now_current) => {
                tracing::info!(agent = %agent.id, tenant = %agent.tenant_id, not_after = now_current.cert_expires_at, "agent connected with its renewed certificate: the old certificate and key are retired");
                agent = now_current;
            }
            None => {
                return Err(forbidden(
                    "This renewed certificate is no longer the agent's (a later renewal \
                     replaced it). Connect with the agent's current certificate.",
                ))
            }
        }
    }
    if agent.cert_expires_at < unix_now() {
        return Err(forbidden(
            "This agent's certificate has expired. Register it again.",
        ));
    }
    let ip = client.addr.ip().to_string();
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .on_upgrade(move |socket| async move {
            serve(state, agent, renewed, ip, socket).await;
        }))
}

/// Messages written to an agent at once, at most.
const WRITE_BATCH: usize = 64;
/// How long a write to an agent may take: an agent that stops reading (its TCP window full)
/// is dropped instead of holding its connection's loop, or the cloud's shutdown.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether `write` finished without an error within `limit`.
async fn sent<E>(limit: Duration, write: impl std::future::Future<Output = Result<(), E>>) -> bool {
    matches!(tokio::time::timeout(limit, write).await, Ok(Ok(())))
}

/// Writes `first` and whatever else is already queued for the agent (up to [`WRITE_BATCH`])
/// and flushes once: requests that arrive together share one TLS write.
async fn send_queued<S>(
    sink: &mut S,
    rx: &mut mpsc::Receiver<CloudToAgent>,
    first: CloudToAgent,
) -> Result<(), S::Error>
where
    S: futures_util::Sink<Message> + Unpin,
{
    let mut next = Some(first);
    let mut fed = 0;
    while let Some(out) = next.take() {
        if let Some(m) = text(&out) {
            sink.feed(m).await?;
        }
        fed += 1;
        if fed < WRITE_BATCH {
            next = rx.try_recv().ok();
        }
    }
    sink.flush().await
}

fn text(msg: &CloudToAgent) -> Option<Message> {
    serde_json::to_string(msg)
        .ok()
        .map(|s| Message::Text(s.into()))
}

async fn serve(
    state: Shared,
    agent: AgentRecord,
    renewed: bool,
    ip: String,
    mut socket: WebSocket,
) {
    let welcome = CloudToAgent::Welcome {
        agent_id: agent.id,
        tenant_id: agent.tenant_id,
        server_time_ms: unix_ms().max(0) as u64,
        heartbeat_seconds: state.heartbeat.as_secs().max(1),
    };
    let Some(w) = text(&welcome) else { return };
    if !sent(WRITE_TIMEOUT, socket.send(w)).await {
        return;
    }
    // Wait for Hello.
    let hello = tokio::time::timeout(HELLO_TIMEOUT, async {
        while let Some(Ok(msg)) = socket.recv().await {
            if let Message::Text(t) = msg {
                return serde_json::from_str::<AgentToCloud>(t.as_str()).ok();
            }
        }
        None
    })
    .await;
    let closed_early = matches!(hello, Ok(None));
    let Ok(Some(AgentToCloud::Hello {
        protocol,
        version,
        host,
        upn_suffixes,
        agent_time_ms,
        sync_forests,
        sealed_sessions,
    })) = hello
    else {
        if closed_early {
            // `passthru-agent doctor` checks its certificate and the clock this way.
            tracing::debug!(agent = %agent.id, "the agent closed before saying hello (a doctor's check)");
        } else {
            tracing::warn!(agent = %agent.id, "the agent did not say hello; closing");
        }
        return;
    };
    if protocol != PROTOCOL_VERSION {
        let bye = CloudToAgent::Goodbye {
            reason: format!("protocol {protocol} is not supported; upgrade the agent"),
        };
        if let Some(m) = text(&bye) {
            sent(WRITE_TIMEOUT, socket.send(m)).await;
        }
        return;
    }
    let skew_ms = agent_time_ms.abs_diff(unix_ms().max(0) as u64);
    if skew_ms > 60_000 {
        tracing::warn!(agent = %agent.id, skew_ms, "the agent's clock differs from the cloud's; synchronise the agent server's time");
    }
    let host: String = host.chars().take(255).collect();
    let version: String = version.chars().take(64).collect();
    let upn_suffixes: Vec<String> = upn_suffixes
        .into_iter()
        .take(1000)
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if let Err(e) = state
        .store
        .agent_seen(agent.id, &host, &version, &ip, &upn_suffixes, unix_now())
        .await
    {
        tracing::error!(error = %e, "could not record the agent's connection");
    }
    let sync_forests: Vec<SyncForest> = sync_forests
        .into_iter()
        .filter(|f| !f.forest.trim().is_empty() && f.forest.len() <= 253)
        .take(64)
        .map(|f| SyncForest {
            forest: f.forest.trim().to_ascii_lowercase(),
            interval_seconds: f.interval_seconds.clamp(1, 86_400),
            upn_suffixes: f.upn_suffixes.into_iter().take(100).collect(),
        })
        .collect();
    let (tx, mut rx) = mpsc::channel::<CloudToAgent>(1024);
    let renewal_tx = tx.clone();
    let conn = Arc::new(
        AgentConn::new(
            agent.id,
            agent.tenant_id,
            host.clone(),
            version.clone(),
            upn_suffixes,
            agent.hpke_public_key.clone(),
            tx,
        )
        .with_sync_forests(sync_forests)
        .with_sealed_sessions(sealed_sessions),
    );
    state.gateway.register(conn.clone());
    if renewed {
        state.gateway.retire_older(&conn);
    }
    state
        .metrics
        .agent_cert_expiry(agent.tenant_id, agent.id, agent.cert_expires_at);
    tracing::info!(agent = %agent.id, tenant = %agent.tenant_id, %host, %version, %ip, "agent connected");
    // One renewal per connection: a renewed certificate comes with a new connection.
    let mut renewal_asked = false;

    let (mut sink, mut stream) = socket.split();
    let mut shutdown = state.shutdown.clone();
    let mut ticker = tokio::time::interval(state.heartbeat);
    ticker.tick().await;
    let mut last_heard = Instant::now();
    // The heartbeat's store work (the agent's standing, its statistics) runs in a task of
    // its own and its answer comes back here: awaited in this loop, a slow or unreachable
    // store (PostgreSQL restarting: each call waits for a connection for seconds) would hold
    // up everything else of the session meanwhile (pings, requests to the agent, its
    // answers), and the agent, hearing nothing for two heartbeats, would drop the connection
    // and could not reconnect until the store is back.
    let (standing_tx, mut standing_rx) = mpsc::channel::<AgentStanding>(1);
    let checking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let update_checking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reason = loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else { break "gateway closed" };
                if !sent(WRITE_TIMEOUT, send_queued(&mut sink, &mut rx, out)).await { break "send failed or timed out" }
            }
            incoming = stream.next() => {
                let Some(Ok(msg)) = incoming else { break "connection closed by the agent" };
                last_heard = Instant::now();
                conn.heard();
                match msg {
                    Message::Text(t) => match serde_json::from_str::<AgentToCloud>(t.as_str()) {
                        Ok(AgentToCloud::Result { request_id, outcome, agent_micros, repeated, mac }) => {
                            let reply = Reply { request_id, outcome, agent_id: conn.agent_id, agent_host: conn.host.clone(), agent_micros, repeated, passed_over: Vec::new() };
                            // A refused answer is logged by the gateway.
                            if state.gateway.complete(&conn, request_id, reply, mac.as_deref()) == Completion::Unknown {
                                tracing::info!(agent = %conn.agent_id, request = %request_id, code = %passthru_proto::Aadsts::AgentLateAnswer, "late or unknown answer dropped");
                            }
                        }
                        Ok(AgentToCloud::Draining) => {
                            tracing::info!(agent = %conn.agent_id, "agent is draining");
                            conn.set_draining();
                        }
                        Ok(AgentToCloud::Stats(report)) => {
                            state.metrics.agent_report(conn.tenant_id, conn.agent_id, &report);
                        }
                        Ok(AgentToCloud::SyncBatch(batch)) => dirsync::on_batch(&state, &conn, batch).await,
                        Ok(AgentToCloud::SyncDone(done)) => dirsync::on_done(&state, &conn, done).await,
                        Ok(AgentToCloud::SyncFailed(failed)) => dirsync::on_failed(&state, &conn, failed).await,
                        Ok(AgentToCloud::RenewCertificate { csr_pem, hpke_public_key }) => {
                            if renewal_asked {
                                let refused = CloudToAgent::RenewalRefused { reason: "one renewal per connection: connect with the renewed certificate first".into() };
                                let _ = renewal_tx.try_send(refused);
                            } else {
                                renewal_asked = true;
                                let renewal = crate::agent_renewal::Renewal { csr_pem, hpke_public_key };
                                tokio::spawn(crate::agent_renewal::renew(state.clone(), conn.tenant_id, conn.agent_id, renewal, renewal_tx.clone()));
                            }
                        }
                        Ok(AgentToCloud::UpdateCheck { version, target }) => {
                            // One check at a time; its answer goes out like any message.
                            if !update_checking.swap(true, std::sync::atomic::Ordering::AcqRel) {
                                let (state, checking, tx, tenant_id, agent_id) = (state.clone(), update_checking.clone(), renewal_tx.clone(), conn.tenant_id, conn.agent_id);
                                tokio::spawn(async move {
                                    let version: String = version.chars().take(64).collect();
                                    let target: String = target.chars().take(64).collect();
                                    let answer = crate::agent_releases::answer_check(&state, tenant_id, agent_id, &version, &target).await;
                                    let _ = tx.try_send(answer);
                                    checking.store(false, std::sync::atomic::Ordering::Release);
                                });
                            }
                        }
                        Ok(_) => {}
                        Err(e) => tracing::warn!(agent = %conn.agent_id, error = %e, "malformed message from agent ignored"),
                    },
                    Message::Close(_) => break "agent closed the connection",
                    _ => {}
                }
            }
            _ = ticker.tick() => {
                if last_heard.elapsed() > state.heartbeat * 2 {
                    break "no heartbeat for two intervals";
                }
                if !sent(WRITE_TIMEOUT, sink.send(Message::Ping(Vec::new().into()))).await { break "ping failed or timed out" }
                // Revocation is read from the store at every heartbeat: another cloud process
                // sharing the store (or an operator) may have revoked the agent. One check at
                // a time; its answer comes back on `standing_rx`.
                if !checking.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    let (state, checking, tx, agent_id, fingerprint) = (state.clone(), checking.clone(), standing_tx.clone(), conn.agent_id, agent.cert_fingerprint.clone());
                    tokio::spawn(async move {
                        match state.store.agent_heartbeat(agent_id, Some(&fingerprint), unix_now()).await {
                            Ok(standing) => {
                                let _ = tx.try_send(standing);
                            }
                            Err(e) => tracing::warn!(agent = %agent_id, error = %e, "could not record the agent's heartbeat or read its revocation"),
                        }
                        flush_stats(&state, agent_id).await;
                        checking.store(false, std::sync::atomic::Ordering::Release);
                    });
                }
            }
            Some(standing) = standing_rx.recv() => {
                let gone = match standing {
                    AgentStanding::Admitted => None,
                    AgentStanding::Revoked => Some(("this agent has been revoked by an administrator", "revoked (found at a heartbeat)")),
                    AgentStanding::CertificateExpired => Some(("this agent's certificate has expired; register the agent again", "certificate expired")),
                    AgentStanding::Removed => Some(("this agent is no longer registered; register it again", "no longer registered")),
                    AgentStanding::CertificateReplaced => Some(("this connection's certificate was replaced by a renewed one; connect with the renewed certificate", "certificate replaced by a renewed one")),
                };
                if let Some((goodbye, reason)) = gone {
                    conn.set_draining();
                    if let Some(m) = text(&CloudToAgent::Goodbye { reason: goodbye.into() }) {
                        sent(WRITE_TIMEOUT, sink.send(m)).await;
                    }
                    sent(WRITE_TIMEOUT, sink.send(Message::Close(None))).await;
                    break reason;
                }
            }
            _ = conn.ping_now.notified() => {
                // A request of this agent looks stuck: is the agent alive?
                if !sent(WRITE_TIMEOUT, sink.send(Message::Ping(Vec::new().into()))).await { break "ping failed or timed out" }
            }
            _ = conn.revoked.notified() => {
                if let Some(m) = text(&CloudToAgent::Goodbye { reason: "this agent has been revoked by an administrator".into() }) {
                    sent(WRITE_TIMEOUT, sink.send(m)).await;
                }
                sent(WRITE_TIMEOUT, sink.send(Message::Close(None))).await;
                break "revoked by an administrator";
            }
            _ = shutdown.changed() => {
                if let Some(m) = text(&CloudToAgent::Goodbye { reason: "the cloud is shutting down".into() }) {
                    sent(WRITE_TIMEOUT, sink.send(m)).await;
                }
                sent(WRITE_TIMEOUT, sink.send(Message::Close(None))).await;
                break "cloud shutting down";
            }
        }
    };
    state.gateway.unregister(&conn);
    // After a renewal the agent's new connection is already up: its series stay.
    if !state.gateway.is_connected(conn.tenant_id, conn.agent_id) {
        state.metrics.agent_gone(conn.tenant_id, conn.agent_id);
    }
    // Said before the store's bookkeeping, which may wait for a slow store.
    tracing::info!(agent = %conn.agent_id, reason, "agent disconnected");
    let _ = state
        .store
        .agent_heartbeat(conn.agent_id, None, unix_now())
        .await;
    flush_stats(&state, conn.agent_id).await;
}

/// Adds the agent's statistics gathered since the last flush to the store (kept in memory
/// for the next flush if the store fails).
pub async fn flush_stats(state: &Shared, agent_id: Uuid) {
    let Some(delta) = state.gateway.take_unflushed(agent_id) else {
        return;
    };
    if let Err(e) = state
        .store
        .add_agent_stats(agent_id, &delta, unix_now())
        .await
    {
        tracing::warn!(agent = %agent_id, error = %e, "could not store the agent's statistics; will retry");
        state.gateway.restore_unflushed(agent_id, &delta);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::sent;

    #[tokio::test]
    async fn a_write_that_does_not_finish_in_time_has_failed() {
        let limit = Duration::from_millis(20);
        assert!(sent(limit, async { Ok::<(), ()>(()) }).await);
        assert!(!sent(limit, async { Err::<(), ()>(()) }).await);
        // A peer that stops reading: the write never completes.
        let started = std::time::Instant::now();
        assert!(!sent(limit, std::future::pending::<Result<(), ()>>()).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
