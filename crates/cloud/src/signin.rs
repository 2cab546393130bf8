//! Checking a user's password: the one decision every sign-in path (password grant today, the
//! sign-in page later) goes through. Cloud-only users are checked against their argon2id
//! hash; users of a managed domain are checked by pass-through authentication. Every attempt
//! writes one sign-in log entry, never the password.

use std::time::{Duration, Instant};

use passthru_proto::seal::ValidationPayload;
use passthru_proto::wire::{DirectoryUser, Outcome};
use passthru_proto::{Aadsts, Win32};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::clock::{unix_ms, unix_now};
use crate::dispatcher::DispatchError;
use crate::model::settings::SignInAttribute;
use crate::oauth_error::OAuthError;
use crate::state::AppState;
use crate::store::lockout::Lockout;
use crate::store::mfa::MfaRecord;
use crate::store::{DomainKind, OnpremUser, SignIn, Tenant, User};

/// Who is signing in, and from where.
#[derive(Debug, Clone)]
pub struct Attempt<'a> {
    pub tenant: &'a Tenant,
    pub username: &'a str,
    pub client_id: Option<&'a str>,
    pub client_ip: Option<String>,
    pub correlation_id: Uuid,
}

/// What the log records about how the password was checked.
#[derive(Debug, Default)]
struct Trail {
    win32: Option<Win32>,
    agent_id: Option<Uuid>,
    latency_ms: Option<i64>,
    /// The name smart lockout counts under (the resolved UPN), once the password was
    /// checked.
    lockout_key: Option<String>,
    /// Wrong passwords of that name were on record when the check began.
    lockout_counted: bool,
    /// This check's place among the account's checks in flight, given back once its
    /// outcome is counted.
    place: Option<Uncounted>,
    /// The agent answered a wrong password the user had just tried (not counted again).
    repeated: bool,
    /// Agents the request went to first that did not answer.
    other_agents: Vec<Uuid>,
    /// The MFA row of the user of this id, when the first read brought it along.
    mfa: Option<(Uuid, MfaRecord)>,
}

/// A checked password's user, with their MFA row when the check read it along (the password
/// grant then needs no second read).
#[derive(Debug)]
pub struct Checked {
    pub user: User,
    pub mfa: Option<MfaRecord>,
}

pub use crate::store::sync::onprem_object_id;

/// Checks `password` for the attempt's user; on success returns the user record.
pub async fn check_password(
    state: &AppState,
    attempt: &Attempt<'_>,
    password: Zeroizing<String>,
) -> Result<User, OAuthError> {
    check_password_and_mfa(state, attempt, password)
        .await
        .map(|c| c.user)
}

/// Like [`check_password`], also returning the user's MFA row when it was read along.
pub async fn check_password_and_mfa(
    state: &AppState,
    attempt: &Attempt<'_>,
    password: Zeroizing<String>,
) -> Result<Checked, OAuthError> {
    let started = Instant::now();
    let mut trail = Trail::default();
    let result = decide(state, attempt, password, &mut trail).await;
    smart_lockout(state, attempt, &trail, &result).await;
    // Counted: the place goes back, and a check waiting for it reads the count again.
    if let Some(place) = trail.place.take() {
        place.counted();
    }
    let entry = SignIn {
        id: 0,
        time_ms: unix_ms(),
        username: attempt.username.to_string(),
        client_id: attempt.client_id.map(str::to_string),
        result: if result.is_ok() {
            "success".into()
        } else {
            "failure".into()
        },
        aadsts: result.as_ref().err().map(|e| e.code.code()),
        win32: trail.win32.map(Win32::code),
        agent_id: trail.agent_id,
        other_agents: trail.other_agents.clone(),
        latency_ms: trail
            .latency_ms
            .or(Some(started.elapsed().as_millis() as i64)),
        correlation_id: attempt.correlation_id.to_string(),
        client_ip: attempt.client_ip.clone(),
    };
    if let Err(e) = state.store.log_sign_in(attempt.tenant.id, &entry).await {
        tracing::error!(error = %e, "could not write the sign-in log");
    }
    state
        .metrics
        .sign_in(attempt.tenant.id, &entry.result, entry.aadsts);
    match &result {
        Ok(u) => {
            tracing::info!(tenant = %attempt.tenant.name, user = %u.upn, correlation = %attempt.correlation_id, "sign-in succeeded")
        }
        Err(e) => tracing::info!(tenant = %attempt.tenant.name, user = %attempt.username,
            code = e.code.code(), win32 = ?trail.win32.map(Win32::code), correlation = %attempt.correlation_id, "sign-in failed"),
    }
    let mfa = trail.mfa.take();
    result.map(|user| Checked {
        mfa: mfa.filter(|(id, _)| *id == user.id).map(|(_, m)| m),
        user,
    })
}

async fn decide(
    state: &AppState,
    attempt: &Attempt<'_>,
    password: Zeroizing<String>,
    trail: &mut Trail,
) -> Result<User, OAuthError> {
    let fail = |code: Aadsts| OAuthError::new(code, attempt.correlation_id);
    let tenant = attempt.tenant;
    let username = attempt.username.trim();
    if username.is_empty() {
        return Err(
            fail(Aadsts::MissingParameter).with_detail("The 'username' parameter is missing.")
        );
    }
    if password.is_empty() {
        return Err(fail(Aadsts::InvalidCredentials));
    }
    let ticket = state.lockout_gate.ticket();
    let (existing, lockout, key) = look_up(state, attempt, username, trail).await?;
    // With sign-in by mail, the user's on-premises UPN is what the agent binds with.
    let username = existing
        .as_ref()
        .filter(|u| u.is_synced())
        .map_or(username, |u| u.upn.as_str());
    // A user an administrator blocked is refused here, before any password check or agent
    // round trip.
    if existing.as_ref().is_some_and(|u| !u.enabled) {
        return Err(fail(Aadsts::AccountDisabled)
            .with_detail("An administrator blocked this account's sign-in in the cloud."));
    }
    // Smart lockout: a locked name gets 50053 with no password check and no agent round
    // trip, so an attacker cannot drive the on-premises account into AD's lockout.
    // At most as many checks of one account in flight as wrong passwords it may still
    // have: parallel wrong passwords cannot pass the threshold in the directory.
    let lockout = match admit(state, tenant, &key, lockout, ticket).await {
        Ok((lockout, place)) => {
            trail.place = Some(Uncounted {
                admission: Some(place),
                store: state.store.clone(),
                tenant_id: tenant.id,
                key: key.clone(),
                threshold: tenant.settings.lockout_threshold,
                duration_secs: tenant.settings.lockout_duration_seconds,
            });
            lockout
        }
        Err(NotAdmitted::Locked) => return Err(fail(Aadsts::AccountLocked).with_detail(
            "The account is locked in the cloud after too many wrong passwords. Try again later.",
        )),
        Err(NotAdmitted::Store(e)) => return Err(server_error(e, attempt)),
    };
    trail.lockout_key = Some(key);
    trail.lockout_counted = lockout.counted;
    // Cloud-only users sign in with their cloud password, whatever the PTA setting.
    if let Some(user) = &existing {
        if let Some(hash) = &user.password_hash {
            let checked =
                crate::passwords::verify_in_tenant(tenant.id, password, hash.clone()).await;
            let Ok(right) = checked else {
                return Err(fail(Aadsts::Throttled).with_detail(
                    "Too many sign-ins of this organization are being checked at once.",
                ));
            };
            return if right {
                let _ = state.store.touch_sign_in(user.id, unix_now()).await;
                Ok(user.clone())
            } else {
                Err(fail(Aadsts::InvalidCredentials))
            };
        }
    }
    let Some((_, domain_name)) = username.rsplit_once('@') else {
        return Err(fail(Aadsts::UserNotFound));
    };
    let domain = state
        .store
        .domain(domain_name)
        .await
        .map_err(|e| server_error(e, attempt))?;
    let domain = match domain {
        Some(d) if d.tenant_id == tenant.id => d,
        _ => return Err(fail(Aadsts::UserNotFound)),
    };
    match domain.kind {
        DomainKind::Cloud => Err(fail(Aadsts::UserNotFound)),
        DomainKind::Federated => Err(fail(Aadsts::NoPasswordInCloud)
            .with_detail("This domain is federated: sign in at its identity provider.")),
        DomainKind::Managed if !tenant.pta_enabled => Err(fail(Aadsts::NoPasswordInCloud)),
        DomainKind::Managed => {
            synced_state(attempt, existing.as_ref())?;
            pass_through(state, attempt, username, password, existing.as_ref(), trail).await
        }
    }
}

/// A check's place, held until its outcome is counted. A check abandoned before that (its
/// client went away: an HTTP/2 stream reset drops the handler mid-check) may still reach the
/// directory (the agent has the request), so it is counted as a wrong password, in a task of
/// its own, before its place goes back: cancelling requests must not let guesses through
/// uncounted.
#[derive(Debug)]
struct Uncounted {
    admission: Option<crate::lockout_gate::Admission>,
    store: crate::store::Store,
    tenant_id: Uuid,
    key: String,
    threshold: u32,
    duration_secs: u64,
}

impl Uncounted {
    /// The outcome was counted: the place goes back now.
    fn counted(mut self) {
        drop(self.admission.take());
    }
}

impl Drop for Uncounted {
    fn drop(&mut self) {
        let Some(admission) = self.admission.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, tenant_id, key) = (self.store.clone(), self.tenant_id, self.key.clone());
        let (threshold, duration) = (self.threshold, self.duration_secs);
        rt.spawn(async move {
            if let Err(e) = store
                .record_wrong_password(tenant_id, &key, threshold, duration, unix_now())
                .await
            {
                tracing::error!(error = %e, "smart lockout counter not updated for an abandoned check");
            }
            tracing::info!(tenant = %tenant_id, account = %key,
                "smart lockout: a password check abandoned by its client was counted as a wrong password");
            drop(admission);
        });
    }
}

/// Why [`admit`] refused a password check.
#[derive(Debug)]
pub(crate) enum NotAdmitted {
    /// The account is locked in the cloud, or its checks in flight stayed at the limit until
    /// the deadline.
    Locked,
    /// The store could not be read.
    Store(crate::store::StoreError),
}

/// Takes a place among the account's password checks in flight (see
/// [`crate::lockout_gate`]), waiting while they are all taken, reading the account's count
/// again whenever another check ended since it was read; refuses a locked account. `lockout`
/// is the count read after `ticket` was taken.
pub(crate) async fn admit(
    state: &AppState,
    tenant: &Tenant,
    key: &str,
    mut lockout: Lockout,
    mut ticket: crate::lockout_gate::Ticket,
) -> Result<(Lockout, crate::lockout_gate::Admission), NotAdmitted> {
    use crate::lockout_gate::Entry;
    let threshold = tenant.settings.lockout_threshold;
    let deadline = Duration::from_millis(tenant.settings.request_deadline_ms.max(100));
    let wait_until = tokio::time::Instant::now() + deadline;
    loop {
        if lockout.locked_until.is_some() {
            return Err(NotAdmitted::Locked);
        }
        match state
            .lockout_gate
            .enter(tenant.id, key, lockout.places(threshold), ticket)
        {
            Entry::Entered(place) => {
                let shared = match &state.cluster {
                    Some(_) => Some(shared_place(state, tenant, key, deadline, wait_until).await?),
                    None => None,
                };
                return Ok((
                    lockout,
                    crate::lockout_gate::Admission {
                        _local: place,
                        _shared: shared,
                    },
                ));
            }
            Entry::Stale => {}
            Entry::Full(freed) => {
                let notified = freed.notified();
                tokio::pin!(notified);
                // Registered before the check below, so a place given back in between is
                // not missed.
                notified.as_mut().enable();
                if state.lockout_gate.in_flight(tenant.id, key) >= lockout.places(threshold)
                    && tokio::time::timeout_at(wait_until, notified).await.is_err()
                {
                    tracing::warn!(tenant = %tenant.name, account = %key,
                        "smart lockout: this account's password checks in flight stayed at the limit until the deadline");
                    return Err(NotAdmitted::Locked);
                }
            }
        }
        ticket = state.lockout_gate.ticket();
        lockout = state
            .store
            .lockout(tenant.id, key, unix_now())
            .await
            .map_err(NotAdmitted::Store)?;
    }
}

/// With several instances: a place among the account's checks in flight at all of them (see
/// [`crate::store::InstanceStore::take_check_place`]), waiting for one until `wait_until`.
async fn shared_place(
    state: &AppState,
    tenant: &Tenant,
    key: &str,
    deadline: Duration,
    wait_until: tokio::time::Instant,
) -> Result<crate::lockout_gate::SharedPlace, NotAdmitted> {
    /// How soon a check waiting for a place at another instance looks again: the first
    /// time; each wait after doubles, up to [`RETRY_MAX`] (many waiting checks of many
    /// accounts must not keep the store busy).
    const RETRY: Duration = Duration::from_millis(20);
    const RETRY_MAX: Duration = Duration::from_millis(320);
    let mut retry = RETRY;
    /// A place outlives its check's deadline by this much before it lapses.
    const LAPSE_AFTER: Duration = Duration::from_secs(30);
    loop {
        let now_ms = crate::clock::unix_ms();
        let expires = now_ms + (deadline + LAPSE_AFTER).as_millis() as i64;
        let taken = state
            .store
            .take_check_place(
                tenant.id,
                key,
                tenant.settings.lockout_threshold,
                unix_now(),
                now_ms,
                expires,
            )
            .await
            .map_err(NotAdmitted::Store)?;
        if let Some(id) = taken {
            return Ok(crate::lockout_gate::SharedPlace {
                store: state.store.clone(),
                id,
            });
        }
        let lockout = state
            .store
            .lockout(tenant.id, key, unix_now())
            .await
            .map_err(NotAdmitted::Store)?;
        if lockout.locked_until.is_some() || tokio::time::Instant::now() + retry >= wait_until {
            if lockout.locked_until.is_none() {
                tracing::warn!(tenant = %tenant.name, account = %key,
                    "smart lockout: this account's password checks in flight at every instance stayed at the limit until the deadline");
            }
            return Err(NotAdmitted::Locked);
        }
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Counts a wrong password toward smart lockout, or forgets the count after a success.
async fn smart_lockout(
    state: &AppState,
    attempt: &Attempt<'_>,
    trail: &Trail,
    result: &Result<User, OAuthError>,
) {
    let Some(key) = trail.lockout_key.as_deref() else {
        return;
    };
    let tenant = attempt.tenant;
    let outcome = match result {
        // Nothing to forget (the common case): no write on the sign-in path.
        Ok(_) if !trail.lockout_counted => Ok(None),
        Ok(_) => state
            .store
            .clear_lockout(tenant.id, key)
            .await
            .map(|_| None),
        Err(e) if e.code == Aadsts::InvalidCredentials && !trail.repeated => {
            let s = &tenant.settings;
            state
                .store
                .record_wrong_password(
                    tenant.id,
                    key,
                    s.lockout_threshold,
                    s.lockout_duration_seconds,
                    unix_now(),
                )
                .await
        }
        Err(_) => Ok(None),
    };
    match outcome {
        Ok(Some(locked)) => {
            tracing::warn!(tenant = %tenant.name, user = %key, until = locked.until, lockouts = locked.lockouts,
                "smart lockout: too many wrong passwords, the account is locked in the cloud")
        }
        Ok(None) => {}
        Err(e) => tracing::error!(error = %e, "smart lockout counter not updated"),
    }
}

/// The user the typed name designates, the smart-lockout state of their account and the
/// key it counts under. Signing in by UPN, one statement reads these and the user's MFA row
/// (kept in `trail`).
async fn look_up(
    state: &AppState,
    attempt: &Attempt<'_>,
    username: &str,
    trail: &mut Trail,
) -> Result<(Option<User>, Lockout, String), OAuthError> {
    let tenant = attempt.tenant;
    if tenant.settings.sign_in_attribute != SignInAttribute::Mail {
        let s = state
            .store
            .sign_in_state(tenant.id, username, unix_now())
            .await
            .map_err(|e| server_error(e, attempt))?;
        trail.mfa = s.user.as_ref().map(|u| u.id).zip(s.mfa);
        return Ok((s.user, s.lockout, s.lockout_key));
    }
    let existing = find_user(state, attempt, username).await?;
    let key = state
        .store
        .lockout_key(tenant.id, username, existing.as_ref().map(|u| u.id))
        .await
        .map_err(|e| server_error(e, attempt))?;
    let lockout = state
        .store
        .lockout(tenant.id, &key, unix_now())
        .await
        .map_err(|e| server_error(e, attempt))?;
    Ok((existing, lockout, key))
}

/// The user record the typed name designates: with `sign_in_attribute = mail`, the synced
/// user whose mail it is (when exactly one is); else (or when none is) the user with that
/// UPN.
async fn find_user(
    state: &AppState,
    attempt: &Attempt<'_>,
    username: &str,
) -> Result<Option<User>, OAuthError> {
    let tenant = attempt.tenant;
    if tenant.settings.sign_in_attribute == SignInAttribute::Mail {
        let by_mail = state
            .store
            .synced_users_by_mail(tenant.id, username)
            .await
            .map_err(|e| server_error(e, attempt))?;
        match by_mail.as_slice() {
            [one] => return Ok(Some(one.clone())),
            [] => {}
            _ => {
                tracing::warn!(tenant = %tenant.name, mail = %username, "several synced users have this mail address; sign-in by mail refused");
                return Err(
                    OAuthError::new(Aadsts::UserNotFound, attempt.correlation_id).with_detail(
                        "Several users have this address: sign in with your user principal name.",
                    ),
                );
            }
        }
    }
    state
        .store
        .user_by_upn(tenant.id, username)
        .await
        .map_err(|e| server_error(e, attempt))
}

/// What directory sync says before any agent round trip: a user unknown to sync (once the
/// tenant requires sync), disabled in AD, or whose account has expired, is refused here.
fn synced_state(attempt: &Attempt<'_>, user: Option<&User>) -> Result<(), OAuthError> {
    let fail = |code: Aadsts| OAuthError::new(code, attempt.correlation_id);
    let sync = user.and_then(|u| u.sync.as_ref());
    match sync {
        None if attempt.tenant.settings.sync_required => Err(fail(Aadsts::UserNotFound)
            .with_detail("This user is not synchronised from the on-premises directory.")),
        None => Ok(()),
        Some(s) if !s.enabled => Err(fail(Aadsts::AccountDisabled)
            .with_detail("The account is disabled in the on-premises directory.")),
        Some(s) if s.account_expires.is_some_and(|t| t <= unix_now()) => {
            Err(fail(Aadsts::AccountDisabled)
                .with_detail("The account has expired in the on-premises directory."))
        }
        Some(_) => Ok(()),
    }
}

async fn pass_through(
    state: &AppState,
    attempt: &Attempt<'_>,
    username: &str,
    password: Zeroizing<String>,
    existing: Option<&User>,
    trail: &mut Trail,
) -> Result<User, OAuthError> {
    let fail = |code: Aadsts| OAuthError::new(code, attempt.correlation_id);
    let payload = ValidationPayload {
        username: username.to_string(),
        password,
        operation: Default::default(),
    };
    let timeout = Duration::from_millis(attempt.tenant.settings.request_deadline_ms.max(100));
    let started = Instant::now();
    let reply = state
        .dispatcher
        .dispatch(attempt.tenant.id, &payload, timeout)
        .await;
    drop(payload); // zeroizes the password
    trail.latency_ms = Some(started.elapsed().as_millis() as i64);
    let reply = match reply {
        Ok(r) => r,
        Err(e) => {
            match e {
                DispatchError::NoAgent => {
                    tracing::warn!(tenant = %attempt.tenant.name, "pass-through: no authentication agent is connected")
                }
                DispatchError::Busy => {
                    tracing::warn!(tenant = %attempt.tenant.name, "pass-through: the tenant's agent requests in flight are at their limit (serve --max-agent-requests-per-tenant)")
                }
                _ => {}
            }
            let failed = fail(e.aadsts());
            return Err(if e == DispatchError::Busy {
                failed.with_detail(
                    "Too many sign-ins of this organization are waiting for its authentication agents.",
                )
            } else {
                failed
            });
        }
    };
    trail.agent_id = Some(reply.agent_id);
    trail.repeated = reply.repeated;
    trail.other_agents = reply.passed_over.clone();
    match reply.outcome {
        Outcome::Success(dir_user) => {
            if !names_synced_record(existing, &dir_user) {
                tracing::warn!(tenant = %attempt.tenant.name, user = %username, agent = %reply.agent_id,
                    request = %reply.request_id, correlation = %attempt.correlation_id, answered_object_guid = %dir_user.object_guid, answered_upn = %dir_user.user_principal_name,
                    "agent answer refused (AADSTS80005): a success for a synced user must name that user's objectGUID, and this one names another object");
                return Err(fail(Aadsts::AgentAnswerRefused));
            }
            if let Some(known) = existing.filter(|u| unchanged(u, attempt, &dir_user, unix_now())) {
                // The same user, signed in lately: nothing to write on this sign-in.
                return Ok(known.clone());
            }
            record_user(state, attempt, &dir_user).await
        }
        Outcome::Denied { win32 } => {
            trail.win32 = Some(win32);
            if win32 == Win32::InvalidWorkstation {
                tracing::warn!(user = %username, agent_host = %reply.agent_host,
                    "AD refused the sign-in with 1329 (workstation restriction): add the agent's host '{}' to the user's 'Log On To' list (userWorkstations) in Active Directory, or clear the restriction",
                    reply.agent_host);
            }
            Err(fail(win32.aadsts()))
        }
        Outcome::Error { error } => {
            tracing::warn!(user = %username, agent = %reply.agent_id, reason = error.describe(), "pass-through failed");
            Err(fail(error.aadsts()))
        }
        #[allow(unreachable_patterns)]
        _ => Err(fail(Aadsts::ServerError)),
    }
}

/// Whether an agent's success for the requested name may stand: when the name has a synced
/// record, the success must name that record's objectGUID (so an agent cannot sign a user
/// in as another user of the tenant); a name without one has nothing to compare with.
pub(crate) fn names_synced_record(requested: Option<&User>, dir_user: &DirectoryUser) -> bool {
    match requested.and_then(|u| u.sync.as_ref()) {
        Some(synced) => synced.object_guid == dir_user.object_guid,
        None => true,
    }
}

/// How stale `last_sign_in` may get before a sign-in refreshes it, seconds.
const LAST_SIGN_IN_PRECISION: i64 = 300;

/// Whether the cloud's record of an on-premises user already says what the directory just
/// returned (same object, names and mail), with a recent last sign-in: then a sign-in
/// writes nothing.
fn unchanged(known: &User, attempt: &Attempt<'_>, dir_user: &DirectoryUser, now: i64) -> bool {
    known.source == "onprem"
        && known.id == onprem_object_id(attempt.tenant.id, dir_user.anchor())
        && known.upn == dir_user.user_principal_name
        && known.display_name == dir_user.display_name
        && known.mail == dir_user.mail
        && known
            .last_sign_in
            .is_some_and(|t| now.saturating_sub(t) < LAST_SIGN_IN_PRECISION)
}

pub(crate) async fn record_user(
    state: &AppState,
    attempt: &Attempt<'_>,
    dir_user: &DirectoryUser,
) -> Result<User, OAuthError> {
    // The UPN comes from the directory: accept it only in a managed domain of this tenant,
    // so an on-premises account cannot claim a name the tenant keeps elsewhere.
    let returned_domain = dir_user
        .user_principal_name
        .rsplit_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_default();
    let managed_here = matches!(
        state.store.domain(&returned_domain).await,
        Ok(Some(d)) if d.tenant_id == attempt.tenant.id && d.kind == DomainKind::Managed
    );
    if !managed_here {
        tracing::warn!(typed = %attempt.username, returned = %dir_user.user_principal_name,
            "the directory returned a UPN outside this tenant's managed domains; sign-in refused");
        return Err(OAuthError::new(
            Aadsts::UserNotFound,
            attempt.correlation_id,
        ));
    }
    let oid = onprem_object_id(attempt.tenant.id, dir_user.anchor());
    let anchor = dir_user.anchor().to_string();
    let record = OnpremUser {
        tenant_id: attempt.tenant.id,
        id: oid,
        immutable_id: &anchor,
        upn: &dir_user.user_principal_name,
        display_name: dir_user.display_name.as_deref(),
        mail: dir_user.mail.as_deref(),
    };
    let user = state
        .store
        .upsert_onprem_user(&record, unix_now())
        .await
        .map_err(|e| server_error(e, attempt))?;
    // The name typed (perhaps the implicit UPN, or another case) is now known to be this
    // account's: smart lockout counts it with the user's other names.
    if let Err(e) = state
        .store
        .learn_sign_in_names(
            attempt.tenant.id,
            user.id,
            &[attempt.username, &dir_user.user_principal_name],
        )
        .await
    {
        tracing::warn!(error = %e, "could not record the names the user signs in with");
    }
    Ok(user)
}

fn server_error(e: impl Into<crate::oauth_error::Fault>, attempt: &Attempt<'_>) -> OAuthError {
    OAuthError::fault(attempt.correlation_id, e)
}

#[cfg(test)]
mod tests;
