//! The authorize endpoint's rules, in process: which errors stay on our pages (until the
//! redirect URI is known to be registered) and which go back to the app, PKCE, prompt and
//! max_age, response modes, single sign-on, and the sign-in pages' CSRF check.

use crate::in_process::{ad, jar, Answer, Bed, DOMAIN, REDIRECT};

/// Parameters to change in the bed's authorize request (`None`: leave it out).
type Changes<'a> = &'a [(&'a str, Option<&'a str>)];

/// The query parameters of an answer's `Location`.
fn location_params(a: &Answer) -> Vec<(String, String)> {
    url::Url::parse(a.location())
        .map(|u| {
            u.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn param(a: &Answer, name: &str) -> Option<String> {
    location_params(a)
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
}

/// An error the app receives at its redirect URI: `error` and the AADSTS number.
fn app_error(a: &Answer) -> Option<(String, String)> {
    if !a.location().starts_with(REDIRECT) {
        return None;
    }
    Some((param(a, "error")?, param(a, "error_codes")?))
}

#[tokio::test]
async fn errors_before_the_redirect_uri_is_trusted_stay_on_our_pages() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let cases: [(Changes, &str); 4] = [
        (&[("client_id", None)], "AADSTS900144"),
        (
            &[("client_id", Some("00000000-0000-0000-0000-000000000001"))],
            "AADSTS700016",
        ),
        (
            &[("redirect_uri", Some("https://evil.example/cb"))],
            "AADSTS50011",
        ),
        (&[("response_mode", Some("web_message"))], "AADSTS9002313"),
    ];
    for (changes, code) in cases {
        let a = bed.authorize_with(changes, "").await?;
        assert!(
            a.location().is_empty(),
            "{changes:?} redirected to {}",
            a.location()
        );
        assert!(a.status.is_client_error(), "{changes:?}: {}", a.status);
        assert!(
            a.body.contains(code),
            "{changes:?}: no {code} in {}",
            a.body
        );
    }
    // Another tenant's name: its own page.
    let q = format!("/nosuch/oauth2/v2.0/authorize?client_id={}", bed.client_id);
    let a = bed.get(&q, "").await?;
    assert!(
        a.location().is_empty() && a.body.contains("AADSTS90002"),
        "{}",
        a.body
    );
    // Nothing was stored for any of them: no pending request per refused call.
    assert_eq!(bed.asked().len(), 0);
    Ok(())
}

#[tokio::test]
async fn errors_after_the_redirect_uri_is_trusted_go_back_to_the_app() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let short = "a".repeat(42);
    let long = "a".repeat(129);
    let short_challenge = [("code_challenge", Some(short.as_str()))];
    let long_challenge = [("code_challenge", Some(long.as_str()))];
    let cases: Vec<(Changes, &str, &str)> = vec![
        (
            &[("response_type", Some("token"))],
            "unsupported_response_type",
            "9002313",
        ),
        (
            &[("response_type", None)],
            "unsupported_response_type",
            "9002313",
        ),
        // A public client must use PKCE, with S256 and a challenge of 43 to 128 characters.
        (&[("code_challenge", None)], "invalid_request", "9002325"),
        (
            &[("code_challenge_method", Some("plain"))],
            "invalid_request",
            "9002325",
        ),
        (
            &[("code_challenge_method", None)],
            "invalid_request",
            "9002325",
        ),
        (&short_challenge, "invalid_request", "9002325"),
        (&long_challenge, "invalid_request", "9002325"),
        (&[("max_age", Some("-1"))], "invalid_request", "9002313"),
        (&[("max_age", Some("soon"))], "invalid_request", "9002313"),
        (&[("prompt", Some("create"))], "invalid_request", "9002313"),
        // No session: prompt=none cannot show a page.
        (&[("prompt", Some("none"))], "login_required", "50058"),
    ];
    for (changes, error, code) in cases {
        let a = bed.authorize_with(changes, "").await?;
        assert_eq!(
            app_error(&a),
            Some((error.to_string(), code.to_string())),
            "{changes:?}: {} {} {}",
            a.status,
            a.location(),
            a.body
        );
        // The app's state comes back with the error, and a correlation id to quote.
        assert_eq!(param(&a, "state").as_deref(), Some("s"), "{changes:?}");
        assert!(param(&a, "correlation_id").is_some(), "{changes:?}");
    }
    // A 128-character challenge is accepted: the username page.
    let max = "b".repeat(128);
    let a = bed
        .authorize_with(&[("code_challenge", Some(max.as_str()))], "")
        .await?;
    assert_eq!(a.status, 200, "{}", a.location());
    assert!(!a.hidden("req").is_empty());
    Ok(())
}

#[tokio::test]
async fn single_sign_on_follows_prompt_and_max_age() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let signed = bed.sign_in("alice").await?;
    let cookie = jar(&[&signed]);
    assert!(cookie.contains("__Host-passthru_session="), "{cookie}");

    // The session answers at once: no prompt, prompt=none, consent, a generous max_age.
    for changes in [
        vec![],
        vec![("prompt", Some("none"))],
        vec![("prompt", Some("consent"))],
        vec![("max_age", Some("3600"))],
    ] {
        let a = bed.authorize_with(&changes, &cookie).await?;
        assert!(
            param(&a, "code").is_some_and(|c| !c.is_empty()),
            "{changes:?}: {} {}",
            a.status,
            a.location()
        );
        assert_eq!(param(&a, "state").as_deref(), Some("s"));
    }
    // prompt=login and select_account ask again, whatever the session.
    for prompt in ["login", "select_account"] {
        let a = bed
            .authorize_with(&[("prompt", Some(prompt))], &cookie)
            .await?;
        assert_eq!(a.status, 200, "{prompt}: {}", a.location());
        assert!(
            a.location().is_empty() && !a.hidden("req").is_empty(),
            "{prompt}"
        );
    }
    // Another browser (no cookie) or a forged cookie: no session.
    for c in ["", "__Host-passthru_session=forged"] {
        let a = bed.authorize_with(&[("prompt", Some("none"))], c).await?;
        assert_eq!(
            app_error(&a),
            Some(("login_required".into(), "50058".into())),
            "{c}"
        );
    }
    // The directory was asked once, for the one password sign-in.
    assert_eq!(bed.asked().len(), 1, "{:?}", bed.asked());
    Ok(())
}

#[tokio::test]
async fn form_post_answers_with_a_self_posting_form() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let signed = bed.sign_in("bob").await?;
    let cookie = jar(&[&signed]);
    let a = bed
        .authorize_with(&[("response_mode", Some("form_post"))], &cookie)
        .await?;
    assert_eq!(a.status, 200);
    assert!(a.location().is_empty());
    assert!(
        a.body.contains(&format!("action=\"{REDIRECT}\"")) && a.body.contains("name=\"code\""),
        "{}",
        a.body
    );
    assert!(a.body.contains("name=\"state\" value=\"s\""), "{}", a.body);
    Ok(())
}

#[tokio::test]
async fn the_sign_in_pages_refuse_a_request_that_is_not_ours() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let first = bed.authorize().await?;
    let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
    let upn = format!("carol@{DOMAIN}");
    for (r, c) in [
        (req.as_str(), "forged"),
        (req.as_str(), ""),
        ("no-such-request", csrf.as_str()),
    ] {
        for path in ["/contoso/login", "/contoso/login/password"] {
            let a = bed
                .post(
                    path,
                    &[
                        ("req", r),
                        ("csrf", c),
                        ("username", &upn),
                        ("password", "x"),
                    ],
                    "",
                )
                .await?;
            assert_eq!(a.status, 403, "{path} {r} {c}: {}", a.body);
        }
    }
    // The password page before the username page: refused, and nothing reaches AD.
    let a = bed
        .post(
            "/contoso/login/password",
            &[("req", &req), ("csrf", &csrf), ("password", "x")],
            "",
        )
        .await?;
    assert!(a.status.is_client_error(), "{} {}", a.status, a.body);
    assert!(bed.asked().is_empty(), "{:?}", bed.asked());
    // The real pair still works.
    let a = bed
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", &upn)],
            "",
        )
        .await?;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("type=\"password\""), "{}", a.body);
    Ok(())
}

/// The password page links to self-service reset when the user's domain offers it (the
/// tenant writes passwords back and the domain is managed), and to what to do otherwise;
/// the link is the same for every account of the domain.
#[tokio::test]
async fn the_password_page_offers_reset_where_the_domain_has_it() -> anyhow::Result<()> {
    async fn password_page(bed: &Bed, name: &str) -> anyhow::Result<Answer> {
        let first = bed.authorize().await?;
        let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
        bed.post(
            "/contoso/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("username", &format!("{name}@{DOMAIN}")),
            ],
            "",
        )
        .await
    }
    let mut bed = Bed::new(ad).await?;
    let off = password_page(&bed, "erin").await?;
    assert!(
        off.body.contains("id=\"cant-access\"") && !off.body.contains("id=\"forgot\""),
        "{}",
        off.body
    );
    let help = bed.get("/contoso/password/help", "").await?;
    assert_eq!(help.status, 200);
    assert!(
        help.body.contains("Contact your administrator"),
        "{}",
        help.body
    );

    bed.settings(|s| s.writeback = true).await?;
    for name in ["erin", "nobody-at-all"] {
        let on = password_page(&bed, name).await?;
        assert!(
            on.body
                .contains("id=\"forgot\" href=\"/contoso/password/reset\""),
            "{name}: {}",
            on.body
        );
    }
    let t = bed
        .state
        .store
        .tenant("contoso")
        .await?
        .ok_or_else(|| anyhow::anyhow!("no tenant"))?;
    assert!(!crate::password_reset::available(&bed.state, &t, "a@contoso.example").await);
    Ok(())
}

/// The sign-in pages in the language the app asks for (`ui_locales`, kept for the rest of the
/// sign-in by a cookie), else the browser's (`Accept-Language`), else English; the error
/// sentences too.
#[tokio::test]
async fn the_sign_in_pages_speak_the_language_asked_for() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let de = bed
        .authorize_with(&[("ui_locales", Some("de-CH en"))], "")
        .await?;
    assert!(
        de.body.contains("<html lang=\"de\">") && de.body.contains(">Anmelden</h1>"),
        "{}",
        de.body
    );
    let cookie = de
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-passthru_lang.contoso=de"))
        .ok_or_else(|| anyhow::anyhow!("no language cookie: {:?}", de.set_cookies()))?;
    let jar = cookie.split(';').next().unwrap_or_default().to_string();
    let (req, csrf) = (de.hidden("req"), de.hidden("csrf"));
    let name = format!("erin@{DOMAIN}");
    let password = bed
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", &name)],
            &jar,
        )
        .await?;
    assert!(
        password.body.contains(">Kennwort eingeben</h1>"),
        "{}",
        password.body
    );
    let wrong = bed
        .post(
            "/contoso/login/password",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("password", "Not-Erins-Pa55"),
            ],
            &jar,
        )
        .await?;
    assert!(
        wrong.body.contains("Ihr Konto oder Kennwort ist falsch.")
            && wrong.body.contains("Fehlercode: AADSTS50126"),
        "{}",
        wrong.body
    );

    // Without ui_locales: the browser's language; without either: English.
    let fr = bed
        .send(
            axum::http::Request::builder()
                .uri(bed.authorize_uri(&[]))
                .header("accept-language", "en;q=0.5, fr-CA;q=0.9")
                .body(axum::body::Body::empty())?,
        )
        .await?;
    assert!(
        fr.body.contains("<html lang=\"fr\">") && fr.body.contains(">Se connecter</h1>"),
        "{}",
        fr.body
    );
    let en = bed.authorize().await?;
    assert!(
        en.body.contains("<html lang=\"en\">") && en.body.contains(">Sign in</h1>"),
        "{}",
        en.body
    );
    Ok(())
}
