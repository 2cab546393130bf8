//! `passthru-agent register` against the real cloud: success writes a private state dir;
//! a wrong admin password, a user who is not an administrator, an unreachable cloud and an
//! untrusted server certificate each fail with a clear message and a non-zero exit.

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output, Stdio};

use passthru_testkit::fixture::contoso_cloud;
use passthru_testkit::procs::{bin, fresh_dir, recorded_secret};

fn register(
    url: &str,
    ca: Option<&std::path::Path>,
    state: &std::path::Path,
    upn: &str,
    pw: &str,
) -> anyhow::Result<Output> {
    let mut c = Command::new(bin("passthru-agent"));
    c.args([
        "register",
        "--cloud",
        url,
        "--tenant",
        "contoso",
        "--state-dir",
    ])
    .arg(state);
    if let Some(ca) = ca {
        c.arg("--ca-file").arg(ca);
    }
    Ok(c.env("PASSTHRU_ADMIN_UPN", upn)
        .env("PASSTHRU_ADMIN_PASSWORD", pw)
        .stdin(Stdio::null())
        .output()?)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn registration_succeeds_or_fails_clearly() -> anyhow::Result<()> {
    let dir = fresh_dir("register")?;
    let cloud = contoso_cloud(&dir)?;
    let (admin, admin_pw) = (cloud.admin_upn.as_str(), cloud.admin_password.as_str());
    let ca = cloud.ca_file();

    // Wrong admin password.
    let o = register(
        &cloud.url,
        Some(&ca),
        &dir.join("a1"),
        admin,
        "Not-the-Passw0rd",
    )?;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("AADSTS50126"), "{}", stderr(&o));
    assert!(!dir.join("a1/agent.json").exists());

    // A user who is not an administrator.
    let user_pw = recorded_secret("Us3r");
    cloud.add_user("plain@contoso.example", &user_pw)?;
    let o = register(
        &cloud.url,
        Some(&ca),
        &dir.join("a2"),
        "plain@contoso.example",
        &user_pw,
    )?;
    assert!(!o.status.success());
    assert!(stderr(&o).contains("role"), "{}", stderr(&o));

    // Untrusted server certificate (no --ca-file: the system roots do not know our CA).
    let o = register(&cloud.url, None, &dir.join("a3"), admin, admin_pw)?;
    assert!(!o.status.success());
    assert!(
        stderr(&o).to_lowercase().contains("trusted"),
        "{}",
        stderr(&o)
    );

    // Unreachable cloud (nothing listens on port 1).
    let o = register(
        "https://127.0.0.1:1",
        Some(&ca),
        &dir.join("a4"),
        admin,
        admin_pw,
    )?;
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot reach the cloud"),
        "{}",
        stderr(&o)
    );

    // Success: the id on stdout, a private state dir.
    let state = dir.join("a5");
    let o = register(&cloud.url, Some(&ca), &state, admin, admin_pw)?;
    assert!(o.status.success(), "{}", stderr(&o));
    let id = String::from_utf8_lossy(&o.stdout).trim().to_string();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(
        std::fs::metadata(&state)?.permissions().mode() & 0o777,
        0o700
    );
    for f in std::fs::read_dir(&state)? {
        let f = f?;
        if f.file_type()?.is_file() {
            assert_eq!(
                f.metadata()?.permissions().mode() & 0o777,
                0o600,
                "{}",
                f.path().display()
            );
        }
    }
    // The cloud lists it (inactive until it runs).
    let list = cloud.admin(&["agents", "list"])?;
    assert!(list.contains(&id) && list.contains("Inactive"), "{list}");

    // helpmsg explains a code and what to do.
    let h = Command::new(bin("passthru-agent"))
        .args(["helpmsg", "1909"])
        .output()?;
    assert!(h.status.success());
    let text = String::from_utf8_lossy(&h.stdout);
    assert!(text.contains("locked out"), "{text}");
    assert!(!Command::new(bin("passthru-agent"))
        .args(["helpmsg", "4242"])
        .output()?
        .status
        .success());
    Ok(())
}
