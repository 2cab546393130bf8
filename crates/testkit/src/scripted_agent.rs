//! An agent connection the test scripts, against the real cloud: the client certificate of a
//! registered agent (mutual TLS and the WebSocket upgrade through the agent crate's own
//! [`passthru_agent::connect::connect`]), `Hello`, then each `Validate` answered as the test
//! says. It plays whoever holds an agent's certificate: with or without its HPKE key (which
//! [`ScriptedAgent::connect`] hands over separately, for the test to use or not).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use futures_util::{SinkExt as _, StreamExt as _};
use passthru_agent::clock::now_ms;
use passthru_agent::connect::{connect, AgentSocket, Endpoint};
use passthru_agent::state_dir::StateDir;
use passthru_agent::tls_config::client_config;
use passthru_proto::wire::{AgentToCloud, CloudToAgent, PROTOCOL_VERSION};
use passthru_proto::{AgentKeyPair, SealedRequest};
use tokio_tungstenite::tungstenite::Message;

/// How long each step waits for the cloud.
const STEP_TIMEOUT: Duration = Duration::from_secs(20);

/// A connected, scripted agent.
pub struct ScriptedAgent {
    ws: AgentSocket,
}

impl std::fmt::Debug for ScriptedAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptedAgent").finish_non_exhaustive()
    }
}

impl ScriptedAgent {
    /// Connects to the cloud with the certificate of the agent whose state dir is
    /// `state_dir`, waits for `Welcome` and says `Hello` for `upn_suffixes`. Also returns the
    /// agent's HPKE key pair, which the connection itself does not use.
    pub async fn connect(
        state_dir: &Path,
        upn_suffixes: &[&str],
    ) -> anyhow::Result<(ScriptedAgent, AgentKeyPair)> {
        let state = StateDir::new(state_dir)
            .load()
            .map_err(|e| anyhow!("loading the agent's state: {e}"))?;
        let tls = client_config(&state)?;
        let endpoint = Endpoint::new(
            &state.registration.agent_endpoint,
            state.registration.tenant_id,
        )?;
        let ws = connect(&endpoint, tls).await?;
        let mut agent = ScriptedAgent { ws };
        match agent.next(Instant::now() + STEP_TIMEOUT).await? {
            CloudToAgent::Welcome { .. } => {}
            other => anyhow::bail!("expected Welcome, got {other:?}"),
        }
        agent
            .send(&AgentToCloud::Hello {
                protocol: PROTOCOL_VERSION,
                version: "scripted".into(),
                host: "scripted-agent".into(),
                upn_suffixes: upn_suffixes.iter().map(|s| s.to_string()).collect(),
                agent_time_ms: now_ms(),
                sync_forests: Vec::new(),
                sealed_sessions: false,
            })
            .await?;
        Ok((agent, state.hpke))
    }

    /// The next message from the cloud before `deadline` (pings are answered on the way).
    async fn next(&mut self, deadline: Instant) -> anyhow::Result<CloudToAgent> {
        loop {
            let msg = tokio::time::timeout_at(deadline.into(), self.ws.next())
                .await
                .context("no message from the cloud in time")?
                .ok_or_else(|| anyhow!("the cloud closed the connection"))??;
            if let Message::Text(t) = msg {
                return serde_json::from_str(t.as_str()).context("a message from the cloud");
            }
        }
    }

    /// Waits for the next `Validate` request (skipping other messages), at most
    /// [`STEP_TIMEOUT`].
    pub async fn next_request(&mut self) -> anyhow::Result<SealedRequest> {
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if let CloudToAgent::Validate(sealed) = self.next(deadline).await? {
                return Ok(sealed);
            }
        }
    }

    /// Sends a WebSocket ping and waits for the cloud's pong (skipping other messages): the
    /// connection still carries traffic both ways.
    pub async fn ping(&mut self) -> anyhow::Result<()> {
        let payload = uuid::Uuid::new_v4().as_bytes().to_vec();
        tokio::time::timeout(
            STEP_TIMEOUT,
            self.ws.send(Message::Ping(payload.clone().into())),
        )
        .await
        .context("sending a ping to the cloud timed out")??;
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            let msg = tokio::time::timeout_at(deadline.into(), self.ws.next())
                .await
                .context("no pong from the cloud in time")?
                .ok_or_else(|| anyhow!("the cloud closed the connection"))??;
            if let Message::Pong(p) = msg {
                if p[..] == payload[..] {
                    return Ok(());
                }
            }
        }
    }

    /// Sends `message` to the cloud.
    pub async fn send(&mut self, message: &AgentToCloud) -> anyhow::Result<()> {
        let text = serde_json::to_string(message)?;
        tokio::time::timeout(STEP_TIMEOUT, self.ws.send(Message::text(text)))
            .await
            .context("sending to the cloud timed out")??;
        Ok(())
    }
}
