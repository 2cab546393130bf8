//! Checking a typed second-factor code: a TOTP code of a time step later than the last one
//! accepted, or an unused recovery code. Wrong codes lock the second factor (5 per lock, 15
//! minutes doubling to 24 hours, see `store::mfa`), a lock that only a success or an
//! administrator ends, so six digits cannot be guessed: a password success does not reset it.

use passthru_proto::Aadsts;
use uuid::Uuid;

use super::{recovery, totp};
use crate::clock::unix_ms;
use crate::state::AppState;
use crate::store::mfa::Reservation;
use crate::store::{SignIn, StoreError, Tenant, User};

/// What a typed code was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Right, and now used.
    Accepted,
    /// Wrong, already used, or not a code; counted.
    Wrong,
    /// Wrong, and the last check before a lock that lasts until this time (Unix seconds).
    WrongAndLocked(i64),
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
    // The attempt is counted before the code is compared (and given back by a success), so
    // however many posts arrive at once, at most `FAILURES_PER_LOCK` codes are compared per
    // lock.
    let locks_until = match state.store.reserve_mfa_attempt(t.id, user.id, now).await? {
        Reservation::Granted { locks_until } => locks_until,
        Reservation::Locked(until) => return Ok(Verdict::Locked(until)),
        Reservation::NoRecord => return Ok(Verdict::NotEnrolled),
    };
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
    Ok(match locks_until {
        Some(until) => {
            tracing::warn!(tenant = %t.name, user = %user.upn, until, "too many wrong second-factor codes: the user's second factor is locked");
            Verdict::WrongAndLocked(until)
        }
        None => Verdict::Wrong,
    })
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
        id: 0,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DomainKind;
    use crate::test_app::TestApp;

    /// Parallel wrong codes for one user (from one flow or many: the count is the user's)
    /// are compared at most `FAILURES_PER_LOCK` times; the rest are refused as locked, and
    /// then the right code is refused too until the lock ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_wrong_codes_are_checked_at_most_five_times() -> anyhow::Result<()> {
        let app = TestApp::new("mfa-par", "contoso.example", DomainKind::Cloud).await?;
        let user = app.cloud_user("a@contoso.example").await?;
        let now = 1_700_000_000;
        let secret = app.enrol_totp(&user, now).await?;
        let right = totp::code_for_step(&secret, totp::step_of(now))
            .ok_or_else(|| anyhow::anyhow!("no code"))?;
        let wrong = if right.as_str() == "000000" {
            "111111"
        } else {
            "000000"
        };
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..200 {
            let state = app.state.clone();
            let t = app.tenant.clone();
            let u = user.clone();
            // Half TOTP-shaped, half recovery-code-shaped: both kinds count.
            let typed = if i % 2 == 0 {
                wrong.to_string()
            } else {
                format!("zzzz-{i:04}")
            };
            tasks.spawn(async move { check(&state, &t, &u, &typed, now).await });
        }
        let (mut wrong_n, mut last, mut locked) = (0, 0, 0);
        while let Some(v) = tasks.join_next().await {
            match v?? {
                Verdict::Wrong => wrong_n += 1,
                Verdict::WrongAndLocked(_) => last += 1,
                Verdict::Locked(_) => locked += 1,
                other => anyhow::bail!("unexpected verdict {other:?}"),
            }
        }
        let checked = wrong_n + last;
        assert!(
            checked <= crate::store::mfa::FAILURES_PER_LOCK,
            "{checked} codes compared"
        );
        assert_eq!(last, 1, "one check set the lock");
        assert_eq!(locked, 200 - checked);
        assert!(matches!(
            check(&app.state, &app.tenant, &user, &right, now + 1).await?,
            Verdict::Locked(_)
        ));
        // After the lock, the right code works and gives the attempts back.
        let later = now + crate::store::mfa::FIRST_LOCK_SECS + 1;
        let code = totp::code_for_step(&secret, totp::step_of(later))
            .ok_or_else(|| anyhow::anyhow!("no code"))?;
        assert_eq!(
            check(&app.state, &app.tenant, &user, &code, later).await?,
            Verdict::Accepted
        );
        assert_eq!(
            app.state
                .store
                .mfa(app.tenant.id, user.id)
                .await?
                .locked_until,
            None
        );
        Ok(())
    }
}
