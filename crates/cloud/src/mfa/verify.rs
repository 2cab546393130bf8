//! Checking a typed second-factor code: a TOTP code of a time step later than the last one
//! accepted, or an unused recovery code. Wrong codes lock the second factor (5 per lock, 15
//! minutes doubling to 24 hours, see `store::mfa`), a lock that only a success or an
//! administrator ends, so six digits cannot be guessed: a password success does not reset it.

use passthru_proto::Aadsts;
use uuid::Uuid;

use super::{recovery, totp};
use crate::state::{unix_ms, AppState};
use crate::store::{SignIn, StoreError, Tenant, User};

/// What a typed code was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Right, and now used.
    Accepted,
    /// Wrong, already used, or not a code; counted.
    Wrong,
    /// Locked after wrong codes until this time (Unix seconds); not checked.
    Locked(i64),
    /// The user has no confirmed authenticator.
    NotEnrolled,
}

/// Checks `typed` for `user` at `now`.
pub async fn check(
    state: &AppState,
    t: &Tenant,
    user: &User,
    typed: &str,
    now: i64,
) -> Result<Verdict, StoreError> {
    let rec = state.store.mfa(t.id, user.id).await?;
    let Some(sealed) = rec.sealed_secret.as_deref().filter(|_| rec.enrolled) else {
        return Ok(Verdict::NotEnrolled);
    };
    if let Some(until) = rec.locked_until.filter(|u| *u > now) {
        return Ok(Verdict::Locked(until));
    }
    let compact: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(typed.chars().filter(|c| !c.is_whitespace()).collect());
    let accepted = if totp::looks_like_code(&compact) {
        match state.mfa_box.open(user.id, sealed) {
            Ok(secret) => match totp::matching_step(&secret, &compact, now, rec.last_step) {
                Some(step) => state.store.accept_totp_step(t.id, user.id, step).await?,
                None => false,
            },
            Err(e) => {
                tracing::error!(tenant = %t.name, user = %user.upn, error = %e, "the user's MFA secret does not open: was mfa.key replaced? Reset the user's MFA (`user mfa-reset`) or restore the key file");
                false
            }
        }
    } else {
        match recovery::hash(user.id, &compact) {
            Some(h) => {
                state
                    .store
                    .use_recovery_code(t.id, user.id, &h, now)
                    .await?
            }
            None => false,
        }
    };
    if accepted {
        return Ok(Verdict::Accepted);
    }
    Ok(
        match state.store.record_mfa_failure(t.id, user.id, now).await? {
            Some(until) => {
                tracing::warn!(tenant = %t.name, user = %user.upn, until, "too many wrong second-factor codes: the user's second factor is locked");
                Verdict::Locked(until)
            }
            None => Verdict::Wrong,
        },
    )
}

/// Writes a sign-in log line for a second-factor failure (never the code).
pub async fn log(
    state: &AppState,
    t: &Tenant,
    username: &str,
    client_id: Option<&str>,
    client_ip: Option<String>,
    code: Aadsts,
    corr: Uuid,
) {
    let entry = SignIn {
        time_ms: unix_ms(),
        username: username.to_string(),
        client_id: client_id.map(str::to_string),
        result: "failure".into(),
        aadsts: Some(code.code()),
        win32: None,
        agent_id: None,
        other_agents: Vec::new(),
        latency_ms: None,
        correlation_id: corr.to_string(),
        client_ip,
    };
    if let Err(e) = state.store.log_sign_in(t.id, &entry).await {
        tracing::error!(error = %e, "could not write the sign-in log");
    }
    state.metrics.sign_in(t.id, "failure", Some(code.code()));
    tracing::info!(tenant = %t.name, user = %username, code = code.code(), correlation = %corr, "second factor refused");
}
