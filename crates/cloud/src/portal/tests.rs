//! The portal in process: signing in through our own STS, each page against each role, and
//! the CSRF check of every form that changes something.

use crate::admin_api::ops::{self, GLOBAL_ADMIN, HYBRID_ADMIN};
use crate::in_process::{ad, jar, Answer, Bed};

/// The path and query of an absolute or relative `Location`.
fn local(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(u) => format!("{}?{}", u.path(), u.query().unwrap_or_default()),
        Err(_) => location.to_string(),
    }
}

/// Signs `name` (an on-premises user of the bed's domain, given `role`) in to the portal:
/// the `Cookie` header of the signed-in browser.
pub(super) async fn portal_session(bed: &Bed, name: &str, role: &str) -> anyhow::Result<String> {
    let user = bed.onprem_user(name).await?;
    bed.state
        .store
        .set_user_role(bed.tenant.id, user.id, role, crate::clock::unix_now())
        .await?;
    let start = bed.get("/contoso/portal/", "").await?;
    anyhow::ensure!(
        start.location().contains("/contoso/oauth2/v2.0/authorize?"),
        "the portal did not send the browser to sign in: {} {}",
        start.status,
        start.location()
    );
    let mut answers: Vec<Answer> = vec![start];
    let page = bed
        .get(
            &local(answers[0].location()),
            &jar(&answers.iter().collect::<Vec<_>>()),
        )
        .await?;
    let done = bed.password_pages(&page, name).await?;
    answers.push(done);
    let callback = local(answers[1].location());
    anyhow::ensure!(
        callback.starts_with("/contoso/portal/callback?"),
        "the sign-in did not come back to the portal: {}",
        answers[1].location()
    );
    let back = bed
        .get(&callback, &jar(&answers.iter().collect::<Vec<_>>()))
        .await?;
    answers.push(back);
    let cookie = jar(&answers.iter().collect::<Vec<_>>());
    anyhow::ensure!(
        cookie.contains("__Host-passthru_portal.contoso="),
        "no portal session after the callback: {} {} {cookie}",
        answers[2].status,
        answers[2].body
    );
    Ok(cookie)
}

const PAGES: [&str; 8] = [
    "/contoso/portal/",
    "/contoso/portal/users",
    "/contoso/portal/domains",
    "/contoso/portal/apps",
    "/contoso/portal/agents",
    "/contoso/portal/sync",
    "/contoso/portal/settings",
    "/contoso/portal/signins",
];

#[tokio::test]
async fn every_page_answers_each_role_as_the_operation_table_says() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let ga = portal_session(&bed, "gail", GLOBAL_ADMIN).await?;
    let hybrid = portal_session(&bed, "hank", HYBRID_ADMIN).await?;
    let plain = portal_session(&bed, "pat", "none").await?;

    for page in PAGES {
        let a = bed.get(page, &ga).await?;
        assert_eq!(a.status, 200, "GA {page}: {}", a.body);
        assert!(
            a.body.contains("gail@"),
            "GA {page} does not show who is signed in"
        );
        // No page runs script, and no page is framed.
        let csp = a
            .headers
            .get("content-security-policy")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{page}: {csp}");
        assert!(!a.body.contains("<script"), "{page}");

        let p = bed.get(page, &plain).await?;
        assert_eq!(p.status, 403, "no role {page}: {}", p.body);
    }
    // The hybrid administrator: what the operation table lets the role read.
    for (page, op) in [
        ("/contoso/portal/", ops::LIST_SIGNINS),
        ("/contoso/portal/users", ops::LIST_USERS),
        ("/contoso/portal/domains", ops::LIST_DOMAINS),
        ("/contoso/portal/apps", ops::LIST_APPS),
        ("/contoso/portal/agents", ops::LIST_AGENTS),
        ("/contoso/portal/sync", ops::GET_SYNC),
        ("/contoso/portal/settings", ops::GET_SETTINGS),
        ("/contoso/portal/signins", ops::LIST_SIGNINS),
    ] {
        let want = if op.roles.contains(&HYBRID_ADMIN) {
            200
        } else {
            403
        };
        let a = bed.get(page, &hybrid).await?;
        assert_eq!(a.status, want, "hybrid {page} ({}): {}", op.id, a.body);
    }
    // The table gives the two roles different pages (else this test would prove little).
    assert!(!ops::LIST_USERS.roles.contains(&HYBRID_ADMIN));
    assert!(ops::LIST_DOMAINS.roles.contains(&HYBRID_ADMIN));
    let csv = bed.get("/contoso/portal/signins.csv", &ga).await?;
    assert_eq!(csv.status, 200);
    assert!(csv.body.starts_with("time,user,app,result"), "{}", csv.body);
    // Without a session: every page sends the browser to sign in.
    for page in PAGES {
        let a = bed.get(page, "").await?;
        assert!(
            a.location().contains("/oauth2/v2.0/authorize?"),
            "{page}: {} {}",
            a.status,
            a.location()
        );
    }
    Ok(())
}

#[tokio::test]
async fn forms_need_the_sessions_csrf_token() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let ga = portal_session(&bed, "gail", GLOBAL_ADMIN).await?;
    let page = bed.get("/contoso/portal/settings", &ga).await?;
    let csrf = page.hidden("csrf");
    assert!(!csrf.is_empty(), "{}", page.body);

    for forged in ["", "forged"] {
        let a = bed
            .post(
                "/contoso/portal/settings",
                &[
                    ("csrf", forged),
                    ("key", "lockout_threshold"),
                    ("value", "7"),
                ],
                &ga,
            )
            .await?;
        assert_eq!(a.status, 403, "{}", a.body);
    }
    let unchanged = bed.state.store.tenant("contoso").await?;
    assert_ne!(
        unchanged.map(|t| t.settings.lockout_threshold),
        Some(7),
        "a forged form changed a setting"
    );
    // The real token: saved, and a bad value is refused with the reason.
    let ok = bed
        .post(
            "/contoso/portal/settings",
            &[
                ("csrf", &csrf),
                ("key", "lockout_threshold"),
                ("value", "7"),
            ],
            &ga,
        )
        .await?;
    assert!(
        ok.location().contains("saved=lockout_threshold"),
        "{} {}",
        ok.status,
        ok.body
    );
    let t = bed.state.store.tenant("contoso").await?;
    assert_eq!(t.map(|t| t.settings.lockout_threshold), Some(7));
    let bad = bed
        .post(
            "/contoso/portal/settings",
            &[
                ("csrf", &csrf),
                ("key", "lockout_threshold"),
                ("value", "lots"),
            ],
            &ga,
        )
        .await?;
    assert_eq!(bad.status, 400, "{}", bad.body);

    // Sign-out: a forged form keeps the session; the real one ends it.
    let forged = bed
        .post("/contoso/portal/signout", &[("csrf", "forged")], &ga)
        .await?;
    assert_eq!(forged.status, 403, "{}", forged.body);
    assert_eq!(bed.get("/contoso/portal/users", &ga).await?.status, 200);
    let out = bed
        .post("/contoso/portal/signout", &[("csrf", &csrf)], &ga)
        .await?;
    assert!(
        out.status.is_redirection() || out.status == 200,
        "{}",
        out.status
    );
    let after = bed.get("/contoso/portal/users", &ga).await?;
    assert!(
        after.location().contains("/oauth2/v2.0/authorize?"),
        "still signed in after signing out: {}",
        after.status
    );
    Ok(())
}

/// The agents page highlights agents whose certificate expires within 30 days (or has), and
/// only those.
#[tokio::test]
async fn the_agents_page_highlights_certificates_near_expiry() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let ga = portal_session(&bed, "gail", GLOBAL_ADMIN).await?;
    let now = crate::clock::unix_now();
    let day = 86_400;
    for (host, expires) in [
        ("host-fine", now + 200 * day),
        ("host-soon", now + 10 * day),
        ("host-gone", now - day),
    ] {
        let id = uuid::Uuid::new_v4();
        bed.state
            .store
            .add_agent(
                id,
                bed.tenant.id,
                &id.to_string(),
                expires,
                &[7; 32],
                host,
                "1",
                now,
                40,
            )
            .await?;
    }
    let page = bed.get("/contoso/portal/agents", &ga).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    let row = |host: &str| {
        page.body
            .split("<tr>")
            .find(|r| r.contains(host))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        !row("host-fine").contains("cert-expiring"),
        "{}",
        row("host-fine")
    );
    assert!(
        row("host-soon").contains("cert-expiring"),
        "{}",
        row("host-soon")
    );
    assert!(
        row("host-soon").contains(" days left"),
        "{}",
        row("host-soon")
    );
    assert!(
        row("host-gone").contains("expired: register the agent again"),
        "{}",
        row("host-gone")
    );
    Ok(())
}

/// A portal change: refused without the session's CSRF token or the role, asks again before
/// a destructive one, then acts through the admin API and writes one audit entry marked
/// `portal`; the audit log, the sign-in log's detail page and the pages' forms show it.
#[tokio::test]
async fn console_actions_ask_again_act_through_the_api_and_are_audited() -> anyhow::Result<()> {
    use crate::store::AuditFilter;
    let bed = Bed::new(ad).await?;
    let ga = portal_session(&bed, "gail", GLOBAL_ADMIN).await?;
    let hybrid = portal_session(&bed, "hank", HYBRID_ADMIN).await?;
    let ursula = bed.onprem_user("ursula").await?;
    let upn = ursula.upn.clone();
    let audit = || async {
        bed.state
            .store
            .audit_entries(
                bed.tenant.id,
                &AuditFilter {
                    limit: 100,
                    ..Default::default()
                },
            )
            .await
    };
    let enabled = || async {
        Ok::<_, anyhow::Error>(
            bed.state
                .store
                .user_by_upn(bed.tenant.id, &upn)
                .await?
                .is_some_and(|u| u.enabled),
        )
    };
    let page = bed
        .get(&format!("/contoso/portal/users/{upn}"), &ga)
        .await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("Block sign-in") && page.body.contains("id=\"mfa-state\""),
        "{}",
        page.body
    );
    let csrf = page.hidden("csrf");
    let block = |csrf: &str, confirmed: &str| {
        vec![
            ("csrf".to_string(), csrf.to_string()),
            ("action".to_string(), "block-user".to_string()),
            ("upn".to_string(), upn.clone()),
            ("confirmed".to_string(), confirmed.to_string()),
        ]
    };
    let post = |fields: Vec<(String, String)>, cookie: String| {
        let bed = &bed;
        async move {
            let f: Vec<(&str, &str)> = fields
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            bed.post("/contoso/portal/act", &f, &cookie).await
        }
    };
    let forged = post(block("forged", "yes"), ga.clone()).await?;
    assert_eq!(forged.status, 403, "{}", forged.body);
    let hank = post(block(&csrf, "yes"), hybrid.clone()).await?;
    assert_eq!(
        hank.status, 403,
        "a hybrid administrator may not block users: {}",
        hank.body
    );
    let asked = post(block(&csrf, ""), ga.clone()).await?;
    assert_eq!(asked.status, 200, "{}", asked.body);
    assert!(
        asked.body.contains("Are you sure?") && asked.body.contains("name=\"confirmed\""),
        "{}",
        asked.body
    );
    assert!(enabled().await?, "asking changed something");
    assert!(
        audit().await?.is_empty(),
        "refusals and questions write no entry"
    );

    let done = post(block(&csrf, "yes"), ga.clone()).await?;
    assert!(
        done.location().contains("done=block-user"),
        "{} {}",
        done.status,
        done.body
    );
    assert!(!enabled().await?, "the user was not blocked");
    let entries = audit().await?;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let e = &entries[0];
    assert_eq!(
        (e.via.as_str(), e.operation.as_str()),
        ("portal", "disableUser")
    );
    assert!(e.actor.starts_with("gail@"), "{e:?}");
    assert_eq!(e.target, format!("/users/{upn}/disable"));
    assert_eq!(e.client_ip.as_deref(), Some("127.0.0.1"));
    assert!(
        e.before
            .as_deref()
            .is_some_and(|b| b.contains("\"enabled\":true")),
        "{e:?}"
    );
    assert!(
        e.after
            .as_deref()
            .is_some_and(|a| a.contains("\"enabled\":false")),
        "{e:?}"
    );

    // A refusal of the API is shown with its sentence, and nothing else happens.
    let bad_role = post(
        vec![
            ("csrf".into(), csrf.clone()),
            ("action".into(), "set-role".into()),
            ("upn".into(), upn.clone()),
            ("role".into(), "Emperor".into()),
            ("confirmed".into(), "yes".into()),
        ],
        ga.clone(),
    )
    .await?;
    assert_eq!(bad_role.status, 400, "{}", bad_role.body);
    assert!(bad_role.body.contains("id=\"error\""), "{}", bad_role.body);

    // Adding a domain shows the TXT record to publish.
    let added = post(
        vec![
            ("csrf".into(), csrf.clone()),
            ("action".into(), "add-domain".into()),
            ("name".into(), "fabrikam.example".into()),
        ],
        ga.clone(),
    )
    .await?;
    assert_eq!(added.status, 200, "{}", added.body);
    assert!(
        added.body.contains("id=\"txt-record\"") && added.body.contains("passthru-verification="),
        "{}",
        added.body
    );

    // The audit page and its export, the sign-in log's pages and detail.
    let a = bed.get("/contoso/portal/audit", &ga).await?;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(
        a.body.contains("disableUser") && a.body.contains("addDomain"),
        "{}",
        a.body
    );
    assert_eq!(bed.get("/contoso/portal/audit", &hybrid).await?.status, 403);
    let csv = bed
        .get("/contoso/portal/audit.csv?operation=disableUser", &ga)
        .await?;
    assert!(
        csv.body.starts_with("time,actor,via,client_ip,operation"),
        "{}",
        csv.body
    );
    assert_eq!(csv.body.lines().count(), 2, "{}", csv.body);
    let log = bed.get("/contoso/portal/signins?since=all", &ga).await?;
    let link = log
        .body
        .split("href=\"/contoso/portal/signins/")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert!(!link.is_empty(), "no detail link: {}", log.body);
    let detail = bed
        .get(&format!("/contoso/portal/signins/{link}"), &ga)
        .await?;
    assert_eq!(detail.status, 200, "{}", detail.body);
    assert!(
        detail.body.contains("id=\"what-to-do\"")
            && detail.body.contains("Passthru administration portal"),
        "{}",
        detail.body
    );
    assert_eq!(
        bed.get("/contoso/portal/signins/999999", &ga).await?.status,
        404
    );
    Ok(())
}
