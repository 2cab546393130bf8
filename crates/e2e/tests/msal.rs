//! MSAL for Python, unchanged, against the cloud on 127.0.0.1:443 (MSAL asks
//! `https://HOST/common/userrealm/...` on 443 whatever the authority's port).

use std::io::Write as _;
use std::process::{Command, Stdio};

use passthru_testkit::bed;
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::procs::fresh_dir;
use serde_json::{json, Value};

#[test]
fn msal_python_signs_in_and_gets_aadsts_codes() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let t = PtaSetup::new(&fresh_dir("msal")?, &corp)
        .listen("127.0.0.1:443")
        .app("MSAL app")
        .start()?;
    let cloud = &t.cloud;
    let client_id = t.client_id()?;

    let good = corp.user("good")?;
    let unicode = corp.user("unicode")?;
    let spare = corp.user("spare3")?;
    // An AD user whose own password is refused with `code`.
    let refused = |name: &str, code: u64| -> anyhow::Result<(String, String, Option<u64>)> {
        let u = corp.user(name)?;
        Ok((u.upn.clone(), u.password.clone(), Some(code)))
    };
    let cases = [
        (good.upn.clone(), good.password.clone(), None),
        (unicode.upn.clone(), unicode.password.clone(), None),
        (
            spare.upn.clone(),
            "Wrong-Passw0rd!".to_string(),
            Some(50126),
        ),
        refused("locked", 50053)?,
        refused("disabled", 50057)?,
        refused("mustchange", 50144)?,
        refused("hours", 80012)?,
        (cloud.admin_upn.clone(), cloud.admin_password.clone(), None),
    ];
    let spec = json!({
        "authority": format!("{}/contoso", cloud.url),
        "ca_file": cloud.ca_file(),
        "client_id": client_id,
        "cases": cases.iter().map(|(u, p, _)| json!({"username": u, "password": p})).collect::<Vec<_>>(),
    });
    let script = passthru_e2e::test_file("msal_client.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .env_remove("REQUESTS_CA_BUNDLE")
        .env_remove("CURL_CA_BUNDLE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdin"))?
        .write_all(spec.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    assert!(
        out.status.success(),
        "MSAL script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    let results = v["results"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no results: {v}"))?;
    assert_eq!(results.len(), cases.len());
    for ((user, _, want), got) in cases.iter().zip(results) {
        match want {
            None => {
                assert_eq!(got["ok"], true, "{user}: {got}");
                assert_eq!(
                    got["claims"]["preferred_username"]
                        .as_str()
                        .map(str::to_ascii_lowercase),
                    Some(user.to_ascii_lowercase()),
                    "{got}"
                );
                assert_eq!(got["claims"]["ver"], "2.0");
                assert_eq!(got["has_refresh_token"], true);
            }
            Some(code) => {
                assert_eq!(got["ok"], false, "{user}: {got}");
                assert_eq!(got["error_codes"], json!([code]), "{user}: {got}");
                assert!(
                    got["error_description"]
                        .as_str()
                        .unwrap_or_default()
                        .starts_with(&format!("AADSTS{code}: ")),
                    "{got}"
                );
            }
        }
    }
    Ok(())
}
