//! What a browser or an attacker chooses comes out of the sign-in pages as text: a login
//! hint, a typed name, the `state` of the app, the logout parameters, a tenant's name, and
//! every value the page functions are handed. The value carries `<script>`, `"`, `'` and
//! `&`; the pages must show it escaped wherever it lands (element text and attributes).

//! The one value put in unescaped, the constant style sheet, must be byte for byte the one
//! its CSP hash allows.
use axum::response::Response;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use zeroize::Zeroizing;

use crate::in_process::{ad, jar, Bed, DOMAIN, HOSTILE, HOSTILE_SHOWN};

/// The body of a page built in the test.
async fn body(r: Response) -> anyhow::Result<String> {
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await?;
    Ok(String::from_utf8(bytes.to_vec())?)
}

/// Fails unless `body` shows [`HOSTILE`] escaped exactly `times` times and never raw.
fn escaped_times(body: &str, times: usize) -> anyhow::Result<()> {
    anyhow::ensure!(
        body.matches(HOSTILE_SHOWN).count() == times && !body.contains("<script"),
        "expected {times} escaped copies: {body}"
    );
    Ok(())
}

#[tokio::test]
async fn a_hint_and_a_typed_name_are_escaped() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let first = bed
        .authorize_with(&[("login_hint", Some(HOSTILE))], "")
        .await?;
    assert_eq!(first.status, 200, "{}", first.body);
    first.shows_escaped(&format!("name=\"username\" value=\"{HOSTILE_SHOWN}\""))?;
    let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));

    // A name of no known domain: the username page again, with the name in its field.
    let unknown = bed
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", HOSTILE)],
            "",
        )
        .await?;
    assert_eq!(unknown.status, 401, "{}", unknown.body);
    unknown.shows_escaped(&format!("value=\"{HOSTILE_SHOWN}\""))?;

    // A name of the managed domain: the password page shows it and carries it.
    let name = format!("{HOSTILE}@{DOMAIN}");
    let shown = format!("{HOSTILE_SHOWN}@{DOMAIN}");
    let password = bed
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", &name)],
            "",
        )
        .await?;
    assert_eq!(password.status, 200, "{}", password.body);
    password.shows_escaped(&format!("id=\"who\">{shown}</p>"))?;
    password.shows_escaped(&format!("name=\"username\" value=\"{shown}\""))?;

    // A wrong password: the page with the error shows the name the same way.
    let wrong = bed
        .post(
            "/contoso/login/password",
            &[("req", &req), ("csrf", &csrf), ("password", "wrong")],
            "",
        )
        .await?;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    wrong.shows_escaped(&format!("id=\"who\">{shown}</p>"))?;
    Ok(())
}

#[tokio::test]
async fn the_apps_state_and_the_logout_parameters_are_escaped() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let cookie = jar(&[&bed.sign_in("bob").await?]);
    let posted = bed
        .authorize_with(
            &[
                ("response_mode", Some("form_post")),
                ("state", Some(HOSTILE)),
            ],
            &cookie,
        )
        .await?;
    assert_eq!(posted.status, 200, "{}", posted.body);
    posted.shows_escaped(&format!("name=\"state\" value=\"{HOSTILE_SHOWN}\""))?;

    let q =
        serde_urlencoded::to_string([("state", HOSTILE), ("post_logout_redirect_uri", HOSTILE)])?;
    let logout = bed
        .get(&format!("/contoso/oauth2/v2.0/logout?{q}"), &cookie)
        .await?;
    assert_eq!(logout.status, 200, "{}", logout.body);
    logout.shows_escaped(&format!("name=\"state\" value=\"{HOSTILE_SHOWN}\""))?;
    logout.shows_escaped(&format!(
        "name=\"post_logout_redirect_uri\" value=\"{HOSTILE_SHOWN}\""
    ))?;
    Ok(())
}

#[tokio::test]
async fn a_tenants_name_is_escaped() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    // Names are checked when a tenant is made; the pages must not rely on it. (No `/`: the
    // name travels in a path segment.)
    let name = "<img src=x onerror=alert(1)>\"'&";
    let shown = "&lt;img src=x onerror=alert(1)&gt;&quot;'&amp;";
    bed.state
        .store
        .create_tenant(uuid::Uuid::new_v4(), name, crate::clock::unix_now())
        .await?;
    let path = utf8_percent_encode(name, NON_ALPHANUMERIC).to_string();
    for (page, needle) in [
        ("password/reset", format!("<p class=\"who\">{shown}</p>")),
        (
            "password/reset",
            format!("action=\"/{shown}/password/reset\""),
        ),
        ("devicelogin", format!("action=\"/{shown}/devicelogin\"")),
    ] {
        let a = bed.get(&format!("/{path}/{page}"), "").await?;
        assert_eq!(a.status, 200, "{page}: {}", a.body);
        anyhow::ensure!(
            a.body.contains(&needle) && !a.body.contains("<img"),
            "{page} does not show the tenant's name escaped: {}",
            a.body
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_page_functions_escape_every_value_they_are_given() -> anyhow::Result<()> {
    use crate::mfa::pages::{code_page, enrol_page, recovery_page, Enrolment, Form, PageError};
    use passthru_proto::Aadsts;

    let corr = uuid::Uuid::new_v4();
    // Detail text; title and text (the title also in <title>).
    escaped_times(
        &body(super::error_page(Aadsts::ServerError, corr, HOSTILE)).await?,
        1,
    )?;
    escaped_times(&body(super::info_page(HOSTILE, HOSTILE)).await?, 3)?;
    // The redirect URI and each field of the form_post answer.
    let uri = format!("https://app.example.test/cb?{HOSTILE}");
    let page = body(super::form_post(
        &uri,
        &[("state", HOSTILE), ("code", HOSTILE)],
    ))
    .await?;
    escaped_times(&page, 3)?;
    // Tenant (in the action), request, CSRF token and name of the two sign-in forms.
    let page = body(super::username_page(
        HOSTILE, HOSTILE, HOSTILE, HOSTILE, None,
    ))
    .await?;
    escaped_times(&page, 4)?;
    let page = body(super::password_page(
        HOSTILE,
        HOSTILE,
        HOSTILE,
        HOSTILE,
        "https://app.example.test/cb",
        Some((Aadsts::InvalidCredentials, corr)),
        false,
    ))
    .await?;
    // The tenant also in the "Can't access your account?" link.
    escaped_times(&page, 6)?;

    // The second-factor pages: name, detail, action and hidden fields.
    let form = Form {
        action: HOSTILE.into(),
        fields: vec![("req", HOSTILE.into())],
        form_action: "'self'".into(),
    };
    let error = PageError {
        code: Aadsts::StrongAuthFailed,
        correlation_id: corr,
        detail: Some(HOSTILE.into()),
    };
    escaped_times(&body(code_page(HOSTILE, &form, Some(&error))).await?, 4)?;
    let qr = crate::mfa::qr::svg("otpauth://totp/x", HOSTILE)
        .ok_or_else(|| anyhow::anyhow!("no QR code"))?;
    let secret = Zeroizing::new(HOSTILE.to_string());
    let enrolment = Enrolment {
        qr_svg: &qr,
        secret: &secret,
        uri: &secret,
    };
    // Name, QR label, secret, URI, action, hidden field.
    escaped_times(
        &body(enrol_page(HOSTILE, &enrolment, &form, None)).await?,
        6,
    )?;
    let codes = [Zeroizing::new(HOSTILE.to_string())];
    escaped_times(&body(recovery_page(&codes, Some(&form))).await?, 3)?;

    // The password change page: name (twice), intro, action, request, CSRF token, error.
    let change = crate::password_change_page::Form {
        action: HOSTILE.into(),
        req: HOSTILE,
        csrf: HOSTILE,
        username: HOSTILE,
        intro: HOSTILE,
    };
    let page = crate::password_change_page::change_page(&change, Some(HOSTILE), "'self'");
    escaped_times(&body(page).await?, 7)?;
    Ok(())
}

/// Fails unless the page's one inline style is the one its CSP allows by hash.
async fn style_matches_its_hash(r: Response) -> anyhow::Result<()> {
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let page = body(r).await?;
    let style = page
        .split_once("<style>")
        .and_then(|(_, rest)| rest.split_once("</style>"))
        .map(|(style, _)| style)
        .unwrap_or_default();
    let allowed = format!("style-src 'sha256-{}'", super::csp_hash(style));
    anyhow::ensure!(
        !style.is_empty() && csp.contains(&allowed) && page.matches("<style>").count() == 1,
        "the inline style is not the one the CSP allows ({csp}): {page}"
    );
    Ok(())
}

#[tokio::test]
async fn the_inline_styles_are_the_bytes_the_csp_allows() -> anyhow::Result<()> {
    style_matches_its_hash(super::info_page(HOSTILE, HOSTILE)).await?;
    style_matches_its_hash(crate::portal::layout::message(
        axum::http::StatusCode::OK,
        HOSTILE,
        HOSTILE,
    ))
    .await
}
