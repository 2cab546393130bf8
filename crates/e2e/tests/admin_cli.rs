//! Every `passthru-cloud admin` command against a running cloud (real processes, HTTPS, the
//! SQLite store, a real DNS server for domain proofs), and what each change does to sign-in.

use std::process::Output;

use passthru_testkit::fixture::contoso_cloud;
use passthru_testkit::http::{client, SignInClient};
use passthru_testkit::procs::{fresh_dir, recorded_secret, Cloud};
use serde_json::Value;

/// A 1x1 PNG.
const PNG_1X1: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89\0\0\0\rIDATx\x9cc\xf8\xcf\xc0\xf0\x1f\0\x05\0\x01\xff\x89\x99=\x1d\0\0\0\0IEND\xaeB`\x82";

fn json(cloud: &Cloud, args: &[&str]) -> anyhow::Result<Value> {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    Ok(serde_json::from_str(&cloud.admin(&full)?)?)
}

/// `passthru-cloud admin ARGS` as the Global Administrator, with `user_pw` as the
/// password a user command asks for.
fn run(cloud: &Cloud, user_pw: &str, args: &[&str]) -> anyhow::Result<Output> {
    Ok(
        std::process::Command::new(passthru_testkit::procs::bin("passthru-cloud"))
            .args([
                "admin",
                "--url",
                &cloud.url,
                "--tenant",
                &cloud.tenant,
                "--ca-file",
            ])
            .arg(cloud.ca_file())
            .args(args)
            .env("PASSTHRU_ADMIN_UPN", &cloud.admin_upn)
            .env("PASSTHRU_ADMIN_PASSWORD", &cloud.admin_password)
            .env("PASSTHRU_USER_PASSWORD", user_pw)
            .stdin(std::process::Stdio::null())
            .output()?,
    )
}

/// Runs a command that must fail (a user password, when asked, is a valid one); returns
/// its standard error.
fn refused(cloud: &Cloud, args: &[&str]) -> anyhow::Result<String> {
    refused_with(cloud, "Long-enough-1", args)
}

fn refused_with(cloud: &Cloud, user_pw: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = run(cloud, user_pw, args)?;
    anyhow::ensure!(!out.status.success(), "{args:?} succeeded");
    Ok(String::from_utf8_lossy(&out.stderr).to_string())
}

fn with_password(cloud: &Cloud, pw: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = run(cloud, pw, args)?;
    anyhow::ensure!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn users_roles_and_blocking() -> anyhow::Result<()> {
    let dir = fresh_dir("admin-cli-users")?;
    let cloud = contoso_cloud(&dir)?;
    let app = cloud.admin(&["app", "add", "Probe", "--public"])?;
    let sign_in = SignInClient::new(&cloud.ca_file(), &cloud.url, app.trim())?;
    let pw = recorded_secret("Us3r");
    with_password(
        &cloud,
        &pw,
        &[
            "user",
            "add",
            "amy@contoso.example",
            "--display-name",
            "Amy Lee",
        ],
    )?;
    for i in 0..4 {
        cloud.add_user(&format!("bob{i}@contoso.example"), &pw)?;
    }
    // Paging and search.
    let page = json(&cloud, &["user", "list", "--top", "2"])?;
    assert_eq!(page["users"].as_array().map(Vec::len), Some(2));
    let token = page["next_skiptoken"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let next = json(
        &cloud,
        &["user", "list", "--top", "2", "--skiptoken", &token],
    )?;
    assert_eq!(next["users"].as_array().map(Vec::len), Some(2));
    assert_ne!(page["users"][0]["upn"], next["users"][0]["upn"]);
    let all = json(&cloud, &["user", "list", "--top", "2", "--all"])?;
    assert_eq!(all["users"].as_array().map(Vec::len), Some(6), "{all}");
    let found = json(&cloud, &["user", "list", "--search", "lee"])?;
    assert_eq!(found["users"][0]["upn"], "amy@contoso.example", "{found}");
    let text = cloud.admin(&["user", "list", "--search", "bob", "--top", "3"])?;
    assert_eq!(text.lines().count(), 3, "{text}");
    let amy = json(&cloud, &["user", "show", "amy@contoso.example"])?;
    assert_eq!(amy["display_name"], "Amy Lee");
    assert_eq!(amy["source"], "cloud");
    assert_eq!(amy["enabled"], true);
    assert!(cloud
        .admin(&["user", "show", "amy@contoso.example"])?
        .contains("Amy Lee"));

    // A new password works at once; the old one and the old refresh token do not.
    let first = sign_in
        .password_with_scope(
            "contoso",
            "amy@contoso.example",
            &pw,
            "openid offline_access",
        )
        .await?;
    assert!(first.ok(), "{}", first.body);
    let pw2 = recorded_secret("N3w");
    with_password(
        &cloud,
        &pw2,
        &["user", "set-password", "amy@contoso.example"],
    )?;
    assert_eq!(
        sign_in
            .password("contoso", "amy@contoso.example", &pw)
            .await?
            .code(),
        Some(50126)
    );
    assert!(sign_in
        .password("contoso", "amy@contoso.example", &pw2)
        .await?
        .ok());
    let refresh = sign_in
        .http
        .post(format!("{}/contoso/oauth2/v2.0/token", cloud.url))
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", sign_in.client_id.as_str()),
            (
                "refresh_token",
                first.body["refresh_token"].as_str().unwrap_or_default(),
            ),
        ])
        .send()
        .await?;
    assert_eq!(
        refresh.status().as_u16(),
        400,
        "refresh token ended with the password change"
    );
    let short = refused_with(&cloud, "short", &["user", "add", "x@contoso.example"])?;
    assert!(short.contains("at least 8 characters"), "{short}");

    // Block and unblock.
    cloud.admin(&["user", "disable", "amy@contoso.example"])?;
    let blocked = sign_in
        .password("contoso", "amy@contoso.example", &pw2)
        .await?;
    assert_eq!(blocked.code(), Some(50057), "{}", blocked.body);
    assert_eq!(
        json(&cloud, &["user", "show", "amy@contoso.example"])?["enabled"],
        false
    );
    cloud.admin(&["user", "enable", "amy@contoso.example"])?;
    assert!(sign_in
        .password("contoso", "amy@contoso.example", &pw2)
        .await?
        .ok());

    // Roles: a Hybrid Identity Administrator may list agents but not users.
    let e = refused(&cloud, &["user", "role", "amy@contoso.example", "Owner"])?;
    assert!(e.contains("HybridIdentityAdministrator"), "{e}");
    cloud.admin(&[
        "user",
        "role",
        "amy@contoso.example",
        "HybridIdentityAdministrator",
    ])?;
    let as_amy = |args: &[&str]| cloud.admin_as("contoso", "amy@contoso.example", &pw2, args);
    assert!(as_amy(&["agents", "list"])?.status.success());
    let denied = as_amy(&["user", "list"])?;
    assert!(!denied.status.success());
    assert!(String::from_utf8_lossy(&denied.stderr).contains("needs the role"));

    // The last Global Administrator cannot lose the role, be blocked or be deleted.
    let e = refused(&cloud, &["user", "role", "admin@contoso.example", "none"])?;
    assert!(e.contains("last Global Administrator"), "{e}");
    let e = refused(&cloud, &["user", "disable", "admin@contoso.example"])?;
    assert!(e.contains("your own"), "{e}");

    // Delete.
    cloud.admin(&["user", "delete", "bob0@contoso.example"])?;
    assert_eq!(
        sign_in
            .password("contoso", "bob0@contoso.example", &pw)
            .await?
            .code(),
        Some(50034)
    );
    let e = refused(&cloud, &["user", "show", "bob0@contoso.example"])?;
    assert!(e.contains("No user"), "{e}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn domains_apps_settings_and_the_sign_in_log() -> anyhow::Result<()> {
    let dir = fresh_dir("admin-cli-rest")?;
    let cloud = contoso_cloud(&dir)?;
    let pw = recorded_secret("D0m");

    // A domain takes part in nothing until its TXT record proves control.
    let added = json(&cloud, &["domain", "add", "Fabrikam.Example"])?;
    assert_eq!(added["verified"], false);
    let value = added["verification"]["value"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(value.starts_with("passthru-verification="), "{added}");
    let text = cloud.admin(&["domain", "show", "fabrikam.example"])?;
    assert!(
        text.contains(&value) && text.contains("unverified"),
        "{text}"
    );
    let e = refused(&cloud, &["user", "add", "x@fabrikam.example"])?;
    assert!(e.contains("not verified"), "{e}");
    let e = refused(&cloud, &["domain", "verify", "fabrikam.example"])?;
    assert!(e.contains("No TXT record"), "{e}");
    cloud.dns.publish_txt("fabrikam.example", "v=spf1 -all")?;
    let e = refused(&cloud, &["domain", "verify", "fabrikam.example"])?;
    assert!(e.contains("v=spf1"), "the records seen are named: {e}");
    cloud.dns.publish_txt("fabrikam.example", &value)?;
    assert!(cloud
        .admin(&["domain", "verify", "fabrikam.example"])?
        .contains("verified"));
    let list = json(&cloud, &["domain", "list"])?;
    let fab = list["domains"]
        .as_array()
        .and_then(|d| d.iter().find(|x| x["name"] == "fabrikam.example"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(fab["verified"], true, "{list}");
    assert!(refused(&cloud, &["domain", "add", "fabrikam.example"])?.contains("already"));
    cloud.add_user("eve@fabrikam.example", &pw)?;
    let e = refused(&cloud, &["domain", "remove", "fabrikam.example"])?;
    assert!(e.contains("used by 1 user"), "{e}");
    let e = refused(&cloud, &["domain", "remove", "contoso.example"])?;
    assert!(e.contains("initial domain"), "{e}");
    cloud.admin(&["user", "delete", "eve@fabrikam.example"])?;
    cloud.admin(&["domain", "remove", "fabrikam.example"])?;
    assert!(!cloud.admin(&["domain", "list"])?.contains("fabrikam"));

    // Apps: list, redirect URIs, secret rotation, delete.
    let api = cloud.admin(&["app", "add", "Orders API", "--confidential"])?;
    let api_id = api.lines().next().unwrap_or_default().to_string();
    let daemon = cloud.admin(&["app", "add", "Daemon", "--confidential"])?;
    let mut lines = daemon.lines();
    let (daemon_id, old_secret) = (
        lines.next().unwrap_or_default().to_string(),
        lines.next().unwrap_or_default().to_string(),
    );
    let web = cloud.admin(&[
        "app",
        "add",
        "Web",
        "--public",
        "--redirect-uri",
        "https://web.example/cb",
    ])?;
    let web_id = web.trim().to_string();
    let apps = json(&cloud, &["app", "list"])?;
    assert_eq!(apps["apps"].as_array().map(Vec::len), Some(3), "{apps}");
    assert!(
        !apps.to_string().contains(&old_secret),
        "secrets are never listed"
    );
    let set = json(
        &cloud,
        &[
            "app",
            "set-redirect-uris",
            &web_id,
            "--redirect-uri",
            "https://web.example/a",
            "--redirect-uri",
            "http://localhost:8400/cb",
        ],
    )?;
    assert_eq!(set["redirect_uris"][1], "http://localhost:8400/cb");
    let e = refused(
        &cloud,
        &[
            "app",
            "set-redirect-uris",
            &web_id,
            "--redirect-uri",
            "http://web.example/",
        ],
    )?;
    assert!(e.contains("https"), "{e}");
    assert_eq!(
        json(&cloud, &["app", "show", &web_id])?["redirect_uris"][0],
        "https://web.example/a"
    );
    let http = client(&cloud.ca_file())?;
    let credentials = |secret: String| {
        let http = http.clone();
        let url = format!("{}/contoso/oauth2/v2.0/token", cloud.url);
        let (daemon_id, api_id) = (daemon_id.clone(), api_id.clone());
        async move {
            let r = http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", daemon_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", &format!("{api_id}/.default")),
                ])
                .send()
                .await?;
            Ok::<u16, anyhow::Error>(r.status().as_u16())
        }
    };
    assert_eq!(credentials(old_secret.clone()).await?, 200);
    let new_secret = cloud
        .admin(&["app", "rotate-secret", &daemon_id])?
        .trim()
        .to_string();
    assert_ne!(new_secret, old_secret);
    assert_eq!(
        credentials(old_secret).await?,
        401,
        "the old secret stops at once"
    );
    assert_eq!(credentials(new_secret.clone()).await?, 200);
    assert!(refused(&cloud, &["app", "rotate-secret", &web_id])?.contains("public"));

    // Several secrets at once: a second one works beside the first; removing the first
    // stops it only.
    let added = cloud.admin(&[
        "app",
        "secret",
        "add",
        &daemon_id,
        "--expires-in-days",
        "30",
    ])?;
    let mut lines = added.lines();
    let (second_id, second) = (
        lines.next().unwrap_or_default().to_string(),
        lines.next().unwrap_or_default().to_string(),
    );
    assert_eq!(credentials(second.clone()).await?, 200);
    assert_eq!(credentials(new_secret.clone()).await?, 200);
    let list = json(&cloud, &["app", "credential", "list", &daemon_id])?;
    let first_id = list["credentials"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] != second_id.as_str()))
        .and_then(|c| c["id"].as_str())
        .unwrap_or_default()
        .to_string();
    assert!(!list.to_string().contains(&second), "{list}");
    cloud.admin(&["app", "secret", "remove", &daemon_id, &first_id])?;
    assert_eq!(credentials(new_secret.clone()).await?, 401);
    assert_eq!(credentials(second.clone()).await?, 200);
    let third = json(&cloud, &["app", "secret", "add", &daemon_id])?;
    let mut keys: Vec<&str> = third
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["expires_at", "hint", "id", "secret"], "{third}");
    assert!(refused(
        &cloud,
        &[
            "app",
            "secret",
            "add",
            &daemon_id,
            "--expires-in-days",
            "731"
        ]
    )?
    .contains("731"));

    // A certificate (its key never given to the cloud) and a client assertion signed with it.
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "daemon");
    let cert = params.self_signed(&key)?;
    let (cert_file, key_file) = (dir.join("daemon.pem"), dir.join("daemon.key"));
    std::fs::write(&cert_file, cert.pem())?;
    std::fs::write(&key_file, key.serialize_pem())?;
    let e = refused(
        &cloud,
        &[
            "app",
            "credential",
            "add",
            &daemon_id,
            "--cert",
            &key_file.to_string_lossy(),
        ],
    )?;
    assert!(
        e.contains("private key") && e.contains("Nothing was sent"),
        "{e}"
    );
    let registered = cloud.admin(&[
        "app",
        "credential",
        "add",
        &daemon_id,
        "--cert",
        &cert_file.to_string_lossy(),
    ])?;
    let cert_id = registered.lines().next().unwrap_or_default().to_string();
    assert!(registered.contains("x5t#S256"), "{registered}");
    let listed = cloud.admin(&["app", "credential", "list", &daemon_id])?;
    assert!(
        listed.contains(&format!("{cert_id}\tcertificate")),
        "{listed}"
    );
    let discovery: Value = http
        .get(format!(
            "{}/contoso/v2.0/.well-known/openid-configuration",
            cloud.url
        ))
        .send()
        .await?
        .json()
        .await?;
    let token_endpoint = discovery["token_endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let assertion = {
        use base64::Engine as _;
        use sha2::Digest as _;
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.x5t_s256 = Some(
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(cert.der())),
        );
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = serde_json::json!({
            "aud": token_endpoint, "iss": daemon_id, "sub": daemon_id,
            "exp": now + 600, "nbf": now, "jti": uuid::Uuid::new_v4().to_string(),
        });
        jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_der(&key.serialize_der()),
        )?
    };
    let with_assertion = || {
        let http = http.clone();
        let url = format!("{}/contoso/oauth2/v2.0/token", cloud.url);
        let (daemon_id, api_id, assertion) = (daemon_id.clone(), api_id.clone(), assertion.clone());
        async move {
            let r = http
                .post(url)
                .form(&[
                    ("grant_type", "client_credentials"),
                    ("client_id", daemon_id.as_str()),
                    (
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    ),
                    ("client_assertion", assertion.as_str()),
                    ("scope", &format!("{api_id}/.default")),
                ])
                .send()
                .await?;
            Ok::<u16, anyhow::Error>(r.status().as_u16())
        }
    };
    assert_eq!(with_assertion().await?, 200);
    cloud.admin(&["app", "credential", "remove", &daemon_id, &cert_id])?;
    assert_eq!(
        with_assertion().await?,
        401,
        "a removed certificate stops at once"
    );
    assert_eq!(credentials(second.clone()).await?, 200);
    cloud.admin(&["app", "delete", &daemon_id])?;
    assert_ne!(credentials(new_secret).await?, 200);
    assert!(refused(&cloud, &["app", "show", &daemon_id])?.contains("No app"));

    // Settings: validated, with the reason when refused.
    let all = json(&cloud, &["settings", "get"])?;
    let keys: Vec<&str> = all["settings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s["key"].as_str())
        .collect();
    for k in [
        "request_deadline_ms",
        "lockout_threshold",
        "lockout_duration_seconds",
        "sync_required",
        "sign_in_attribute",
        "writeback",
        "signin_retention_days",
        "mfa",
    ] {
        assert!(keys.contains(&k), "{k} in {keys:?}");
    }
    cloud.admin(&["settings", "set", "lockout_threshold", "5"])?;
    cloud.admin(&["settings", "set", "sign_in_attribute", "mail"])?;
    let one = json(&cloud, &["settings", "get", "lockout_threshold"])?;
    assert_eq!(one["settings"][0]["value"], "5", "{one}");
    assert!(cloud
        .admin(&["settings", "get", "sign_in_attribute"])?
        .contains("mail"));
    let e = refused(&cloud, &["settings", "set", "lockout_threshold", "0"])?;
    assert!(e.contains("1 to 100"), "{e}");
    let e = refused(&cloud, &["settings", "set", "lockout", "3"])?;
    assert!(
        e.contains("lockout_threshold"),
        "the known keys are named: {e}"
    );
    assert!(refused(&cloud, &["settings", "set", "writeback", "maybe"])?.contains("true or false"));
    let e = refused(&cloud, &["settings", "set", "mfa", "sometimes"])?;
    assert!(e.contains("off, optional"), "{e}");
    assert!(refused(&cloud, &["settings", "get", "nope"])?.contains("not a setting"));
    // The store restarts with what was set.
    let mut cloud = cloud;
    cloud.stop();
    cloud.serve()?;
    assert_eq!(
        json(&cloud, &["settings", "get", "lockout_threshold"])?["settings"][0]["value"],
        "5"
    );

    // The audit log holds each change the CLI made, marked cli, with before and after.
    let audit = json(
        &cloud,
        &["audit", "list", "--operation", "setSetting", "--top", "2"],
    )?;
    assert_eq!(
        audit["entries"].as_array().map(Vec::len),
        Some(2),
        "{audit}"
    );
    assert!(
        audit["next_skiptoken"].is_string(),
        "more entries than the page: {audit}"
    );
    let all = json(
        &cloud,
        &["audit", "list", "--operation", "setSetting", "--top", "50"],
    )?;
    let entries = all["entries"].as_array().cloned().unwrap_or_default();
    // Newest first: the refused values came after the last change that was made.
    let done = entries
        .iter()
        .find(|e| e["status"] == 200)
        .ok_or_else(|| anyhow::anyhow!("no change made: {all}"))?;
    assert_eq!(done["via"], "cli", "{done}");
    assert_eq!(done["target"], "/settings/sign_in_attribute", "{done}");
    assert_eq!(
        done["before"]["sign_in_attribute"], "userPrincipalName",
        "{done}"
    );
    assert_eq!(done["after"]["sign_in_attribute"], "mail", "{done}");
    assert!(
        entries
            .iter()
            .any(|e| e["status"] == 400 && e["request"]["value"] == "sometimes"),
        "a refused change is recorded with its status: {all}"
    );
    let text = cloud.admin(&["audit", "list", "--since", "1h"])?;
    assert!(
        text.contains("setSetting /settings/lockout_threshold"),
        "{text}"
    );
    let csv = cloud.admin(&["audit", "list", "--csv"])?;
    assert!(
        csv.starts_with("time,actor,via,client_ip,operation"),
        "{csv}"
    );

    // Branding: a logo file (an image, recognised by its bytes) and the name setting.
    let logo = std::env::temp_dir().join(format!("logo-{}.png", uuid::Uuid::new_v4()));
    std::fs::write(&logo, PNG_1X1)?;
    let set = cloud.admin(&["branding", "logo", &logo.to_string_lossy()])?;
    assert!(set.contains("Logo set (image/png"), "{set}");
    std::fs::write(&logo, b"<svg/>")?;
    let e = refused(&cloud, &["branding", "logo", &logo.to_string_lossy()])?;
    assert!(e.contains("PNG, JPEG, GIF or WebP"), "{e}");
    std::fs::remove_file(&logo)?;
    cloud.admin(&["settings", "set", "branding_name", "Contoso Ltd"])?;
    let e = refused(
        &cloud,
        &["settings", "set", "branding_accent_color", "#ffff00"],
    )?;
    assert!(e.contains("4.5:1"), "{e}");

    // The sign-in log: filters, text, JSON and CSV.
    cloud.add_user("=cmd@contoso.example", &pw)?;
    let sign_in = SignInClient::new(&cloud.ca_file(), &cloud.url, &web_id)?;
    assert!(sign_in
        .password("contoso", "=cmd@contoso.example", &pw)
        .await?
        .ok());
    let wrong = recorded_secret("Wr0ng");
    for _ in 0..2 {
        let r = sign_in
            .password("contoso", "=cmd@contoso.example", &wrong)
            .await?;
        assert_eq!(r.code(), Some(50126));
    }
    let failures = json(
        &cloud,
        &[
            "signins",
            "list",
            "--user",
            "=CMD@contoso.example",
            "--result",
            "failure",
            "--since",
            "10m",
        ],
    )?;
    let lines = failures["signins"].as_array().cloned().unwrap_or_default();
    assert_eq!(lines.len(), 2, "{failures}");
    assert_eq!(lines[0]["aadsts"], 50126);
    assert!(lines[0]["correlation_id"].is_string() && lines[0]["client_ip"] == "127.0.0.1");
    let by_code = json(&cloud, &["signins", "list", "--result", "50126"])?;
    assert_eq!(by_code["signins"].as_array().map(Vec::len), Some(2));
    let ok = json(
        &cloud,
        &[
            "signins",
            "list",
            "--result",
            "success",
            "--user",
            "=cmd@contoso.example",
        ],
    )?;
    assert_eq!(ok["signins"].as_array().map(Vec::len), Some(1));
    let future = json(&cloud, &["signins", "list", "--since", "2999-01-01"])?;
    assert_eq!(future["signins"].as_array().map(Vec::len), Some(0));
    assert!(refused(&cloud, &["signins", "list", "--since", "yesterday"])?.contains("RFC 3339"));
    let csv = cloud.admin(&["signins", "list", "--csv", "--user", "=cmd@contoso.example"])?;
    let mut rows = csv.lines();
    assert!(rows
        .next()
        .unwrap_or_default()
        .starts_with("time,user,app,result,aadsts,win32"));
    let row = rows.next().unwrap_or_default();
    assert!(
        row.contains(",'=cmd@contoso.example,"),
        "formula neutralised: {row}"
    );
    assert_eq!(csv.lines().count(), 4, "{csv}");
    let text = cloud.admin(&["signins", "list", "--top", "1"])?;
    assert_eq!(text.lines().count(), 1);

    // PTA status has agent counts; keys list and rotate.
    let pta = json(&cloud, &["pta", "status"])?;
    assert_eq!(pta["registered_agents"], 0);
    assert_eq!(pta["active_agents"], 0);
    assert!(refused(&cloud, &["pta", "enable"])?.contains("no connectors"));
    let before = json(&cloud, &["keys", "list"])?;
    cloud.admin(&["keys", "rotate"])?;
    let after = json(&cloud, &["keys", "list"])?;
    assert_ne!(before["current"], after["current"]);
    assert!(json(&cloud, &["agents", "list"])?["agents"].is_array());

    // Without credentials nothing is done, and the error says what to do.
    let out = std::process::Command::new(passthru_testkit::procs::bin("passthru-cloud"))
        .args([
            "admin",
            "--url",
            &cloud.url,
            "--tenant",
            "contoso",
            "--ca-file",
        ])
        .arg(cloud.ca_file())
        .args(["user", "list"])
        .env("PASSTHRU_ADMIN_UPN", "admin@contoso.example")
        .env("PASSTHRU_ADMIN_PASSWORD", &wrong)
        .stdin(std::process::Stdio::null())
        .output()?;
    assert!(!out.status.success());
    Ok(())
}

/// `PASSTHRU_URL`, `PASSTHRU_TENANT` and `PASSTHRU_CA_FILE` replace `--url`, `--tenant` and
/// `--ca-file`; a flag wins over its variable.
#[tokio::test(flavor = "multi_thread")]
async fn the_environment_replaces_url_tenant_and_ca_file() -> anyhow::Result<()> {
    let dir = fresh_dir("admin-cli-env")?;
    let cloud = contoso_cloud(&dir)?;
    let admin = |flags: &[&str], url: &str| -> anyhow::Result<Output> {
        Ok(
            std::process::Command::new(passthru_testkit::procs::bin("passthru-cloud"))
                .arg("admin")
                .args(flags)
                .args(["--json", "user", "list"])
                .env("PASSTHRU_URL", url)
                .env("PASSTHRU_TENANT", &cloud.tenant)
                .env("PASSTHRU_CA_FILE", cloud.ca_file())
                .env("PASSTHRU_ADMIN_UPN", &cloud.admin_upn)
                .env("PASSTHRU_ADMIN_PASSWORD", &cloud.admin_password)
                .stdin(std::process::Stdio::null())
                .output()?,
        )
    };
    let out = admin(&[], &cloud.url)?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)?;
    assert!(
        v.to_string().contains(&cloud.admin_upn),
        "the Global Administrator is listed: {v}"
    );
    // A variable naming a port nobody listens on: the flag wins.
    let out = admin(&["--url", &cloud.url], "https://127.0.0.1:9")?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // And without the flag, the variable is what is used (and fails there).
    let out = admin(&[], "https://127.0.0.1:9")?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("127.0.0.1:9"), "{err}");
    Ok(())
}
