//! The seam between the sign-in core and the agents: [`Dispatcher`] sends one sealed request
//! (a password check or a password writeback) to an agent of the tenant and waits for its
//! bound answer, and tells every agent of a tenant that a user's password changed. The in-process
//! implementation is [`crate::gateway::Gateway`] (agents connected to this process); a
//! multi-instance one can replace it, and tests use a scripted one. [`crate::signin`] and
//! [`crate::writeback`] see only this trait; the agent connections' registry, sync and
//! draining stay with the gateway.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use passthru_proto::answer::AnswerRefusal;
use passthru_proto::seal::ValidationPayload;
use passthru_proto::wire::Outcome;
use uuid::Uuid;

/// The answer of [`Dispatcher::dispatch`].
pub type Dispatched<'a> = Pin<Box<dyn Future<Output = Result<Reply, DispatchError>> + Send + 'a>>;

/// Where the sign-in core sends what only an agent can answer.
pub trait Dispatcher: Send + Sync + std::fmt::Debug {
    /// Seals `payload` to one agent of `tenant_id` that serves the user's domain (one that
    /// writes, for a writeback), and waits at most `timeout` for its answer, trying another
    /// agent when one goes away. The answer comes back only when its MAC binds it to the
    /// request.
    fn dispatch<'a>(
        &'a self,
        tenant_id: Uuid,
        payload: &'a ValidationPayload,
        timeout: Duration,
    ) -> Dispatched<'a>;

    /// Tells every agent of `tenant_id` that `upn`'s password changed, so that none answers
    /// a wrong password it remembers for the user instead of asking AD. Returns how many
    /// were told.
    fn password_changed(&self, tenant_id: Uuid, upn: &str) -> usize;

    /// The agents of `tenant_id` connected now, with their live state (agent presence: what
    /// `agents list`, the PTA switch and a revocation check).
    fn connected(&self, tenant_id: Uuid) -> Vec<ConnectedAgent>;

    /// Closes the connections of the revoked agent `agent_id` of `tenant_id` at once.
    /// Returns how many were closed.
    fn disconnect(&self, tenant_id: Uuid, agent_id: Uuid) -> usize;
}

/// A snapshot of a connected agent, for `agents list` and PTA checks.
#[derive(Debug, Clone)]
pub struct ConnectedAgent {
    pub agent_id: Uuid,
    pub host: String,
    pub version: String,
    pub upn_suffixes: Vec<String>,
    pub in_flight: usize,
    pub served: u64,
    pub draining: bool,
    /// When the agent was last heard from, Unix ms.
    pub last_heard_ms: u64,
}

/// Why a request got no outcome from any agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DispatchError {
    /// No agent of the tenant is connected (AADSTS80001).
    #[error("no authentication agent is connected for this tenant")]
    NoAgent,
    /// No answer before the deadline (AADSTS80002).
    #[error("the authentication agent did not answer before the deadline")]
    Timeout,
    /// The tenant already has as many agent requests in flight as it may (AADSTS90055).
    #[error("this organization has too many requests to its authentication agents in flight")]
    Busy,
    /// The answer was refused: its MAC was missing or wrong (AADSTS80005).
    #[error("the authentication agent's answer was refused: {0}")]
    AnswerRefused(AnswerRefusal),
}

impl DispatchError {
    /// The code a sign-in that got this is failed with (the one place the two meet).
    pub fn aadsts(self) -> passthru_proto::Aadsts {
        use passthru_proto::Aadsts;
        match self {
            DispatchError::NoAgent => Aadsts::AgentUnavailable,
            DispatchError::Timeout => Aadsts::AgentTimeout,
            DispatchError::Busy => Aadsts::Throttled,
            DispatchError::AnswerRefused(_) => Aadsts::AgentAnswerRefused,
        }
    }
}

/// An answer from an agent.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The request it answers (for logs).
    pub request_id: Uuid,
    pub outcome: Outcome,
    pub agent_id: Uuid,
    pub agent_host: String,
    pub agent_micros: u64,
    /// The agent answered a recently tried wrong password from memory (no bind).
    pub repeated: bool,
    /// Agents the request was sent to first that did not answer: their connection ended,
    /// or they looked stuck (the sign-in log records them).
    pub passed_over: Vec<Uuid>,
}

/// A dispatcher that answers from a script, for in-process tests of the rules above the seam.
#[cfg(test)]
pub(crate) mod scripted {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    use super::*;

    type Script = dyn Fn(&ValidationPayload) -> Result<Outcome, DispatchError> + Send + Sync;

    /// Answers each request with `script(payload)` and counts and records what it was asked.
    pub(crate) struct Scripted {
        script: Box<Script>,
        calls: AtomicUsize,
        asked: Mutex<Vec<String>>,
        present: Mutex<Vec<ConnectedAgent>>,
    }

    impl std::fmt::Debug for Scripted {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("Scripted")
                .field("calls", &self.calls)
                .finish_non_exhaustive()
        }
    }

    impl Scripted {
        pub(crate) fn new(
            script: impl Fn(&ValidationPayload) -> Result<Outcome, DispatchError>
                + Send
                + Sync
                + 'static,
        ) -> Scripted {
            Scripted {
                script: Box::new(script),
                calls: AtomicUsize::new(0),
                asked: Mutex::new(Vec::new()),
                present: Mutex::new(Vec::new()),
            }
        }

        /// Reports `agents` as connected (to every tenant) from now on.
        pub(crate) fn set_connected(&self, agents: Vec<ConnectedAgent>) {
            if let Ok(mut p) = self.present.lock() {
                *p = agents;
            }
        }

        /// How many requests reached the dispatcher.
        pub(crate) fn calls(&self) -> usize {
            self.calls.load(Ordering::SeqCst)
        }

        /// The user names it was asked about, in order (and `password changed: UPN` for each
        /// [`Dispatcher::password_changed`]).
        pub(crate) fn asked(&self) -> Vec<String> {
            self.asked.lock().map(|a| a.clone()).unwrap_or_default()
        }
    }

    impl Dispatcher for Scripted {
        fn dispatch<'a>(
            &'a self,
            _tenant_id: Uuid,
            payload: &'a ValidationPayload,
            _timeout: Duration,
        ) -> Dispatched<'a> {
            Box::pin(async move {
                self.calls.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut a) = self.asked.lock() {
                    a.push(payload.username.clone());
                }
                let outcome = (self.script)(payload)?;
                Ok(Reply {
                    request_id: Uuid::new_v4(),
                    outcome,
                    agent_id: Uuid::nil(),
                    agent_host: "scripted".into(),
                    agent_micros: 0,
                    repeated: false,
                    passed_over: Vec::new(),
                })
            })
        }

        fn password_changed(&self, _tenant_id: Uuid, upn: &str) -> usize {
            if let Ok(mut a) = self.asked.lock() {
                a.push(format!("password changed: {upn}"));
            }
            1
        }

        fn connected(&self, _tenant_id: Uuid) -> Vec<ConnectedAgent> {
            self.present.lock().map(|p| p.clone()).unwrap_or_default()
        }

        fn disconnect(&self, _tenant_id: Uuid, agent_id: Uuid) -> usize {
            let Ok(mut p) = self.present.lock() else {
                return 0;
            };
            let before = p.len();
            p.retain(|c| c.agent_id != agent_id);
            before - p.len()
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use passthru_proto::Win32;

    use super::scripted::Scripted;
    use super::*;
    use crate::in_process::{directory_user, Bed, DOMAIN};

    /// A password grant for `name@DOMAIN`: the status and the JSON body.
    async fn password_grant(bed: &Bed, name: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let username = format!("{name}@{DOMAIN}");
        let a = bed
            .post(
                "/contoso/oauth2/v2.0/token",
                &[
                    ("grant_type", "password"),
                    ("client_id", bed.client_id.as_str()),
                    ("username", username.as_str()),
                    ("password", "Not-the-Secret-1"),
                    ("scope", "openid"),
                ],
                "",
            )
            .await?;
        Ok((a.status.as_u16(), serde_json::from_str(&a.body)?))
    }

    fn code_of(body: &serde_json::Value) -> Option<u64> {
        body["error_codes"][0].as_u64()
    }

    /// A dispatcher whose agents never answer (the request stays with them).
    #[derive(Debug)]
    struct Hanging;

    impl Dispatcher for Hanging {
        fn dispatch<'a>(
            &'a self,
            _tenant_id: Uuid,
            _payload: &'a ValidationPayload,
            _timeout: Duration,
        ) -> Dispatched<'a> {
            Box::pin(std::future::pending())
        }

        fn password_changed(&self, _tenant_id: Uuid, _upn: &str) -> usize {
            0
        }

        fn connected(&self, _tenant_id: Uuid) -> Vec<ConnectedAgent> {
            Vec::new()
        }

        fn disconnect(&self, _tenant_id: Uuid, _agent_id: Uuid) -> usize {
            0
        }
    }

    /// A sign-in abandoned by its client while the agent has its password (an HTTP/2
    /// stream reset drops the handler) is counted as a wrong password before its smart
    /// lockout place goes back: cancelling requests lets no guess through uncounted.
    #[tokio::test]
    async fn an_abandoned_check_is_counted_as_a_wrong_password() -> anyhow::Result<()> {
        let bed = Bed::with_dispatcher(Arc::new(Hanging)).await?;
        let abandoned =
            tokio::time::timeout(Duration::from_millis(300), password_grant(&bed, "mallory")).await;
        assert!(
            abandoned.is_err(),
            "the agent never answers: the client gives up"
        );
        let key = crate::store::lockout::fold_name(&format!("mallory@{DOMAIN}"));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let l = bed
                .state
                .store
                .lockout(bed.tenant.id, &key, crate::clock::unix_now())
                .await?;
            if l.failures == 1 {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "not counted: {l:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Every answer of the seam, as the sign-in core turns it into what the client sees:
    /// each dispatcher error its AADSTS code, a denial its Win32 mapping, a success tokens,
    /// and a success naming another object than the synced user the answer is refused.
    #[tokio::test]
    async fn each_dispatch_outcome_reaches_the_client_as_its_code() -> anyhow::Result<()> {
        let dispatcher = Arc::new(Scripted::new(|p| {
            let name = p.username.split('@').next().unwrap_or_default();
            match name {
                "noagent" => Err(DispatchError::NoAgent),
                "slow" => Err(DispatchError::Timeout),
                "busy" => Err(DispatchError::Busy),
                "forged" => Err(DispatchError::AnswerRefused(AnswerRefusal::Missing)),
                "wrong" => Ok(Outcome::Denied {
                    win32: Win32::LogonFailure,
                }),
                "locked" => Ok(Outcome::Denied {
                    win32: Win32::AccountLockedOut,
                }),
                // A synced user whose success names someone else's object.
                "synced" => Ok(Outcome::Success(directory_user("someone-else"))),
                other => Ok(Outcome::Success(directory_user(other))),
            }
        }));
        let bed = Bed::with_dispatcher(dispatcher.clone()).await?;
        let synced = bed.synced_user("synced").await?;
        assert!(synced.sync.is_some());

        for (name, status, code) in [
            ("noagent", 400, 80001),
            ("slow", 400, 80002),
            ("busy", 429, 90055),
            ("forged", 400, 80005),
            ("wrong", 400, 50126),
            ("locked", 400, 50053),
            ("synced", 400, 80005),
        ] {
            let (got_status, body) = password_grant(&bed, name).await?;
            assert_eq!(
                (got_status, code_of(&body)),
                (status, Some(code)),
                "{name}: {body}"
            );
        }
        let (status, body) = password_grant(&bed, "erin").await?;
        assert_eq!(status, 200, "{body}");
        assert!(body["access_token"].is_string() && body["id_token"].is_string());

        // Each grant reached the seam once, for the user it names, and nothing else did.
        let asked = dispatcher.asked();
        assert_eq!(dispatcher.calls(), 8, "{asked:?}");
        assert_eq!(
            asked.first().map(String::as_str),
            Some("noagent@corp.example.test")
        );
        assert_eq!(
            asked.last().map(String::as_str),
            Some("erin@corp.example.test")
        );
        Ok(())
    }
}
