//! The OpenID Connect code flow over real HTTPS, form by form (the browser test drives the
//! same pages in Chromium): PKCE, state and nonce, single sign-on, prompt, CSRF, redirect URI
//! rules, code replay, refresh rotation with reuse detection, client credentials, userinfo
//! and logout. Pass-through sign-ins go through a real agent and the Samba forest.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use passthru_testkit::bed;
use passthru_testkit::browser::{FormBrowser, Page};
use passthru_testkit::fixture::{contoso_cloud, PtaSetup};
use passthru_testkit::http::verify_with_jwks;
use passthru_testkit::procs::fresh_dir;
use reqwest::header::SET_COOKIE;
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/callback";

fn pkce() -> (String, String) {
    use sha2::Digest as _;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = B64URL.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn authorize_url(
    client_id: &str,
    challenge: &str,
    state: &str,
    nonce: &str,
    extra: &str,
) -> String {
    format!(
        "/contoso/oauth2/v2.0/authorize?client_id={client_id}&response_type=code&redirect_uri={}&scope=openid%20profile%20offline_access&state={state}&nonce={nonce}&code_challenge={challenge}&code_challenge_method=S256{extra}",
        urlencode(REDIRECT)
    )
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Username page, then password page; returns the final answer.
async fn sign_in(
    b: &mut FormBrowser,
    first: &Page,
    username: &str,
    password: &str,
) -> anyhow::Result<Page> {
    let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
    let pw_page = b
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", username)],
        )
        .await?;
    assert_eq!(pw_page.status, 200, "{}", pw_page.body);
    assert!(pw_page.body.contains("type=\"password\""));
    b.post(
        "/contoso/login/password",
        &[("req", &req), ("csrf", &csrf), ("password", password)],
    )
    .await
}

async fn redeem(
    http: &reqwest::Client,
    base: &str,
    form: &[(&str, &str)],
) -> anyhow::Result<(u16, Value)> {
    let r = http
        .post(format!("{base}/contoso/oauth2/v2.0/token"))
        .form(form)
        .send()
        .await?;
    Ok((r.status().as_u16(), r.json().await?))
}

fn code_of(v: &Value) -> Option<u64> {
    v["error_codes"][0].as_u64()
}

#[tokio::test(flavor = "multi_thread")]
async fn code_flow_with_pkce_sso_refresh_and_logout() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let t = PtaSetup::new(&fresh_dir("oidc")?, &corp)
        .app("Web")
        .redirect_uri(REDIRECT)
        .start()?;
    let cloud = &t.cloud;
    let client_id = t.client_id()?.to_string();
    let other_client = t.add_public_app_with("Other", &[REDIRECT.to_string()])?;
    let good = corp.user("good")?;
    let mut b = FormBrowser::new(&cloud.ca_file(), &cloud.url)?;

    // An unregistered redirect URI: an error page, never a redirect.
    let bad = b
        .get(&format!(
            "/contoso/oauth2/v2.0/authorize?client_id={client_id}&response_type=code&redirect_uri={}&code_challenge=x&code_challenge_method=S256",
            urlencode("https://evil.example/cb")
        ))
        .await?;
    assert_eq!(bad.status, 400);
    assert!(bad.location().is_empty());
    assert!(bad.body.contains("AADSTS50011"), "{}", bad.body);
    // A public client without PKCE: the error goes to the registered redirect URI.
    let no_pkce = b
        .get(&format!("/contoso/oauth2/v2.0/authorize?client_id={client_id}&response_type=code&redirect_uri={}&state=s1", urlencode(REDIRECT)))
        .await?;
    assert_eq!(
        no_pkce.query().get("error").map(String::as_str),
        Some("invalid_request")
    );
    assert_eq!(no_pkce.query().get("state").map(String::as_str), Some("s1"));
    // prompt=none with nobody signed in.
    let (_, ch) = pkce();
    let none = b
        .get(&authorize_url(&client_id, &ch, "s2", "n2", "&prompt=none"))
        .await?;
    assert_eq!(
        none.query().get("error").map(String::as_str),
        Some("login_required")
    );

    // The pages: security headers, CSRF enforced, no password echoed.
    let (verifier, challenge) = pkce();
    let first = b
        .get(&authorize_url(
            &client_id, &challenge, "state-1", "nonce-1", "",
        ))
        .await?;
    assert_eq!(first.status, 200);
    let csp = first
        .headers
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(
        first
            .headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    assert!(first.body.contains("<label for=\"username\">"));
    let forged = b
        .post(
            "/contoso/login",
            &[
                ("req", &first.hidden("req")),
                ("csrf", "forged"),
                ("username", &good.upn),
            ],
        )
        .await?;
    assert_eq!(forged.status, 403);
    // A wrong password shows the sentence, the code and the correlation id, and no password.
    let spare = corp.user("spare6")?;
    let wrong = sign_in(&mut b, &first, &spare.upn, "Wrong-Passw0rd!").await?;
    assert_eq!(wrong.status, 401);
    assert!(
        wrong.body.contains("AADSTS50126") && wrong.body.contains("Correlation ID"),
        "{}",
        wrong.body
    );
    assert!(!wrong.body.contains("Wrong-Passw0rd!"));
    // A locked account says so.
    let locked = corp.user("locked")?;
    let l = sign_in(&mut b, &first, &locked.upn, &locked.password).await?;
    assert!(
        l.body.contains("AADSTS50053") && l.body.contains("locked"),
        "{}",
        l.body
    );

    // The good user: a code comes back to the app with the state.
    let done = sign_in(&mut b, &first, &good.upn, &good.password).await?;
    assert!(
        matches!(done.status, 302 | 303),
        "{} {}",
        done.status,
        done.body
    );
    let q = done.query();
    assert!(done.location().starts_with(REDIRECT));
    assert_eq!(q.get("state").map(String::as_str), Some("state-1"));
    let code = q.get("code").cloned().unwrap_or_default();
    assert!(b.cookie_header("/").is_some(), "a session cookie is set");
    let cookie_header = done
        .headers
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    for attr in ["Secure", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie_header.contains(attr), "{cookie_header}");
    }

    // PKCE mismatch, then the right verifier; then the code again (replay).
    let http = b.http().clone();
    let base = cloud.url.clone();
    let (st, v) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            (
                "code_verifier",
                "wrong-verifier-wrong-verifier-wrong-verifier-00",
            ),
        ],
    )
    .await?;
    assert_eq!((st, code_of(&v)), (400, Some(501481)), "{v}");
    // The failed attempt consumed the code: codes are single-use whatever happens.
    let (_, v) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await?;
    assert_eq!(code_of(&v), Some(70008), "{v}");

    // SSO: the session gives a new code at once.
    let (verifier, challenge) = pkce();
    let sso = b
        .get(&authorize_url(
            &client_id, &challenge, "state-2", "nonce-2", "",
        ))
        .await?;
    let code = sso.query().get("code").cloned().unwrap_or_default();
    assert!(
        !code.is_empty(),
        "SSO should answer at once: {} {}",
        sso.status,
        sso.body
    );
    // Used by another client: refused.
    let (_, v) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &other_client),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await?;
    assert_eq!(code_of(&v), Some(70000), "{v}");

    let (verifier, challenge) = pkce();
    let sso = b
        .get(&authorize_url(
            &client_id, &challenge, "state-3", "nonce-3", "",
        ))
        .await?;
    let code = sso.query().get("code").cloned().unwrap_or_default();
    let (st, tokens) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client_id),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", &verifier),
        ],
    )
    .await?;
    assert_eq!(st, 200, "{tokens}");
    let claims = verify_with_jwks(
        &http,
        &base,
        "contoso",
        tokens["id_token"].as_str().unwrap_or_default(),
        &client_id,
    )
    .await?;
    assert_eq!(claims["nonce"], "nonce-3");
    assert!(claims["auth_time"].is_i64());
    assert_eq!(
        claims["preferred_username"]
            .as_str()
            .map(str::to_ascii_lowercase),
        Some(good.upn.to_ascii_lowercase())
    );

    // prompt=login ignores the session.
    let (_, challenge) = pkce();
    let again = b
        .get(&authorize_url(
            &client_id,
            &challenge,
            "s4",
            "n4",
            "&prompt=login",
        ))
        .await?;
    assert_eq!(again.status, 200);
    assert!(again.body.contains("id=\"username\""));

    // userinfo.
    let ui: Value = http
        .get(format!("{base}/contoso/openid/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap_or_default())
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(ui["sub"], claims["sub"]);
    let denied = http
        .get(format!("{base}/contoso/openid/userinfo"))
        .bearer_auth("garbage")
        .send()
        .await?;
    assert_eq!(denied.status().as_u16(), 401);

    // Refresh rotation; reuse of a rotated token revokes the family.
    let rt1 = tokens["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (st, t2) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &rt1),
        ],
    )
    .await?;
    assert_eq!(st, 200, "{t2}");
    let rt2 = t2["refresh_token"].as_str().unwrap_or_default().to_string();
    assert_ne!(rt1, rt2);
    let (_, v) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &rt1),
        ],
    )
    .await?;
    assert_eq!(code_of(&v), Some(70008), "{v}");
    let (_, v) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client_id),
            ("refresh_token", &rt2),
        ],
    )
    .await?;
    assert_eq!(code_of(&v), Some(70008), "the whole family is revoked: {v}");

    // Client credentials for a confidential app; a wrong secret is refused.
    let out = cloud.admin(&["app", "add", "Daemon", "--confidential"])?;
    let mut lines = out.lines();
    let (daemon, secret) = (
        lines.next().unwrap_or_default().to_string(),
        lines.next().unwrap_or_default().to_string(),
    );
    // The resource is another registered app of the tenant (the web app).
    let resource_scope = format!("{client_id}/.default");
    let (st, v) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &daemon),
            ("client_secret", &secret),
            ("scope", &resource_scope),
        ],
    )
    .await?;
    assert_eq!(st, 200, "{v}");
    let app_claims = verify_with_jwks(
        &http,
        &base,
        "contoso",
        v["access_token"].as_str().unwrap_or_default(),
        &client_id,
    )
    .await?;
    // A resource the tenant does not know is refused.
    let (_, unknown) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &daemon),
            ("client_secret", &secret),
            ("scope", "api://inventory/.default"),
        ],
    )
    .await?;
    assert_eq!(code_of(&unknown), Some(70011), "{unknown}");
    assert_eq!(app_claims["idtyp"], "app");
    let (st, v) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &daemon),
            ("client_secret", "nope"),
            ("scope", "api://inventory/.default"),
        ],
    )
    .await?;
    assert_eq!((st, code_of(&v)), (401, Some(7000215)), "{v}");
    let (_, v) = redeem(
        &http,
        &base,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("scope", "api://inventory/.default"),
        ],
    )
    .await?;
    assert_eq!(
        code_of(&v),
        Some(7000218),
        "a public client cannot use client credentials: {v}"
    );

    // Logout: a GET only asks (a cross-site link must not sign anyone out); the form it
    // shows signs out and goes back to a registered URI only; the session is gone.
    let logout = format!(
        "/contoso/oauth2/v2.0/logout?post_logout_redirect_uri={}&state=bye",
        urlencode(REDIRECT)
    );
    let asked = b.get(&logout).await?;
    assert!(
        asked.status == 200 && asked.body.contains("id=\"signout\""),
        "{}",
        asked.body
    );
    let out = b.sign_out(&logout).await?;
    assert!(
        out.location().starts_with(REDIRECT) && out.location().contains("state=bye"),
        "{}",
        out.location()
    );
    let (_, challenge) = pkce();
    let after = b
        .get(&authorize_url(
            &client_id,
            &challenge,
            "s5",
            "n5",
            "&prompt=none",
        ))
        .await?;
    assert_eq!(
        after.query().get("error").map(String::as_str),
        Some("login_required")
    );
    let open = b
        .get(&format!(
            "/contoso/oauth2/v2.0/logout?post_logout_redirect_uri={}",
            urlencode("https://evil.example/")
        ))
        .await?;
    assert!(open.location().is_empty(), "no open redirect on logout");
    assert_eq!(open.status, 200);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn key_rotation_keeps_earlier_tokens_verifiable() -> anyhow::Result<()> {
    let cloud = contoso_cloud(&fresh_dir("keys")?)?;
    let admin_pw = cloud.admin_password.clone();
    let client_id = cloud
        .admin(&["app", "add", "CLI", "--public"])?
        .trim()
        .to_string();
    let http = passthru_testkit::http::client(&cloud.ca_file())?;
    let grant = |pw: String| {
        let (http, url, client_id) = (http.clone(), cloud.url.clone(), client_id.clone());
        async move {
            passthru_testkit::http::password_grant(
                &http,
                &url,
                "contoso",
                &client_id,
                "admin@contoso.example",
                &pw,
                "openid",
            )
            .await
        }
    };
    let before = grant(admin_pw.clone()).await?;
    let old_token = before.body["id_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let old_kid = jsonwebtoken::decode_header(&old_token)?.kid;
    // Keys are per tenant: another tenant's JWKS does not move when contoso rotates.
    cloud.add_tenant("beta", "admin@beta.example", &admin_pw)?;
    let base = cloud.url.clone();
    let jwks_of = |tenant: &str| {
        let (http, url) = (http.clone(), format!("{base}/{tenant}/discovery/v2.0/keys"));
        async move { anyhow::Ok(http.get(url).send().await?.json::<Value>().await?) }
    };
    let beta_before = jwks_of("beta").await?;
    // An ES256 and an RS256 key.
    assert_eq!(beta_before["keys"].as_array().map(Vec::len), Some(2));
    assert_ne!(beta_before["keys"][0]["kid"].as_str(), old_kid.as_deref());

    // contoso's JWKS (its RS256 key is made at this first need), then a rotation.
    let contoso_before = jwks_of("contoso").await?;
    assert_eq!(contoso_before["keys"].as_array().map(Vec::len), Some(2));
    let out = cloud.admin(&["--json", "keys", "rotate"])?;
    let v: Value = serde_json::from_str(&out)?;
    // Both algorithms rotated: two current keys, two retired.
    assert_eq!(v["published"].as_array().map(Vec::len), Some(4), "{v}");

    // The earlier token still verifies; new tokens carry the new key id.
    verify_with_jwks(&http, &cloud.url, "contoso", &old_token, &client_id).await?;
    let after = grant(admin_pw.clone()).await?;
    let new_token = after.body["id_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let new_kid = jsonwebtoken::decode_header(&new_token)?.kid;
    assert_ne!(old_kid, new_kid);
    assert_eq!(v["current"].as_str(), new_kid.as_deref());
    verify_with_jwks(&http, &cloud.url, "contoso", &new_token, &client_id).await?;

    // The rotation survives a restart.
    let mut cloud = cloud;
    cloud.stop();
    cloud.serve()?;
    let jwks: Value = http
        .get(format!("{}/contoso/discovery/v2.0/keys", cloud.url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(4), "{jwks}");
    assert_eq!(jwks["keys"][0]["kid"].as_str(), new_kid.as_deref());
    assert_eq!(
        jwks_of("beta").await?,
        beta_before,
        "beta's keys did not move"
    );

    // However often a tenant rotates, its JWKS lists the current key and two retired ones of
    // each algorithm.
    for _ in 0..4 {
        cloud.admin(&["keys", "rotate"])?;
    }
    let jwks = jwks_of("contoso").await?;
    assert_eq!(jwks["keys"].as_array().map(Vec::len), Some(6), "{jwks}");
    assert_eq!(jwks_of("beta").await?, beta_before);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn device_code_flow_end_to_end() -> anyhow::Result<()> {
    let cloud = contoso_cloud(&fresh_dir("device")?)?;
    let admin_pw = cloud.admin_password.clone();
    let client_id = cloud
        .admin(&["app", "add", "TV app", "--public"])?
        .trim()
        .to_string();
    let mut b = FormBrowser::new(&cloud.ca_file(), &cloud.url)?;
    let http = b.http().clone();
    let base = cloud.url.clone();

    let start: Value = http
        .post(format!("{base}/contoso/oauth2/v2.0/devicecode"))
        .form(&[
            ("client_id", client_id.as_str()),
            ("scope", "openid profile offline_access"),
        ])
        .send()
        .await?
        .json()
        .await?;
    let device_code = start["device_code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let user_code = start["user_code"].as_str().unwrap_or_default().to_string();
    assert_eq!(user_code.len(), 9, "{start}");
    assert!(start["verification_uri"]
        .as_str()
        .unwrap_or_default()
        .ends_with("/contoso/devicelogin"));
    assert!(start["message"]
        .as_str()
        .unwrap_or_default()
        .contains(&user_code));
    let poll = |http: reqwest::Client| {
        let (base, client_id, device_code) = (base.clone(), client_id.clone(), device_code.clone());
        async move {
            redeem(
                &http,
                &base,
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", &client_id),
                    ("device_code", &device_code),
                ],
            )
            .await
        }
    };
    let (_, v) = poll(http.clone()).await?;
    assert_eq!(v["error"], "authorization_pending", "{v}");
    let (_, v) = poll(http.clone()).await?;
    assert_eq!(v["error"], "slow_down", "{v}");

    // A wrong code is refused; the right one (typed in lower case, without the dash) leads
    // to the sign-in pages.
    let entry = b.get("/contoso/devicelogin").await?;
    assert!(entry.body.contains("id=\"user_code\""));
    // Without the form's CSRF token (a cross-site post): refused.
    let forged = b
        .post("/contoso/devicelogin", &[("user_code", user_code.as_str())])
        .await?;
    assert_eq!(forged.status, 403);
    let entry = b.get("/contoso/devicelogin").await?;
    let wrong = b
        .post(
            "/contoso/devicelogin",
            &[("user_code", "BBBB-BBBB"), ("csrf", &entry.hidden("csrf"))],
        )
        .await?;
    assert_eq!(wrong.status, 400);
    let typed = user_code.replace('-', "").to_lowercase();
    let first = b
        .post(
            "/contoso/devicelogin",
            &[("user_code", &typed), ("csrf", &wrong.hidden("csrf"))],
        )
        .await?;
    assert_eq!(first.status, 200, "{}", first.body);
    let done = sign_in(&mut b, &first, "admin@contoso.example", &admin_pw).await?;
    assert!(
        done.body.contains("You have signed in to TV app"),
        "{}",
        done.body
    );

    tokio::time::sleep(Duration::from_secs(5)).await;
    let (st, tokens) = poll(http.clone()).await?;
    assert_eq!(st, 200, "{tokens}");
    let claims = verify_with_jwks(
        &http,
        &base,
        "contoso",
        tokens["id_token"].as_str().unwrap_or_default(),
        &client_id,
    )
    .await?;
    assert_eq!(claims["preferred_username"], "admin@contoso.example");
    assert!(tokens["refresh_token"].is_string());
    // Tokens are issued once.
    let (_, v) = poll(http.clone()).await?;
    assert_eq!(code_of(&v), Some(70008), "{v}");
    // The used code cannot be entered again.
    let entry = b.get("/contoso/devicelogin").await?;
    let reused = b
        .post(
            "/contoso/devicelogin",
            &[("user_code", &user_code), ("csrf", &entry.hidden("csrf"))],
        )
        .await?;
    assert_eq!(reused.status, 400);
    Ok(())
}

/// `serve --public-url`: the discovery document and the tokens name the configured URL,
/// not the address the client used; a URL that is not https stops `serve` with a clear error.
#[tokio::test(flavor = "multi_thread")]
async fn public_url_names_the_issuer() -> anyhow::Result<()> {
    use passthru_testkit::procs::{bin, recorded_secret, Cloud};
    const PUBLIC: &str = "https://login.contoso.test";
    let dir = fresh_dir("public-url")?;
    let cloud = Cloud::start_with(
        &dir,
        "contoso",
        "admin@contoso.example",
        &recorded_secret("Adm1n"),
        "127.0.0.1:0",
        &[],
        &["--public-url", &format!("{PUBLIC}/")],
    )?;
    let http = passthru_testkit::http::client(&cloud.ca_file())?;
    let doc: Value = http
        .get(format!(
            "{}/contoso/v2.0/.well-known/openid-configuration",
            cloud.url
        ))
        .send()
        .await?
        .json()
        .await?;
    let issuer = doc["issuer"].as_str().unwrap_or_default();
    assert!(
        issuer.starts_with(&format!("{PUBLIC}/")) && issuer.ends_with("/v2.0"),
        "{doc}"
    );
    assert_eq!(
        doc["jwks_uri"].as_str(),
        Some(format!("{}/discovery/v2.0/keys", issuer.trim_end_matches("/v2.0")).as_str())
    );
    let client_id = cloud
        .admin(&["app", "add", "CLI", "--public"])?
        .trim()
        .to_string();
    let t = passthru_testkit::http::password_grant(
        &http,
        &cloud.url,
        "contoso",
        &client_id,
        "admin@contoso.example",
        &cloud.admin_password,
        "openid",
    )
    .await?;
    let payload = t.body["id_token"]
        .as_str()
        .and_then(|tok| tok.split('.').nth(1))
        .and_then(|p| B64URL.decode(p).ok())
        .and_then(|p| serde_json::from_slice::<Value>(&p).ok())
        .unwrap_or_default();
    assert_eq!(payload["iss"].as_str(), Some(issuer), "{payload}");

    let bad = std::process::Command::new(bin("passthru-cloud"))
        .args(["serve", "--data-dir"])
        .arg(dir.join("cloud"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--public-url",
            "http://login.contoso.test",
        ])
        .output()?;
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("--public-url") && err.contains("https://"),
        "{err}"
    );
    Ok(())
}
