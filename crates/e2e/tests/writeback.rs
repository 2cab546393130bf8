//! Password writeback end to end against Samba: real `passthru-cloud` and `passthru-agent`
//! processes, real TLS, the test bed's forest. A user changes an expired ("must change")
//! password on the sign-in pages and lands in the app; a signed-in user changes theirs; an
//! administrator resets one; each password rule's refusal comes back as its own sentence,
//! never as AD's text; the new password works at once.
//!
//! The rules come from fine-grained password policies applied to the test users only, so
//! the shared forest's domain policy is untouched.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::bail;
use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::browser::{FormBrowser, Page};
use passthru_testkit::fixture::{AgentStage, PtaSetup, PtaTenant};
use passthru_testkit::procs::{fresh_dir, recorded_secret, secret_file, ForestEntry};
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// A day in AD's interval unit (negative 100-ns ticks).
const ONE_DAY: &str = "-864000000000";

fn user(forest: &BedForest, prefix: &str, tag: &str, state: AccountState) -> TestUser {
    let name = format!("{prefix}{tag}");
    TestUser::with(
        &name,
        &name,
        &forest.upn_suffix,
        state,
        recorded_secret("Wb-Pw"),
        &format!("Writeback {prefix}"),
    )
}

/// The forest's administrator as the agent's service account (it has the reset right), its
/// password in a file outside the directories the password scan covers.
fn admin_service_account(forest: &BedForest) -> anyhow::Result<(String, PathBuf)> {
    Ok((
        forest.admin_upn.clone(),
        secret_file(&forest.admin_password)?,
    ))
}

fn authorize_url(client_id: &str) -> String {
    let verifier_challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    format!(
        "/contoso/oauth2/v2.0/authorize?client_id={client_id}&response_type=code&redirect_uri={}&scope=openid&state=s&nonce=n&code_challenge={verifier_challenge}&code_challenge_method=S256",
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    )
}

/// The username page, then the password page: the answer to the password.
async fn sign_in(
    b: &mut FormBrowser,
    client_id: &str,
    upn: &str,
    password: &str,
) -> anyhow::Result<(Page, String, String)> {
    let first = b.get(&authorize_url(client_id)).await?;
    let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
    let pw_page = b
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", upn)],
        )
        .await?;
    if pw_page.status != 200 {
        bail!("username page: {} {}", pw_page.status, pw_page.body);
    }
    let answer = b
        .post(
            "/contoso/login/password",
            &[("req", &req), ("csrf", &csrf), ("password", password)],
        )
        .await?;
    Ok((answer, req, csrf))
}

fn error_text(p: &Page) -> String {
    let body = &p.body;
    body.find("id=\"error\">")
        .and_then(|i| {
            let rest = &body[i + 11..];
            rest.find("</p>").map(|j| rest[..j].replace("&#39;", "'"))
        })
        .unwrap_or_default()
}

/// A signed-in user's answer on the change page.
async fn session_change(
    b: &mut FormBrowser,
    csrf: &str,
    current: &str,
    new: &str,
) -> anyhow::Result<Page> {
    b.post(
        "/contoso/password/change",
        &[
            ("csrf", csrf),
            ("current", current),
            ("new", new),
            ("confirm", new),
        ],
    )
    .await
}

/// The user's answer on the change page during sign-in.
async fn change_during_sign_in(
    b: &mut FormBrowser,
    req: &str,
    csrf: &str,
    current: &str,
    new: &str,
) -> anyhow::Result<Page> {
    b.post(
        "/contoso/login/password/change",
        &[
            ("req", req),
            ("csrf", csrf),
            ("current", current),
            ("new", new),
            ("confirm", new),
        ],
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn change_reset_and_policy_sentences() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let must = user(&corp, "wbm", tag, AccountState::MustChange);
    let strict = user(&corp, "wbs", tag, AccountState::Good);
    let easy = user(&corp, "wbe", tag, AccountState::Good);
    let reset = user(&corp, "wbr", tag, AccountState::Good);
    let plain = user(&corp, "wbp", tag, AccountState::Good);
    for u in [&must, &strict, &easy, &reset, &plain] {
        admin.create_user(u).await?;
    }
    // Fine-grained policies: 10 characters, complexity, 3 passwords of history; the strict
    // one also has a minimum age of a day.
    let strict_pso = admin
        .add_password_policy(
            &format!("wb-strict-{tag}"),
            &[("msDS-MinimumPasswordAge", ONE_DAY)],
            &[strict.dn(&corp.base_dn)],
        )
        .await?;
    let easy_pso = admin
        .add_password_policy(
            &format!("wb-easy-{tag}"),
            &[],
            &[
                easy.dn(&corp.base_dn),
                must.dn(&corp.base_dn),
                reset.dn(&corp.base_dn),
            ],
        )
        .await?;

    let t = PtaSetup::new(&fresh_dir("writeback")?, &corp)
        .app("Web")
        .redirect_uri(REDIRECT)
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let (svc, svc_file) = admin_service_account(&corp)?;
    let _agent =
        t.start_agent(&[ForestEntry::for_forest(&corp).with_sync(&svc, &svc_file, 3600)])?;
    t.enable_pta()?;
    for u in [&must, &strict, &easy, &reset, &plain] {
        t.wait_synced(&u.upn)?;
    }
    let client_id = t.client_id()?.to_string();
    let mut b = FormBrowser::new(&t.cloud.ca_file(), &t.cloud.url)?;

    // Writeback off: a must-change user gets the seed's message.
    let (answer, _, _) = sign_in(&mut b, &client_id, &must.upn, &must.password).await?;
    assert!(
        answer
            .body
            .contains("allow you to update your password on this site"),
        "{}",
        answer.body
    );
    t.cloud.admin(&["settings", "set", "writeback", "true"])?;
    // On for the tenant, but not for this user: still the message.
    let (answer, _, _) = sign_in(&mut b, &client_id, &must.upn, &must.password).await?;
    assert!(
        answer
            .body
            .contains("allow you to update your password on this site"),
        "{}",
        answer.body
    );
    for u in [&must, &strict, &easy] {
        let out = t.cloud.admin(&["user", "writeback", &u.upn, "on"])?;
        assert!(out.contains("allowed"), "{out}");
    }

    // The must-change flow: the change page, then the sign-in continues to the app.
    let (page, req, csrf) = sign_in(&mut b, &client_id, &must.upn, &must.password).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Update your password"), "{}", page.body);
    assert!(!page.body.contains(&must.password));
    let new_must = recorded_secret("Wb-New1!");
    let wrong = change_during_sign_in(&mut b, &req, &csrf, "Not-the-Passw0rd!", &new_must).await?;
    assert_eq!(
        error_text(&wrong),
        "Your current password is incorrect.",
        "{}",
        wrong.body
    );
    let done = change_during_sign_in(&mut b, &req, &csrf, &must.password, &new_must).await?;
    let code = done.query().get("code").cloned();
    assert!(
        code.is_some(),
        "the app gets a code: {} {}",
        done.status,
        done.body
    );
    let log: Value = serde_json::from_str(&t.cloud.admin(&[
        "--json", "signins", "list", "--user", &must.upn, "--result", "success",
    ])?)?;
    assert_eq!(
        log["signins"].as_array().map(Vec::len),
        Some(1),
        "the sign-in is logged: {log}"
    );
    assert!(
        corp.bind(&must.upn, &new_must).await.is_ok(),
        "AD took the new password"
    );
    assert!(corp.bind(&must.upn, &must.password).await.is_err());
    let client = t.sign_in()?;
    let r = client.password("contoso", &must.upn, &new_must).await?;
    assert!(r.ok(), "the new password signs in at once: {:?}", r.body);

    // Each rule's own sentence (the strict policy: 10 characters, complexity, history 3,
    // one day minimum age), never AD's text.
    let mut b2 = FormBrowser::new(&t.cloud.ca_file(), &t.cloud.url)?;
    let (signed_in, _, _) = sign_in(&mut b2, &client_id, &strict.upn, &strict.password).await?;
    assert!(signed_in.query().contains_key("code"), "{}", signed_in.body);
    let change_page = b2.get("/contoso/password/change").await?;
    assert_eq!(change_page.status, 200, "{}", change_page.body);
    let session_csrf = change_page.hidden("csrf");
    let short = session_change(&mut b2, &session_csrf, &strict.password, "Ab1!xyz").await?;
    assert_eq!(
        error_text(&short),
        "Your new password is too short: your organization requires at least 10 characters.",
        "{}",
        short.body
    );
    let simple = session_change(
        &mut b2,
        &session_csrf,
        &strict.password,
        "allsmalllettersandnothingelse",
    )
    .await?;
    assert!(
        error_text(&simple).starts_with("Your new password isn't complex enough."),
        "{}",
        simple.body
    );
    let young = session_change(
        &mut b2,
        &session_csrf,
        &strict.password,
        &recorded_secret("Young"),
    )
    .await?;
    assert!(
        error_text(&young).starts_with("You changed your password too recently.")
            && error_text(&young).contains("1 day(s)"),
        "{}",
        young.body
    );
    for p in [&short, &simple, &young] {
        assert!(
            !p.body.contains("0000052D") && !p.body.contains("onstraint"),
            "{}",
            p.body
        );
    }
    assert!(
        corp.bind(&strict.upn, &strict.password).await.is_ok(),
        "nothing was changed"
    );

    // A change round trip, then the history rule (the easy policy has no minimum age).
    let mut b3 = FormBrowser::new(&t.cloud.ca_file(), &t.cloud.url)?;
    let (signed_in, _, _) = sign_in(&mut b3, &client_id, &easy.upn, &easy.password).await?;
    assert!(signed_in.query().contains_key("code"), "{}", signed_in.body);
    let csrf3 = b3.get("/contoso/password/change").await?.hidden("csrf");
    let new_easy = recorded_secret("Wb-New2!");
    let changed = b3
        .post(
            "/contoso/password/change",
            &[
                ("csrf", csrf3.as_str()),
                ("current", easy.password.as_str()),
                ("new", new_easy.as_str()),
                ("confirm", new_easy.as_str()),
            ],
        )
        .await?;
    assert!(
        changed.body.contains("Your password was changed"),
        "{}",
        changed.body
    );
    let r = client.password("contoso", &easy.upn, &new_easy).await?;
    assert!(r.ok(), "{:?}", r.body);
    let r = client
        .password("contoso", &easy.upn, &easy.password)
        .await?;
    assert_eq!(r.code(), Some(50126), "the old password no longer works");
    let back = b3
        .post(
            "/contoso/password/change",
            &[
                ("csrf", csrf3.as_str()),
                ("current", new_easy.as_str()),
                ("new", easy.password.as_str()),
                ("confirm", easy.password.as_str()),
            ],
        )
        .await?;
    assert_eq!(
        error_text(&back),
        "You've used this password before. Choose one that isn't among your last 3 passwords.",
        "{}",
        back.body
    );
    // A forged form (no session CSRF) is refused.
    let forged = b3
        .post(
            "/contoso/password/change",
            &[
                ("csrf", "x"),
                ("current", "a"),
                ("new", "b"),
                ("confirm", "b"),
            ],
        )
        .await?;
    assert_eq!(forged.status, 403, "{}", forged.body);

    // An administrator's reset, with --must-change: the user must change it at sign-in.
    let new_reset = recorded_secret("Wb-Reset3!");
    let out = t.cloud.admin_with_user_password(
        &["user", "reset-password", &reset.upn, "--must-change"],
        &new_reset,
    )?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("in Active Directory"), "{stdout}");
    let bound = corp.bind(&reset.upn, &new_reset).await;
    assert!(
        matches!(&bound, Err((49, text)) if text.contains("data 773")),
        "the reset password is right but must be changed (1907): {bound:?}"
    );
    let r = client.password("contoso", &reset.upn, &new_reset).await?;
    assert_eq!(r.code(), Some(50144), "{:?}", r.body);
    // Without --must-change the new password works at once.
    let new_reset2 = recorded_secret("Wb-Reset4!");
    let out = t
        .cloud
        .admin_with_user_password(&["user", "reset-password", &reset.upn], &new_reset2)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = client.password("contoso", &reset.upn, &new_reset2).await?;
    assert!(r.ok(), "{:?}", r.body);
    // A reset the policy refuses: the sentence, not AD's text.
    let out = t
        .cloud
        .admin_with_user_password(&["user", "reset-password", &reset.upn], "short")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("at least 10 characters"), "{stderr}");
    assert!(!stderr.contains("0000052D"), "{stderr}");

    for dn in [strict_pso, easy_pso] {
        admin.delete(&dn).await?;
    }
    for u in [&must, &strict, &easy, &reset, &plain] {
        admin.delete(&u.dn(&corp.base_dn)).await?;
    }
    Ok(())
}

/// A service account without the reset right: the administrator is told what to grant,
/// and nothing changes.
#[tokio::test(flavor = "multi_thread")]
async fn a_service_account_without_the_right_is_reported() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let svc = user(&corp, "wbsvc", tag, AccountState::Good);
    let target = user(&corp, "wbt", tag, AccountState::Good);
    admin.create_user(&svc).await?;
    admin.create_user(&target).await?;
    let file = secret_file(&svc.password)?;
    let t = PtaSetup::new(&fresh_dir("writeback-plain")?, &corp)
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let _agent =
        t.start_agent(&[ForestEntry::for_forest(&corp).with_sync(&svc.upn, &file, 3600)])?;
    t.enable_pta()?;
    t.wait_synced(&target.upn)?;
    let out = t
        .cloud
        .admin_with_user_password(&["user", "reset-password", &target.upn], "Any-Passw0rd-1!")?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("writeback"), "off by default: {stderr}");
    t.cloud.admin(&["settings", "set", "writeback", "true"])?;
    let new = recorded_secret("Wb-Never!");
    let out = t
        .cloud
        .admin_with_user_password(&["user", "reset-password", &target.upn], &new)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("Reset Password"), "{stderr}");
    assert!(corp.bind(&target.upn, &target.password).await.is_ok());
    assert!(corp.bind(&target.upn, &new).await.is_err());
    admin.delete(&svc.dn(&corp.base_dn)).await?;
    admin.delete(&target.dn(&corp.base_dn)).await?;
    Ok(())
}

/// The agent-side writeback guard end to end: the forest's Administrator (a protected
/// account, `adminCount=1`) is never reset through the cloud unless the agent's forest
/// configuration allows it; the administrator gets the `protected_account` error that says
/// what to do; a user outside `writeback_base_dn` gets `outside_writeback_scope`. Nothing is
/// written either time.
#[tokio::test(flavor = "multi_thread")]
async fn protected_accounts_and_the_base_dn_are_refused_by_the_agent() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let target = user(&corp, "wbg", tag, AccountState::Good);
    admin.create_user(&target).await?;
    let t = PtaSetup::new(&fresh_dir("writeback-guard")?, &corp)
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let (svc, svc_file) = admin_service_account(&corp)?;
    let staff = format!("OU=nosuch-{tag},{}", corp.base_dn);
    let _agent = t.start_agent(&[ForestEntry::for_forest(&corp)
        .with_sync(&svc, &svc_file, 3600)
        .with_writeback_scope(false, Some(&staff))])?;
    t.enable_pta()?;
    t.cloud.admin(&["settings", "set", "writeback", "true"])?;
    t.wait_synced(&target.upn)?;
    // The Administrator (no userPrincipalName, so not synced) signs in once by its implicit
    // UPN, so the cloud knows the account.
    t.cloud
        .admin(&["settings", "set", "sync_required", "false"])?;
    let client = t.sign_in()?;
    let r = client
        .password("contoso", &corp.admin_upn, &corp.admin_password)
        .await?;
    assert!(r.ok(), "{:?}", r.body);

    let new = recorded_secret("Wb-Guard1!");
    let out = t
        .cloud
        .admin_with_user_password(&["user", "reset-password", &corp.admin_upn], &new)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("protected_account") && stderr.contains("writeback_protected_accounts"),
        "{stderr}"
    );
    assert!(
        corp.bind(&corp.admin_upn, &corp.admin_password)
            .await
            .is_ok(),
        "the Administrator's password is unchanged"
    );
    let out = t
        .cloud
        .admin_with_user_password(&["user", "reset-password", &target.upn], &new)?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("outside_writeback_scope"), "{stderr}");
    assert!(corp.bind(&target.upn, &target.password).await.is_ok());
    admin.delete(&target.dn(&corp.base_dn)).await?;
    Ok(())
}

/// The agents that answered `upn`'s sign-ins with `result` (`success`, or an AADSTS code),
/// and the log they were read from.
fn answering_agents(
    t: &PtaTenant,
    upn: &str,
    result: &str,
) -> anyhow::Result<(std::collections::HashSet<String>, Value)> {
    let log: Value = serde_json::from_str(&t.cloud.admin(&[
        "--json", "signins", "list", "--user", upn, "--result", result,
    ])?)?;
    let agents = log["signins"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["agent_id"].as_str().map(str::to_string))
        .collect();
    Ok((agents, log))
}

/// `rounds` pairs of concurrent password grants (least-in-flight dispatch sends the two of
/// a pair to two agents); the AADSTS code of each (`None`: tokens).
async fn in_pairs(
    client: &passthru_testkit::http::SignInClient,
    upn: &str,
    password: &str,
    rounds: usize,
) -> anyhow::Result<Vec<Option<u64>>> {
    let mut codes = Vec::new();
    for _ in 0..rounds {
        let (r1, r2) = tokio::join!(
            client.password("contoso", upn, password),
            client.password("contoso", upn, password)
        );
        for r in [r1?, r2?] {
            codes.push(if r.ok() { None } else { r.code() });
        }
    }
    Ok(codes)
}

/// Two agents, each remembering a password the user tried before it was theirs: after the
/// change through the cloud, that password signs in at once through either agent (the
/// cloud tells every agent to forget the user's remembered wrong passwords).
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_password_works_at_once_through_any_agent() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let u = user(&corp, "wba", tag, AccountState::Good);
    admin.create_user(&u).await?;
    let t = PtaSetup::new(&fresh_dir("writeback-agents")?, &corp)
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let (svc, svc_file) = admin_service_account(&corp)?;
    let entry = [ForestEntry::for_forest(&corp).with_sync(&svc, &svc_file, 3600)];
    let mut a = t.register_agent(&entry)?;
    let mut b = t.register_agent(&entry)?;
    a.run()?;
    b.run()?;
    t.cloud.wait_active_agents(2, Duration::from_secs(30))?;
    t.enable_pta()?;
    t.wait_synced(&u.upn)?;
    t.cloud.admin(&["settings", "set", "writeback", "true"])?;
    let client = t.sign_in()?;
    let next = recorded_secret("Wb-Next!");
    // Tried before it was set, in pairs so that both agents see it (least-in-flight
    // dispatch spreads concurrent requests): now remembered as wrong by both.
    for code in in_pairs(&client, &u.upn, &next, 3).await? {
        assert_eq!(code, Some(50126));
    }
    let (agents_seen, log) = answering_agents(&t, &u.upn, "50126")?;
    assert_eq!(agents_seen.len(), 2, "both agents saw the password: {log}");
    // An administrator resets the password to it (through one agent).
    let out = t
        .cloud
        .admin_with_user_password(&["user", "reset-password", &u.upn], &next)?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // It signs in at once, through both agents.
    for code in in_pairs(&client, &u.upn, &next, 3).await? {
        assert_eq!(code, None, "signs in");
    }
    let (ok_agents, log) = answering_agents(&t, &u.upn, "success")?;
    assert_eq!(ok_agents.len(), 2, "both agents accepted it: {log}");

    // The same, with the password changed on premises (not through the cloud): the next sync
    // run sees pwdLastSet move and the cloud tells every agent to forget.
    let later = recorded_secret("Wb-Later!");
    for code in in_pairs(&client, &u.upn, &later, 2).await? {
        assert_eq!(code, Some(50126));
    }
    let synced = |t: &PtaTenant| -> anyhow::Result<Value> {
        Ok(
            serde_json::from_str::<Value>(&t.cloud.admin(&["--json", "user", "show", &u.upn])?)?
                ["synced"]["password_last_set"]
                .clone(),
        )
    };
    let before = synced(&t)?;
    // pwdLastSet is compared to the second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    admin.set_password(&u.dn(&corp.base_dn), &later).await?;
    t.cloud.admin(&["sync", "run", &corp.dns_name])?;
    let started = Instant::now();
    while synced(&t)? == before {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "sync did not see the new pwdLastSet"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for code in in_pairs(&client, &u.upn, &later, 3).await? {
        assert_eq!(code, None, "signs in");
    }
    admin.delete(&u.dn(&corp.base_dn)).await?;
    Ok(())
}
