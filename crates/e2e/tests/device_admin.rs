//! Registration and administration by an administrator who must prove a second factor: the
//! real cloud, `passthru-agent register --device-code` and `passthru-cloud admin --device-code`
//! as processes without a terminal, the browser side (code page, password, TOTP) completed by
//! a script with [`FormBrowser`], and TOTP codes computed here with `totp-rs`.
//!
//! The tenant has `mfa required`; `ops@contoso.example`, a Global Administrator, enrolled an
//! authenticator at a first browser sign-in, so the password grant refuses them (AADSTS50076)
//! whether through the token endpoint, `passthru-cloud admin` or `register`.
//!
//! 1. `register --device-code` prints the page and the code; the script signs in there; the
//!    process exits 0 and the state dir holds the registration.
//! 2. `admin --device-code agents list` likewise, and lists the agent; the token cache is a
//!    private file (0600 in a 0700 directory) holding the sign-in.
//! 3. `admin agents list` with no credentials: from the cache, without a device prompt; with
//!    the cached access token made expired, the refresh token is redeemed (and rotated).
//! 4. `admin logout`: the entry is gone, and the same command now fails (no terminal) with an
//!    error naming `--device-code`.
//!
//! No AD test bed is needed (registration talks to the cloud only).

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{anyhow, ensure, Context as _};
use passthru_e2e::chromium::{step_now, totp, usable_step};
use passthru_proto::admin::{ADMIN_CLIENT_ID, ADMIN_CLIENT_NAME, ADMIN_SCOPE};
use passthru_testkit::browser::{FormBrowser, Page};
use passthru_testkit::device_code::{DeviceCodeRun, Finished};
use passthru_testkit::fixture::{contoso_cloud, ADMIN_UPN};
use passthru_testkit::http::{client, password_grant};
use passthru_testkit::procs::{bin, fresh_dir, recorded_secret, Cloud};
use serde_json::Value;

const OPS: &str = "ops@contoso.example";
/// How long a process may take to print its code, and to end after the browser side.
const PRINT_TIMEOUT: Duration = Duration::from_secs(30);
const END_TIMEOUT: Duration = Duration::from_secs(60);

/// The administrator's authenticator: its key once enrolled, and the last time step used
/// (each code is accepted once).
#[derive(Default)]
struct Authenticator {
    secret: Option<Vec<u8>>,
    last_step: i64,
}

/// What the browser side met after the password.
#[derive(Debug, PartialEq, Eq)]
enum SecondFactor {
    Enrolled,
    Code,
}

/// The browser side of a device sign-in: the code page, `upn`'s password, then the second
/// factor (enrolment, or a code of `auth`), ending on the page that names the admin client.
async fn browser_side(
    cloud: &Cloud,
    user_code: &str,
    upn: &str,
    password: &str,
    auth: &mut Authenticator,
) -> anyhow::Result<SecondFactor> {
    let mut b = FormBrowser::new(&cloud.ca_file(), &cloud.url)?;
    let entry = b.get("/contoso/devicelogin").await?;
    let first = b
        .post(
            "/contoso/devicelogin",
            &[("user_code", user_code), ("csrf", &entry.hidden("csrf"))],
        )
        .await?;
    ensure!(
        first.status == 200,
        "code page: {} {}",
        first.status,
        first.body
    );
    let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
    let form =
        |extra: (&'static str, String)| vec![("req", req.clone()), ("csrf", csrf.clone()), extra];
    let post = async |b: &mut FormBrowser, path: &str, fields: Vec<(&str, String)>| {
        let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
        b.post(path, &fields).await
    };
    post(
        &mut b,
        "/contoso/login",
        form(("username", upn.to_string())),
    )
    .await?;
    let page = post(
        &mut b,
        "/contoso/login/password",
        form(("password", password.to_string())),
    )
    .await?;
    let (done, factor) = if page.body.contains("id=\"secret\"") {
        let shown = page
            .body
            .split("id=\"secret\">")
            .nth(1)
            .and_then(|r| r.split('<').next())
            .ok_or_else(|| anyhow!("no key on the enrolment page: {}", page.body))?;
        let secret = totp_rs::Secret::Encoded(shown.replace(' ', ""))
            .to_bytes()
            .map_err(|e| anyhow!("the enrolment key: {e:?}"))?;
        let step = step_now();
        let codes = post(
            &mut b,
            "/contoso/login/mfa/enrol",
            form(("code", totp(&secret, step))),
        )
        .await?;
        ensure!(
            codes.body.contains("id=\"recovery-codes\""),
            "recovery codes: {}",
            codes.body
        );
        auth.secret = Some(secret);
        auth.last_step = step;
        let vec = vec![("req", req.clone()), ("csrf", csrf.clone())];
        (
            post(&mut b, "/contoso/login/mfa/continue", vec).await?,
            SecondFactor::Enrolled,
        )
    } else {
        ensure!(
            page.body.contains("id=\"code\""),
            "the code page after the password: {} {}",
            page.status,
            page.body
        );
        let secret = auth
            .secret
            .clone()
            .ok_or_else(|| anyhow!("asked for a code before enrolling"))?;
        let step = usable_step(auth.last_step).await;
        auth.last_step = step;
        (
            post(
                &mut b,
                "/contoso/login/mfa",
                form(("code", totp(&secret, step))),
            )
            .await?,
            SecondFactor::Code,
        )
    };
    signed_in(&done)?;
    Ok(factor)
}

fn signed_in(done: &Page) -> anyhow::Result<()> {
    ensure!(
        done.status == 200
            && done.body.contains(&format!(
                "You have signed in to {ADMIN_CLIENT_NAME} on your device"
            )),
        "the end of the sign-in: {} {}",
        done.status,
        done.body
    );
    Ok(())
}

/// The process ended well; its standard output.
fn succeeded(what: &str, f: &Finished) -> anyhow::Result<String> {
    ensure!(
        f.status.success(),
        "{what} failed ({}): {}",
        f.status,
        f.stderr
    );
    Ok(f.stdout.clone())
}

/// The token cache's entries.
fn cache_entries(path: &Path) -> anyhow::Result<Vec<Value>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    Ok(v["entries"].as_array().cloned().unwrap_or_default())
}

fn mode(path: &Path) -> anyhow::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_with_mfa_registers_and_administers_with_a_device_code(
) -> anyhow::Result<()> {
    let dir = fresh_dir("device-admin")?;
    let cloud = contoso_cloud(&dir)?;
    let http = client(&cloud.ca_file())?;
    // The fixture's administrator keeps the password grant (a policy of their own) to set up
    // and to check; ops is the administrator under test.
    cloud.admin(&["user", "mfa", ADMIN_UPN, "off"])?;
    let pw = recorded_secret("Ops");
    cloud.add_user(OPS, &pw)?;
    cloud.admin(&["user", "role", OPS, "GlobalAdministrator"])?;
    cloud.admin(&["settings", "set", "mfa", "required"])?;

    // Ops enrols an authenticator at a first browser sign-in (the tenant requires one).
    let start: Value = http
        .post(format!("{}/contoso/oauth2/v2.0/devicecode", cloud.url))
        .form(&[("client_id", ADMIN_CLIENT_ID), ("scope", ADMIN_SCOPE)])
        .send()
        .await?
        .json()
        .await?;
    let code = start["user_code"]
        .as_str()
        .ok_or_else(|| anyhow!("no user code: {start}"))?;
    let mut auth = Authenticator::default();
    ensure!(browser_side(&cloud, code, OPS, &pw, &mut auth).await? == SecondFactor::Enrolled);
    let shown: Value = serde_json::from_str(&cloud.admin(&["--json", "user", "show", OPS])?)?;
    ensure!(
        shown["mfa"]["enrolled"] == true && shown["mfa"]["effective"] == "required",
        "{shown}"
    );

    // MFA is in force: the password grant refuses ops, at the token endpoint and in the CLIs,
    // which say to use --device-code.
    let r = password_grant(
        &http,
        &cloud.url,
        "contoso",
        ADMIN_CLIENT_ID,
        OPS,
        &pw,
        ADMIN_SCOPE,
    )
    .await?;
    ensure!(r.status == 400 && r.code() == Some(50076), "{:?}", r.body);
    let out = cloud.admin_as("contoso", OPS, &pw, &["agents", "list"])?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("AADSTS50076") && err.contains("--device-code"),
        "admin with the password grant: {err}"
    );
    let refused = Command::new(bin("passthru-agent"))
        .args([
            "register",
            "--cloud",
            &cloud.url,
            "--tenant",
            "contoso",
            "--ca-file",
        ])
        .arg(cloud.ca_file())
        .arg("--state-dir")
        .arg(dir.join("agent-refused"))
        .env("PASSTHRU_ADMIN_UPN", OPS)
        .env("PASSTHRU_ADMIN_PASSWORD", &pw)
        .stdin(std::process::Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&refused.stderr);
    ensure!(
        !refused.status.success() && err.contains("AADSTS50076") && err.contains("--device-code"),
        "register with the password grant: {err}"
    );
    ensure!(
        !dir.join("agent-refused").exists(),
        "a refused sign-in writes nothing"
    );

    // 1. register --device-code, as a process without a terminal or credentials.
    let state_dir = dir.join("agent");
    let mut register = Command::new(bin("passthru-agent"));
    register
        .args([
            "register",
            "--device-code",
            "--cloud",
            &cloud.url,
            "--tenant",
            "contoso",
            "--ca-file",
        ])
        .arg(cloud.ca_file())
        .arg("--state-dir")
        .arg(&state_dir)
        .env_remove("PASSTHRU_ADMIN_UPN")
        .env_remove("PASSTHRU_ADMIN_PASSWORD");
    let run = DeviceCodeRun::start(register, PRINT_TIMEOUT)?;
    ensure!(
        run.verification_uri == format!("{}/contoso/devicelogin", cloud.url),
        "{}",
        run.verification_uri
    );
    let factor = browser_side(&cloud, &run.user_code, OPS, &pw, &mut auth).await?;
    ensure!(factor == SecondFactor::Code);
    let registered = run.finish(END_TIMEOUT)?;
    let agent_id = succeeded("register --device-code", &registered)?
        .trim()
        .to_string();
    let recorded: Value =
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("agent.json"))?)
            .context("the state dir's agent.json")?;
    ensure!(recorded["agent_id"] == agent_id.as_str(), "{recorded}");
    ensure!(
        state_dir.join("client-cert.pem").exists() && state_dir.join("client-key.pem").exists(),
        "certificate and key in the state dir"
    );

    // 2. admin --device-code agents list, with a token cache of its own.
    let cache = dir.join("token-cache").join("admin-tokens.json");
    let with_cache = |args: &[&str]| {
        let mut c = cloud.admin_without_credentials(args);
        c.env("PASSTHRU_TOKEN_CACHE", &cache);
        c
    };
    let run = DeviceCodeRun::start(
        with_cache(&["--device-code", "agents", "list"]),
        PRINT_TIMEOUT,
    )?;
    ensure!(browser_side(&cloud, &run.user_code, OPS, &pw, &mut auth).await? == SecondFactor::Code);
    let listed = run.finish(END_TIMEOUT)?;
    let out = succeeded("admin --device-code agents list", &listed)?;
    ensure!(out.contains(&agent_id), "the agent is listed: {out}");
    ensure!(mode(&cache)? == 0o600, "the cache file is 0600");
    let cache_dir = cache.parent().ok_or_else(|| anyhow!("no cache dir"))?;
    ensure!(mode(cache_dir)? == 0o700, "the cache's directory is 0700");
    let entries = cache_entries(&cache)?;
    ensure!(entries.len() == 1, "{entries:?}");
    let entry = &entries[0];
    ensure!(
        entry["cloud"] == cloud.url.as_str() && entry["tenant"] == "contoso",
        "{entry}"
    );
    let access = entry["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let refresh = entry["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ensure!(!access.is_empty() && !refresh.is_empty(), "tokens cached");
    let shown_anywhere = |f: &Finished| {
        f.stdout.contains(&access)
            || f.stderr.contains(&access)
            || f.stdout.contains(&refresh)
            || f.stderr.contains(&refresh)
    };
    ensure!(!shown_anywhere(&listed), "no token printed");

    // 3. Again, without --device-code: the cached token, no prompt.
    let again = with_cache(&["agents", "list"]).output()?;
    let err = String::from_utf8_lossy(&again.stderr);
    ensure!(again.status.success(), "from the cache: {err}");
    ensure!(String::from_utf8_lossy(&again.stdout).contains(&agent_id));
    ensure!(!err.contains("devicelogin"), "no device prompt: {err}");
    ensure!(
        cache_entries(&cache)?[0]["access_token"] == access.as_str(),
        "the cached access token was used as it is"
    );
    // The access token expired (its expiry moved back in the cache): the refresh token is
    // redeemed, and both tokens are replaced (the cloud rotates refresh tokens).
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&cache)?)?;
    file["entries"][0]["expires_at"] = Value::from(0);
    std::fs::write(&cache, serde_json::to_vec(&file)?)?;
    let refreshed = with_cache(&["--json", "agents", "list"]).output()?;
    let err = String::from_utf8_lossy(&refreshed.stderr);
    ensure!(refreshed.status.success(), "after a refresh: {err}");
    ensure!(!err.contains("devicelogin"), "no device prompt: {err}");
    ensure!(String::from_utf8_lossy(&refreshed.stdout).contains(&agent_id));
    let entry = cache_entries(&cache)?
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the entry is gone"))?;
    ensure!(
        entry["access_token"] != access.as_str()
            && entry["refresh_token"] != refresh.as_str()
            && entry["expires_at"].as_i64().unwrap_or(0) > time_now(),
        "new tokens after the refresh: {}",
        entry["expires_at"]
    );
    // The refresh token it replaced is spent.
    let spent = http
        .post(format!("{}/contoso/oauth2/v2.0/token", cloud.url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", ADMIN_CLIENT_ID),
            ("refresh_token", &refresh),
        ])
        .send()
        .await?;
    ensure!(
        spent.status().as_u16() == 400,
        "the old refresh token is refused"
    );

    // 4. logout: the entry goes, and the next command has nothing to sign in with.
    let logout = with_cache(&["logout"]).output()?;
    let said = String::from_utf8_lossy(&logout.stdout);
    ensure!(
        logout.status.success(),
        "{}",
        String::from_utf8_lossy(&logout.stderr)
    );
    ensure!(
        said.lines().count() == 1 && said.starts_with("Signed out of tenant 'contoso'"),
        "{said}"
    );
    ensure!(
        cache_entries(&cache)?.is_empty(),
        "the cache holds no entry"
    );
    let after = with_cache(&["agents", "list"]).output()?;
    let err = String::from_utf8_lossy(&after.stderr);
    ensure!(!after.status.success(), "no sign-in left: {err}");
    ensure!(
        err.contains("--device-code") && err.contains("PASSTHRU_ADMIN_UPN"),
        "the error says what to do: {err}"
    );
    Ok(())
}

fn time_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
