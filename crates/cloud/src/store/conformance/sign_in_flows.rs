//! The rules of the sign-in flows' areas (OIDC codes, tokens and sessions, smart lockout,
//! device codes, the second factor), each checked with many calls at once where a limit or
//! a one-time use depends on it.

use super::*;

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
