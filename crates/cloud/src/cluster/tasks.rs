//! The instance's work on the bus: answering relayed requests for its agents, announcing its
//! agents, hearing the others', and acting on control events.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;

use super::wire::{
    Control, ControlMessage, Presence, PresentAgent, RelayAnswer, RelayRequest, PRESENCE_PART,
};
use super::{b64, BusError, Cluster, Instance, ANNOUNCE_EVERY};
use crate::gateway::Relayed;

/// Subscribes to the deployment's subjects and starts the instance's tasks on the bus. They
/// end when the server shuts down (the instance says it leaves).
pub(crate) async fn spawn(cluster: Arc<Cluster>, state: Arc<dyn Instance>) -> Result<(), BusError> {
    start_relaying(cluster.clone(), state.shutdown()).await?;
    let control = cluster
        .client
        .subscribe(cluster.subjects.control())
        .await
        .map_err(|e| subscribe_error(&cluster, e))?;
    tokio::spawn(hear_control(cluster.clone(), state.clone(), control));
    tokio::spawn(forward_cache_changes(cluster, state));
    Ok(())
}

fn subscribe_error(cluster: &Cluster, e: async_nats::SubscribeError) -> BusError {
    BusError::Subscribe {
        url: cluster.client.server_info().client_ip.clone(),
        detail: e.to_string(),
    }
}

/// What an instance does on the bus for its agents, with no other state: relaying requests
/// to them, announcing them, hearing the other instances' (until `shutdown` turns true).
pub(crate) async fn start_relaying(
    cluster: Arc<Cluster>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), BusError> {
    let relay = cluster
        .client
        .subscribe(cluster.subjects.relay(cluster.instance))
        .await
        .map_err(|e| subscribe_error(&cluster, e))?;
    let presence = cluster
        .client
        .subscribe(cluster.subjects.presence())
        .await
        .map_err(|e| subscribe_error(&cluster, e))?;
    // Subscribed before anything is announced: a reply to our first request finds us.
    let _ = cluster.client.flush().await;
    tokio::spawn(serve_relays(cluster.clone(), relay));
    tokio::spawn(hear_presence(cluster.clone(), presence));
    tokio::spawn(announce(cluster, shutdown));
    Ok(())
}

/// Relays requests sealed by other instances to this instance's agents, each in a task of
/// its own.
async fn serve_relays(cluster: Arc<Cluster>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some(reply_to) = msg.reply.clone() else {
            continue;
        };
        // Checked before a task is spawned for it: a stranger's flood costs an HMAC each.
        let Some((_, body)) = cluster.open(&msg.subject, &msg.payload) else {
            continue;
        };
        let body = body.to_vec();
        let cluster = cluster.clone();
        tokio::spawn(async move {
            let answer = match serde_json::from_slice::<RelayRequest>(&body) {
                Ok(r) if r.sealed.tenant_id == r.tenant_id && r.sealed.agent_id == r.agent_id => {
                    let timeout = Duration::from_millis(r.timeout_ms.min(120_000));
                    match cluster
                        .gateway
                        .relay(r.tenant_id, r.agent_id, r.sealed, timeout, r.may_move_on)
                        .await
                    {
                        Relayed::Answered(answer) => {
                            let (reply, mac) = *answer;
                            RelayAnswer::Answered {
                                request_id: reply.request_id,
                                outcome: reply.outcome,
                                agent_host: reply.agent_host,
                                agent_micros: reply.agent_micros,
                                repeated: reply.repeated,
                                mac,
                            }
                        }
                        Relayed::NoAgent => RelayAnswer::NoAgent,
                        Relayed::Lost => RelayAnswer::Lost,
                        Relayed::Stuck => RelayAnswer::Stuck,
                        Relayed::Timeout => RelayAnswer::Timeout,
                        Relayed::Duplicate => RelayAnswer::Refused,
                    }
                }
                Ok(_) => RelayAnswer::Refused,
                Err(e) => {
                    tracing::warn!(error = %e, "a relayed request does not parse; check that every instance runs the same release");
                    RelayAnswer::Refused
                }
            };
            if let Ok(body) = serde_json::to_vec(&answer) {
                let sealed = cluster.seal(&reply_to, &body);
                if let Err(e) = cluster.client.publish(reply_to, sealed.into()).await {
                    tracing::warn!(error = %e, "could not send a relayed answer back over the bus");
                }
            }
        });
    }
}

async fn hear_presence(cluster: Arc<Cluster>, mut sub: async_nats::Subscriber) {
    while let Some(msg) = sub.next().await {
        let Some((sent_ms, body)) = cluster.open(&msg.subject, &msg.payload) else {
            continue;
        };
        match serde_json::from_slice::<Presence>(body) {
            Ok(p) if p.instance != cluster.instance => {
                cluster.remote.heard(p, sent_ms, Instant::now())
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "another instance's presence does not parse"),
        }
    }
}

async fn hear_control(
    cluster: Arc<Cluster>,
    state: Arc<dyn Instance>,
    mut sub: async_nats::Subscriber,
) {
    while let Some(msg) = sub.next().await {
        let Some((sent_ms, body)) = cluster.open(&msg.subject, &msg.payload) else {
            continue;
        };
        let m = match serde_json::from_slice::<ControlMessage>(body) {
            Ok(m) if m.from != cluster.instance => m,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "a control event does not parse");
                continue;
            }
        };
        match m.control {
            Control::Caches => state.store().clear_caches(),
            Control::KeysRotated { tenant_id } => {
                state.keys_rotated(tenant_id).await;
            }
            Control::Revoked {
                tenant_id,
                agent_id,
            } => {
                let n = cluster.gateway.disconnect(tenant_id, agent_id);
                if n > 0 {
                    tracing::warn!(agent = %agent_id, connections = n, "agent revoked at another instance: its connections here close");
                }
            }
            Control::PasswordChanged { tenant_id, upn } => {
                let _ = crate::dispatcher::Dispatcher::password_changed(
                    &*cluster.gateway,
                    tenant_id,
                    &upn,
                );
            }
            Control::Leaving => cluster.remote.left(m.from, sent_ms),
        }
    }
}

/// Announces this instance's agents every [`ANNOUNCE_EVERY`] and at each change; at
/// shutdown, says it leaves.
async fn announce(cluster: Arc<Cluster>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(ANNOUNCE_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = cluster.gateway.changed.notified() => {}
            _ = stop.changed() => {
                cluster.announce(Control::Leaving).await;
                let _ = cluster.client.flush().await;
                return;
            }
        }
        let agents: Vec<PresentAgent> = cluster
            .gateway
            .local_agents()
            .into_iter()
            .map(|l| PresentAgent {
                tenant_id: l.tenant_id,
                agent_id: l.agent.agent_id,
                host: l.agent.host,
                version: l.agent.version,
                upn_suffixes: l.agent.upn_suffixes,
                write_suffixes: l.write_suffixes,
                hpke_public_key: b64(&l.hpke_public_key),
                sealed_sessions: l.sealed_sessions,
                in_flight: l.agent.in_flight,
                served: l.agent.served,
                draining: l.agent.draining,
                last_heard_ms: l.agent.last_heard_ms,
            })
            .collect();
        let parts = agents.len().div_ceil(PRESENCE_PART).max(1);
        for part in 0..parts {
            let p = Presence {
                instance: cluster.instance,
                agents: agents
                    .iter()
                    .skip(part * PRESENCE_PART)
                    .take(PRESENCE_PART)
                    .cloned()
                    .collect(),
                part: part as u32,
                parts: parts as u32,
            };
            if let Ok(body) = serde_json::to_vec(&p) {
                // A bus that is down drops it; the next one goes out when it is back.
                let subject = cluster.subjects.presence();
                let sealed = cluster.seal(&subject, &body);
                let _ = cluster.client.publish(subject, sealed.into()).await;
            }
        }
    }
}

/// Tells the other instances to drop their caches after each change made here.
async fn forward_cache_changes(cluster: Arc<Cluster>, state: Arc<dyn Instance>) {
    let mut changes = state.store().changes();
    let mut stop = state.shutdown();
    loop {
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                cluster.announce(Control::Caches).await;
            }
            _ = stop.changed() => return,
        }
    }
}
