//! Relaying one sealed request: [`Gateway::validate`] picks an agent of the tenant (a writer
//! for a writeback, the least busy among those serving the user's domain), seals the payload
//! to it, sends it and waits for its answer until the deadline, moving to another agent when
//! a connection drops or an agent looks stuck; [`Gateway::complete`] delivers an agent's
//! answer once its MAC is checked against the request's key.

use super::*;

impl Gateway {
    /// Delivers an agent's answer, once its `mac` is checked against the request's key.
    /// Answers for unknown requests (late, or sent to another connection) are dropped; an
    /// answer whose MAC is missing or wrong is refused and logged, and its request fails.
    pub fn complete(
        &self,
        conn: &AgentConn,
        request_id: Uuid,
        mut reply: Reply,
        mac: Option<&str>,
    ) -> Completion {
        let pending = {
            let mut inner = self.lock();
            match inner.pending.get(&request_id) {
                Some(p) if p.conn_id == conn.conn_id && p.agent_id == conn.agent_id => {
                    inner.pending.remove(&request_id)
                }
                Some(_) => {
                    tracing::warn!(agent = %conn.agent_id, host = %conn.host, request = %request_id,
                        "an agent answered a request that was sent to another agent connection; answer dropped");
                    None
                }
                None => None,
            }
        };
        let Some(p) = pending else {
            return Completion::Unknown;
        };
        let (answer_key, tx) = match p.awaiting {
            Awaiting::Sealer { answer_key, tx } => (answer_key, tx),
            Awaiting::Relay { tx } => {
                // The sealing instance checks it; it may have given up meanwhile.
                let _ = tx.send((reply, mac.map(str::to_string)));
                return Completion::Delivered;
            }
        };
        let checked = answer_key.check(request_id, &reply.outcome, reply.repeated, mac);
        let answer = match checked {
            Ok(Binding::Bound) => Ok(reply),
            Ok(Binding::Unbound) => {
                // A refusal made without opening the envelope says only that it failed.
                reply.repeated = false;
                Ok(reply)
            }
            Err(refusal) => {
                tracing::warn!(agent = %conn.agent_id, host = %conn.host, request = %request_id, %refusal,
                    "agent answer refused (AADSTS80005): it is not authenticated with the key of the request's envelope. If this repeats, someone may hold this agent's certificate without its HPKE key: revoke the agent (agents revoke ID) and register it again");
                Err(refusal)
            }
        };
        let refused = answer.as_ref().err().copied();
        // The waiting request may have ended (its caller went away): nothing to deliver to.
        let _ = tx.send(answer);
        match refused {
            Some(r) => Completion::Refused(r),
            None => Completion::Delivered,
        }
    }

    /// Picks the least busy agent of the tenant that serves the user's UPN suffix (or, when
    /// none announces it, any agent: it will answer "not routable"), skipping `tried`. For a
    /// password write, agents with a service account for the forest come first.
    fn pick(
        &self,
        tenant_id: Uuid,
        suffix: &str,
        write: bool,
        tried: &[Uuid],
    ) -> Option<Arc<AgentConn>> {
        let inner = self.lock();
        let list = inner.agents.get(&tenant_id)?;
        let usable = || {
            list.iter().filter(|c| {
                !c.draining.load(Ordering::Relaxed) && !c.is_stuck() && !tried.contains(&c.conn_id)
            })
        };
        // Least in flight; an agent that lately reached no DC comes after the others; ties
        // go round (so every agent serves, and a fault anywhere shows).
        let now = now_ms();
        let turn = self.turn.fetch_add(1, Ordering::Relaxed);
        let least = |it: &mut dyn Iterator<Item = &Arc<AgentConn>>| {
            let key = |c: &AgentConn| {
                (
                    c.no_dc_until_ms.load(Ordering::Relaxed) > now,
                    c.in_flight.load(Ordering::Relaxed),
                )
            };
            let candidates: Vec<&Arc<AgentConn>> = it.collect();
            let best = candidates.iter().map(|c| key(c)).min()?;
            let tied: Vec<&&Arc<AgentConn>> =
                candidates.iter().filter(|c| key(c) == best).collect();
            tied.get(turn % tied.len().max(1)).map(|c| Arc::clone(c))
        };
        let writer = write
            .then(|| least(&mut usable().filter(|c| c.writes(suffix))))
            .flatten();
        writer
            .or_else(|| least(&mut usable().filter(|c| c.serves(suffix))))
            .or_else(|| least(&mut usable()))
    }

    /// Validates a password through one agent of the tenant, within `timeout`.
    pub async fn validate(
        &self,
        tenant_id: Uuid,
        payload: &ValidationPayload,
        timeout: Duration,
    ) -> Result<Reply, DispatchError> {
        // One tenant's flood waits for no agent and holds no memory past its share.
        let _slot = self
            .tenant_slots
            .enter(tenant_id)
            .map_err(|_| DispatchError::Busy)?;
        let deadline = Instant::now() + timeout;
        let suffix = payload
            .username
            .rsplit_once('@')
            .map(|(_, s)| s.to_ascii_lowercase())
            .unwrap_or_default();
        let mut tried: Vec<Uuid> = Vec::new();
        let mut passed_over: Vec<Uuid> = Vec::new();
        loop {
            let write = !payload.operation.is_validate();
            let Some(agent) = self.pick(tenant_id, &suffix, write, &tried) else {
                // None connected, or every one we tried went away mid-request.
                return Err(DispatchError::NoAgent);
            };
            tried.push(agent.conn_id);
            let issued = now_ms();
            let remaining = deadline.saturating_duration_since(Instant::now());
            let header = RequestHeader {
                request_id: Uuid::new_v4(),
                tenant_id,
                agent_id: agent.agent_id,
                issued_at_ms: issued,
                expires_at_ms: issued + remaining.as_millis() as u64,
            };
            let Ok((sealed, answer_key)) = agent.seal(header, payload) else {
                // A stored key that does not parse: this agent cannot be used.
                tracing::error!(agent = %agent.agent_id, "the agent's stored HPKE key is invalid; re-register the agent");
                continue;
            };
            let (tx, rx) = oneshot::channel();
            self.lock().pending.insert(
                header.request_id,
                Pending {
                    agent_id: agent.agent_id,
                    conn_id: agent.conn_id,
                    awaiting: Awaiting::Sealer { answer_key, tx },
                },
            );
            agent.in_flight.fetch_add(1, Ordering::Relaxed);
            let guard = InFlight {
                gateway: self,
                agent: agent.clone(),
                request_id: header.request_id,
            };
            let sent_at = Instant::now();
            let sent = agent.tx.try_send(CloudToAgent::Validate(sealed)).is_ok();
            let step = if sent {
                // A write is never sent twice (a change could be applied twice): only
                // validations move on from an agent that looks stuck.
                let refill = async {
                    // Once the writer has sent the request (this yields to it first).
                    tokio::task::yield_now().await;
                    agent.refill();
                };
                Step::from(tokio::join!(await_reply(&agent, rx, deadline, !write), refill).0)
            } else {
                Step::Lost
            };
            drop(guard);
            match step {
                Step::Answered(mut reply) => {
                    agent.served.fetch_add(1, Ordering::Relaxed);
                    self.count(tenant_id, agent.agent_id, &reply.outcome, sent_at.elapsed());
                    // An agent that reached no DC of the forest asked nothing (no bind, no
                    // write): another agent, with its own path to the DCs, may serve.
                    let unreachable = matches!(
                        reply.outcome,
                        Outcome::Error {
                            error: AgentError::DirectoryUnreachable
                        }
                    );
                    if unreachable {
                        agent
                            .no_dc_until_ms
                            .store(now_ms() + NO_DC_PENALTY_MS, Ordering::Relaxed);
                    }
                    if unreachable
                        && Instant::now() < deadline
                        && self.pick(tenant_id, &suffix, write, &tried).is_some()
                    {
                        tracing::warn!(agent = %agent.agent_id, request = %header.request_id,
                            "the agent reached no domain controller; trying another agent");
                        passed_over.push(agent.agent_id);
                        continue;
                    }
                    reply.passed_over = passed_over;
                    return Ok(*reply);
                }
                Step::Lost if write && sent => {
                    // The agent may have written the password before its connection ended:
                    // sending the write to another agent could apply it twice (a change
                    // that fails the second time, a reset whose "must change" flag is set
                    // again). The outcome is unknown, as after a deadline.
                    tracing::warn!(agent = %agent.agent_id, request = %header.request_id,
                        operation = payload.operation.name(),
                        "the agent's connection ended before it answered a password write; the write is not sent to another agent (it may or may not have been applied)");
                    return Err(DispatchError::Timeout);
                }
                Step::Lost => {
                    tracing::warn!(agent = %agent.agent_id, request = %header.request_id,
                        "the agent's connection ended before it answered; trying another agent");
                    passed_over.push(agent.agent_id);
                    if Instant::now() >= deadline {
                        return Err(DispatchError::Timeout);
                    }
                }
                Step::Stuck => {
                    tracing::warn!(agent = %agent.agent_id, request = %header.request_id,
                        "the agent has not answered a ping within {} ms (stuck, or its network cut); it gets no new requests until it is heard from, and this one goes to another agent",
                        STUCK_PROBE.as_millis());
                    passed_over.push(agent.agent_id);
                }
                Step::Timeout => {
                    return Err(DispatchError::Timeout);
                }
                Step::Refused(refusal) => {
                    // Logged where it was refused; never sent to another agent (this one may
                    // have bound the password already, and an impostor must not get retries).
                    // Counted among the agent's errors (`agents list`).
                    let mut tallies = self.tallies();
                    let t = tallies.entry(agent.agent_id).or_default();
                    *t.errors.entry("answer_refused".into()).or_default() += 1;
                    return Err(DispatchError::AnswerRefused(refusal));
                }
            }
        }
    }
}

/// How long an agent that reached no DC of a forest comes after the others, ms (its own
/// probes find the DCs again; meanwhile the others serve without a detour).
const NO_DC_PENALTY_MS: u64 = 5_000;

/// How long a validation waits for its agent before the cloud checks that the agent is
/// alive (a validation takes milliseconds: a bind and a search).
pub const SUSPECT_AFTER: Duration = Duration::from_millis(750);
/// How long the agent has to answer that check (a WebSocket ping) before it counts as
/// stuck.
pub const STUCK_PROBE: Duration = Duration::from_millis(750);

/// Waits for the agent's answer until `deadline`. With `may_move_on`, an agent that has
/// sent nothing since the request was sent, after [`SUSPECT_AFTER`], is pinged; if it does
/// not answer within [`STUCK_PROBE`] either, it is marked stuck and the wait ends
/// ([`Step::Stuck`]) so the request can go to another agent. An agent that answers the
/// ping is alive (its DC is slow, say): the wait goes on, and the password is never bound
/// twice.
pub(super) async fn await_reply<T>(
    agent: &AgentConn,
    mut rx: oneshot::Receiver<T>,
    deadline: Instant,
    may_move_on: bool,
) -> Waited<T> {
    let sent_ms = now_ms();
    if may_move_on {
        let check_at = (Instant::now() + SUSPECT_AFTER).min(deadline);
        match tokio::time::timeout_at(check_at.into(), &mut rx).await {
            Ok(Ok(answer)) => return Waited::Got(answer),
            Ok(Err(_)) => return Waited::Lost,
            Err(_) => {}
        }
        if agent.last_heard_ms() < sent_ms && Instant::now() < deadline {
            let probe_ms = now_ms();
            agent.ping_now.notify_one();
            let give_up = (Instant::now() + STUCK_PROBE).min(deadline);
            match tokio::time::timeout_at(give_up.into(), &mut rx).await {
                Ok(Ok(answer)) => return Waited::Got(answer),
                Ok(Err(_)) => return Waited::Lost,
                Err(_) => {}
            }
            if agent.last_heard_ms() < probe_ms && Instant::now() < deadline {
                agent.stuck_since_ms.store(now_ms(), Ordering::Relaxed);
                return Waited::Stuck;
            }
        }
    }
    match tokio::time::timeout_at(deadline.into(), rx).await {
        Ok(Ok(answer)) => Waited::Got(answer),
        Ok(Err(_)) => Waited::Lost,
        Err(_) => Waited::Timeout,
    }
}

/// How a wait for an agent's answer ended.
pub(super) enum Waited<T> {
    Got(T),
    /// The agent's connection ended (or its queue was full) before it answered.
    Lost,
    /// The agent answered neither the request nor a ping.
    Stuck,
    /// The deadline passed.
    Timeout,
}

impl From<Waited<Answer>> for Step {
    fn from(w: Waited<Answer>) -> Step {
        match w {
            Waited::Got(answer) => Step::from(answer),
            Waited::Lost => Step::Lost,
            Waited::Stuck => Step::Stuck,
            Waited::Timeout => Step::Timeout,
        }
    }
}

/// Undoes a dispatch's bookkeeping however the wait ends, including when the caller's
/// future is dropped (a client that disconnects mid-sign-in).
pub(super) struct InFlight<'a> {
    pub(super) gateway: &'a Gateway,
    pub(super) agent: Arc<AgentConn>,
    pub(super) request_id: Uuid,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.agent.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.gateway.lock().pending.remove(&self.request_id);
    }
}

enum Step {
    /// The agent answered.
    Answered(Box<Reply>),
    /// The agent's connection ended (or its queue was full) before it answered.
    Lost,
    /// The agent looks stuck: it answered neither the request nor a ping.
    Stuck,
    /// The deadline passed.
    Timeout,
    /// The agent's answer was refused (not authenticated with the request's key).
    Refused(AnswerRefusal),
}

impl From<Answer> for Step {
    fn from(answer: Answer) -> Step {
        match answer {
            Ok(reply) => Step::Answered(Box::new(reply)),
            Err(refusal) => Step::Refused(refusal),
        }
    }
}

impl Dispatcher for Gateway {
    fn dispatch<'a>(
        &'a self,
        tenant_id: Uuid,
        payload: &'a ValidationPayload,
        timeout: Duration,
    ) -> Dispatched<'a> {
        Box::pin(self.validate(tenant_id, payload, timeout))
    }

    fn password_changed(&self, tenant_id: Uuid, upn: &str) -> usize {
        self.tell_all(
            tenant_id,
            &CloudToAgent::PasswordChanged {
                user: upn.to_string(),
            },
        )
    }

    fn connected(&self, tenant_id: Uuid) -> Vec<crate::dispatcher::ConnectedAgent> {
        Gateway::connected(self, tenant_id)
    }

    fn disconnect(&self, tenant_id: Uuid, agent_id: Uuid) -> usize {
        Gateway::disconnect(self, tenant_id, agent_id)
    }
}
