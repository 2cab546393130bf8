//! The admin API's authorisation, route by route, against a real cloud over HTTPS: every
//! operation of the OpenAPI document is called without a token, with a token of another
//! client, as a user with no role, as a Hybrid Identity Administrator and as a Global
//! Administrator, and each answer is checked against this file's own table of who may do
//! what (kept apart from the server's table on purpose, so a change to either shows here).

use passthru_testkit::fixture::contoso_cloud;
use passthru_testkit::http::{client, password_grant};
use passthru_testkit::procs::{fresh_dir, recorded_secret};
use serde_json::{json, Value};

const ADMIN_CLIENT: &str = "5f6b2c1e-7a43-4d8e-9b0c-3e2f1a9d4c70";
const ADMIN_SCOPE: &str = "passthru-admin/.default";

/// Every operation, and whether a Hybrid Identity Administrator may call it (a Global
/// Administrator may call all; a user with no role, none).
const EXPECTED: &[(&str, bool)] = &[
    ("listUsers", false),
    ("addUser", false),
    ("showUser", false),
    ("setUserPassword", false),
    ("disableUser", false),
    ("enableUser", false),
    ("unlockUser", false),
    ("resetUserPassword", false),
    ("setUserWriteback", false),
    ("setUserMfa", false),
    ("resetUserMfa", false),
    ("setUserRole", false),
    ("deleteUser", false),
    ("listGroups", true),
    ("showGroup", true),
    ("getSync", true),
    ("runSync", true),
    ("listDomains", true),
    ("addDomain", true),
    ("showDomain", true),
    ("verifyDomain", true),
    ("convertDomain", true),
    ("removeDomain", false),
    ("listApps", false),
    ("addApp", false),
    ("showApp", false),
    ("setAppRedirectUris", false),
    ("setAppGroupsClaim", false),
    ("rotateAppSecret", false),
    ("setAppIdTokenAlg", false),
    ("exposeAppApi", false),
    ("listAppRoleAssignments", false),
    ("assignAppRole", false),
    ("unassignAppRole", false),
    ("listAppCredentials", false),
    ("addAppSecret", false),
    ("removeAppSecret", false),
    ("addAppCertificate", false),
    ("removeAppCredential", false),
    ("deleteApp", false),
    ("getPta", true),
    ("setPta", true),
    ("getSettings", true),
    ("setSetting", false),
    ("registerAgent", true),
    ("listAgents", true),
    ("revokeAgent", true),
    ("listAgentReleases", true),
    ("addAgentRelease", false),
    ("removeAgentRelease", false),
    ("listSignIns", true),
    ("showSignIn", true),
    ("setLogo", false),
    ("removeLogo", false),
    ("listAudit", false),
    ("listKeys", false),
    ("rotateKeys", false),
];

/// A body that passes the operation's JSON parsing, so the answer shows the role check.
fn body_for(op: &str, pw: &str) -> Option<Value> {
    Some(match op {
        "addUser" => json!({ "upn": "new@contoso.example", "password": pw }),
        "setUserPassword" => json!({ "password": pw }),
        "resetUserPassword" => json!({ "password": pw, "must_change": false }),
        "setUserWriteback" => json!({ "allowed": true }),
        "setUserRole" => json!({ "role": "none" }),
        "setUserMfa" => json!({ "policy": "default" }),
        "addDomain" => json!({ "name": "added.example" }),
        "convertDomain" => json!({ "to": "managed" }),
        "addApp" => json!({ "name": "Probe", "public": true }),
        "setAppRedirectUris" => json!({ "redirect_uris": [] }),
        "setPta" => json!({ "enabled": false }),
        "setSetting" => json!({ "value": "10" }),
        "registerAgent" => {
            json!({ "csr_pem": "x", "hpke_public_key": "AA==", "host": "h", "version": "0" })
        }
        "revokeAgent" => json!({ "force": false }),
        _ => return None,
    })
}

/// Fills the path's parameters with names of things that do not exist (a 404 for whoever
/// may ask).
fn concrete(path: &str) -> String {
    path.replace("{tenant}", "contoso")
        .replace("{upn}", "nobody@contoso.example")
        .replace("{name}", "nothing.example")
        .replace("{client_id}", "00000000-0000-4000-8000-000000000000")
        .replace("{id}", "00000000-0000-4000-8000-000000000001")
        .replace("{key}", "lockout_threshold")
        .replace("{forest}", "nothing.example")
        .replace("{version}", "0.0.0-absent")
        .replace("{role}", "Reader")
        .replace("{kind}", "user")
        .replace("{principal_id}", "nobody@contoso.example")
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_refuses_the_roles_it_must() -> anyhow::Result<()> {
    let dir = fresh_dir("admin-api")?;
    let cloud = contoso_cloud(&dir)?;
    let http = client(&cloud.ca_file())?;
    let pw = recorded_secret("R0les");
    for (upn, role) in [
        (
            "hybrid@contoso.example",
            Some("HybridIdentityAdministrator"),
        ),
        ("plain@contoso.example", None),
    ] {
        cloud.add_user(upn, &pw)?;
        if let Some(role) = role {
            cloud.admin(&["user", "role", upn, role])?;
        }
    }
    let token = |upn: &'static str, password: String, client: &'static str| {
        let http = http.clone();
        let url = cloud.url.clone();
        async move {
            let a =
                password_grant(&http, &url, "contoso", client, upn, &password, ADMIN_SCOPE).await?;
            anyhow::ensure!(a.ok(), "{upn}: {}", a.body);
            Ok::<String, anyhow::Error>(
                a.body["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        }
    };
    let ga = token(
        "admin@contoso.example",
        cloud.admin_password.clone(),
        ADMIN_CLIENT,
    )
    .await?;
    let hybrid = token("hybrid@contoso.example", pw.clone(), ADMIN_CLIENT).await?;
    let plain = token("plain@contoso.example", pw.clone(), ADMIN_CLIENT).await?;
    // Another client may not even get the admin scope.
    let app = cloud.admin(&["app", "add", "Other", "--public"])?;
    let other = password_grant(
        &http,
        &cloud.url,
        "contoso",
        app.trim(),
        "admin@contoso.example",
        &cloud.admin_password,
        ADMIN_SCOPE,
    )
    .await?;
    assert!(!other.ok(), "{}", other.body);

    // The document is public and lists exactly the operations of the table above.
    let doc: Value = http
        .get(format!("{}/contoso/admin/openapi.json", cloud.url))
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(doc["openapi"], "3.1.0");
    let mut ops = Vec::new();
    for (path, methods) in doc["paths"].as_object().into_iter().flatten() {
        for (method, op) in methods.as_object().into_iter().flatten() {
            ops.push((
                op["operationId"].as_str().unwrap_or_default().to_string(),
                method.to_ascii_uppercase(),
                path.clone(),
            ));
        }
    }
    let mut documented: Vec<&str> = ops.iter().map(|(id, _, _)| id.as_str()).collect();
    let mut expected: Vec<&str> = EXPECTED.iter().map(|(id, _)| *id).collect();
    documented.sort_unstable();
    expected.sort_unstable();
    assert_eq!(
        documented, expected,
        "the document and this test's table differ"
    );

    let mut checked = 0;
    for (id, method, path) in &ops {
        let hybrid_may = EXPECTED
            .iter()
            .find(|(e, _)| e == id)
            .is_some_and(|(_, h)| *h);
        let url = format!("{}{}", cloud.url, concrete(path));
        let body = body_for(id, &pw);
        let call = |bearer: Option<&str>| {
            let mut r = http.request(method.parse().unwrap_or(reqwest::Method::GET), &url);
            if let Some(b) = bearer {
                r = r.bearer_auth(b);
            }
            if let Some(b) = &body {
                r = r.json(b);
            }
            async move {
                let resp = r.send().await?;
                let status = resp.status().as_u16();
                let text = resp.text().await?;
                Ok::<(u16, String), anyhow::Error>((status, text))
            }
        };
        let (status, text) = call(None).await?;
        assert_eq!(status, 401, "{id} without a token: {text}");
        let (status, text) = call(Some("not-a-token")).await?;
        assert_eq!(status, 401, "{id} with a forged token: {text}");
        let (status, text) = call(Some(&plain)).await?;
        assert_eq!(status, 403, "{id} as a user with no role: {text}");
        assert!(text.contains("needs the role"), "{id}: {text}");
        // The role is checked before the body is read: a malformed body changes nothing.
        let bad = http
            .request(method.parse().unwrap_or(reqwest::Method::GET), &url)
            .bearer_auth(&plain)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await?;
        assert_eq!(bad.status().as_u16(), 403, "{id} with a malformed body");
        let (status, text) = call(Some(&hybrid)).await?;
        if hybrid_may {
            assert!(
                status != 401 && status != 403,
                "{id} as Hybrid Identity Administrator: {status} {text}"
            );
        } else {
            assert_eq!(status, 403, "{id} as Hybrid Identity Administrator: {text}");
        }
        let (status, text) = call(Some(&ga)).await?;
        assert!(
            status != 401 && status != 403,
            "{id} as Global Administrator: {status} {text}"
        );
        checked += 1;
    }
    assert_eq!(checked, EXPECTED.len());

    // A role change takes effect at once, on a token issued before it.
    cloud.admin(&["user", "role", "hybrid@contoso.example", "none"])?;
    let r = http
        .get(format!("{}/contoso/admin/agents", cloud.url))
        .bearer_auth(&hybrid)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    // A blocked administrator's token stops working at once too.
    cloud.admin(&[
        "user",
        "role",
        "plain@contoso.example",
        "GlobalAdministrator",
    ])?;
    let r = http
        .get(format!("{}/contoso/admin/users", cloud.url))
        .bearer_auth(&plain)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 200);
    cloud.admin(&["user", "disable", "plain@contoso.example"])?;
    let r = http
        .get(format!("{}/contoso/admin/users", cloud.url))
        .bearer_auth(&plain)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 401);
    // Another tenant's administrator is refused here.
    cloud.add_tenant("beta", "admin@beta.example", &pw)?;
    let beta = password_grant(
        &http,
        &cloud.url,
        "beta",
        ADMIN_CLIENT,
        "admin@beta.example",
        &pw,
        ADMIN_SCOPE,
    )
    .await?;
    let beta_token = beta.body["access_token"].as_str().unwrap_or_default();
    let r = http
        .get(format!("{}/contoso/admin/users", cloud.url))
        .bearer_auth(beta_token)
        .send()
        .await?;
    assert_eq!(r.status().as_u16(), 403);
    Ok(())
}
