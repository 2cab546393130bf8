//! Password writeback: a change (the user knows the old password) or a reset, sealed to an
//! agent like a validation and performed by the agent in Active Directory. The cloud keeps
//! no password: the new one exists only in the request, zeroized once sealed.
//!
//! Who may write: the tenant's `writeback` setting is the switch for everything; the
//! per-user flag governs self-service (a change on the sign-in pages, a self-service reset);
//! an administrator's reset needs only the tenant setting.

use std::time::Duration;

use passthru_proto::seal::ValidationPayload;
use passthru_proto::wire::Outcome;
use passthru_proto::{AgentError, PasswordOperation, PasswordRefusal, Win32};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::clock::unix_now;
use crate::dispatcher::DispatchError;
use crate::signin::{names_synced_record, record_user, Attempt};
use crate::state::AppState;
use crate::store::{DomainKind, Tenant, User};

/// Why a password could not be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WritebackError {
    /// The tenant's `writeback` setting is off.
    #[error("password writeback is off for this organization (settings set writeback true)")]
    Disabled,
    /// The user may not change or reset their password here (per-user flag).
    #[error(
        "self-service password writeback is not allowed for this user (user writeback UPN on)"
    )]
    NotAllowed,
    /// The user is not an on-premises user of a managed domain of the tenant.
    #[error("the user is not an on-premises user of a managed domain")]
    NotOnPremises,
    /// The old password is wrong.
    #[error("the current password is wrong")]
    WrongPassword,
    /// Smart lockout has locked the name in the cloud.
    #[error("the account is locked in the cloud after too many wrong passwords")]
    LockedInCloud,
    /// AD refused the account (locked out, disabled, expired, ...).
    #[error("Active Directory refused the account: {} ({})", .0.code(), .0.message())]
    Denied(Win32),
    /// AD's password policy refused the new password.
    #[error("Active Directory's password policy refused the new password: {0:?}")]
    Policy(PasswordRefusal),
    /// No agent is connected.
    #[error("no authentication agent is connected")]
    NoAgent,
    /// No agent answered in time.
    #[error("the authentication agent did not answer in time")]
    Timeout,
    /// The agent could not write (no service account, not enough rights, DC unreachable).
    #[error("the agent could not write the password: {}", .0.describe())]
    Agent(AgentError),
    /// The agent's answer was refused (AADSTS80005): not authenticated with the request's
    /// key, or a success naming another user.
    #[error("the authentication agent's answer was refused (AADSTS80005); see the cloud log")]
    AnswerRefused,
    /// The cloud failed (store).
    #[error("the service failed: {0}")]
    Server(String),
}

impl WritebackError {
    /// A sentence for the user, never the directory's own text.
    pub fn user_sentence(&self) -> String {
        match self {
            WritebackError::Disabled | WritebackError::NotAllowed | WritebackError::NotOnPremises => {
                crate::pages::user_message(passthru_proto::Aadsts::PasswordChangeRequired)
            }
            WritebackError::WrongPassword => "Your current password is incorrect.".into(),
            WritebackError::LockedInCloud => crate::pages::user_message(passthru_proto::Aadsts::AccountLocked),
            WritebackError::Denied(w) => crate::pages::user_message(w.aadsts()),
            WritebackError::Policy(r) => refusal_sentence(*r),
            WritebackError::NoAgent | WritebackError::Agent(AgentError::DirectoryUnreachable) => {
                "We can't reach your organization's directory right now, so your password was not changed. Try again in a few minutes.".into()
            }
            WritebackError::Timeout | WritebackError::Agent(AgentError::DirectoryTimeout) => {
                "Your organization's directory took too long to answer; your password may not have been changed. Try signing in with it, or try again in a moment.".into()
            }
            WritebackError::Agent(AgentError::WritebackProtectedAccount) => {
                "Your account is an administrator account, and your organization doesn't let its password be changed on this site, so it was not changed. Change it on your organization's network, or ask another administrator.".into()
            }
            WritebackError::Agent(AgentError::WritebackOutsideScope) => {
                "Your organization doesn't let your account's password be changed on this site, so it was not changed. Contact your administrator.".into()
            }
            WritebackError::Agent(AgentError::WritebackNotPermitted) => {
                "Your organization hasn't set up password changes here correctly, so your password was not changed. Contact your administrator.".into()
            }
            WritebackError::Agent(_) | WritebackError::AnswerRefused | WritebackError::Server(_) => {
                "Something went wrong, and your password was not changed. Try again; if it keeps happening, contact your administrator.".into()
            }
        }
    }
}

/// What to tell the user about each password rule.
pub fn refusal_sentence(r: PasswordRefusal) -> String {
    match r {
        PasswordRefusal::TooShort { min_length } => format!(
            "Your new password is too short: your organization requires at least {min_length} characters."
        ),
        PasswordRefusal::NotComplex => "Your new password isn't complex enough. Use at least three of: capital letters, small letters, digits and symbols, and don't include your account name or parts of your full name.".into(),
        PasswordRefusal::TooYoung { min_age_seconds: 0 } => "You changed your password too recently. Try again later.".into(),
        PasswordRefusal::TooYoung { min_age_seconds } => {
            let when = match min_age_seconds {
                s if s >= 86_400 => format!("{} day(s)", s.div_ceil(86_400)),
                s if s >= 3_600 => format!("{} hour(s)", s.div_ceil(3_600)),
                s => format!("{} minute(s)", s.div_ceil(60).max(1)),
            };
            format!("You changed your password too recently. Your organization lets you change it again {when} after the last change.")
        }
        PasswordRefusal::InHistory { history_length } if history_length > 0 => format!(
            "You've used this password before. Choose one that isn't among your last {history_length} passwords."
        ),
        PasswordRefusal::InHistory { .. } => "You've used this password before. Choose a new one.".into(),
        _ => "Your new password doesn't meet your organization's password rules. Choose a different one.".into(),
    }
}

/// Who asks for the write, which decides what must be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The user (a change, or a self-service reset after MFA): the per-user flag applies.
    User,
    /// An administrator: only the tenant setting applies.
    Admin,
}

/// Whether `user` (`None`: a pass-through user not yet known to the cloud) of a managed
/// domain may have their password written by `actor`.
pub async fn allowed(
    state: &AppState,
    tenant: &Tenant,
    upn: &str,
    user: Option<&User>,
    actor: Actor,
) -> Result<(), WritebackError> {
    if !tenant.settings.writeback {
        return Err(WritebackError::Disabled);
    }
    if user.is_some_and(|u| u.password_hash.is_some() || u.source != "onprem") {
        return Err(WritebackError::NotOnPremises);
    }
    let domain = upn.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
    match state.store.domain(domain).await {
        Ok(Some(d)) if d.tenant_id == tenant.id && d.kind == DomainKind::Managed => {}
        Ok(_) => return Err(WritebackError::NotOnPremises),
        Err(e) => return Err(WritebackError::Server(e.to_string())),
    }
    if actor == Actor::User && !user.is_some_and(|u| u.writeback_allowed) {
        return Err(WritebackError::NotAllowed);
    }
    Ok(())
}

/// Changes the password of `upn` from `old` to `new` (the caller checked [`allowed`]).
/// Smart lockout applies to the old password as to a sign-in.
pub async fn change(
    state: &AppState,
    tenant: &Tenant,
    upn: &str,
    old: Zeroizing<String>,
    new: Zeroizing<String>,
    corr: Uuid,
) -> Result<User, WritebackError> {
    // The old password is checked like a sign-in's: under the account's smart lockout
    // count, with a place among its checks in flight.
    let ticket = state.lockout_gate.ticket();
    let store_err = |e: crate::store::StoreError| WritebackError::Server(e.to_string());
    let user_id = state
        .store
        .user_by_upn(tenant.id, upn)
        .await
        .map_err(store_err)?
        .map(|u| u.id);
    let key = state
        .store
        .lockout_key(tenant.id, upn, user_id)
        .await
        .map_err(store_err)?;
    let lockout = state
        .store
        .lockout(tenant.id, &key, unix_now())
        .await
        .map_err(store_err)?;
    let (locked, _place) = match crate::signin::admit(state, tenant, &key, lockout, ticket).await {
        Ok(x) => x,
        Err(crate::signin::NotAdmitted::Locked) => return Err(WritebackError::LockedInCloud),
        Err(crate::signin::NotAdmitted::Store(e)) => return Err(store_err(e)),
    };
    let payload = ValidationPayload {
        username: upn.to_string(),
        password: old,
        operation: PasswordOperation::Change { new_password: new },
    };
    let result = send(state, tenant, payload, corr).await;
    match &result {
        Err(WritebackError::WrongPassword) => {
            let s = &tenant.settings;
            if let Err(e) = state
                .store
                .record_wrong_password(
                    tenant.id,
                    &key,
                    s.lockout_threshold,
                    s.lockout_duration_seconds,
                    unix_now(),
                )
                .await
            {
                tracing::error!(error = %e, "smart lockout counter not updated");
            }
        }
        Ok(_) if locked.counted => {
            let _ = state.store.clear_lockout(tenant.id, &key).await;
        }
        _ => {}
    }
    result
}

/// Resets the password of `user` to `new` (the caller checked [`allowed`]); ends their
/// sessions and refresh tokens, and clears smart lockout (the agent clears AD's lockout).
pub async fn reset(
    state: &AppState,
    tenant: &Tenant,
    user: &User,
    new: Zeroizing<String>,
    must_change: bool,
    corr: Uuid,
) -> Result<User, WritebackError> {
    let payload = ValidationPayload {
        username: user.upn.clone(),
        password: Zeroizing::new(String::new()),
        operation: PasswordOperation::Reset {
            new_password: new,
            must_change,
        },
    };
    let written = send(state, tenant, payload, corr).await?;
    state
        .store
        .password_was_reset(tenant.id, written.id, &written.upn)
        .await
        .map_err(|e| WritebackError::Server(e.to_string()))?;
    Ok(written)
}

/// Seals the write to an agent and reads its answer.
async fn send(
    state: &AppState,
    tenant: &Tenant,
    payload: ValidationPayload,
    corr: Uuid,
) -> Result<User, WritebackError> {
    let operation = payload.operation.name();
    let upn = payload.username.clone();
    let timeout = Duration::from_millis(tenant.settings.request_deadline_ms.max(100));
    let reply = state
        .dispatcher
        .dispatch(tenant.id, &payload, timeout)
        .await;
    drop(payload); // zeroizes both passwords
    let reply = match reply {
        Ok(r) => r,
        Err(DispatchError::NoAgent) => return Err(WritebackError::NoAgent),
        Err(DispatchError::Timeout) => return Err(WritebackError::Timeout),
        Err(DispatchError::Busy) => {
            return Err(WritebackError::Server(
                "too many requests to this organization's authentication agents are in flight; try again in a moment".into(),
            ))
        }
        Err(DispatchError::AnswerRefused(_)) => return Err(WritebackError::AnswerRefused),
    };
    let result = match reply.outcome {
        Outcome::Success(dir_user) => {
            let attempt = Attempt {
                tenant,
                username: &upn,
                client_id: None,
                client_ip: None,
                correlation_id: corr,
            };
            // As for a sign-in: a success for a synced user must name that user.
            let known = state
                .store
                .user_by_upn(tenant.id, &upn)
                .await
                .map_err(|e| WritebackError::Server(e.to_string()))?;
            if names_synced_record(known.as_ref(), &dir_user) {
                record_user(state, &attempt, &dir_user)
                    .await
                    .map_err(|e| WritebackError::Server(format!("AADSTS{}", e.code.code())))
            } else {
                tracing::warn!(tenant = %tenant.name, user = %upn, agent = %reply.agent_id,
                    request = %reply.request_id, correlation = %corr, answered_object_guid = %dir_user.object_guid, answered_upn = %dir_user.user_principal_name,
                    "agent answer refused (AADSTS80005): a success for a synced user must name that user's objectGUID, and this one names another object");
                Err(WritebackError::AnswerRefused)
            }
        }
        Outcome::Denied {
            win32: Win32::LogonFailure,
        } => Err(WritebackError::WrongPassword),
        Outcome::Denied { win32 } => Err(WritebackError::Denied(win32)),
        Outcome::PolicyRefused { refusal } => Err(WritebackError::Policy(refusal)),
        Outcome::Error { error } => Err(WritebackError::Agent(error)),
        #[allow(unreachable_patterns)]
        _ => Err(WritebackError::Agent(AgentError::DirectoryError)),
    };
    if result.is_ok() {
        // Every agent forgets the wrong passwords it remembers for the user: the new
        // password must work at once, through any agent.
        let told = state.dispatcher.password_changed(tenant.id, &upn);
        tracing::debug!(user = %upn, agents = told, "agents told to forget the user's remembered wrong passwords");
    }
    match &result {
        Ok(_) => {
            tracing::info!(tenant = %tenant.name, user = %upn, operation, agent = %reply.agent_id, correlation = %corr, "password written back to Active Directory")
        }
        Err(e) => {
            tracing::info!(tenant = %tenant.name, user = %upn, operation, agent = %reply.agent_id, correlation = %corr, reason = %e, "password writeback refused or failed")
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_rule_has_its_own_sentence() {
        let rules = [
            PasswordRefusal::TooShort { min_length: 12 },
            PasswordRefusal::NotComplex,
            PasswordRefusal::TooYoung {
                min_age_seconds: 86_400,
            },
            PasswordRefusal::InHistory { history_length: 24 },
            PasswordRefusal::Other,
        ];
        let sentences: Vec<String> = rules.iter().map(|r| refusal_sentence(*r)).collect();
        assert!(sentences[0].contains("at least 12 characters"));
        assert!(sentences[2].contains("1 day(s)"));
        assert!(sentences[3].contains("last 24 passwords"));
        for (i, a) in sentences.iter().enumerate() {
            assert!(!a.contains("0000052D") && !a.contains("Constraint"));
            for b in &sentences[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(refusal_sentence(PasswordRefusal::TooYoung {
            min_age_seconds: 90
        })
        .contains("2 minute(s)"));
    }
}
