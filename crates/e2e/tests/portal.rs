//! The administration portal in headless Chromium (`portal_browser.py`, built on the Browser of
//! `browser_rp.py`): the Global Administrator signs in through the real sign-in pages, every
//! page is visited at 1280 and at 390 px wide (screenshots under the run dir, checked to be
//! real images of that width, and the visible text checked for its content), a setting is
//! changed through its form (a refused value first), sign-out leads back to the sign-in page,
//! and a user without a role gets the 403 page.
//!
//! Needs /usr/bin/chromium, /usr/bin/chromedriver and, for Python, selenium and authlib
//! (`PASSTHRU_NEED_BROWSER=1 bash scripts/deps.sh`). No AD test bed is needed.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{anyhow, ensure, Context as _};
use passthru_proto::admin::ADMIN_CLIENT_ID;
use passthru_testkit::browser::{check_png, no_redirect_client};
use passthru_testkit::fixture::{contoso_cloud, ADMIN_UPN};
use passthru_testkit::http::{client, password_grant};
use passthru_testkit::procs::{fresh_dir, recorded_secret};
use serde_json::{json, Value};

const NONE_UPN: &str = "alice@contoso.example";
/// Every key of the tenant settings (crates/cloud/src/settings.rs KEYS).
const KEYS: [&str; 8] = [
    "request_deadline_ms",
    "lockout_threshold",
    "lockout_duration_seconds",
    "sync_required",
    "sign_in_attribute",
    "writeback",
    "signin_retention_days",
    "mfa",
];

fn run_browser(spec: &Value, log: &Path) -> anyhow::Result<Value> {
    let mut child = passthru_e2e::chromium::browser_script("portal_browser.py", log)?;
    {
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        writeln!(stdin, "{spec}")?;
    }
    let out = child.wait_with_output()?;
    let line = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(line.trim()).with_context(|| {
        format!(
            "the portal script said {line:?} ({}); its log:\n{}",
            out.status,
            std::fs::read_to_string(log).unwrap_or_default()
        )
    })
}

fn page<'a>(out: &'a Value, name: &str, width: u64) -> anyhow::Result<&'a Value> {
    out["pages"]
        .as_array()
        .and_then(|p| p.iter().find(|x| x["page"] == name && x["width"] == width))
        .ok_or_else(|| anyhow!("page {name} at {width} px was not visited: {out:#}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_in_chromium() -> anyhow::Result<()> {
    let dir = fresh_dir("portal")?;
    let cloud = contoso_cloud(&dir)?;
    let none_password = recorded_secret("Al1ce");
    cloud.add_user(NONE_UPN, &none_password)?;

    // Sign-in log lines: two good and one wrong password for the admin, two wrong for alice
    // (`admin user add` signs the admin in once more, and the portal sign-in is the fourth success).
    let http = client(&cloud.ca_file())?;
    let grant = |user: &'static str, pw: String| {
        let http = http.clone();
        let url = cloud.url.clone();
        async move { password_grant(&http, &url, "contoso", ADMIN_CLIENT_ID, user, &pw, "openid").await }
    };
    ensure!(grant(ADMIN_UPN, cloud.admin_password.clone()).await?.ok());
    ensure!(grant(ADMIN_UPN, cloud.admin_password.clone()).await?.ok());
    for (user, pw) in [
        (ADMIN_UPN, "wrong-1"),
        (NONE_UPN, "wrong-2"),
        (NONE_UPN, "wrong-3"),
    ] {
        let a = grant(user, pw.to_string()).await?;
        ensure!(a.code() == Some(50126), "{user}: {:?}", a.body);
    }

    // Without a session the portal sends the browser to our own /authorize, with PKCE.
    let nr = no_redirect_client(&cloud.ca_file())?;
    let r = nr
        .get(format!("{}/contoso/portal/signins.csv", cloud.url))
        .send()
        .await?;
    let location = r
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    ensure!(r.status().as_u16() == 303, "{}", r.status());
    for part in [
        "/contoso/oauth2/v2.0/authorize?",
        "code_challenge_method=S256",
        "nonce=",
        "state=",
        "portal%2Fcallback",
    ] {
        ensure!(location.contains(part), "{part} not in {location}");
    }
    let set_cookie = r
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    ensure!(
        set_cookie.contains("HttpOnly") && set_cookie.contains("Secure"),
        "{set_cookie}"
    );

    let shots = dir.join("screenshots");
    let spec = json!({
        "portal": format!("{}/contoso/portal", cloud.url),
        "server_cert": cloud.data_dir.join("tls/server.pem"),
        "chromedriver": "/usr/bin/chromedriver",
        "screenshot_dir": shots,
        "admin": {"username": ADMIN_UPN, "password": cloud.admin_password},
        "none_user": {"username": NONE_UPN, "password": none_password},
        "setting": {"key": "lockout_threshold", "bad": "0", "good": "7"},
        "axe": std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("js/node_modules/axe-core/axe.min.js"),
    });
    let out = run_browser(&spec, &dir.join("portal-browser.log"))?;
    std::fs::write(dir.join("portal-results.json"), format!("{out:#}"))?;
    ensure!(
        out["errors"].as_array().is_some_and(Vec::is_empty),
        "the browser script failed (results in {}): {:#}",
        dir.display(),
        out["errors"]
    );

    let must: &[(&str, &[&str])] = &[
        (
            "dashboard",
            &[
                "Sign-ins per minute by result",
                "success: 4",
                "failure: 3",
                "Failures by reason",
                "AADSTS50126",
                "Pass-through latency",
                "p99",
                "Agent health",
                "No authentication agent is registered.",
            ],
        ),
        ("users", &[ADMIN_UPN, NONE_UPN, "GlobalAdministrator"]),
        ("domains", &["contoso.example", "verified"]),
        ("apps", &["Apps"]),
        ("agents", &["No authentication agent is registered."]),
        (
            "sync",
            &[
                "Directory sync",
                "No forest is synced",
                "No group is synced.",
            ],
        ),
        ("settings", &KEYS),
        (
            "signins",
            &[
                NONE_UPN,
                ADMIN_UPN,
                "AADSTS50126",
                "success",
                "Download as CSV",
            ],
        ),
        ("audit", &["Audit log", "Download as CSV", "Operation"]),
    ];
    let mut failures = Vec::new();
    for width in [1280u64, 390] {
        for (name, texts) in must {
            let p = page(&out, name, width)?;
            let text = p["text"].as_str().unwrap_or_default();
            for want in texts.iter().chain(&["contoso", ADMIN_UPN, "Sign out"]) {
                if !text.contains(want) {
                    failures.push(format!("{name} at {width}: no {want:?} in {text:?}"));
                }
            }
            let shot = PathBuf::from(p["screenshot"].as_str().unwrap_or_default());
            match check_png(&shot) {
                Ok((w, _)) if u64::from(w) == width => {}
                Ok((w, h)) => {
                    failures.push(format!("{}: {w}x{h}, not {width} wide", shot.display()))
                }
                Err(e) => failures.push(format!("{e:#}")),
            }
            if p["scroll_width"].as_u64().unwrap_or(u64::MAX) > width {
                failures.push(format!(
                    "{name} at {width}: the page scrolls sideways ({} px)",
                    p["scroll_width"]
                ));
            }
        }
    }
    ensure!(
        failures.is_empty(),
        "{} portal checks failed (screenshots in {}):\n{}",
        failures.len(),
        shots.display(),
        failures.join("\n")
    );

    // The setting changed through the portal's form is in the audit log, marked portal; a
    // sign-in's page says what its codes mean and what to do.
    let audit = out["audit_after_setting"].as_str().unwrap_or_default();
    ensure!(
        audit.contains("setSetting")
            && audit.contains("portal")
            && audit.contains("/settings/lockout_threshold"),
        "{audit}"
    );
    let detail = out["signin_detail"].as_str().unwrap_or_default();
    ensure!(
        detail.contains("What to do") && detail.contains("Correlation id"),
        "{detail}"
    );

    // axe-core (in Chromium) finds no serious or critical violation on any page it checked:
    // the sign-in pages, every portal page, a user's page, the confirmation of a change.
    let checked = out["axe_pages"].as_array().map_or(0, Vec::len);
    ensure!(
        checked >= 17,
        "axe-core checked only {checked} pages: {}",
        out["axe_pages"]
    );
    ensure!(
        out["axe"].as_array().is_some_and(Vec::is_empty),
        "accessibility violations (serious or critical): {:#}",
        out["axe"]
    );
    let user_page = out["user_page"].as_str().unwrap_or_default();
    ensure!(
        user_page.contains("Multi-factor authentication") && user_page.contains("Recent sign-ins"),
        "{user_page}"
    );
    let confirm = out["confirm_page"].as_str().unwrap_or_default();
    ensure!(
        confirm.contains("Are you sure?") && confirm.contains("recovery codes"),
        "{confirm}"
    );

    // The refused value shows the settings' own sentence; the good one is saved.
    let bad = out["setting_bad"].as_str().unwrap_or_default();
    ensure!(
        bad.contains("'0' is not a valid value for lockout_threshold"),
        "{bad}"
    );
    let good = out["setting_good"].as_str().unwrap_or_default();
    ensure!(good.contains("Saved lockout_threshold."), "{good}");
    ensure!(
        good.lines()
            .any(|l| l.contains("lockout_threshold") && l.contains(" 7 ")),
        "the new value is not shown: {good}"
    );
    let failures_only = out["signins_failure"].as_str().unwrap_or_default();
    ensure!(
        failures_only.contains("AADSTS50126") && !failures_only.contains(" success "),
        "{failures_only}"
    );
    ensure!(
        out["csv_href"]
            .as_str()
            .is_some_and(|h| h.contains("/portal/signins.csv?") && h.contains("result=failure")),
        "{}",
        out["csv_href"]
    );
    // Sign-out ends the portal and the sign-on sessions: the dashboard asks again.
    ensure!(
        out["after_signout_url"]
            .as_str()
            .is_some_and(|u| u.contains("/oauth2/v2.0/authorize")),
        "{}",
        out["after_signout_url"]
    );
    // A user without a role is refused with the 403 page.
    let none = out["none_user"].as_str().unwrap_or_default();
    ensure!(
        out["none_user_title"]
            .as_str()
            .is_some_and(|t| t.starts_with("Access denied"))
            && none.contains("You don't have access to this page")
            && none.contains(NONE_UPN),
        "{none}"
    );
    check_png(&shots.join("none-user.png"))?;
    eprintln!("portal test: screenshots in {}", shots.display());
    Ok(())
}
