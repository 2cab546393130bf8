//! The store conformance suite: the rules every store backend keeps, written against the store
//! traits ([`super::Backend`]) and the facade, never a backend's own methods, so that each
//! backend runs the same checks. It covers every trait:
//! - this file: one function per area whose rules are checked with many calls at once
//!   (`oidc`, `lockout`, `device`, `mfa`, `attempts`, `writeback`, `signing_keys`, `portal`,
//!   `federation`), called with `store.backend()`;
//! - `directory`: tenants, domains, users, apps, the sign-in log, sync state and purges;
//! - one file per area for the rules that need a prepared store (`admin`, `agents`, `sync`,
//!   `sign_in_state`, `federation`, `mfa`, `portal`, `sign_in_log`, `tenants`): they open it
//!   with `store::test_store`, the one place a test picks its backend.
//!
//! SQLite runs all of it in `cargo test -p passthru-cloud --lib conformance`; a new backend
//! opens itself in `test_store` and calls the area functions from its own tests.
//!
//! Rules that a limit or a one-time use depends on are checked with many calls at once, not
//! one after another.

use futures_util::future::join_all;
use uuid::Uuid;

use super::attempts::Bump;
use super::device::DeviceCode;
use super::federation::{Conversion, FederationConfig, FederationState};
use super::lockout::FAILURE_WINDOW_SECS;
use super::mfa::{Challenge, MfaRecord, Reservation, Stage, FAILURES_PER_LOCK, FIRST_LOCK_SECS};
use super::oidc::RefreshUse;
use super::portal::{PortalLogin, PortalSession};
use super::signing_keys::NewKey;
use super::writeback::ResetFlow;
use super::{
    AttemptStore, AuthCode, AuthzRequest, DeviceStore, FederationStore, LockoutStore, MfaStore,
    OidcStore, PortalStore, RefreshRecord, SessionRecord, SigningKeyStore, StoreError,
    WritebackStore,
};
use crate::model::mfa_policy::Policy;

/// `anyhow::ensure!` for equality, with both sides in the error.
macro_rules! ensure_eq {
    ($left:expr, $right:expr $(,)?) => {{
        let (l, r) = (&$left, &$right);
        anyhow::ensure!(l == r, "{:?} != {:?}", l, r);
    }};
    ($left:expr, $right:expr, $($msg:tt)+) => {{
        let (l, r) = (&$left, &$right);
        anyhow::ensure!(l == r, "{:?} != {:?}: {}", l, r, format!($($msg)+));
    }};
}

/// Every rule of [`OidcStore`], on a store where `tenant_id` is a tenant.
pub(crate) async fn oidc<S: OidcStore + ?Sized>(s: &S, tenant_id: Uuid) -> anyhow::Result<()> {
    authorization_requests_expire_and_stay_in_their_tenant(s, tenant_id).await?;
    a_code_works_once(s, tenant_id).await?;
    a_code_works_once_among_many_parallel_takers(s, tenant_id).await?;
    refresh_tokens_rotate_and_reuse_revokes_the_family(s, tenant_id).await?;
    one_of_many_parallel_uses_of_a_refresh_token_wins(s, tenant_id).await?;
    sessions_expire_and_end(s, tenant_id).await?;
    Ok(())
}

fn request(tenant_id: Uuid, id: &str) -> AuthzRequest {
    AuthzRequest {
        id: id.into(),
        tenant_id,
        client_id: "client".into(),
        redirect_uri: "https://app.example/cb".into(),
        scope: "openid".into(),
        state: Some("s".into()),
        nonce: Some("n".into()),
        code_challenge: Some("c".repeat(43)),
        response_mode: "query".into(),
        prompt: None,
        max_age: None,
        login_hint: None,
        csrf: "csrf".into(),
        username: None,
        device_user_code: None,
        password_change: None,
    }
}

fn code(tenant_id: Uuid) -> AuthCode {
    AuthCode {
        tenant_id,
        client_id: "client".into(),
        redirect_uri: "https://app.example/cb".into(),
        user_id: Uuid::new_v4(),
        scope: "openid".into(),
        nonce: Some("n".into()),
        code_challenge: Some("x".into()),
        auth_time: 5,
        expires_at: 100,
    }
}

fn refresh(tenant_id: Uuid, family: &str) -> RefreshRecord {
    RefreshRecord {
        tenant_id,
        user_id: Uuid::new_v4(),
        client_id: "client".into(),
        scope: "openid".into(),
        expires_at: 100,
        family: family.into(),
        auth_time: 1,
    }
}

async fn authorization_requests_expire_and_stay_in_their_tenant<S: OidcStore + ?Sized>(
    s: &S,
    tenant_id: Uuid,
) -> anyhow::Result<()> {
    let mut r = request(tenant_id, "req-1");
    s.put_authz(&r, 100).await?;
    anyhow::ensure!(s.authz(tenant_id, "req-1", 99).await? == Some(r.clone()));
    anyhow::ensure!(
        s.authz(Uuid::new_v4(), "req-1", 99).await?.is_none(),
        "another tenant read the request"
    );
    anyhow::ensure!(
        s.authz(tenant_id, "req-1", 100).await?.is_none(),
        "expired, still read"
    );
    // Put again: the request is updated in place (the sign-in pages add the username).
    r.username = Some("u@example".into());
    s.put_authz(&r, 200).await?;
    anyhow::ensure!(s.authz(tenant_id, "req-1", 150).await? == Some(r));
    s.delete_authz("req-1").await?;
    anyhow::ensure!(
        s.authz(tenant_id, "req-1", 150).await?.is_none(),
        "deleted, still read"
    );
    Ok(())
}

async fn a_code_works_once<S: OidcStore + ?Sized>(s: &S, tenant_id: Uuid) -> anyhow::Result<()> {
    let c = code(tenant_id);
    s.add_code("code-once", &c).await?;
    anyhow::ensure!(s.take_code("code-once").await? == Some(c));
    anyhow::ensure!(
        s.take_code("code-once").await?.is_none(),
        "a code worked twice"
    );
    anyhow::ensure!(s.take_code("never-issued").await?.is_none());
    Ok(())
}

async fn a_code_works_once_among_many_parallel_takers<S: OidcStore + ?Sized>(
    s: &S,
    tenant_id: Uuid,
) -> anyhow::Result<()> {
    s.add_code("code-race", &code(tenant_id)).await?;
    let takes = join_all((0..64).map(|_| s.take_code("code-race"))).await;
    let mut won = 0;
    for t in takes {
        won += usize::from(t?.is_some());
    }
    anyhow::ensure!(won == 1, "{won} of 64 parallel takers got the code");
    Ok(())
}

async fn refresh_tokens_rotate_and_reuse_revokes_the_family<S: OidcStore + ?Sized>(
    s: &S,
    tenant_id: Uuid,
) -> anyhow::Result<()> {
    let rec = refresh(tenant_id, "family-1");
    s.add_refresh_token("rt-1", &rec).await?;
    anyhow::ensure!(s.use_refresh_token("rt-1", 10).await? == RefreshUse::Fresh(rec.clone()));
    s.add_refresh_token("rt-2", &rec).await?;
    // rt-1 again: a reuse, and the whole family (rt-2 included) is revoked.
    anyhow::ensure!(s.use_refresh_token("rt-1", 11).await? == RefreshUse::Reused);
    anyhow::ensure!(
        s.use_refresh_token("rt-2", 12).await? == RefreshUse::Unknown,
        "a revoked family's token still worked"
    );
    // Expired; unknown.
    s.add_refresh_token("rt-3", &refresh(tenant_id, "family-2"))
        .await?;
    anyhow::ensure!(s.use_refresh_token("rt-3", 1000).await? == RefreshUse::Unknown);
    anyhow::ensure!(s.use_refresh_token("never-issued", 10).await? == RefreshUse::Unknown);
    Ok(())
}

async fn one_of_many_parallel_uses_of_a_refresh_token_wins<S: OidcStore + ?Sized>(
    s: &S,
    tenant_id: Uuid,
) -> anyhow::Result<()> {
    let rec = refresh(tenant_id, "family-race");
    s.add_refresh_token("rt-race", &rec).await?;
    let uses = join_all((0..64).map(|_| s.use_refresh_token("rt-race", 10))).await;
    let mut fresh = 0;
    for u in uses {
        fresh += usize::from(matches!(u?, RefreshUse::Fresh(_)));
    }
    anyhow::ensure!(fresh == 1, "{fresh} of 64 parallel uses were fresh");
    Ok(())
}

async fn sessions_expire_and_end<S: OidcStore + ?Sized>(
    s: &S,
    tenant_id: Uuid,
) -> anyhow::Result<()> {
    let rec = SessionRecord {
        tenant_id,
        user_id: Uuid::new_v4(),
        auth_time: 1,
        expires_at: 100,
    };
    s.add_session("sid-1", &rec).await?;
    anyhow::ensure!(s.session("sid-1", 99).await? == Some(rec));
    anyhow::ensure!(
        s.session("sid-1", 100).await?.is_none(),
        "expired, still read"
    );
    s.delete_session("sid-1").await?;
    anyhow::ensure!(s.session("sid-1", 50).await?.is_none(), "ended, still read");
    Ok(())
}

/// Every rule of [`LockoutStore`], on a store where `tenant_id` is a tenant and `user` one of
/// its users.
pub(crate) async fn lockout<S: LockoutStore + ?Sized>(
    s: &S,
    tenant_id: Uuid,
    user: Uuid,
) -> anyhow::Result<()> {
    failures_lock_and_locks_grow_until_a_success(s, tenant_id).await?;
    no_failure_is_lost_among_many_counted_at_once(s, tenant_id).await?;
    a_users_names_share_one_key(s, tenant_id, user).await?;
    Ok(())
}

async fn failures_lock_and_locks_grow_until_a_success<S: LockoutStore + ?Sized>(
    s: &S,
    t: Uuid,
) -> anyhow::Result<()> {
    let u = "a@corp.test";
    anyhow::ensure!(s.record_wrong_password(t, u, 3, 60, 100).await?.is_none());
    anyhow::ensure!(s.record_wrong_password(t, u, 3, 60, 101).await?.is_none());
    let first = s.record_wrong_password(t, u, 3, 60, 102).await?;
    anyhow::ensure!(
        first.map(|l| (l.until, l.lockouts)) == Some((162, 1)),
        "the third failure did not lock for the duration: {first:?}"
    );
    anyhow::ensure!(s.lockout(t, u, 150).await?.locked_until == Some(162));
    let over = s.lockout(t, u, 162).await?;
    anyhow::ensure!(over.locked_until.is_none() && over.counted, "{over:?}");
    anyhow::ensure!(!s.lockout(t, "nobody@corp.test", 150).await?.counted);
    // The next lock is twice as long.
    for now in 200..202 {
        s.record_wrong_password(t, u, 3, 60, now).await?;
    }
    let second = s.record_wrong_password(t, u, 3, 60, 202).await?;
    anyhow::ensure!(
        second.map(|l| (l.until, l.lockouts)) == Some((322, 2)),
        "{second:?}"
    );
    // Failures older than the window are forgotten.
    s.clear_lockout(t, u).await?;
    s.record_wrong_password(t, u, 3, 60, 1000).await?;
    s.record_wrong_password(t, u, 3, 60, 1001).await?;
    let late = 1001 + FAILURE_WINDOW_SECS + 1;
    anyhow::ensure!(s.record_wrong_password(t, u, 3, 60, late).await?.is_none());
    // A success (or an unlock) forgets everything; the purge drops stale rows only.
    anyhow::ensure!(s.clear_lockout(t, u).await?);
    anyhow::ensure!(!s.clear_lockout(t, u).await?);
    s.record_wrong_password(t, "b@corp.test", 3, 60, 10).await?;
    s.record_wrong_password(t, "c@corp.test", 3, 60, 5000)
        .await?;
    let purged = s.purge_lockouts(10 + FAILURE_WINDOW_SECS + 1).await?;
    anyhow::ensure!(purged == 1, "{purged} rows purged, not 1");
    anyhow::ensure!(s.lockout(t, "c@corp.test", 5001).await?.failures == 1);
    s.clear_lockout(t, "c@corp.test").await?;
    Ok(())
}

async fn no_failure_is_lost_among_many_counted_at_once<S: LockoutStore + ?Sized>(
    s: &S,
    t: Uuid,
) -> anyhow::Result<()> {
    let u = "flood@corp.test";
    // 200 wrong passwords at once, threshold 5: every fifth locks, so exactly 40 locks.
    let counted = join_all((0..200).map(|_| s.record_wrong_password(t, u, 5, 60, 100))).await;
    let mut locks = 0;
    for c in counted {
        locks += usize::from(c?.is_some());
    }
    anyhow::ensure!(
        locks == 40,
        "{locks} locks from 200 failures at threshold 5, not 40"
    );
    s.clear_lockout(t, u).await?;
    Ok(())
}

async fn a_users_names_share_one_key<S: LockoutStore + ?Sized>(
    s: &S,
    t: Uuid,
    user: Uuid,
) -> anyhow::Result<()> {
    s.learn_sign_in_names(t, user, &["Dana@corp.test", "dana.smith@mail.test"])
        .await?;
    let by_upn = s.lockout_key(t, "dana@CORP.test", None).await?;
    let by_mail = s.lockout_key(t, "Dana.Smith@mail.test", None).await?;
    let by_user = s.lockout_key(t, "anything", Some(user)).await?;
    anyhow::ensure!(
        by_upn == by_mail && by_mail == by_user,
        "{by_upn} {by_mail} {by_user}"
    );
    // A name nobody has counts on its own, folded.
    let stranger = s.lockout_key(t, "Stranger@corp.test", None).await?;
    anyhow::ensure!(stranger != by_upn);
    anyhow::ensure!(stranger == s.lockout_key(t, "STRANGER@corp.test", None).await?);
    Ok(())
}

/// Every rule of [`DeviceStore`], on a store where `tenant_id` is a tenant and `user` one of
/// its users.
pub(crate) async fn device<S: DeviceStore + ?Sized>(
    s: &S,
    tenant_id: Uuid,
    user: Uuid,
) -> anyhow::Result<()> {
    let pending = |user_code: &str, expires_at: i64| DeviceCode {
        tenant_id,
        client_id: "client".into(),
        scope: "openid".into(),
        user_code: user_code.into(),
        expires_at,
        interval_secs: 5,
        last_poll: 0,
        approved: None,
    };
    // A user code is unique; it finds its device code only while pending and alive, and
    // only in its tenant.
    s.add_device_code("dev-1", &pending("BCDF-GHJK", 100))
        .await?;
    anyhow::ensure!(
        s.add_device_code("dev-2", &pending("BCDF-GHJK", 100))
            .await
            .is_err(),
        "two device codes share a user code"
    );
    anyhow::ensure!(s
        .pending_device_by_user_code(tenant_id, "BCDF-GHJK", 50)
        .await?
        .is_some());
    anyhow::ensure!(s
        .pending_device_by_user_code(Uuid::new_v4(), "BCDF-GHJK", 50)
        .await?
        .is_none());
    anyhow::ensure!(s
        .pending_device_by_user_code(tenant_id, "BCDF-GHJK", 100)
        .await?
        .is_none());
    // Polls before approval: pending, the poll time kept for slow_down.
    let first = s.poll_device("dev-1", 10).await?;
    anyhow::ensure!(first.is_some_and(|d| d.approved.is_none()));
    let second = s.poll_device("dev-1", 12).await?;
    anyhow::ensure!(
        second.is_some_and(|d| d.last_poll == 10),
        "the last poll was not kept"
    );
    // Many approvals at once: one wins; then the code is no longer pending.
    let approvals =
        join_all((0..32).map(|_| s.approve_device(tenant_id, "BCDF-GHJK", user, 20))).await;
    let mut won = 0;
    for a in approvals {
        won += usize::from(a?);
    }
    anyhow::ensure!(won == 1, "{won} of 32 parallel approvals won");
    anyhow::ensure!(s
        .pending_device_by_user_code(tenant_id, "BCDF-GHJK", 30)
        .await?
        .is_none());
    // Redeemed once: the approved poll returns the user, then the code is gone.
    let redeemed = s.poll_device("dev-1", 30).await?;
    anyhow::ensure!(redeemed.is_some_and(|d| d.approved == Some((user, 20))));
    anyhow::ensure!(
        s.poll_device("dev-1", 31).await?.is_none(),
        "redeemed twice"
    );
    // An expired code says so once, then it is gone.
    s.add_device_code("dev-3", &pending("CDFG-HJKL", 40))
        .await?;
    let expired = s.poll_device("dev-3", 41).await?;
    anyhow::ensure!(expired.is_some_and(|d| d.expires_at <= 41));
    anyhow::ensure!(s.poll_device("dev-3", 42).await?.is_none());
    anyhow::ensure!(!s.approve_device(tenant_id, "CDFG-HJKL", user, 42).await?);
    Ok(())
}

/// Every rule of [`MfaStore`], on a store where `t` is a tenant and `u` and `other` two of
/// its users without a second factor.
pub(crate) async fn mfa<S: MfaStore + ?Sized>(
    s: &S,
    t: Uuid,
    u: Uuid,
    other: Uuid,
) -> anyhow::Result<()> {
    ensure_eq!(s.mfa(t, u).await?, MfaRecord::default());
    s.set_mfa_policy(t, u, Some(Policy::Required)).await?;
    ensure_eq!(s.mfa(t, u).await?.policy, Some(Policy::Required));
    // Not enrolled: no code is accepted.
    anyhow::ensure!(!s.accept_totp_step(t, u, 10).await?);
    anyhow::ensure!(s.start_mfa_enrolment(t, u, b"sealed-1").await?);
    anyhow::ensure!(
        s.start_mfa_enrolment(t, u, b"sealed-2").await?,
        "a new start replaces"
    );
    let hashes: Vec<String> = (0..3).map(|i| format!("h{i}")).collect();
    anyhow::ensure!(s.confirm_mfa_enrolment(t, u, 100, &hashes, 5).await?);
    anyhow::ensure!(
        !s.confirm_mfa_enrolment(t, u, 101, &hashes, 5).await?,
        "once"
    );
    anyhow::ensure!(
        !s.start_mfa_enrolment(t, u, b"sealed-3").await?,
        "enrolled: kept"
    );
    let r = s.mfa(t, u).await?;
    anyhow::ensure!(r.enrolled);
    ensure_eq!(r.sealed_secret.as_deref(), Some(b"sealed-2".as_slice()));
    ensure_eq!(r.last_step, Some(100));
    // Steps: only later ones, each once.
    anyhow::ensure!(!s.accept_totp_step(t, u, 100).await?);
    anyhow::ensure!(!s.accept_totp_step(t, u, 99).await?);
    anyhow::ensure!(s.accept_totp_step(t, u, 101).await?);
    anyhow::ensure!(!s.accept_totp_step(t, u, 101).await?);
    // Recovery codes: each once, and only this user's.
    ensure_eq!(s.recovery_codes_left(u).await?, 3);
    anyhow::ensure!(s.use_recovery_code(t, u, "h1", 6).await?);
    anyhow::ensure!(!s.use_recovery_code(t, u, "h1", 7).await?);
    anyhow::ensure!(!s.use_recovery_code(t, u, "nope", 7).await?);
    anyhow::ensure!(!s.use_recovery_code(t, other, "h2", 7).await?);
    ensure_eq!(s.recovery_codes_left(u).await?, 2);
    // Wrong codes lock, and each lock is longer; a locked factor reserves nothing.
    let granted = |locks_until| Reservation::Granted { locks_until };
    for _ in 1..FAILURES_PER_LOCK {
        ensure_eq!(s.reserve_mfa_attempt(t, u, 1000).await?, granted(None));
    }
    ensure_eq!(
        s.reserve_mfa_attempt(t, u, 1000).await?,
        granted(Some(1000 + FIRST_LOCK_SECS))
    );
    ensure_eq!(
        s.reserve_mfa_attempt(t, u, 1001).await?,
        Reservation::Locked(1000 + FIRST_LOCK_SECS)
    );
    for _ in 1..FAILURES_PER_LOCK {
        s.reserve_mfa_attempt(t, u, 2000).await?;
    }
    ensure_eq!(
        s.reserve_mfa_attempt(t, u, 2000).await?,
        granted(Some(2000 + 2 * FIRST_LOCK_SECS))
    );
    ensure_eq!(
        s.mfa(t, u).await?.locked_until,
        Some(2000 + 2 * FIRST_LOCK_SECS)
    );
    ensure_eq!(
        s.reserve_mfa_attempt(t, other, 2000).await?,
        Reservation::NoRecord
    );
    anyhow::ensure!(s.clear_mfa_failures(t, u).await?);
    ensure_eq!(s.mfa(t, u).await?.locked_until, None);
    // Challenges.
    s.put_mfa_challenge("req", t, u, Stage::Enrol, 50).await?;
    let c = s.mfa_challenge(t, "req", 10).await?;
    ensure_eq!(
        c,
        Some(Challenge {
            user_id: u,
            stage: Stage::Enrol
        })
    );
    ensure_eq!(s.mfa_challenge(t, "req", 50).await?, None, "expired");
    ensure_eq!(s.mfa_challenge(Uuid::new_v4(), "req", 10).await?, None);
    anyhow::ensure!(
        s.advance_mfa_challenge("req", Stage::Enrol, Stage::Done)
            .await?
    );
    anyhow::ensure!(
        !s.advance_mfa_challenge("req", Stage::Enrol, Stage::Done)
            .await?
    );
    // A reset removes the authenticator, its codes and challenges; the policy stays.
    anyhow::ensure!(s.reset_mfa(t, u).await?);
    let r = s.mfa(t, u).await?;
    anyhow::ensure!(!r.enrolled && r.sealed_secret.is_none());
    ensure_eq!(r.policy, Some(Policy::Required));
    ensure_eq!(s.recovery_codes_left(u).await?, 0);
    anyhow::ensure!(!s.take_mfa_challenge("req").await?);
    second_factor_checks_hold_under_many_parallel_posts(s, t, other).await
}

/// Many posts of one second factor at once: a TOTP step is accepted once, a recovery code
/// used once, and at most [`FAILURES_PER_LOCK`] wrong-code checks are granted before the lock.
async fn second_factor_checks_hold_under_many_parallel_posts<S: MfaStore + ?Sized>(
    s: &S,
    t: Uuid,
    u: Uuid,
) -> anyhow::Result<()> {
    anyhow::ensure!(s.start_mfa_enrolment(t, u, b"sealed-p").await?);
    let hashes = vec!["p0".to_string(), "p1".to_string()];
    anyhow::ensure!(s.confirm_mfa_enrolment(t, u, 10, &hashes, 5).await?);
    let steps = join_all((0..32).map(|_| s.accept_totp_step(t, u, 11))).await;
    let mut accepted = 0;
    for a in steps {
        accepted += usize::from(a?);
    }
    anyhow::ensure!(accepted == 1, "step 11 accepted {accepted} times of 32");
    let uses = join_all((0..32).map(|_| s.use_recovery_code(t, u, "p0", 6))).await;
    let mut used = 0;
    for a in uses {
        used += usize::from(a?);
    }
    anyhow::ensure!(used == 1, "a recovery code used {used} times of 32");
    let reserved = join_all((0..200).map(|_| s.reserve_mfa_attempt(t, u, 3000))).await;
    let mut granted = 0;
    for r in reserved {
        granted += usize::from(matches!(r?, Reservation::Granted { .. }));
    }
    anyhow::ensure!(
        granted == FAILURES_PER_LOCK as usize,
        "{granted} of 200 parallel code checks granted, not {FAILURES_PER_LOCK}"
    );
    Ok(())
}

/// Every rule of [`AttemptStore`].
pub(crate) async fn attempts<S: AttemptStore + ?Sized>(s: &S) -> anyhow::Result<()> {
    // A window counts to its limit, then refuses until it ends; keys and scopes apart.
    for n in 1..=3 {
        ensure_eq!(
            s.bump_attempts("x", "k", 3, 60, 100).await?,
            Bump::Counted(n)
        );
    }
    ensure_eq!(
        s.bump_attempts("x", "k", 3, 60, 159).await?,
        Bump::Refused { retry_at: 160 }
    );
    ensure_eq!(
        s.bump_attempts("x", "other", 3, 60, 159).await?,
        Bump::Counted(1)
    );
    ensure_eq!(
        s.bump_attempts("y", "k", 3, 60, 159).await?,
        Bump::Counted(1)
    );
    ensure_eq!(
        s.bump_attempts("x", "k", 3, 60, 160).await?,
        Bump::Counted(1),
        "a new window"
    );
    ensure_eq!(s.purge_attempts(159 + 60, 60).await?, 2);
    ensure_eq!(s.purge_attempts(160 + 60, 60).await?, 1);
    // Hundreds of bumps of one key at once: exactly the limit is counted.
    let bumps = join_all((0..300).map(|_| s.bump_attempts("z", "k", 5, 3600, 1000))).await;
    let mut counted = 0;
    for b in bumps {
        counted += usize::from(matches!(b?, Bump::Counted(_)));
    }
    anyhow::ensure!(
        counted == 5,
        "{counted} of 300 parallel bumps counted, not 5"
    );
    Ok(())
}

/// Every rule of [`WritebackStore`], on a store where `t` is a tenant and `u` one of its
/// users (writeback not allowed yet).
pub(crate) async fn writeback<S: WritebackStore + ?Sized>(
    s: &S,
    t: Uuid,
    u: Uuid,
) -> anyhow::Result<()> {
    anyhow::ensure!(s.set_writeback_allowed(t, u, true, 2).await?);
    anyhow::ensure!(!s.set_writeback_allowed(t, Uuid::new_v4(), true, 2).await?);

    let flow = ResetFlow {
        tenant_id: t,
        user_id: u,
        csrf: "c".into(),
        verified: false,
        wrong_codes: 0,
    };
    s.start_reset_flow("h1", &flow, 100).await?;
    s.reset_flow_code("h1", false).await?;
    let got = s.reset_flow(t, "h1", 50).await?;
    ensure_eq!(
        got.as_ref().map(|f| (f.verified, f.wrong_codes)),
        Some((false, 1))
    );
    s.reset_flow_code("h1", true).await?;
    anyhow::ensure!(s.reset_flow(t, "h1", 50).await?.is_some_and(|f| f.verified));
    anyhow::ensure!(s.reset_flow(t, "h1", 100).await?.is_none(), "expired");
    anyhow::ensure!(
        s.reset_flow(Uuid::new_v4(), "h1", 50).await?.is_none(),
        "other tenant"
    );
    s.end_reset_flow("h1", 50).await?;
    anyhow::ensure!(s.reset_flow(t, "h1", 50).await?.is_none());
    // Wrong codes counted at once are all counted (the per-flow count the reset page shows).
    s.start_reset_flow("h2", &flow, 100).await?;
    for r in join_all((0..50).map(|_| s.reset_flow_code("h2", false))).await {
        r?;
    }
    let counted = s.reset_flow(t, "h2", 50).await?.map(|f| f.wrong_codes);
    ensure_eq!(counted, Some(50), "wrong codes lost among 50 at once");
    Ok(())
}

/// Every rule of [`SigningKeyStore`], on a store where `t` and `other` are two tenants without
/// keys.
pub(crate) async fn signing_keys<S: SigningKeyStore + ?Sized>(
    s: &S,
    t: Uuid,
    other: Uuid,
) -> anyhow::Result<()> {
    let key = |kid: &'static str| NewKey {
        kid,
        sealed_private: b"sealed",
        public_raw: b"public",
    };
    let kids = |keys: &[super::signing_keys::StoredKey]| {
        keys.iter().map(|k| k.kid.clone()).collect::<Vec<_>>()
    };
    // Many processes creating a tenant's first key at once: one wins.
    let names = ["k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"];
    let firsts = join_all(names.iter().map(|n| s.add_first_signing_key(t, key(n), 10))).await;
    let mut won = 0;
    for f in firsts {
        won += usize::from(f?);
    }
    anyhow::ensure!(won == 1, "{won} first keys stored of 8 at once");
    let first = s.signing_keys(t, 10, 100, 2).await?;
    anyhow::ensure!(
        first.len() == 1 && first[0].retired_at.is_none(),
        "{first:?}"
    );
    let first_kid = first[0].kid.clone();
    // Rotations: the new key is current, the old ones published newest first, at most two.
    s.rotate_signing_key(t, key("r1"), 20, 100, 2).await?;
    s.rotate_signing_key(t, key("r2"), 30, 100, 2).await?;
    ensure_eq!(
        kids(&s.signing_keys(t, 30, 100, 2).await?),
        vec!["r2", "r1", first_kid.as_str()]
    );
    s.rotate_signing_key(t, key("r3"), 40, 100, 2).await?;
    ensure_eq!(
        kids(&s.signing_keys(t, 40, 100, 2).await?),
        vec!["r3", "r2", "r1"],
        "bounded"
    );
    // Retired keys past the grace period are no longer published, and the prune deletes them.
    ensure_eq!(
        kids(&s.signing_keys(t, 135, 100, 2).await?),
        vec!["r3", "r2"]
    );
    anyhow::ensure!(s.prune_signing_keys(135, 100, 2).await? >= 1);
    ensure_eq!(
        kids(&s.signing_keys(t, 40, 100, 2).await?),
        vec!["r3", "r2"]
    );
    // Another tenant: its own first key, untouched by this tenant's rotations.
    anyhow::ensure!(s.add_first_signing_key(other, key("o1"), 10).await?);
    s.rotate_signing_key(t, key("r4"), 50, 100, 2).await?;
    ensure_eq!(kids(&s.signing_keys(other, 50, 100, 2).await?), vec!["o1"]);
    // A kid is unique in its tenant; a refused rotation changes nothing.
    anyhow::ensure!(
        s.rotate_signing_key(t, key("r4"), 60, 100, 2)
            .await
            .is_err(),
        "a tenant has two keys with one kid"
    );
    ensure_eq!(
        kids(&s.signing_keys(t, 60, 100, 2).await?),
        vec!["r4", "r3", "r2"],
        "nothing changed"
    );
    Ok(())
}

/// Every rule of [`PortalStore`], on a store where `t` is a tenant.
pub(crate) async fn portal<S: PortalStore + ?Sized>(s: &S, t: Uuid) -> anyhow::Result<()> {
    let login = PortalLogin {
        tenant_id: t,
        verifier: "v".into(),
        nonce: "n".into(),
    };
    s.put_portal_login("h", &login, 100, 10).await?;
    anyhow::ensure!(s.take_portal_login("h", 200).await?.is_none(), "expired");
    s.put_portal_login("h2", &login, 100, 10).await?;
    ensure_eq!(s.take_portal_login("h2", 20).await?, Some(login));
    anyhow::ensure!(s.take_portal_login("h2", 20).await?.is_none(), "only once");
    let sess = PortalSession {
        tenant_id: t,
        user_id: Uuid::new_v4(),
        csrf: "c".into(),
        auth_time: 1,
        expires_at: 100,
    };
    s.add_portal_session("sid", &sess, 10).await?;
    ensure_eq!(s.portal_session("sid", 50).await?, Some(sess.clone()));
    anyhow::ensure!(s.portal_session("sid", 100).await?.is_none());
    s.add_portal_session("sid2", &sess, 10).await?;
    s.delete_portal_session("sid2").await?;
    anyhow::ensure!(
        s.portal_session("sid2", 50).await?.is_none(),
        "signed out, still read"
    );
    anyhow::ensure!(
        s.portal_session("sid", 50).await?.is_some(),
        "another session ended"
    );
    s.delete_portal_sessions_of(t, sess.user_id).await?;
    anyhow::ensure!(s.portal_session("sid", 50).await?.is_none());
    // A sign-in state redeemed by many callbacks at once: one gets it.
    let login = PortalLogin {
        tenant_id: t,
        verifier: "v".into(),
        nonce: "n".into(),
    };
    s.put_portal_login("race", &login, 100, 10).await?;
    let takes = join_all((0..32).map(|_| s.take_portal_login("race", 20))).await;
    let mut won = 0;
    for r in takes {
        won += usize::from(r?.is_some());
    }
    anyhow::ensure!(won == 1, "{won} of 32 callbacks got the sign-in state");
    Ok(())
}

/// Every rule of [`FederationStore`], on a store where `t` is a tenant.
pub(crate) async fn federation<S: FederationStore + ?Sized>(s: &S, t: Uuid) -> anyhow::Result<()> {
    let secrets = crate::secret_box::SecretBox::from_key(&[3u8; 32]);
    let cfg = FederationConfig {
        domain: "Fab.Example".into(),
        tenant_id: t,
        issuer: "https://idp.example/t/v2.0".into(),
        client_id: "client-1".into(),
        client_secret: zeroize::Zeroizing::new("s3cret-value".into()),
    };
    s.add_federated_domain(&cfg, "code", 1, &secrets).await?;
    anyhow::ensure!(
        matches!(
            s.add_federated_domain(&cfg, "code", 1, &secrets).await,
            Err(StoreError::Conflict(_))
        ),
        "a domain added twice"
    );
    let got = s.federation("FAB.example", &secrets).await?;
    anyhow::ensure!(
        got.as_ref()
            .is_some_and(|f| f.client_secret.as_str() == "s3cret-value"
                && f.tenant_id == t
                && f.client_id == "client-1"),
        "the settings do not read back"
    );
    let state = FederationState {
        authz_id: "r".into(),
        domain: "fab.example".into(),
        issuer: cfg.issuer.clone(),
        nonce: "n".into(),
        code_verifier: "v".into(),
        browser_hash: "b".into(),
        redirect_uri: "https://x/cb".into(),
        token_endpoint: "https://idp/token".into(),
        jwks_uri: "https://idp/keys".into(),
        username: "a@fab.example".into(),
    };
    // A round trip: only in its tenant, once, until it expires.
    s.put_federation_state("h1", t, &state, 100, 10).await?;
    ensure_eq!(
        s.take_federation_state("h1", Uuid::new_v4(), 10).await?,
        None
    );
    ensure_eq!(
        s.take_federation_state("h1", t, 10).await?,
        Some(state.clone())
    );
    ensure_eq!(
        s.take_federation_state("h1", t, 11).await?,
        None,
        "used once"
    );
    s.put_federation_state("h2", t, &state, 100, 10).await?;
    ensure_eq!(
        s.take_federation_state("h2", t, 100).await?,
        None,
        "expired"
    );
    // Many callbacks with one state at once: one gets it.
    s.put_federation_state("race", t, &state, 100, 10).await?;
    let takes = join_all((0..32).map(|_| s.take_federation_state("race", t, 20))).await;
    let mut won = 0;
    for r in takes {
        won += usize::from(r?.is_some());
    }
    anyhow::ensure!(won == 1, "{won} of 32 callbacks got the round trip");
    // Conversion to managed: the settings and round trips in progress go.
    s.put_federation_state("h3", t, &state, 100, 10).await?;
    ensure_eq!(
        s.convert_to_managed(t, "fab.example").await?,
        Conversion::Converted
    );
    anyhow::ensure!(s.federation("fab.example", &secrets).await?.is_none());
    ensure_eq!(s.take_federation_state("h3", t, 10).await?, None);
    ensure_eq!(
        s.convert_to_managed(t, "fab.example").await?,
        Conversion::AlreadyManaged
    );
    anyhow::ensure!(matches!(
        s.convert_to_managed(t, "nope.example").await,
        Err(StoreError::NotFound(_))
    ));
    Ok(())
}

mod admin;
mod agents;
mod directory;
mod federation;
mod mfa;
mod portal;
mod sign_in_log;
mod sign_in_state;
mod sync;
mod tenants;

#[cfg(test)]
mod tests {
    use crate::store::{test_store, DomainKind};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_oidc_rules() -> anyhow::Result<()> {
        let (s, dir, tenant_id) =
            test_store("conformance", "contoso.example", DomainKind::Cloud).await?;
        super::oidc(s.backend(), tenant_id).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_lockout_and_device_rules() -> anyhow::Result<()> {
        let (s, dir, tenant_id) =
            test_store("conformance", "corp.test", DomainKind::Managed).await?;
        let user = s
            .add_cloud_user(tenant_id, "dana@corp.test", "h", "none", 1)
            .await?;
        super::lockout(s.backend(), tenant_id, user).await?;
        super::device(s.backend(), tenant_id, user).await?;
        super::portal(s.backend(), tenant_id).await?;
        super::federation(s.backend(), tenant_id).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite_keeps_the_attempt_counter_rules() -> anyhow::Result<()> {
        let (s, dir, _) = test_store("conformance", "corp.test", DomainKind::Managed).await?;
        super::attempts(s.backend()).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_mfa_writeback_and_signing_key_rules() -> anyhow::Result<()> {
        let (s, dir, t) = test_store("conformance", "contoso.example", DomainKind::Cloud).await?;
        let u = s
            .add_cloud_user(t, "a@contoso.example", "x", "none", 1)
            .await?;
        let other = s
            .add_cloud_user(t, "b@contoso.example", "x", "none", 1)
            .await?;
        super::mfa(s.backend(), t, u, other).await?;
        super::writeback(s.backend(), t, other).await?;
        let beta = uuid::Uuid::new_v4();
        s.create_tenant(beta, "beta", 1).await?;
        super::signing_keys(s.backend(), t, beta).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite_keeps_the_directory_rules() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-conf-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let s = crate::store::Store::open(&dir.join("t.db"), true).await?;
        super::directory::directory(s.backend()).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}
