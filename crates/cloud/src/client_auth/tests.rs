//! In-process tests of client authentication at the token endpoint and of the admin API's
//! credential operations, through the router: several secrets at once, removal of one,
//! expiry, rotation, certificates and client assertions (accepted as MSAL Node sends them,
//! refused with Entra's codes otherwise).

use axum::body::Body;
use axum::http::Request;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::test_keys::{p256_cert, raw_jwt, rsa_cert, Named};
use crate::clock::unix_now;
use crate::store::app_credentials::{AppCredential, CredentialKey};
use crate::test_state::{TestServer, ADMIN, TENANT};

const DAY: i64 = 86_400;

use crate::admin_api::tests::call as admin;

/// A client credentials request for the app's own `.default`, with `form` (and Basic
/// `basic` when given), to the token endpoint of the tenant as `tenant` names it.
async fn token_at(
    s: &TestServer,
    tenant: &str,
    client_id: &str,
    form: &[(&str, &str)],
    basic: Option<(&str, &str)>,
) -> anyhow::Result<(u16, Value)> {
    let scope = format!("{client_id}/.default");
    let mut pairs: Vec<(&str, &str)> =
        vec![("grant_type", "client_credentials"), ("scope", &scope)];
    pairs.extend_from_slice(form);
    let body = serde_urlencoded::to_string(&pairs)?;
    let mut b = Request::post(format!("/{tenant}/oauth2/v2.0/token"))
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some((id, secret)) = basic {
        use base64::Engine as _;
        let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        b = b.header("authorization", format!("Basic {v}"));
    }
    s.json(b.body(Body::from(body))?).await
}

async fn with_secret(
    s: &TestServer,
    client_id: &str,
    secret: &str,
) -> anyhow::Result<(u16, Value)> {
    token_at(
        s,
        TENANT,
        client_id,
        &[("client_id", client_id), ("client_secret", secret)],
        None,
    )
    .await
}

async fn with_assertion(
    s: &TestServer,
    client_id: &str,
    assertion: &str,
) -> anyhow::Result<(u16, Value)> {
    token_at(
        s,
        TENANT,
        client_id,
        &[
            ("client_id", client_id),
            ("client_assertion_type", super::assertion::JWT_BEARER),
            ("client_assertion", assertion),
        ],
        None,
    )
    .await
}

fn code(v: &Value) -> Option<u64> {
    v["error_codes"][0].as_u64()
}

/// A confidential app registered through the admin API: (client id, its first secret).
async fn confidential(s: &TestServer, ga: &str) -> anyhow::Result<(String, String)> {
    let (status, app) = admin(
        s,
        ga,
        "POST",
        "/apps",
        Some(json!({"name": "Daemon", "confidential": true})),
    )
    .await?;
    anyhow::ensure!(status == 201, "{app}");
    Ok((
        app["client_id"].as_str().unwrap_or_default().to_string(),
        app["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    ))
}

/// The tenant's token endpoint, as discovery gives it (what MSAL puts in `aud`).
async fn token_endpoint(s: &TestServer) -> anyhow::Result<String> {
    let (_, doc) = s
        .json(
            Request::get(format!("/{TENANT}/v2.0/.well-known/openid-configuration"))
                .body(Body::empty())?,
        )
        .await?;
    assert!(
        doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|m| m.contains(&json!("private_key_jwt"))),
        "{doc}"
    );
    Ok(doc["token_endpoint"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

#[tokio::test]
async fn two_secrets_work_at_once_and_each_stops_alone() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let (client_id, first) = confidential(&s, &ga).await?;
    let (status, v) = with_secret(&s, &client_id, &first).await?;
    assert_eq!(status, 200, "{v}");

    // A second secret, with its own expiry; both work, in the form and in Basic.
    let path = format!("/apps/{client_id}/credentials");
    let (status, added) = admin(
        &s,
        &ga,
        "POST",
        &format!("{path}/secrets"),
        Some(json!({"expires_in_days": 30})),
    )
    .await?;
    assert_eq!(status, 201, "{added}");
    let second = added["secret"].as_str().unwrap_or_default().to_string();
    let second_id = added["id"].as_str().unwrap_or_default().to_string();
    assert_eq!(added["hint"], json!(second[..3].to_string()));
    let expires = added["expires_at"].as_i64().unwrap_or_default();
    assert!((expires - unix_now() - 30 * DAY).abs() < 60, "{added}");
    assert_eq!(
        added.as_object().map(|o| o.len()),
        Some(4),
        "exactly id, secret, hint, expires_at: {added}"
    );
    for secret in [&first, &second] {
        let (status, v) = with_secret(&s, &client_id, secret).await?;
        assert_eq!(status, 200, "{v}");
        let (status, v) = token_at(&s, TENANT, &client_id, &[], Some((&client_id, secret))).await?;
        assert_eq!(status, 200, "{v}");
    }

    // The list shows both, by hint, never a secret or its hash.
    let (status, list) = admin(&s, &ga, "GET", &path, None).await?;
    assert_eq!(status, 200, "{list}");
    let creds = list["credentials"].as_array().cloned().unwrap_or_default();
    assert_eq!(creds.len(), 2, "{list}");
    assert!(
        creds
            .iter()
            .all(|c| c["kind"] == "secret" && c["expired"] == false),
        "{list}"
    );
    let text = list.to_string();
    for secret in [&first, &second] {
        assert!(!text.contains(secret.as_str()), "{list}");
        assert!(!text.contains(&crate::issue::hash_secret(secret)), "{list}");
    }
    let first_id = creds
        .iter()
        .find(|c| c["id"] != json!(second_id))
        .and_then(|c| c["id"].as_str())
        .unwrap_or_default()
        .to_string();

    // Removing the first stops it only.
    let (status, v) = admin(
        &s,
        &ga,
        "DELETE",
        &format!("{path}/secrets/{first_id}"),
        None,
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    let (status, v) = with_secret(&s, &client_id, &first).await?;
    assert_eq!((status, code(&v)), (401, Some(7000215)), "{v}");
    let (status, v) = with_secret(&s, &client_id, &second).await?;
    assert_eq!(status, 200, "{v}");
    // Removed is removed.
    let (status, v) = admin(&s, &ga, "DELETE", &format!("{path}/{first_id}"), None).await?;
    assert_eq!(status, 404, "{v}");

    // An expired secret authenticates no more, and says so.
    let old = "an-old-secret-of-this-app-0000000000000000";
    s.state
        .store
        .add_app_credential(&AppCredential {
            id: uuid::Uuid::new_v4(),
            tenant_id: s.tenant_id,
            client_id: client_id.clone(),
            key: CredentialKey::Secret {
                hash: crate::issue::hash_secret(old),
            },
            hint: Some("an-".into()),
            created_at: unix_now() - 200 * DAY,
            starts_at: None,
            expires_at: Some(unix_now() - 20 * DAY),
        })
        .await?;
    let (status, v) = with_secret(&s, &client_id, old).await?;
    assert_eq!((status, code(&v)), (401, Some(7000222)), "{v}");
    let (_, list) = admin(&s, &ga, "GET", &path, None).await?;
    assert!(
        list["credentials"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["expired"] == true)),
        "{list}"
    );

    // rotate-secret as before: a new secret, every other secret stops at once.
    let (status, rotated) =
        admin(&s, &ga, "POST", &format!("/apps/{client_id}/secret"), None).await?;
    assert_eq!(status, 200, "{rotated}");
    let third = rotated["client_secret"].as_str().unwrap_or_default();
    assert_eq!(with_secret(&s, &client_id, &second).await?.0, 401);
    assert_eq!(with_secret(&s, &client_id, third).await?.0, 200);
    let (_, list) = admin(&s, &ga, "GET", &path, None).await?;
    assert_eq!(
        list["credentials"].as_array().map(Vec::len),
        Some(1),
        "{list}"
    );

    // Deleting the app removes its credentials.
    let (status, _) = admin(&s, &ga, "DELETE", &format!("/apps/{client_id}"), None).await?;
    assert_eq!(status, 200);
    assert!(s
        .state
        .store
        .app_credentials(s.tenant_id, &client_id)
        .await?
        .is_empty());
    s.done().await
}

#[tokio::test]
async fn a_certificate_authenticates_the_app_as_msal_node_signs_with_it() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let (client_id, secret) = confidential(&s, &ga).await?;
    let now = unix_now();
    let rsa = rsa_cert("CN=daemon", now - DAY, now + 365 * DAY)?;
    let ec = p256_cert("CN=daemon-ec", now - DAY, now + 365 * DAY)?;
    let path = format!("/apps/{client_id}/credentials");
    let mut ids = Vec::new();
    for cert in [&rsa, &ec] {
        let (status, c) = admin(
            &s,
            &ga,
            "POST",
            &format!("{path}/certificates"),
            Some(json!({"certificate": cert.pem})),
        )
        .await?;
        assert_eq!(status, 201, "{c}");
        assert_eq!(c["kind"], "certificate");
        assert_eq!(c["expires_at"], json!(now + 365 * DAY), "{c}");
        assert_eq!(c["thumbprint"].as_str().map(str::len), Some(40), "{c}");
        assert_eq!(
            c["thumbprint_sha256"].as_str().map(str::len),
            Some(64),
            "{c}"
        );
        ids.push(c["id"].as_str().unwrap_or_default().to_string());
    }
    // The same certificate twice: refused.
    let (status, v) = admin(
        &s,
        &ga,
        "POST",
        &format!("{path}/certificates"),
        Some(json!({"certificate": rsa.pem})),
    )
    .await?;
    assert_eq!(status, 409, "{v}");

    let aud = token_endpoint(&s).await?;
    assert_eq!(
        aud,
        format!("https://localhost/{}/oauth2/v2.0/token", s.tenant_id)
    );
    for (cert, sha256) in [(&rsa, false), (&rsa, true), (&ec, false)] {
        let jwt = cert.msal_assertion(&client_id, &aud, unix_now(), sha256)?;
        let (status, v) = with_assertion(&s, &client_id, &jwt).await?;
        assert_eq!(status, 200, "sha256 {sha256}: {v}");
        assert!(v["access_token"].is_string(), "{v}");
        // MSAL reuses an assertion until it expires (10 minutes): so does the cloud.
        let (status, v) = with_assertion(&s, &client_id, &jwt).await?;
        assert_eq!(status, 200, "the same assertion again: {v}");
    }
    // The audience by the tenant's name, as the request's path names it.
    let by_name = "https://localhost/contoso/oauth2/v2.0/token";
    let jwt = rsa.msal_assertion(&client_id, by_name, unix_now(), false)?;
    assert_eq!(with_assertion(&s, &client_id, &jwt).await?.0, 200);
    // No client_id in the form: the assertion's sub names the app.
    let jwt = rsa.msal_assertion(&client_id, &aud, unix_now(), false)?;
    let (status, v) = token_at(
        &s,
        TENANT,
        &client_id,
        &[
            ("client_assertion_type", super::assertion::JWT_BEARER),
            ("client_assertion", &jwt),
        ],
        None,
    )
    .await?;
    assert_eq!(status, 200, "{v}");
    // The secret still works beside the certificates.
    assert_eq!(with_secret(&s, &client_id, &secret).await?.0, 200);

    // Removing the RSA certificate stops it, not the EC one.
    let (status, v) = admin(&s, &ga, "DELETE", &format!("{path}/{}", ids[0]), None).await?;
    assert_eq!(status, 200, "{v}");
    let jwt = rsa.msal_assertion(&client_id, &aud, unix_now(), false)?;
    let (status, v) = with_assertion(&s, &client_id, &jwt).await?;
    assert_eq!((status, code(&v)), (401, Some(700027)), "{v}");
    let jwt = ec.msal_assertion(&client_id, &aud, unix_now(), true)?;
    assert_eq!(with_assertion(&s, &client_id, &jwt).await?.0, 200);
    s.done().await
}

#[tokio::test]
async fn bad_assertions_are_refused_with_entras_codes() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let (client_id, secret) = confidential(&s, &ga).await?;
    let now = unix_now();
    let rsa = rsa_cert("CN=daemon", now - DAY, now + 365 * DAY)?;
    let stranger = p256_cert("CN=stranger", now - DAY, now + 365 * DAY)?;
    let (status, v) = admin(
        &s,
        &ga,
        "POST",
        &format!("/apps/{client_id}/credentials/certificates"),
        Some(json!({"certificate": rsa.pem})),
    )
    .await?;
    assert_eq!(status, 201, "{v}");
    let aud = token_endpoint(&s).await?;
    let claims = |f: &dyn Fn(&mut Value)| {
        let mut c = json!({ "aud": aud, "exp": now + 600, "iss": client_id, "sub": client_id, "nbf": now, "jti": "j" });
        f(&mut c);
        c
    };
    let header = |alg: &str| json!({"alg": alg, "x5t": rsa.x5t()});
    let cases: Vec<(&str, String, u64)> = vec![
        (
            "wrong audience",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &claims(&|c| {
                    c["aud"] = json!("https://login.microsoftonline.com/common/oauth2/v2.0/token")
                }),
            )?,
            700023,
        ),
        (
            "expired",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &claims(&|c| c["exp"] = json!(now - 3600)),
            )?,
            700024,
        ),
        (
            "valid for a day",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &claims(&|c| c["exp"] = json!(now + DAY)),
            )?,
            700024,
        ),
        (
            "another subject",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &claims(&|c| c["sub"] = json!("someone")),
            )?,
            700021,
        ),
        (
            "unknown thumbprint",
            stranger.sign(Algorithm::ES256, Named::Sha1, &claims(&|_| {}))?,
            700027,
        ),
        (
            "alg none",
            raw_jwt(&header("none"), &claims(&|_| {}), b""),
            700027,
        ),
        (
            "HS256",
            {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, rsa.der.as_slice());
                let input = raw_jwt(&header("HS256"), &claims(&|_| {}), b"");
                let tag = ring::hmac::sign(&key, input.trim_end_matches('.').as_bytes());
                raw_jwt(&header("HS256"), &claims(&|_| {}), tag.as_ref())
            },
            700027,
        ),
        ("garbage", "not-a-jwt".into(), 700027),
    ];
    for (what, jwt, expected) in cases {
        let (status, v) = with_assertion(&s, &client_id, &jwt).await?;
        assert_eq!((status, code(&v)), (401, Some(expected)), "{what}: {v}");
        assert_eq!(v["error"], "invalid_client", "{what}: {v}");
        let description = v["error_description"].as_str().unwrap_or_default();
        assert!(
            description.len() > 80,
            "{what}: the description says what to fix: {v}"
        );
    }
    // A secret and an assertion at once, or another assertion type: a malformed request.
    let jwt = rsa.msal_assertion(&client_id, &aud, now, false)?;
    for form in [
        vec![
            ("client_id", client_id.as_str()),
            ("client_secret", secret.as_str()),
            ("client_assertion_type", super::assertion::JWT_BEARER),
            ("client_assertion", jwt.as_str()),
        ],
        vec![
            ("client_id", client_id.as_str()),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", jwt.as_str()),
        ],
    ] {
        let (status, v) = token_at(&s, TENANT, &client_id, &form, None).await?;
        assert_eq!((status, code(&v)), (400, Some(9002313)), "{v}");
    }
    // Neither: the missing credential, naming both ways.
    let (status, v) = token_at(
        &s,
        TENANT,
        &client_id,
        &[("client_id", client_id.as_str())],
        None,
    )
    .await?;
    assert_eq!((status, code(&v)), (401, Some(7000218)), "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("client_assertion")),
        "{v}"
    );
    s.done().await
}

#[tokio::test]
async fn the_admin_api_guards_credentials() -> anyhow::Result<()> {
    let s = TestServer::start(None).await?;
    let ga = s.admin_token(s.tenant_id, ADMIN).await?;
    let (client_id, _) = confidential(&s, &ga).await?;
    let path = format!("/apps/{client_id}/credentials");
    let now = unix_now();

    // Secrets live 1 to 730 days (180 when not said).
    for days in [0, 731] {
        let (status, v) = admin(
            &s,
            &ga,
            "POST",
            &format!("{path}/secrets"),
            Some(json!({"expires_in_days": days})),
        )
        .await?;
        assert_eq!(status, 400, "{days}: {v}");
    }
    let (status, v) = admin(&s, &ga, "POST", &format!("{path}/secrets"), Some(json!({}))).await?;
    assert_eq!(status, 201, "{v}");
    let expires = v["expires_at"].as_i64().unwrap_or_default();
    assert!((expires - now - 180 * DAY).abs() < 60, "{v}");
    let secret_id = v["id"].as_str().unwrap_or_default().to_string();

    // What is not a current certificate is refused, saying what to give.
    let cert = rsa_cert("CN=app", now - DAY, now + 30 * DAY)?;
    let old = p256_cert("CN=old", now - 10 * DAY, now - DAY)?;
    for (pem, says) in [
        (cert.key_pem.clone(), "private key"),
        (old.pem.clone(), "expired"),
        ("hello".to_string(), "not a PEM certificate"),
    ] {
        let (status, v) = admin(
            &s,
            &ga,
            "POST",
            &format!("{path}/certificates"),
            Some(json!({"certificate": pem})),
        )
        .await?;
        assert_eq!(status, 400, "{v}");
        assert!(
            v["error_description"]
                .as_str()
                .is_some_and(|d| d.contains(says)),
            "{v}"
        );
        assert!(
            !v.to_string().contains("MII"),
            "the answer repeats the input: {v}"
        );
    }
    let (status, c) = admin(
        &s,
        &ga,
        "POST",
        &format!("{path}/certificates"),
        Some(json!({"certificate": cert.pem})),
    )
    .await?;
    assert_eq!(status, 201, "{c}");
    let cert_id = c["id"].as_str().unwrap_or_default().to_string();

    // `secret remove` removes secrets only; a bad id is a bad request.
    let (status, v) = admin(
        &s,
        &ga,
        "DELETE",
        &format!("{path}/secrets/{cert_id}"),
        None,
    )
    .await?;
    assert_eq!(status, 404, "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("certificate")),
        "{v}"
    );
    let (status, v) = admin(&s, &ga, "DELETE", &format!("{path}/not-a-uuid"), None).await?;
    assert_eq!(status, 400, "{v}");

    // At most 10 credentials: the app has 3 (its first secret, one more, a certificate).
    for _ in 0..7 {
        let (status, v) =
            admin(&s, &ga, "POST", &format!("{path}/secrets"), Some(json!({}))).await?;
        assert_eq!(status, 201, "{v}");
    }
    let (status, v) = admin(&s, &ga, "POST", &format!("{path}/secrets"), Some(json!({}))).await?;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error_description"]
            .as_str()
            .is_some_and(|d| d.contains("remove one")),
        "{v}"
    );
    let (status, v) = admin(&s, &ga, "DELETE", &format!("{path}/{secret_id}"), None).await?;
    assert_eq!(status, 200, "{v}");
    let (status, v) = admin(&s, &ga, "POST", &format!("{path}/secrets"), Some(json!({}))).await?;
    assert_eq!(status, 201, "{v}");

    // A public app has none; another tenant's admin sees nothing of this one.
    let (status, public) = admin(
        &s,
        &ga,
        "POST",
        "/apps",
        Some(json!({"name": "CLI", "public": true})),
    )
    .await?;
    assert_eq!(status, 201);
    let public_id = public["client_id"].as_str().unwrap_or_default();
    let (status, v) = admin(
        &s,
        &ga,
        "POST",
        &format!("/apps/{public_id}/credentials/secrets"),
        Some(json!({})),
    )
    .await?;
    assert_eq!(status, 409, "{v}");
    let other = s.add_tenant("fabrikam", "admin@fabrikam.example").await?;
    let theirs = s.admin_token(other, "admin@fabrikam.example").await?;
    let r = s
        .json(
            Request::get(format!("/fabrikam/admin/apps/{client_id}/credentials"))
                .header("authorization", format!("Bearer {theirs}"))
                .body(Body::empty())?,
        )
        .await?;
    assert_eq!(r.0, 404, "{}", r.1);
    s.done().await
}
