//! Multi-factor authentication end to end: the real cloud over HTTPS, headless Chromium on the
//! sign-in pages (`mfa_browser.py`, driven step by step from here), and TOTP codes computed on
//! this side with `totp-rs` from the secret the enrolment page shows.
//!
//! 1. A user with policy `required` signs in, enrols (QR code, key, otpauth URI), confirms
//!    with a code, sees ten recovery codes, and lands at the app with a code that redeems for
//!    tokens. Signed out and back: a wrong code, and the code of the step already used, are
//!    refused with the message; the next step's code signs in; a recovery code signs in once
//!    and is refused the second time.
//! 2. The code page cannot be used without the password step; five wrong codes lock the second
//!    factor (a right code is refused too) until `user unlock`.
//! 3. The password grant: 50076 for that user, tokens for a user with MFA off; the sign-in
//!    log shows 50076 and 500121.
//! 4. `user mfa-reset`: the next sign-in enrols again; the tenant's `mfa required` applies to
//!    users with the default policy (the admin, exempted with `user mfa ... off`, keeps the
//!    CLI); `settings set mfa off`: no second factor.
//! 5. The store never holds the secret in clear (the database files are scanned for it).
//!
//! Needs /usr/bin/chromium, /usr/bin/chromedriver, selenium and authlib
//! (`PASSTHRU_NEED_BROWSER=1 bash scripts/deps.sh`). No AD test bed is needed.

use std::process::Command;

use anyhow::{anyhow, ensure, Context as _};
use passthru_e2e::chromium::{
    authz, browser_password, code_from_callback, read_enrolment, sign_out, step_now, totp,
    usable_step, Authz, Chromium,
};
use passthru_testkit::browser::FormBrowser;
use passthru_testkit::fixture::{contoso_cloud, ADMIN_UPN};
use passthru_testkit::http::{client, password_grant, verify_with_jwks};
use passthru_testkit::procs::{fresh_dir, recorded_secret, Cloud};
use serde_json::{json, Value};

const ALICE: &str = "alice@contoso.example";
const BOB: &str = "bob@contoso.example";
const DAVE: &str = "dave@contoso.example";

/// Redeems the code the app received and checks the ID token names `user`.
async fn redeem(
    cloud: &Cloud,
    http: &reqwest::Client,
    client_id: &str,
    redirect: &str,
    a: &Authz,
    callback_url: &str,
    user: &str,
) -> anyhow::Result<()> {
    let cb = url::Url::parse(callback_url)?;
    let code = cb
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.to_string())
        .ok_or_else(|| anyhow!("no code in {callback_url}"))?;
    let r: Value = http
        .post(format!("{}/contoso/oauth2/v2.0/token", cloud.url))
        .form(&[
            ("grant_type", "authorization_code"),
            ("client_id", client_id),
            ("code", &code),
            ("redirect_uri", redirect),
            ("code_verifier", &a.verifier),
        ])
        .send()
        .await?
        .json()
        .await?;
    let id_token = r["id_token"]
        .as_str()
        .ok_or_else(|| anyhow!("no id_token: {r}"))?;
    let claims = verify_with_jwks(http, &cloud.url, "contoso", id_token, client_id).await?;
    ensure!(claims["preferred_username"] == user, "{claims}");
    ensure!(claims["nonce"] == "n0", "{claims}");
    Ok(())
}

/// Hidden fields of a FormBrowser page.
fn form_of(p: &passthru_testkit::browser::Page) -> (String, String) {
    (p.hidden("req"), p.hidden("csrf"))
}

/// Username and password with the form client; returns the page after the password.
async fn form_password(
    fb: &mut FormBrowser,
    a: &Authz,
    user: &str,
    password: &str,
) -> anyhow::Result<passthru_testkit::browser::Page> {
    let p = fb.get(&a.url).await?;
    ensure!(p.status == 200, "authorize: {} {}", p.status, p.body);
    let (req, csrf) = form_of(&p);
    let p = fb
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", user)],
        )
        .await?;
    ensure!(p.body.contains("id=\"password\""), "{}", p.body);
    fb.post(
        "/contoso/login/password",
        &[("req", &req), ("csrf", &csrf), ("password", password)],
    )
    .await
}

/// Posts a code to the code page of request `req`.
async fn post_mfa(
    fb: &mut FormBrowser,
    req: &str,
    csrf: &str,
    code: &str,
) -> anyhow::Result<passthru_testkit::browser::Page> {
    fb.post(
        "/contoso/login/mfa",
        &[("req", req), ("csrf", csrf), ("code", code)],
    )
    .await
}

fn scan_store(cloud: &Cloud, needles: &[&[u8]]) -> anyhow::Result<()> {
    for name in ["passthru.db", "passthru.db-wal"] {
        let path = cloud.data_dir.join(name);
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        for n in needles {
            ensure!(
                !bytes.windows(n.len()).any(|w| w == *n),
                "{} holds the TOTP secret in clear",
                path.display()
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn totp_in_chromium() -> anyhow::Result<()> {
    let dir = fresh_dir("mfa")?;
    let cloud = contoso_cloud(&dir)?;
    let http = client(&cloud.ca_file())?;
    let pw = recorded_secret("Mfa");
    for u in [ALICE, BOB, DAVE] {
        cloud.add_user(u, &pw)?;
    }
    let key = std::fs::metadata(cloud.data_dir.join("mfa.key"))?;
    ensure!(key.len() == 32, "a 32-byte key file");
    {
        use std::os::unix::fs::PermissionsExt as _;
        ensure!(key.permissions().mode() & 0o777 == 0o600, "mfa.key is 0600");
    }

    let spec = json!({
        "server_cert": cloud.data_dir.join("tls/server.pem"),
        "chromedriver": "/usr/bin/chromedriver",
        "screenshot_dir": dir.join("screenshots"),
    });
    let (mut b, redirect) = Chromium::start(&spec, &dir.join("mfa-browser.log"))?;
    let added: Value = serde_json::from_str(&cloud.admin(&[
        "--json",
        "app",
        "add",
        "MFA app",
        "--public",
        "--redirect-uri",
        &redirect,
    ])?)?;
    let client_id = added["client_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no client_id: {added}"))?
        .to_string();

    // 1. Alice must use MFA: enrolment at sign-in.
    cloud.admin(&["user", "mfa", ALICE, "required"])?;
    cloud.admin(&["user", "mfa", BOB, "off"])?;
    let shown: Value = serde_json::from_str(&cloud.admin(&["--json", "user", "show", ALICE])?)?;
    ensure!(
        shown["mfa"]
            == json!({"policy": "required", "effective": "required", "enrolled": false, "recovery_codes_left": null, "locked_until": null}),
        "{shown}"
    );
    let a = authz(&cloud, &client_id, &redirect)?;
    ensure!(
        browser_password(&mut b, &a, ALICE, &pw)? == "secret",
        "enrolment page expected"
    );
    let (secret, base32) = read_enrolment(&mut b)?;
    b.shot("enrol")?;
    // The QR code, as a phone's camera sees it, says the otpauth URI with that key.
    let qr = b.cmd(json!({"op": "shot", "name": "enrol-qr", "id": "qr"}))?;
    let decoded = Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(qr["path"].as_str().unwrap_or_default())
        .output()
        .context("zbarimg (zbar-tools: PASSTHRU_NEED_BROWSER=1 bash scripts/deps.sh)")?;
    let decoded = String::from_utf8_lossy(&decoded.stdout).trim().to_string();
    ensure!(
        decoded == b.text("otpauth")?,
        "the QR code says {decoded:?}"
    );
    // A wrong first code is refused on the enrolment page, which shows the same key again.
    b.type_in("code", &totp(&secret, step_now() - 10))?;
    b.click("verify")?;
    ensure!(b.wait(&["error"])? == "error");
    ensure!(b.text("error")?.contains("That code didn't work"));
    ensure!(
        read_enrolment(&mut b)?.1 == base32,
        "the same key until confirmed"
    );
    let enrolled_step = step_now();
    b.type_in("code", &totp(&secret, enrolled_step))?;
    b.click("verify")?;
    ensure!(b.wait(&["recovery-codes", "error"])? == "recovery-codes");
    let recovery = b.texts("#recovery-codes li")?;
    ensure!(recovery.len() == 10, "{recovery:?}");
    b.shot("recovery-codes")?;
    b.click("continue")?;
    ensure!(b.wait(&["rp"])? == "rp");
    let cb = code_from_callback(&mut b)?;
    redeem(&cloud, &http, &client_id, &redirect, &a, &cb, ALICE).await?;
    let shown: Value = serde_json::from_str(&cloud.admin(&["--json", "user", "show", ALICE])?)?;
    ensure!(shown["mfa"]["enrolled"] == true, "{shown}");
    ensure!(shown["mfa"]["recovery_codes_left"] == 10, "{shown}");

    // Signed out and back: the code page.
    sign_out(&mut b, &cloud)?;
    let a = authz(&cloud, &client_id, &redirect)?;
    ensure!(
        browser_password(&mut b, &a, ALICE, &pw)? == "code",
        "code page expected"
    );
    b.shot("code")?;
    // A wrong code.
    b.type_in("code", &totp(&secret, step_now() - 10))?;
    b.click("verify")?;
    ensure!(b.wait(&["error"])? == "error");
    ensure!(b.text("error")?.contains("That code didn't work"));
    ensure!(b.page()?["text"]
        .as_str()
        .unwrap_or_default()
        .contains("AADSTS500121"));
    b.shot("code-wrong")?;
    // The code of the step already used (still within the window, or not: refused either way).
    b.type_in("code", &totp(&secret, enrolled_step))?;
    b.click("verify")?;
    ensure!(b.wait(&["error"])? == "error");
    ensure!(b.text("error")?.contains("each code works once"));
    // The next step's code (within one step of now) signs in.
    let mut last_step = usable_step(enrolled_step).await;
    b.type_in("code", &totp(&secret, last_step))?;
    b.click("verify")?;
    ensure!(
        b.wait(&["rp", "error"])? == "rp",
        "the next step's code is accepted"
    );
    let cb = code_from_callback(&mut b)?;
    redeem(&cloud, &http, &client_id, &redirect, &a, &cb, ALICE).await?;

    // A recovery code signs in once.
    for (attempt, expect_ok) in [(0, true), (1, false)] {
        sign_out(&mut b, &cloud)?;
        let a = authz(&cloud, &client_id, &redirect)?;
        ensure!(browser_password(&mut b, &a, ALICE, &pw)? == "code");
        b.type_in("code", &recovery[0].to_lowercase())?;
        b.click("verify")?;
        let found = b.wait(&["rp", "error"])?;
        if expect_ok {
            ensure!(
                found == "rp",
                "a recovery code is accepted (attempt {attempt})"
            );
            let cb = code_from_callback(&mut b)?;
            redeem(&cloud, &http, &client_id, &redirect, &a, &cb, ALICE).await?;
        } else {
            ensure!(found == "error", "a used recovery code is refused");
            ensure!(b.text("error")?.contains("That code didn't work"));
            // Another recovery code still works.
            b.type_in("code", &recovery[1])?;
            b.click("verify")?;
            ensure!(b.wait(&["rp", "error"])? == "rp");
            code_from_callback(&mut b)?;
        }
    }
    let shown: Value = serde_json::from_str(&cloud.admin(&["--json", "user", "show", ALICE])?)?;
    ensure!(shown["mfa"]["recovery_codes_left"] == 8, "{shown}");

    // 2. The code page needs the password step of the same request.
    let mut fb = FormBrowser::new(&cloud.ca_file(), &cloud.url)?;
    let a = authz(&cloud, &client_id, &redirect)?;
    let p = fb.get(&a.url).await?;
    let (req, csrf) = form_of(&p);
    let p = fb
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", ALICE)],
        )
        .await?;
    ensure!(p.status == 200);
    let code = totp(&secret, step_now());
    let p = fb
        .post(
            "/contoso/login/mfa",
            &[("req", &req), ("csrf", &csrf), ("code", &code)],
        )
        .await?;
    ensure!(p.status == 403, "no password step: {} {}", p.status, p.body);
    // Five wrong codes lock the second factor: a right code is refused too, until unlocked.
    let p = form_password(&mut fb, &a, ALICE, &pw).await?;
    ensure!(p.body.contains("id=\"code\""), "{}", p.body);
    let (req, csrf) = form_of(&p);
    for i in 0..5 {
        let p = post_mfa(
            &mut fb,
            &req,
            &csrf,
            &format!("{:06}", (i * 7919) % 1_000_000),
        )
        .await?;
        ensure!(p.status == 401, "wrong code {i}: {}", p.status);
        if i == 4 {
            ensure!(p.body.contains("is locked until"), "{}", p.body);
        }
    }
    last_step = usable_step(last_step).await;
    let p = post_mfa(&mut fb, &req, &csrf, &totp(&secret, last_step)).await?;
    ensure!(
        p.status == 401 && p.body.contains("is locked until"),
        "locked: {}",
        p.body
    );
    let shown: Value = serde_json::from_str(&cloud.admin(&["--json", "user", "show", ALICE])?)?;
    ensure!(shown["mfa"]["locked_until"].is_i64(), "{shown}");
    cloud.admin(&["user", "unlock", ALICE])?;
    let p = post_mfa(&mut fb, &req, &csrf, &totp(&secret, last_step)).await?;
    ensure!(
        p.status == 303 || p.status == 302,
        "unlocked: {} {}",
        p.status,
        p.body
    );
    ensure!(p.location().starts_with(&redirect), "{}", p.location());

    // 3. The password grant cannot ask for a code.
    let r = password_grant(
        &http, &cloud.url, "contoso", &client_id, ALICE, &pw, "openid",
    )
    .await?;
    ensure!(r.status == 400 && r.code() == Some(50076), "{:?}", r.body);
    ensure!(r.body["error"] == "invalid_grant", "{:?}", r.body);
    let d = r.body["error_description"].as_str().unwrap_or_default();
    ensure!(
        d.starts_with("AADSTS50076: ") && d.contains("multi-factor"),
        "{d}"
    );
    let r = password_grant(&http, &cloud.url, "contoso", &client_id, BOB, &pw, "openid").await?;
    ensure!(r.ok(), "MFA off: tokens: {:?}", r.body);
    let log = cloud.admin(&["--json", "signins", "list", "--user", ALICE])?;
    ensure!(log.contains("500121") && log.contains("50076"), "{log}");

    // Policy optional (the tenant's default): a signed-in user enrols at /mfa/setup, and
    // from then on is asked for a code, so the password grant refuses them.
    let mut fresh = FormBrowser::new(&cloud.ca_file(), &cloud.url)?;
    let p = fresh.get("/contoso/mfa/setup").await?;
    ensure!(p.body.contains("Sign in first"), "no session: {}", p.body);
    let a = authz(&cloud, &client_id, &redirect)?;
    let p = form_password(&mut fresh, &a, DAVE, &pw).await?;
    ensure!(
        p.status == 303,
        "optional, not enrolled: no code: {} {}",
        p.status,
        p.body
    );
    let p = fresh.get("/contoso/mfa/setup").await?;
    let shown = p
        .body
        .split("id=\"secret\">")
        .nth(1)
        .and_then(|r| r.split('<').next())
        .ok_or_else(|| anyhow!("no key on the setup page: {}", p.body))?;
    let dave_secret = totp_rs::Secret::Encoded(shown.replace(' ', ""))
        .to_bytes()
        .map_err(|e| anyhow!("{e:?}"))?;
    let id = p.hidden("id");
    let p = fresh
        .post(
            "/contoso/mfa/setup",
            &[("id", &id), ("code", &totp(&dave_secret, step_now()))],
        )
        .await?;
    ensure!(p.body.contains("id=\"recovery-codes\""), "{}", p.body);
    let r = password_grant(
        &http, &cloud.url, "contoso", &client_id, DAVE, &pw, "openid",
    )
    .await?;
    ensure!(
        r.code() == Some(50076),
        "optional and enrolled: {:?}",
        r.body
    );

    // 5. The store holds no secret in clear.
    scan_store(&cloud, &[&secret, base32.as_bytes(), &dave_secret])?;

    // 4. A reset: the next sign-in enrols again.
    let out = cloud.admin(&["user", "mfa-reset", ALICE])?;
    ensure!(out.contains("removed"), "{out}");
    let a = authz(&cloud, &client_id, &redirect)?;
    let p = form_password(&mut fb, &a, ALICE, &pw).await?;
    ensure!(
        p.body.contains("id=\"secret\""),
        "enrolment again: {}",
        p.body
    );
    // The tenant's policy applies to users with the default policy; the admin keeps the CLI
    // (the password grant) with a policy of their own.
    cloud.admin(&["user", "mfa", ADMIN_UPN, "off"])?;
    cloud.admin(&["user", "mfa", ALICE, "default"])?;
    cloud.admin(&["settings", "set", "mfa", "required"])?;
    let r = password_grant(
        &http, &cloud.url, "contoso", &client_id, DAVE, &pw, "openid",
    )
    .await?;
    ensure!(r.code() == Some(50076), "tenant required: {:?}", r.body);
    let a = authz(&cloud, &client_id, &redirect)?;
    let p = form_password(&mut fb, &a, ALICE, &pw).await?;
    ensure!(
        p.body.contains("id=\"secret\""),
        "tenant required: {}",
        p.body
    );
    // Off: no second factor.
    cloud.admin(&["settings", "set", "mfa", "off"])?;
    let a = authz(&cloud, &client_id, &redirect)?;
    let p = form_password(&mut fb, &a, ALICE, &pw).await?;
    ensure!(
        p.status == 303 || p.status == 302,
        "mfa off: {} {}",
        p.status,
        p.body
    );
    ensure!(p.location().starts_with(&redirect), "{}", p.location());
    let r = password_grant(
        &http, &cloud.url, "contoso", &client_id, ALICE, &pw, "openid",
    )
    .await?;
    ensure!(r.ok(), "mfa off: tokens: {:?}", r.body);
    scan_store(&cloud, &[&secret, base32.as_bytes()])?;
    drop(b);
    Ok(())
}
