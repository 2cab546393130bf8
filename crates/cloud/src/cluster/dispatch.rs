//! [`Cluster::dispatch`]: the instance's own agents first (the gateway, no bus), then an
//! agent at another instance: sealed here to that agent's key, relayed there, and its
//! answer's MAC checked here. While no agent of the tenant is connected anywhere but one was
//! lately (an instance died and its agents are reconnecting), the request waits for one
//! within its deadline, also after trying the agents of the instance that died: a
//! validation relayed to an instance that stops announcing itself while it holds the request
//! is given up there (its answer will never come) and sent to the agent where it reconnects.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::RequestErrorKind;
use passthru_proto::answer::Binding;
use passthru_proto::seal::{Encapsulation, RequestHeader, ValidationPayload};
use passthru_proto::SessionSealer;
use uuid::Uuid;

use super::wire::{PresentAgent, RelayAnswer, RelayRequest};
use super::{unb64, Cluster};
use crate::dispatcher::{DispatchError, Reply};

/// How often a request waiting for an agent looks again.
const WAIT_STEP: Duration = Duration::from_millis(100);
/// Extra time the bus gets beyond the agent's deadline for the answer to come back.
const BUS_MARGIN: Duration = Duration::from_millis(500);

/// Session sealers kept for agents at other instances; past this many (agent keys seen
/// since the last clear) they are all dropped and made again as requests come.
const MAX_SEALERS: usize = 10_000;

/// What one relay attempt gave.
enum Attempt {
    Done(Result<Box<Reply>, DispatchError>),
    /// Try another agent (this one went away, looked stuck, or its instance is gone).
    Next {
        passed_over: bool,
    },
}

impl Cluster {
    /// The session sealer to the agent key `key` (kept per key: requests to one agent from
    /// this instance share a session, renewed by age and use).
    fn sealer(&self, key: &[u8]) -> Result<Arc<SessionSealer>, passthru_proto::SealError> {
        let mut sealers = self.sealers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sealers.get(key) {
            return Ok(Arc::clone(s));
        }
        if sealers.len() >= MAX_SEALERS {
            sealers.clear();
        }
        let sealer = Arc::new(SessionSealer::new(key)?);
        sealers.insert(key.to_vec(), Arc::clone(&sealer));
        Ok(sealer)
    }

    pub(crate) async fn dispatch(
        &self,
        tenant_id: Uuid,
        payload: &ValidationPayload,
        timeout: Duration,
    ) -> Result<Reply, DispatchError> {
        let deadline = Instant::now() + timeout;
        let write = !payload.operation.is_validate();
        let suffix = payload
            .username
            .rsplit_once('@')
            .map(|(_, s)| s.to_ascii_lowercase())
            .unwrap_or_default();
        // (instance, agent) pairs tried: an agent tried at an instance that died is tried
        // again where it reconnects.
        let mut tried: Vec<(Uuid, Uuid)> = Vec::new();
        let mut passed_over: Vec<Uuid> = Vec::new();
        let mut local_failed = false;
        loop {
            let now = Instant::now();
            if !local_failed && self.gateway.has_connections(tenant_id) {
                self.saw(tenant_id, now);
                let remaining = deadline.saturating_duration_since(now);
                match self.gateway.validate(tenant_id, payload, remaining).await {
                    // Every agent here went away mid-request: one elsewhere may serve.
                    Err(DispatchError::NoAgent) => local_failed = true,
                    other => return other,
                }
                continue;
            }
            // With the bus down, agents elsewhere are out of reach.
            let pick = if self.bus_up() {
                self.remote.pick(tenant_id, &suffix, write, &tried, now)
            } else {
                None
            };
            let Some((instance, agent)) = pick else {
                // Agents elsewhere count only while the bus reaches them; while it is down a
                // request waits (within its deadline) for it, or for an agent here.
                let anywhere = self.bus_up() && !self.remote.agents(tenant_id, now).is_empty();
                if anywhere {
                    self.saw(tenant_id, now);
                }
                // Nobody left to try. If the tenant had agents lately and none is connected
                // now, wait for one (they are reconnecting); else fail at once. This holds
                // after tries too: the agents tried were at an instance that died (no
                // responders there, or it stopped announcing itself), and they reconnect to
                // another within seconds.
                if !anywhere && self.seen_lately(tenant_id, now) && now + WAIT_STEP < deadline {
                    tokio::time::sleep(WAIT_STEP).await;
                    local_failed = false;
                    continue;
                }
                return Err(DispatchError::NoAgent);
            };
            self.saw(tenant_id, now);
            tried.push((instance, agent.agent_id));
            let _slot = self.gateway.enter_tenant(tenant_id)?;
            match self
                .relay(instance, &agent, tenant_id, payload, deadline, write)
                .await
            {
                Attempt::Done(Ok(mut reply)) => {
                    reply.passed_over = passed_over;
                    return Ok(*reply);
                }
                Attempt::Done(Err(e)) => return Err(e),
                Attempt::Next { passed_over: p } => {
                    if p {
                        passed_over.push(agent.agent_id);
                    }
                    if Instant::now() >= deadline {
                        return Err(DispatchError::Timeout);
                    }
                }
            }
        }
    }

    /// Seals `payload` to `agent` (at `instance`) and relays it there.
    async fn relay(
        &self,
        instance: Uuid,
        agent: &PresentAgent,
        tenant_id: Uuid,
        payload: &ValidationPayload,
        deadline: Instant,
        write: bool,
    ) -> Attempt {
        let Some(key) = unb64(&agent.hpke_public_key) else {
            tracing::error!(agent = %agent.agent_id, "another instance announced an agent key that is not base64");
            return Attempt::Next { passed_over: false };
        };
        let issued = crate::clock::unix_ms().max(0) as u64;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let header = RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id,
            agent_id: agent.agent_id,
            issued_at_ms: issued,
            expires_at_ms: issued + remaining.as_millis() as u64,
        };
        let sealed = if agent.sealed_sessions {
            self.sealer(&key)
                .and_then(|s| s.seal(header, payload, Instant::now()))
        } else {
            Encapsulation::new(&key).and_then(|e| e.seal(header, payload))
        };
        let Ok((sealed, answer_key)) = sealed else {
            tracing::error!(agent = %agent.agent_id, "the agent's HPKE key is invalid; re-register the agent");
            return Attempt::Next { passed_over: false };
        };
        let request = RelayRequest {
            tenant_id,
            agent_id: agent.agent_id,
            sealed,
            timeout_ms: remaining.as_millis() as u64,
            may_move_on: !write,
        };
        let Ok(body) = serde_json::to_vec(&request) else {
            return Attempt::Done(Err(DispatchError::NoAgent));
        };
        let subject = self.subjects.relay(instance);
        let sealed_body = self.seal(&subject, &body);
        let request = self.client.send_request(
            subject,
            async_nats::Request::new()
                .payload(sealed_body.into())
                .timeout(Some(remaining + BUS_MARGIN)),
        );
        tokio::pin!(request);
        // The instance may die holding the request (kill -9, a crash): nobody answers then,
        // and waiting for the bus's timeout would fail the sign-in at its deadline although
        // the agent reconnects elsewhere within seconds. So the request is given up as soon
        // as the instance stops announcing itself (within `STALE_AFTER` of its death).
        let mut look = tokio::time::interval(WAIT_STEP);
        let sent = loop {
            tokio::select! {
                sent = &mut request => break sent,
                _ = look.tick() => {
                    if self.remote.present(instance, Instant::now()) {
                        continue;
                    }
                    if write {
                        // It may or may not have been applied: not sent to another agent.
                        tracing::warn!(%instance, agent = %agent.agent_id, request = %header.request_id,
                            "the instance holding a relayed password write stopped announcing itself before it answered; the write is not sent to another agent (it may or may not have been applied)");
                        return Attempt::Done(Err(DispatchError::Timeout));
                    }
                    tracing::warn!(%instance, agent = %agent.agent_id, request = %header.request_id,
                        "the instance holding a relayed request stopped announcing itself before it answered (it died, or the bus to it is cut); trying another way to an agent");
                    return Attempt::Next { passed_over: true };
                }
            }
        };
        let msg = match sent {
            Ok(msg) => msg,
            Err(e) if e.kind() == RequestErrorKind::NoResponders => {
                // The instance is gone (its subscription went with its connection).
                tracing::warn!(%instance, agent = %agent.agent_id, "no instance answers for this agent any more; trying another");
                self.remote.forget(instance);
                return Attempt::Next { passed_over: false };
            }
            Err(e) if e.kind() == RequestErrorKind::TimedOut => {
                return Attempt::Done(Err(DispatchError::Timeout));
            }
            Err(e) => {
                // The bus itself failed (nats-server down): agents elsewhere are out of
                // reach until it is back. The request may have got there: a write is not
                // sent again.
                tracing::warn!(error = %e, %instance, "the bus failed while relaying a request");
                return unknown_fate(write);
            }
        };
        // From here on the request reached the other instance: whatever went wrong with the
        // answer, a write may have been applied and is never sent again.
        let Some((_, body)) = self.open(&msg.subject, &msg.payload) else {
            return unknown_fate(write);
        };
        let answer: RelayAnswer = match serde_json::from_slice(body) {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = %e, %instance, "another instance's relay answer does not parse; check that every instance runs the same release");
                return unknown_fate(write);
            }
        };
        match answer {
            RelayAnswer::Answered {
                request_id,
                outcome,
                agent_host,
                agent_micros,
                repeated,
                mac,
            } => {
                if request_id != header.request_id {
                    return unknown_fate(write);
                }
                let repeated = match answer_key.check(
                    request_id,
                    &outcome,
                    repeated,
                    mac.as_deref(),
                ) {
                    Ok(Binding::Bound) => repeated,
                    Ok(Binding::Unbound) => false,
                    Err(refusal) => {
                        tracing::warn!(agent = %agent.agent_id, host = %agent.host, request = %request_id, %refusal,
                            "agent answer refused (AADSTS80005): it is not authenticated with the key of the request's envelope. If this repeats, someone may hold this agent's certificate without its HPKE key: revoke the agent (agents revoke ID) and register it again");
                        return Attempt::Done(Err(DispatchError::AnswerRefused(refusal)));
                    }
                };
                Attempt::Done(Ok(Box::new(Reply {
                    request_id,
                    outcome,
                    agent_id: agent.agent_id,
                    agent_host,
                    agent_micros,
                    repeated,
                    passed_over: Vec::new(),
                })))
            }
            RelayAnswer::NoAgent | RelayAnswer::Refused => Attempt::Next { passed_over: false },
            RelayAnswer::Stuck => Attempt::Next { passed_over: true },
            RelayAnswer::Lost if write => {
                tracing::warn!(agent = %agent.agent_id, request = %header.request_id,
                    "the agent's connection ended before it answered a password write; the write is not sent to another agent (it may or may not have been applied)");
                Attempt::Done(Err(DispatchError::Timeout))
            }
            RelayAnswer::Lost => Attempt::Next { passed_over: true },
            RelayAnswer::Timeout => Attempt::Done(Err(DispatchError::Timeout)),
        }
    }
}

/// After a relayed request may have reached an agent but no usable answer came back: a
/// validation goes to another agent, a write fails as after a deadline (it may or may not
/// have been applied, and is never sent twice).
fn unknown_fate(write: bool) -> Attempt {
    if write {
        Attempt::Done(Err(DispatchError::Timeout))
    } else {
        Attempt::Next { passed_over: true }
    }
}
