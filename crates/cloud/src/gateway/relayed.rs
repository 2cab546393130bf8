//! Requests another cloud instance sealed and relayed here, for an agent connected to this
//! one ([`Gateway::relay`]): sent to the agent as they are, their answer handed back as the
//! agent sent it. This instance never sees more than the sealed envelope and the answer; the
//! instance that sealed the request checks the answer's MAC.

use passthru_proto::seal::SealedRequest;

use super::relay::{await_reply, InFlight, Waited};
use super::*;

/// What became of a relayed request.
#[derive(Debug)]
pub enum Relayed {
    /// The agent answered (the MAC is not checked here).
    Answered(Box<RawAnswer>),
    /// The agent is not connected here (any more), is draining or stuck, or the request was
    /// sealed to a key it no longer has (it renewed since the sealing instance last heard
    /// of it): never sent, so the sealing instance may send it elsewhere.
    NoAgent,
    /// The agent's connection ended before it answered.
    Lost,
    /// The agent answered neither the request nor a ping: it gets no new requests until it
    /// is heard from.
    Stuck,
    /// No answer before the deadline.
    Timeout,
    /// A request of that id already waits here: refused, not sent.
    Duplicate,
}

impl Gateway {
    /// Sends `sealed` (sealed by another instance to `agent_id`'s key) to that agent's
    /// connection here and waits until `timeout` for its answer. `may_move_on`: a
    /// validation, which may go to another agent when this one looks stuck (never a write).
    pub async fn relay(
        &self,
        tenant_id: Uuid,
        agent_id: Uuid,
        sealed: SealedRequest,
        timeout: Duration,
        may_move_on: bool,
    ) -> Relayed {
        let deadline = Instant::now() + timeout;
        let request_id = sealed.request_id;
        let agent = {
            let inner = self.lock();
            inner
                .agents
                .get(&tenant_id)
                .into_iter()
                .flatten()
                .filter(|c| {
                    c.agent_id == agent_id
                        && c.key_id == sealed.key_id
                        && !c.is_draining()
                        && !c.is_stuck()
                })
                .min_by_key(|c| c.in_flight())
                .cloned()
        };
        let Some(agent) = agent else {
            return Relayed::NoAgent;
        };
        let (tx, rx) = oneshot::channel();
        {
            let mut inner = self.lock();
            // A request id already waiting here is a replay (or a forgery): it must not take
            // the first one's place (its answer would go astray and the password be checked
            // twice). Once the first is answered, the agent refuses a replay itself.
            if inner.pending.contains_key(&request_id) {
                return Relayed::Duplicate;
            }
            inner.pending.insert(
                request_id,
                Pending {
                    agent_id,
                    conn_id: agent.conn_id,
                    awaiting: Awaiting::Relay { tx },
                },
            );
        }
        agent.in_flight.fetch_add(1, Ordering::Relaxed);
        let guard = InFlight {
            gateway: self,
            agent: agent.clone(),
            request_id,
        };
        let sent_at = Instant::now();
        if !agent.send(CloudToAgent::Validate(sealed)) {
            // Never sent: safe to send elsewhere, a write included.
            return Relayed::NoAgent;
        }
        let waited = await_reply(&agent, rx, deadline, may_move_on).await;
        drop(guard);
        match waited {
            Waited::Got((reply, mac)) => {
                agent.served.fetch_add(1, Ordering::Relaxed);
                self.count(tenant_id, agent_id, &reply.outcome, sent_at.elapsed());
                Relayed::Answered(Box::new((reply, mac)))
            }
            Waited::Lost => Relayed::Lost,
            Waited::Stuck => Relayed::Stuck,
            Waited::Timeout => Relayed::Timeout,
        }
    }
}
