//! One validation, from a sealed request to an [`Outcome`]: admission checks, the empty
//! password rule, then the directory. The decrypted payload is dropped (and its password
//! zeroized) as soon as the directory has answered. The answer is authenticated with the key
//! of the HPKE context that opened the envelope ([`Validated::answer`]).

use passthru_proto::answer::{result_message, AnswerKey};
use passthru_proto::{
    AgentToCloud, Outcome, PasswordOperation, SealedRequest, ValidationPayload, Win32,
};
use uuid::Uuid;

use crate::admission::Admission;
use crate::validator::{Validator, Verdict};
use crate::wrong_passwords::WrongPasswords;

/// Validates `request` received at `now_ms`.
pub async fn validate_request<V: Validator + ?Sized>(
    admission: &Admission,
    validator: &V,
    request: &SealedRequest,
    now_ms: u64,
) -> Outcome {
    validate_remembering(admission, validator, None, request, now_ms)
        .await
        .outcome
}

/// What a validation gave.
#[derive(Debug, Clone)]
pub struct Validated {
    pub outcome: Outcome,
    /// The answer came from the memory of this user's recent wrong passwords: no bind.
    pub repeated: bool,
    /// What the answer is authenticated with, from the context that opened the envelope
    /// (`None` when it did not open: then the answer is an admission refusal).
    pub answer_key: Option<AnswerKey>,
}

impl Validated {
    /// The `Result` message answering `request_id`, with its MAC when the envelope opened.
    pub fn answer(self, request_id: Uuid, agent_micros: u64) -> AgentToCloud {
        result_message(
            request_id,
            self.outcome,
            agent_micros,
            self.repeated,
            self.answer_key.as_ref(),
        )
    }
}

/// Validates `request`, answering a wrong password the user recently tried from `memory`
/// (1326, no bind) and keeping the memory up to date.
pub async fn validate_remembering<V: Validator + ?Sized>(
    admission: &Admission,
    validator: &V,
    memory: Option<&WrongPasswords>,
    request: &SealedRequest,
    now_ms: u64,
) -> Validated {
    let (payload, answer_key) = match admission.admit(request, now_ms) {
        Ok(admitted) => admitted,
        Err(error) => {
            return Validated {
                outcome: Outcome::Error { error },
                repeated: false,
                answer_key: None,
            }
        }
    };
    let (outcome, repeated) = check_or_write(validator, memory, payload, request, now_ms).await;
    Validated {
        outcome,
        repeated,
        answer_key: Some(answer_key),
    }
}

/// The directory's answer for an admitted request, and whether it came from `memory`.
async fn check_or_write<V: Validator + ?Sized>(
    validator: &V,
    memory: Option<&WrongPasswords>,
    payload: ValidationPayload,
    request: &SealedRequest,
    now_ms: u64,
) -> (Outcome, bool) {
    let done = |outcome| (outcome, false);
    if !payload.operation.is_validate() {
        return done(write_password(validator, memory, payload, request, now_ms).await);
    }
    if payload.password.is_empty() {
        // An empty password would be an anonymous bind, which "succeeds": never ask.
        drop(payload);
        return done(Outcome::Denied {
            win32: Win32::LogonFailure,
        });
    }
    let now = std::time::Instant::now();
    if memory.is_some_and(|m| m.seen(&payload.username, &payload.password, now)) {
        drop(payload);
        return (
            Outcome::Denied {
                win32: Win32::LogonFailure,
            },
            true,
        );
    }
    // The directory work ends with the request's deadline: past it the cloud has answered
    // the user already, and a slow DC must not hold a validation slot for longer.
    let budget = std::time::Duration::from_millis(request.expires_at_ms.saturating_sub(now_ms));
    let verdict = tokio::time::timeout(
        budget,
        validator.validate(&payload.username, &payload.password),
    )
    .await;
    if let Some(m) = memory {
        match &verdict {
            Ok(Ok(Verdict::Denied(Win32::LogonFailure))) => {
                m.remember(&payload.username, &payload.password, now)
            }
            Ok(Ok(Verdict::Accepted(_))) => m.forget(&payload.username),
            _ => {}
        }
    }
    drop(payload);
    done(match verdict {
        Ok(Ok(Verdict::Accepted(user))) => Outcome::Success(user),
        Ok(Ok(Verdict::Denied(win32))) => Outcome::Denied { win32 },
        Ok(Ok(Verdict::Refused(refusal))) => Outcome::PolicyRefused { refusal },
        Ok(Err(error)) => Outcome::Error { error },
        Err(_) => Outcome::Error {
            error: passthru_proto::AgentError::DirectoryTimeout,
        },
    })
}

/// Password writeback: a change (the payload's password is the old one) or a reset.
async fn write_password<V: Validator + ?Sized>(
    validator: &V,
    memory: Option<&WrongPasswords>,
    payload: ValidationPayload,
    request: &SealedRequest,
    now_ms: u64,
) -> Outcome {
    if matches!(payload.operation, PasswordOperation::Change { .. }) && payload.password.is_empty()
    {
        return Outcome::Denied {
            win32: Win32::LogonFailure,
        };
    }
    let budget = std::time::Duration::from_millis(request.expires_at_ms.saturating_sub(now_ms));
    let verdict = tokio::time::timeout(
        budget,
        validator.write_password(&payload.username, &payload.password, &payload.operation),
    )
    .await;
    tracing::info!(user = %payload.username, operation = payload.operation.name(),
        result = ?verdict.as_ref().map(|v| v.as_ref().map(verdict_name)), "password writeback");
    if let (Some(m), Ok(Ok(Verdict::Accepted(_)))) = (memory, &verdict) {
        // Passwords refused before the change say nothing about the new one.
        m.forget(&payload.username);
    }
    drop(payload);
    match verdict {
        Ok(Ok(Verdict::Accepted(user))) => Outcome::Success(user),
        Ok(Ok(Verdict::Denied(win32))) => Outcome::Denied { win32 },
        Ok(Ok(Verdict::Refused(refusal))) => Outcome::PolicyRefused { refusal },
        Ok(Err(error)) => Outcome::Error { error },
        Err(_) => Outcome::Error {
            error: passthru_proto::AgentError::DirectoryTimeout,
        },
    }
}

fn verdict_name(v: &Verdict) -> String {
    match v {
        Verdict::Accepted(_) => "written".into(),
        Verdict::Denied(w) => format!("denied {}", w.code()),
        Verdict::Refused(r) => format!("refused by policy ({r:?})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use passthru_proto::seal::{seal, RequestHeader};
    use passthru_proto::wire::DirectoryUser;
    use passthru_proto::{AgentError, AgentKeyPair, ValidationPayload};
    use uuid::Uuid;
    use zeroize::Zeroizing;

    use crate::admission::Identity;

    const NOW: u64 = 1_800_000_000_000;

    /// Accepts "right" for alice, denies everything else, counts calls.
    struct Fake {
        calls: AtomicUsize,
    }

    impl Validator for Fake {
        async fn validate(&self, upn: &str, password: &str) -> Result<Verdict, AgentError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            match (upn, password) {
                ("alice@corp.example.test", "right") => Ok(Verdict::Accepted(DirectoryUser {
                    object_guid: Uuid::nil(),
                    user_principal_name: upn.into(),
                    sam_account_name: Some("alice".into()),
                    display_name: None,
                    mail: None,
                    consistency_guid: None,
                })),
                ("down@corp.example.test", _) => Err(AgentError::DirectoryUnreachable),
                ("slow@corp.example.test", _) => {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    Ok(Verdict::Denied(Win32::LogonFailure))
                }
                _ => Ok(Verdict::Denied(Win32::LogonFailure)),
            }
        }
    }

    fn sealed(
        keys: &AgentKeyPair,
        ids: (Uuid, Uuid),
        user: &str,
        pw: &str,
    ) -> Option<SealedRequest> {
        let header = RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id: ids.0,
            agent_id: ids.1,
            issued_at_ms: NOW,
            expires_at_ms: NOW + 10_000,
        };
        let payload = ValidationPayload {
            username: user.into(),
            password: Zeroizing::new(pw.into()),
            operation: Default::default(),
        };
        seal(keys.public_bytes(), header, &payload).ok()
    }

    type Setup = (Admission, AgentKeyPair, (Uuid, Uuid), Fake);

    /// An admission for a fresh agent, the public half of its key (to seal to), its tenant
    /// and agent ids, and a fake directory.
    fn setup() -> Result<Setup, &'static str> {
        let keys = AgentKeyPair::generate();
        let public = AgentKeyPair::from_private_bytes(keys.private_bytes()).map_err(|_| "key")?;
        let ids = (Uuid::new_v4(), Uuid::new_v4());
        let adm = Admission::new(
            Identity {
                tenant_id: ids.0,
                agent_id: ids.1,
                keys,
            },
            Duration::from_secs(300),
            100,
        );
        let fake = Fake {
            calls: AtomicUsize::new(0),
        };
        Ok((adm, public, ids, fake))
    }

    #[tokio::test]
    async fn a_repeated_wrong_password_is_answered_without_a_bind() -> Result<(), &'static str> {
        let (adm, public, ids, fake) = setup()?;
        let memory = WrongPasswords::new(Duration::from_secs(60)).map_err(|_| "rng")?;
        let alice = "alice@corp.example.test";
        let run = |pw: &str| sealed(&public, ids, alice, pw).ok_or("seal");
        let first = validate_remembering(&adm, &fake, Some(&memory), &run("typo")?, NOW).await;
        assert!(!first.repeated);
        assert_eq!(
            first.outcome,
            Outcome::Denied {
                win32: Win32::LogonFailure
            }
        );
        let again = validate_remembering(&adm, &fake, Some(&memory), &run("typo")?, NOW).await;
        assert!(again.repeated);
        assert_eq!(
            again.outcome,
            Outcome::Denied {
                win32: Win32::LogonFailure
            }
        );
        assert_eq!(fake.calls.load(Ordering::SeqCst), 1, "no second bind");
        // Another wrong password binds; the right one succeeds and clears the memory.
        let other = validate_remembering(&adm, &fake, Some(&memory), &run("other")?, NOW).await;
        assert!(!other.repeated);
        let ok = validate_remembering(&adm, &fake, Some(&memory), &run("right")?, NOW).await;
        assert!(matches!(ok.outcome, Outcome::Success(_)));
        let after = validate_remembering(&adm, &fake, Some(&memory), &run("typo")?, NOW).await;
        assert!(!after.repeated, "a success forgets the wrong passwords");
        assert_eq!(fake.calls.load(Ordering::SeqCst), 4);
        Ok(())
    }

    #[tokio::test]
    async fn the_answer_is_bound_to_the_envelope_it_opened() -> Result<(), &'static str> {
        let (adm, public, ids, fake) = setup()?;
        let header = RequestHeader {
            request_id: Uuid::new_v4(),
            tenant_id: ids.0,
            agent_id: ids.1,
            issued_at_ms: NOW,
            expires_at_ms: NOW + 10_000,
        };
        let payload =
            ValidationPayload::validate("alice@corp.example.test", Zeroizing::new("right".into()));
        let (sealed, cloud_key) =
            passthru_proto::seal::seal_bound(public.public_bytes(), header, &payload)
                .map_err(|_| "seal")?;
        let check = |answer: AgentToCloud| match answer {
            AgentToCloud::Result {
                request_id,
                outcome,
                repeated,
                mac,
                ..
            } => cloud_key.check(request_id, &outcome, repeated, mac.as_deref()),
            _ => Err(passthru_proto::answer::AnswerRefusal::Missing),
        };
        let ok = validate_remembering(&adm, &fake, None, &sealed, NOW).await;
        assert!(matches!(ok.outcome, Outcome::Success(_)));
        assert_eq!(
            check(ok.answer(header.request_id, 1)),
            Ok(passthru_proto::answer::Binding::Bound)
        );
        // The replay did not open the envelope: no MAC, accepted only as the refusal it is.
        let replayed = validate_remembering(&adm, &fake, None, &sealed, NOW).await;
        assert!(replayed.answer_key.is_none());
        assert_eq!(
            check(replayed.answer(header.request_id, 1)),
            Ok(passthru_proto::answer::Binding::Unbound)
        );
        Ok(())
    }

    #[tokio::test]
    async fn outcomes() -> Result<(), &'static str> {
        let (adm, public, ids, fake) = setup()?;

        let ok = sealed(&public, ids, "alice@corp.example.test", "right").ok_or("seal")?;
        let out = validate_request(&adm, &fake, &ok, NOW).await;
        assert!(
            matches!(out, Outcome::Success(ref u) if u.user_principal_name == "alice@corp.example.test")
        );

        let wrong = sealed(&public, ids, "alice@corp.example.test", "wrong").ok_or("seal")?;
        let out = validate_request(&adm, &fake, &wrong, NOW).await;
        assert_eq!(
            out,
            Outcome::Denied {
                win32: Win32::LogonFailure
            }
        );

        // A directory slower than the request's deadline: the validation ends at the
        // deadline (here 10 s after NOW, checked at NOW + 9.9 s) with a time-out.
        let slow = sealed(&public, ids, "slow@corp.example.test", "x").ok_or("seal")?;
        let started = std::time::Instant::now();
        let out = validate_request(&adm, &fake, &slow, NOW + 9_900).await;
        assert_eq!(
            out,
            Outcome::Error {
                error: AgentError::DirectoryTimeout
            }
        );
        assert!(started.elapsed() < Duration::from_secs(5));

        let down = sealed(&public, ids, "down@corp.example.test", "x").ok_or("seal")?;
        let out = validate_request(&adm, &fake, &down, NOW).await;
        assert_eq!(
            out,
            Outcome::Error {
                error: AgentError::DirectoryUnreachable
            }
        );
        assert_eq!(fake.calls.load(Ordering::SeqCst), 4);

        // An empty password is denied without asking the directory.
        let empty = sealed(&public, ids, "alice@corp.example.test", "").ok_or("seal")?;
        let out = validate_request(&adm, &fake, &empty, NOW).await;
        assert_eq!(
            out,
            Outcome::Denied {
                win32: Win32::LogonFailure
            }
        );
        assert_eq!(fake.calls.load(Ordering::SeqCst), 4);

        // A refused request never reaches the directory either.
        let out = validate_request(&adm, &fake, &ok, NOW).await;
        assert_eq!(
            out,
            Outcome::Error {
                error: AgentError::Replayed
            }
        );
        let late = sealed(&public, ids, "alice@corp.example.test", "right").ok_or("seal")?;
        let out = validate_request(&adm, &fake, &late, NOW + 10_001).await;
        assert_eq!(
            out,
            Outcome::Error {
                error: AgentError::Expired
            }
        );
        assert_eq!(fake.calls.load(Ordering::SeqCst), 4);
        Ok(())
    }
}
