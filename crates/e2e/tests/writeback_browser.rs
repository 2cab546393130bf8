//! Password writeback in a real browser (headless Chromium, driven step by step through
//! `mfa_browser.py`), against the test bed's Samba forest through a real agent:
//!
//! 1. A user whose AD password must be changed (1907) signs in: the "Update your password"
//!    page appears; a new password the policy refuses shows the rule's sentence; a good one
//!    is taken by AD and the browser lands at the app with a code.
//! 2. Self-service reset after MFA: a user enrols an authenticator at sign-in (policy
//!    `required`), then, signed out, resets the password at `/contoso/password/reset` with a
//!    code from the authenticator; a wrong code is refused first. AD takes the new password
//!    and the next sign-in with it reaches the second factor.
//!
//! Needs /usr/bin/chromium, /usr/bin/chromedriver, selenium and authlib
//! (`PASSTHRU_NEED_BROWSER=1 bash scripts/deps.sh`).

use anyhow::ensure;
use passthru_e2e::chromium::{
    authz, browser_password, code_from_callback, read_enrolment, sign_out, totp, usable_step,
    Chromium,
};
use passthru_testkit::bed;
use passthru_testkit::fixture::{AgentStage, PtaSetup};
use passthru_testkit::procs::{fresh_dir, recorded_secret, secret_file, ForestEntry};
use passthru_testkit::{AccountState, TestUser};
use serde_json::json;

fn text_of(b: &mut Chromium) -> anyhow::Result<String> {
    Ok(b.page()?["text"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn must_change_and_self_service_reset_in_chromium() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let user = |prefix: &str, state| {
        let name = format!("{prefix}{tag}");
        TestUser::with(
            &name,
            &name,
            &corp.upn_suffix,
            state,
            recorded_secret("Wbb"),
            "Browser Writeback",
        )
    };
    let must = user("wbbm", AccountState::MustChange);
    let sspr = user("wbbr", AccountState::Good);
    admin.create_user(&must).await?;
    admin.create_user(&sspr).await?;
    let pso = admin
        .add_password_policy(
            &format!("wbb-{tag}"),
            &[],
            &[must.dn(&corp.base_dn), sspr.dn(&corp.base_dn)],
        )
        .await?;

    let dir = fresh_dir("writeback-browser")?;
    let t = PtaSetup::new(&dir, &corp)
        .without_app()
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let svc_file = secret_file(&corp.admin_password)?;
    let _agent = t.start_agent(&[ForestEntry::for_forest(&corp).with_sync(
        &corp.admin_upn,
        &svc_file,
        3600,
    )])?;
    t.enable_pta()?;
    t.wait_synced(&must.upn)?;
    t.wait_synced(&sspr.upn)?;
    t.cloud.admin(&["settings", "set", "writeback", "true"])?;
    for u in [&must, &sspr] {
        t.cloud.admin(&["user", "writeback", &u.upn, "on"])?;
    }
    t.cloud.admin(&["user", "mfa", &sspr.upn, "required"])?;

    let spec = json!({
        "server_cert": t.cloud.data_dir.join("tls/server.pem"),
        "chromedriver": "/usr/bin/chromedriver",
        "screenshot_dir": dir.join("screenshots"),
    });
    let (mut b, redirect) = Chromium::start(&spec, &dir.join("browser.log"))?;
    let client_id = t
        .cloud
        .admin(&[
            "app",
            "add",
            "Writeback app",
            "--public",
            "--redirect-uri",
            &redirect,
        ])?
        .trim()
        .to_string();

    // 1. Must change at next sign-in: the update page, a refused password, then the app.
    let a = authz(&t.cloud, &client_id, &redirect)?;
    let next = browser_password(&mut b, &a, &must.upn, &must.password)?;
    ensure!(next == "current", "the update page: {}", text_of(&mut b)?);
    b.shot("must-change")?;
    let text = text_of(&mut b)?;
    ensure!(
        text.contains("Update your password") && text.contains("first time you are signing in"),
        "{text}"
    );
    ensure!(!b.page()?["html"]
        .as_str()
        .unwrap_or_default()
        .contains(&must.password));
    let fill = |b: &mut Chromium, current: &str, new: &str| -> anyhow::Result<String> {
        b.type_in("current", current)?;
        b.type_in("new", new)?;
        b.type_in("confirm", new)?;
        b.click("change")?;
        b.wait(&["error", "rp", "code", "secret"])
    };
    let found = fill(&mut b, &must.password, "Sh0rt!x")?;
    ensure!(found == "error", "refused: {}", text_of(&mut b)?);
    let error = b.text("error")?;
    ensure!(
        error
            == "Your new password is too short: your organization requires at least 10 characters.",
        "{error}"
    );
    b.shot("must-change-refused")?;
    let new_must = recorded_secret("Wbb-New");
    let found = fill(&mut b, &must.password, &new_must)?;
    ensure!(found == "rp", "back at the app: {}", text_of(&mut b)?);
    let callback = code_from_callback(&mut b)?;
    ensure!(callback.contains("code="), "{callback}");
    ensure!(
        corp.bind(&must.upn, &new_must).await.is_ok(),
        "AD took the new password"
    );
    sign_out(&mut b, &t.cloud)?;

    // 2. Enrol an authenticator at sign-in (policy required).
    let a = authz(&t.cloud, &client_id, &redirect)?;
    let next = browser_password(&mut b, &a, &sspr.upn, &sspr.password)?;
    ensure!(next == "secret", "enrolment: {}", text_of(&mut b)?);
    let (secret, _) = read_enrolment(&mut b)?;
    let step = usable_step(0).await;
    b.type_in("code", &totp(&secret, step))?;
    b.click("verify")?;
    let found = b.wait(&["recovery-codes", "error"])?;
    ensure!(
        found == "recovery-codes",
        "enrolment confirmed: {}",
        text_of(&mut b)?
    );
    b.click("continue")?;
    b.wait(&["rp"])?;
    code_from_callback(&mut b)?;
    sign_out(&mut b, &t.cloud)?;

    // Self-service reset: the account, a wrong code, a right one, the new password.
    b.get(&format!("{}/contoso/password/reset", t.cloud.url))?;
    b.wait(&["username"])?;
    b.type_in("username", &sspr.upn)?;
    b.click("next")?;
    b.wait(&["code"])?;
    b.type_in("code", "000000")?;
    b.click("verify")?;
    b.wait(&["error"])?;
    ensure!(
        b.text("error")?.contains("didn't work"),
        "{}",
        text_of(&mut b)?
    );
    let step = usable_step(step).await;
    b.type_in("code", &totp(&secret, step))?;
    b.click("verify")?;
    let found = b.wait(&["new", "error"])?;
    ensure!(
        found == "new",
        "the new password page: {}",
        text_of(&mut b)?
    );
    let new_sspr = recorded_secret("Wbb-Reset");
    b.type_in("new", &new_sspr)?;
    b.type_in("confirm", &new_sspr)?;
    b.click("reset")?;
    let text = text_of(&mut b)?;
    ensure!(text.contains("Your password has been reset"), "{text}");
    b.shot("self-service-reset")?;
    ensure!(
        corp.bind(&sspr.upn, &new_sspr).await.is_ok(),
        "AD took the reset password"
    );
    ensure!(corp.bind(&sspr.upn, &sspr.password).await.is_err());
    // The new password passes the password step: the second factor comes next.
    let a = authz(&t.cloud, &client_id, &redirect)?;
    let next = browser_password(&mut b, &a, &sspr.upn, &new_sspr)?;
    ensure!(next == "code", "asked for the code: {}", text_of(&mut b)?);

    admin.delete(&pso).await?;
    for u in [&must, &sspr] {
        admin.delete(&u.dn(&corp.base_dn)).await?;
    }
    drop(b);
    Ok(())
}
