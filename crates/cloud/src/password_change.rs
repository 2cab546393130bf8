//! Changing an on-premises password from the cloud's pages (password writeback):
//!
//! - during sign-in, when AD answers 1330 (expired) or 1907 (must change) and writeback is
//!   allowed for the user: the "Update your password" page, then the sign-in continues to
//!   the application (second factor included);
//! - at `/{tenant}/password/change`, for a user signed in with a browser session.
//!
//! Both ask for the current password again (it is never kept between requests) and send
//! one sealed change to an agent.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Extension;
use passthru_proto::Aadsts;
use serde::Deserialize;
use zeroize::Zeroizing;

use crate::clock::{unix_ms, unix_now};
use crate::http::correlation_id;
use crate::http::ClientInfo;
use crate::issue::{hash_secret, secrets_equal};
use crate::pages::info_page;
use crate::password_change_page::{change_page, change_page_of, expired_form, Form};
use crate::state::Shared;
use crate::store::{AuthzRequest, ChangeSecondFactor, PasswordChangeGrant, SignIn, Tenant, User};
use crate::writeback::{self, Actor, WritebackError};

/// The form of both change pages. Passwords are zeroized when it is dropped.
#[derive(Deserialize)]
pub struct ChangeForm {
    #[serde(default)]
    req: String,
    csrf: String,
    current: Zeroizing<String>,
    new: Zeroizing<String>,
    confirm: Zeroizing<String>,
}

impl std::fmt::Debug for ChangeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeForm")
            .field("req", &self.req)
            .finish_non_exhaustive()
    }
}

/// The sign-in page's answer to 1330/1907 when writeback is allowed for the user; `None`
/// when it is not (the sign-in page then shows the seed's message). The pending sign-in
/// records, server-side, that AD answered so for this user: only then does the change page
/// accept a new password. A user with a second factor proves it first.
pub(crate) async fn offer_after_sign_in(
    state: &Shared,
    t: &Tenant,
    req: &AuthzRequest,
    username: &str,
    corr: uuid::Uuid,
) -> Option<Response> {
    let user = state.store.user_by_upn(t.id, username).await.ok()??;
    if !user.enabled {
        return None;
    }
    writeback::allowed(state, t, &user.upn, Some(&user), Actor::User)
        .await
        .ok()?;
    let mfa = state.store.mfa(t.id, user.id).await.ok()?;
    let effective = crate::model::mfa_policy::effective(t.settings.mfa, mfa.policy);
    let code_first = crate::model::mfa_policy::next_step(effective, mfa.enrolled)
        == crate::model::mfa_policy::Next::Code;
    let mut req = req.clone();
    req.password_change = Some(PasswordChangeGrant {
        user_id: user.id,
        upn: user.upn.clone(),
        second_factor: if code_first {
            ChangeSecondFactor::Pending
        } else {
            ChangeSecondFactor::NotAsked
        },
    });
    if code_first {
        // The code page; once the code is accepted, the change page (see `mfa::flow`).
        return Some(crate::mfa::flow::code_before_change(state, t, &req, &user, corr).await);
    }
    let lifetime = crate::browser_session::REQUEST_LIFETIME;
    if let Err(e) = state.store.put_authz(&req, unix_now() + lifetime).await {
        tracing::error!(error = %e, correlation = %corr, "cannot store an authorization request");
        return None;
    }
    Some(change_page_of(t, &req))
}

/// Checks the two new passwords of a form before anything is sent.
fn new_password_problem(f: &ChangeForm) -> Option<&'static str> {
    if f.new.is_empty() {
        Some("Enter a new password.")
    } else if !secrets_equal(&f.new, &f.confirm) {
        Some("The new passwords don't match. Type the same new password twice.")
    } else if secrets_equal(&f.new, &f.current) {
        Some("Your new password must be different from your current one.")
    } else if f.current.is_empty() {
        Some("Enter your current password.")
    } else {
        None
    }
}

/// `POST /{tenant}/login/password/change`: the change during sign-in. Only a pending
/// sign-in that AD answered 1330/1907 for (its server-side grant), for a user not blocked in
/// the cloud, after the second factor when the user has one.
pub async fn during_sign_in(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Extension(client): Extension<ClientInfo>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<ChangeForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let Ok(Some(t)) = state.store.tenant(&tenant).await else {
        return info_page("Not found", "This organization was not found.");
    };
    let Some(req) = crate::browser_session::pending(&state, &t, &f.req, &f.csrf).await else {
        return crate::browser_session::expired(corr);
    };
    let Some(grant) = req.password_change.clone() else {
        tracing::warn!(tenant = %t.name, correlation = %corr, "a password change was posted for a sign-in that AD did not ask to change a password; refused");
        return crate::browser_session::expired(corr);
    };
    if grant.second_factor == ChangeSecondFactor::Pending {
        tracing::warn!(tenant = %t.name, user = %grant.upn, correlation = %corr, "a password change was posted before the second factor; refused");
        return crate::browser_session::expired(corr);
    }
    let user = match state.store.user_by_id(t.id, grant.user_id).await {
        Ok(Some(u)) if u.enabled => u,
        Ok(_) => {
            return crate::pages::error_page(
                Aadsts::AccountDisabled,
                corr,
                "This account can no longer sign in.",
            )
        }
        Err(e) => return crate::pages::fault_page(corr, e),
    };
    let upn = user.upn.clone();
    let form_action = crate::pages::redirect_form_action(&req.redirect_uri);
    let form = expired_form(&t, &req, &upn);
    if let Err(e) = writeback::allowed(&state, &t, &upn, Some(&user), Actor::User).await {
        return change_page(&form, Some(&e.user_sentence()), &form_action);
    }
    if let Some(problem) = new_password_problem(&f) {
        return change_page(&form, Some(problem), &form_action);
    }
    let ChangeForm { current, new, .. } = f;
    let started = std::time::Instant::now();
    let result = writeback::change(&state, &t, &upn, current, new, corr).await;
    // The sign-in log's line for this sign-in: the password was right (AD said 1330/1907
    // before) and is now changed.
    let entry = SignIn {
        id: 0,
        time_ms: unix_ms(),
        username: upn.clone(),
        client_id: Some(req.client_id.clone()),
        result: if result.is_ok() { "success" } else { "failure" }.into(),
        aadsts: result
            .as_ref()
            .err()
            .map(|_| Aadsts::PasswordChangeRequired.code()),
        win32: None,
        agent_id: None,
        other_agents: Vec::new(),
        latency_ms: Some(i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX)),
        correlation_id: corr.to_string(),
        client_ip: Some(client.addr.ip().to_string()),
    };
    if let Err(e) = state.store.log_sign_in(t.id, &entry).await {
        tracing::error!(error = %e, "could not write the sign-in log");
    }
    match result {
        // The second factor was proved before the change: the sign-in completes.
        Ok(user) if grant.second_factor == ChangeSecondFactor::Proved => {
            crate::browser_session::complete_sign_in(&state, &t, &req, user.id, corr).await
        }
        Ok(user) => crate::mfa::continue_sign_in(&state, &t, &req, &user, corr).await,
        Err(e) => change_page(&form, Some(&e.user_sentence()), &form_action),
    }
}

/// The signed-in user of a browser session, and the CSRF token bound to that session.
async fn signed_in(state: &Shared, t: &Tenant, headers: &HeaderMap) -> Option<(User, String)> {
    let (session, sid) = crate::browser_session::session_with_id(state, t, headers).await?;
    let user = state
        .store
        .user_by_id(t.id, session.user_id)
        .await
        .ok()
        .flatten()?;
    Some((user, hash_secret(&format!("csrf:password-change:{sid}"))))
}

fn not_signed_in(t: &Tenant) -> Response {
    info_page(
        "Sign in first",
        &format!(
            "Sign in to an application of {} first, then come back to this page to change your password.",
            t.name
        ),
    )
}

fn session_form<'a>(t: &Tenant, csrf: &'a str, upn: &'a str) -> Form<'a> {
    Form {
        action: format!("/{}/password/change", t.name),
        req: "",
        csrf,
        username: upn,
        intro: "Choose a new password for your work account. It changes your password everywhere your organization uses it.",
    }
}

/// `GET /{tenant}/password/change`: the change page for a signed-in user.
pub async fn page_for_session(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Response {
    let Ok(Some(t)) = state.store.tenant(&tenant).await else {
        return info_page("Not found", "This organization was not found.");
    };
    let Some((user, csrf)) = signed_in(&state, &t, &headers).await else {
        return not_signed_in(&t);
    };
    let form = session_form(&t, &csrf, &user.upn);
    match writeback::allowed(&state, &t, &user.upn, Some(&user), Actor::User).await {
        Ok(()) => change_page(&form, None, "'self'"),
        Err(WritebackError::NotOnPremises) if user.password_hash.is_some() => info_page(
            "Change your password",
            "Your account is a cloud account: ask your administrator to set a new password.",
        ),
        Err(e) => info_page("Change your password", &e.user_sentence()),
    }
}

/// `POST /{tenant}/password/change`: a signed-in user's change.
pub async fn change_for_session(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<ChangeForm>,
) -> Response {
    let corr = correlation_id(&headers);
    let Ok(Some(t)) = state.store.tenant(&tenant).await else {
        return info_page("Not found", "This organization was not found.");
    };
    let Some((user, csrf)) = signed_in(&state, &t, &headers).await else {
        return not_signed_in(&t);
    };
    if !secrets_equal(&csrf, &f.csrf) {
        return crate::browser_session::expired(corr);
    }
    let form = session_form(&t, &csrf, &user.upn);
    if let Err(e) = writeback::allowed(&state, &t, &user.upn, Some(&user), Actor::User).await {
        return change_page(&form, Some(&e.user_sentence()), "'self'");
    }
    if let Some(problem) = new_password_problem(&f) {
        return change_page(&form, Some(problem), "'self'");
    }
    let ChangeForm { current, new, .. } = f;
    match writeback::change(&state, &t, &user.upn, current, new, corr).await {
        Ok(_) => info_page(
            "Password changed",
            "Your password was changed. Use your new password from now on, here and on your organization's network.",
        ),
        Err(e) => change_page(&form, Some(&e.user_sentence()), "'self'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(current: &str, new: &str, confirm: &str) -> ChangeForm {
        ChangeForm {
            req: String::new(),
            csrf: String::new(),
            current: Zeroizing::new(current.into()),
            new: Zeroizing::new(new.into()),
            confirm: Zeroizing::new(confirm.into()),
        }
    }

    #[test]
    fn new_passwords_are_checked_before_anything_is_sent() {
        assert!(new_password_problem(&form("old", "", "")).is_some());
        assert!(new_password_problem(&form("old", "a", "b")).is_some_and(|p| p.contains("match")));
        assert!(new_password_problem(&form("same", "same", "same")).is_some());
        assert!(new_password_problem(&form("", "new", "new")).is_some());
        assert_eq!(new_password_problem(&form("old", "new", "new")), None);
        assert!(!format!("{:?}", form("old", "secret-new", "secret-new")).contains("secret"));
    }

    #[test]
    fn the_page_never_echoes_a_password() {
        let f = Form {
            action: "/t/login/password/change".into(),
            req: "r",
            csrf: "c",
            username: "a@corp.example.test",
            intro: crate::password_change_page::EXPIRED_INTRO,
        };
        let r = change_page(&f, Some("<b>"), "'self'");
        assert_eq!(r.status(), axum::http::StatusCode::BAD_REQUEST);
    }

    mod during_sign_in {
        use passthru_proto::seal::ValidationPayload;
        use passthru_proto::wire::Outcome;
        use passthru_proto::{PasswordOperation, Win32};

        use crate::clock::unix_now;
        use crate::in_process::{directory_user, Answer, Bed, REDIRECT};

        /// The password AD says is right but must be changed (1907).
        const EXPIRED: &str = "Expired-Passw0rd-1";
        const NEW: &str = "Brand-New-Passw0rd-2";

        /// A domain controller: `EXPIRED` is right and must be changed; a change from it
        /// is accepted; anything else is a wrong password.
        fn ad(p: &ValidationPayload) -> Outcome {
            let name = p.username.split('@').next().unwrap_or_default();
            match &p.operation {
                PasswordOperation::Validate if p.password.as_str() == EXPIRED => Outcome::Denied {
                    win32: Win32::PasswordMustChange,
                },
                PasswordOperation::Change { .. } if p.password.as_str() == EXPIRED => {
                    Outcome::Success(directory_user(name))
                }
                _ => Outcome::Denied {
                    win32: Win32::LogonFailure,
                },
            }
        }

        /// A bed with writeback on and the user `name` allowed to change their password.
        async fn bed_with(name: &str) -> anyhow::Result<(Bed, crate::store::User)> {
            let mut bed = Bed::new(ad).await?;
            bed.settings(|s| s.writeback = true).await?;
            let user = bed.onprem_user(name).await?;
            bed.state
                .store
                .set_writeback_allowed(bed.tenant.id, user.id, true, unix_now())
                .await?;
            Ok((bed, user))
        }

        /// A new sign-in up to the password page of `name`: its request id and CSRF token.
        async fn password_page(bed: &Bed, name: &str) -> anyhow::Result<(String, String)> {
            let first = bed.authorize().await?;
            let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
            let upn = format!("{name}@{}", crate::in_process::DOMAIN);
            let page = bed
                .post(
                    "/contoso/login",
                    &[("req", &req), ("csrf", &csrf), ("username", &upn)],
                    "",
                )
                .await?;
            assert_eq!(page.status, 200, "{}", page.body);
            Ok((req, csrf))
        }

        async fn password(bed: &Bed, req: &str, csrf: &str, pw: &str) -> anyhow::Result<Answer> {
            bed.post(
                "/contoso/login/password",
                &[("req", req), ("csrf", csrf), ("password", pw)],
                "",
            )
            .await
        }

        async fn change(bed: &Bed, req: &str, csrf: &str) -> anyhow::Result<Answer> {
            bed.post(
                "/contoso/login/password/change",
                &[
                    ("req", req),
                    ("csrf", csrf),
                    ("current", EXPIRED),
                    ("new", NEW),
                    ("confirm", NEW),
                ],
                "",
            )
            .await
        }

        fn changes(bed: &Bed) -> usize {
            bed.asked().iter().filter(|(op, _)| op == "change").count()
        }

        fn signed_in(a: &Answer) -> bool {
            a.location().starts_with(REDIRECT) && a.location().contains("code=")
        }

        #[tokio::test]
        async fn only_a_sign_in_ad_answered_1907_for_may_change_the_password() -> anyhow::Result<()>
        {
            let (bed, _) = bed_with("alice").await?;
            // Straight from the username page to the change form: no password was checked.
            let (req, csrf) = password_page(&bed, "alice").await?;
            let forged = change(&bed, &req, &csrf).await?;
            assert_eq!(forged.status, 403, "{}", forged.body);
            assert!(!signed_in(&forged));
            assert_eq!(changes(&bed), 0, "nothing was sent to the agent");

            // AD's 1907 for alice, then another name typed on the same sign-in: the grant
            // does not carry over.
            let page = password(&bed, &req, &csrf, EXPIRED).await?;
            assert!(page.body.contains("Update your password"), "{}", page.body);
            let upn = format!("bob@{}", crate::in_process::DOMAIN);
            bed.post(
                "/contoso/login",
                &[("req", &req), ("csrf", &csrf), ("username", &upn)],
                "",
            )
            .await?;
            let other = change(&bed, &req, &csrf).await?;
            assert_eq!(other.status, 403, "{}", other.body);
            assert_eq!(changes(&bed), 0);

            // The real thing: 1907, the change page, the change, the app gets its code.
            let (req, csrf) = password_page(&bed, "alice").await?;
            let page = password(&bed, &req, &csrf, EXPIRED).await?;
            assert!(page.body.contains("Update your password"), "{}", page.body);
            let done = change(&bed, &req, &csrf).await?;
            assert!(signed_in(&done), "{} {}", done.status, done.body);
            assert_eq!(changes(&bed), 1);
            // The sign-in is over: its form cannot be posted again.
            let again = change(&bed, &req, &csrf).await?;
            assert_eq!(again.status, 403, "{}", again.body);
            assert_eq!(changes(&bed), 1);
            Ok(())
        }

        #[tokio::test]
        async fn a_user_blocked_in_the_cloud_cannot_change_the_password() -> anyhow::Result<()> {
            let (bed, alice) = bed_with("alice").await?;
            let (req, csrf) = password_page(&bed, "alice").await?;
            let page = password(&bed, &req, &csrf, EXPIRED).await?;
            assert!(page.body.contains("Update your password"), "{}", page.body);
            // An administrator blocks the user while the change page is open.
            bed.state
                .store
                .set_user_enabled(bed.tenant.id, alice.id, false, unix_now())
                .await?;
            let refused = change(&bed, &req, &csrf).await?;
            assert!(!signed_in(&refused), "{}", refused.body);
            assert!(refused.body.contains("50057"), "{}", refused.body);
            assert_eq!(changes(&bed), 0, "nothing was written");
            // Blocked before the password: no change page at all.
            let (req, csrf) = password_page(&bed, "alice").await?;
            let page = password(&bed, &req, &csrf, EXPIRED).await?;
            assert!(!page.body.contains("Update your password"), "{}", page.body);
            assert_eq!(changes(&bed), 0);
            Ok(())
        }

        #[tokio::test]
        async fn a_user_with_a_second_factor_proves_it_before_the_change() -> anyhow::Result<()> {
            let (mut bed, alice) = bed_with("alice").await?;
            bed.settings(|s| s.mfa = crate::model::mfa_policy::Policy::Optional)
                .await?;
            let secret = crate::mfa::totp::new_secret();
            let sealed = bed.state.mfa_box.seal(alice.id, &secret)?;
            let now = unix_now();
            assert!(
                bed.state
                    .store
                    .start_mfa_enrolment(bed.tenant.id, alice.id, &sealed)
                    .await?
            );
            let old_step = crate::mfa::totp::step_of(now) - 10;
            assert!(
                bed.state
                    .store
                    .confirm_mfa_enrolment(bed.tenant.id, alice.id, old_step, &[], now)
                    .await?
            );
            let (req, csrf) = password_page(&bed, "alice").await?;
            let page = password(&bed, &req, &csrf, EXPIRED).await?;
            assert!(
                page.body.contains("/contoso/login/mfa")
                    && !page.body.contains("Update your password"),
                "the code page first: {}",
                page.body
            );
            let early = change(&bed, &req, &csrf).await?;
            assert_eq!(early.status, 403, "{}", early.body);
            assert_eq!(changes(&bed), 0, "no change before the second factor");
            let wrong = bed
                .post(
                    "/contoso/login/mfa",
                    &[("req", &req), ("csrf", &csrf), ("code", "000000x")],
                    "",
                )
                .await?;
            assert!(
                !wrong.body.contains("Update your password"),
                "{}",
                wrong.body
            );
            let code =
                crate::mfa::totp::code_for_step(&secret, crate::mfa::totp::step_of(unix_now()))
                    .ok_or_else(|| anyhow::anyhow!("no code"))?;
            let proved = bed
                .post(
                    "/contoso/login/mfa",
                    &[("req", &req), ("csrf", &csrf), ("code", code.as_str())],
                    "",
                )
                .await?;
            assert!(
                proved.body.contains("Update your password"),
                "the change page after the code: {}",
                proved.body
            );
            assert_eq!(changes(&bed), 0);
            // The change, then the sign-in completes without a second code.
            let done = change(&bed, &req, &csrf).await?;
            assert!(signed_in(&done), "{} {}", done.status, done.body);
            assert_eq!(changes(&bed), 1);
            Ok(())
        }
    }
}
