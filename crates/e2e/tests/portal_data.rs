//! The portal against real data, in Chromium: an agent connected to a Samba forest, a
//! directory sync done, pass-through sign-ins logged. The dashboard shows the agent, the
//! sign-in log names the app and the agent, a synced user's page shows where they came from,
//! and axe-core finds no serious or critical violation on any page. The dashboard and the
//! sign-in log are kept as screenshots (with `PASSTHRU_UPDATE_SCREENSHOTS=1`, copied to
//! docs/screenshots/ for the README).

use std::io::Write as _;
use std::path::Path;

use anyhow::{anyhow, ensure};
use passthru_testkit::bed;
use passthru_testkit::fixture::{AgentStage, PtaSetup, ADMIN_UPN};
use passthru_testkit::procs::{fresh_dir, recorded_secret, secret_file, ForestEntry};
use passthru_testkit::{AccountState, TestUser};
use serde_json::{json, Value};

fn run_browser(spec: &Value, log: &Path) -> anyhow::Result<Value> {
    let mut child = passthru_e2e::chromium::browser_script("portal_browser.py", log)?;
    {
        let mut stdin = child.stdin.take().ok_or_else(|| anyhow!("no stdin"))?;
        writeln!(stdin, "{spec}")?;
    }
    let out = child.wait_with_output()?;
    let line = String::from_utf8_lossy(&out.stdout);
    let last = line.lines().last().unwrap_or_default();
    serde_json::from_str(last).map_err(|e| anyhow!("no JSON from the browser script ({e}): {line}"))
}

fn page<'a>(out: &'a Value, name: &str) -> anyhow::Result<&'a Value> {
    out["pages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["page"] == name && p["width"] == 1280)
        .ok_or_else(|| anyhow!("no page {name}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_with_an_agent_a_sync_and_sign_ins() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let person = |prefix: &str, display: &str| {
        let name = format!("{prefix}{}", &tag[..8]);
        TestUser::with(
            &name,
            &name,
            &corp.upn_suffix,
            AccountState::Good,
            recorded_secret("P0rtal"),
            display,
        )
    };
    let svc = person("psvc", "Portal sync service");
    let rita = person("rita", "Rita Portal");
    admin.create_user(&svc).await?;
    admin.create_user(&rita).await?;

    let dir = fresh_dir("portal-data")?;
    let t = PtaSetup::new(&dir, &corp)
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let entry = ForestEntry::for_forest(&corp).with_sync(&svc.upn, &secret_file(&svc.password)?, 2);
    let _agent = t.start_agent(&[entry])?;
    t.enable_pta()?;
    t.wait_synced(&rita.upn)?;

    // Pass-through sign-ins through the test app: two good, one wrong password.
    let c = t.sign_in()?;
    for (pw, ok) in [
        (rita.password.as_str(), true),
        (rita.password.as_str(), true),
        ("Wr0ng-portal", false),
    ] {
        let a = c.password("contoso", &rita.upn, pw).await?;
        ensure!(a.ok() == ok, "{}: {:?}", rita.upn, a.body);
    }
    let none_password = recorded_secret("N0ne");
    let none_upn = "nobody@contoso.example";
    t.cloud.add_user(none_upn, &none_password)?;

    let shots = dir.join("screenshots");
    let spec = json!({
        "portal": format!("{}/contoso/portal", t.cloud.url),
        "server_cert": t.cloud.data_dir.join("tls/server.pem"),
        "chromedriver": "/usr/bin/chromedriver",
        "screenshot_dir": shots,
        "admin": {"username": ADMIN_UPN, "password": t.cloud.admin_password},
        "none_user": {"username": none_upn, "password": none_password},
        "setting": {"key": "lockout_threshold", "bad": "0", "good": "9"},
        "axe": Path::new(env!("CARGO_MANIFEST_DIR")).join("js/node_modules/axe-core/axe.min.js"),
    });
    let out = run_browser(&spec, &dir.join("portal-browser.log"))?;
    std::fs::write(dir.join("portal-results.json"), format!("{out:#}"))?;
    ensure!(
        out["errors"].as_array().is_some_and(Vec::is_empty),
        "the browser script failed (results in {}): {:#}",
        dir.display(),
        out["errors"]
    );
    let text = |name: &str| -> anyhow::Result<String> {
        Ok(page(&out, name)?["text"]
            .as_str()
            .unwrap_or_default()
            .to_string())
    };
    let host = hostname();
    let dashboard = text("dashboard")?;
    ensure!(
        dashboard.contains("Agent health") && dashboard.contains("Active"),
        "{dashboard}"
    );
    let agents = text("agents")?;
    ensure!(
        agents.contains("Active") && agents.contains("Revoke") && agents.contains("Turn off"),
        "{agents}"
    );
    let signins = text("signins")?;
    ensure!(
        signins.contains(&rita.upn) && signins.contains("AADSTS50126"),
        "{signins}"
    );
    ensure!(
        signins.contains("Test app"),
        "the log does not name the app: {signins}"
    );
    ensure!(
        host.is_empty() || signins.contains(&host),
        "the log does not name the agent ({host}): {signins}"
    );
    let sync = text("sync")?;
    ensure!(sync.contains(&corp.dns_name), "{sync}");
    let users = text("users")?;
    // The forest is shared with other tests: the first page of users shows synced ones.
    ensure!(users.contains("onprem (synced)"), "{users}");
    ensure!(
        out["axe"].as_array().is_some_and(Vec::is_empty),
        "accessibility violations (serious or critical) with real data: {:#}",
        out["axe"]
    );

    // The two screenshots of the README.
    if std::env::var_os("PASSTHRU_UPDATE_SCREENSHOTS").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/screenshots");
        std::fs::create_dir_all(&docs)?;
        for name in ["dashboard-1280", "signins-1280"] {
            std::fs::copy(
                shots.join(format!("{name}.png")),
                docs.join(format!("portal-{name}.png")),
            )?;
        }
    }
    for name in ["dashboard-1280", "signins-1280"] {
        passthru_testkit::browser::check_png(&shots.join(format!("{name}.png")))?;
    }
    Ok(())
}

/// The host name agents report (the agent runs on this machine).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}
