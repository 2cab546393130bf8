//! What application developers rely on, in process: access tokens for the API asked for
//! (`aud`, `scp`, `roles`, `.default`, app-only roles), single-page apps (CORS for their
//! origins only, the fragment answer, cross-origin redemption, 24-hour refresh tokens),
//! the claims generic clients read, the `organizations` authority and `client-request-id`.

use axum::body::Body;
use axum::http::Request;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use serde_json::{json, Value};

use crate::in_process::{ad, Answer, Bed, CHALLENGE, DOMAIN, REDIRECT, RIGHT, VERIFIER};

const SPA_ORIGIN: &str = "http://localhost:5173";
const SPA_REDIRECT: &str = "http://localhost:5173/app/";

/// The claims of a JWT (its signature is checked by the tests that need it).
fn claims(jwt: &str) -> anyhow::Result<Value> {
    let payload = jwt
        .split('.')
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("not a JWT: {jwt}"))?;
    Ok(serde_json::from_slice(&B64URL.decode(payload)?)?)
}

fn body(a: &Answer) -> Value {
    serde_json::from_str(&a.body).unwrap_or(Value::Null)
}

fn code_of(v: &Value) -> u64 {
    v["error_codes"][0].as_u64().unwrap_or(0)
}

/// Sends a JSON admin API request as the bed's Global Administrator.
async fn admin(bed: &Bed, method: &str, path: &str, payload: Value) -> anyhow::Result<Value> {
    let token =
        crate::test_state::admin_token_of(&bed.state, bed.tenant.id, "admin@contoso.example")
            .await?;
    let req = Request::builder()
        .method(method)
        .uri(format!("/contoso/admin{path}"))
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(payload.to_string()))?;
    let a = bed.send(req).await?;
    anyhow::ensure!(
        a.status.is_success(),
        "{method} {path}: {} {}",
        a.status,
        a.body
    );
    Ok(body(&a))
}

/// A password grant of `name` for `scope` by the bed's public app.
async fn password_grant(bed: &Bed, name: &str, scope: &str) -> anyhow::Result<Answer> {
    let upn = format!("{name}@{DOMAIN}");
    bed.post(
        "/contoso/oauth2/v2.0/token",
        &[
            ("grant_type", "password"),
            ("client_id", bed.client_id.as_str()),
            ("username", upn.as_str()),
            ("password", RIGHT),
            ("scope", scope),
        ],
        "",
    )
    .await
}

/// Registers the API `api://orders` (scopes read, write; roles Reader, Writer) and returns
/// its client id.
async fn orders_api(bed: &Bed) -> anyhow::Result<String> {
    let api = admin(
        bed,
        "POST",
        "/apps",
        json!({"name": "Orders API", "confidential": true}),
    )
    .await?;
    let id = api["client_id"].as_str().unwrap_or_default().to_string();
    admin(
        bed,
        "PUT",
        &format!("/apps/{id}/api"),
        json!({"identifier_uri": "api://orders", "scopes": ["read", "write"], "app_roles": ["Reader", "Writer"]}),
    )
    .await?;
    Ok(id)
}

#[tokio::test]
async fn an_api_gets_access_tokens_meant_for_it() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let api = orders_api(&bed).await?;
    let ana = bed.synced_user("ana").await?;
    admin(
        &bed,
        "POST",
        &format!("/apps/{api}/role-assignments"),
        json!({"role": "Reader", "user": ana.upn}),
    )
    .await?;

    // A delegated token for api://orders/read: the API's audience, short scope names, the
    // roles the user holds, the user's oid and tid.
    let a = password_grant(&bed, "ana", "openid offline_access api://orders/read").await?;
    let v = body(&a);
    assert_eq!(a.status, 200, "{v}");
    assert_eq!(v["scope"], "api://orders/read");
    let at = claims(v["access_token"].as_str().unwrap_or_default())?;
    assert_eq!(at["aud"], api.as_str());
    assert_eq!(at["scp"], "read");
    assert_eq!(at["roles"], json!(["Reader"]));
    assert_eq!(at["oid"], ana.id.to_string());
    assert_eq!(at["tid"], bed.tenant.id.to_string());
    assert_eq!(at["azp"], bed.client_id.as_str());
    let id = claims(v["id_token"].as_str().unwrap_or_default())?;
    assert_eq!(
        id["aud"],
        bed.client_id.as_str(),
        "the ID token stays the app's"
    );
    // The signature verifies with the tenant's keys.
    let keys = bed.state.signer.keys(bed.tenant.id).await?;
    keys.verify_access(v["access_token"].as_str().unwrap_or_default(), &api)?;

    // .default is every scope the API exposes; the client id names the API too.
    let v = body(&password_grant(&bed, "ana", "api://orders/.default").await?);
    assert_eq!(
        claims(v["access_token"].as_str().unwrap_or_default())?["scp"],
        "read write"
    );
    let v = body(&password_grant(&bed, "ana", &format!("{api}/write")).await?);
    let at = claims(v["access_token"].as_str().unwrap_or_default())?;
    assert_eq!(
        (at["aud"].as_str(), at["scp"].as_str()),
        (Some(api.as_str()), Some("write"))
    );

    // A refresh keeps the audience and may narrow the scopes.
    let v = body(
        &password_grant(
            &bed,
            "ana",
            "openid offline_access api://orders/read api://orders/write",
        )
        .await?,
    );
    let rt = v["refresh_token"].as_str().unwrap_or_default().to_string();
    let r = bed
        .post(
            "/contoso/oauth2/v2.0/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", bed.client_id.as_str()),
                ("refresh_token", rt.as_str()),
                ("scope", "api://orders/read"),
            ],
            "",
        )
        .await?;
    let rv = body(&r);
    let at = claims(rv["access_token"].as_str().unwrap_or_default())?;
    assert_eq!(
        (at["aud"].as_str(), at["scp"].as_str()),
        (Some(api.as_str()), Some("read")),
        "{rv}"
    );

    // Refused: a scope the API does not expose, an API the tenant does not have, two APIs
    // in one request. Each names what to do.
    for (scope, says) in [
        ("api://orders/delete", "has no scope 'delete'"),
        ("api://unknown/read", "is not an API of this organization"),
        (
            &format!("api://orders/read {}/x", bed.client_id),
            "two resources",
        ),
    ] {
        let a = password_grant(&bed, "ana", scope).await?;
        let v = body(&a);
        assert_eq!(
            (a.status.as_u16(), code_of(&v)),
            (400, 70011),
            "{scope}: {v}"
        );
        assert!(
            v["error_description"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{scope}: {v}"
        );
    }
    // Without a resource, tokens are for the app itself, as before.
    let v = body(&password_grant(&bed, "ana", "openid profile").await?);
    assert_eq!(
        claims(v["access_token"].as_str().unwrap_or_default())?["aud"],
        bed.client_id.as_str()
    );
    Ok(())
}

#[tokio::test]
async fn app_only_tokens_carry_the_roles_assigned_to_the_app() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let api = orders_api(&bed).await?;
    let daemon = admin(
        &bed,
        "POST",
        "/apps",
        json!({"name": "Nightly", "confidential": true}),
    )
    .await?;
    let (daemon_id, secret) = (
        daemon["client_id"].as_str().unwrap_or_default().to_string(),
        daemon["client_secret"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    );
    let grant = |scope: String| {
        let (daemon_id, secret) = (daemon_id.clone(), secret.clone());
        let bed = &bed;
        async move {
            bed.post(
                "/contoso/oauth2/v2.0/token",
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", daemon_id.as_str()),
                    ("client_secret", secret.as_str()),
                    ("scope", scope.as_str()),
                ],
                "",
            )
            .await
        }
    };
    // Before any assignment: a token without roles (the API decides what that allows).
    let v = body(&grant("api://orders/.default".into()).await?);
    let at = claims(v["access_token"].as_str().unwrap_or_default())?;
    assert_eq!(at["aud"], api.as_str(), "{v}");
    assert_eq!(at["idtyp"], "app");
    assert!(at.get("roles").is_none(), "{at}");
    admin(
        &bed,
        "POST",
        &format!("/apps/{api}/role-assignments"),
        json!({"role": "Writer", "app": daemon_id}),
    )
    .await?;
    for scope in [
        "api://orders/.default".to_string(),
        format!("{api}/.default"),
    ] {
        let v = body(&grant(scope.clone()).await?);
        let at = claims(v["access_token"].as_str().unwrap_or_default())?;
        assert_eq!(at["roles"], json!(["Writer"]), "{scope}: {at}");
        assert_eq!(at["aud"], api.as_str());
        assert!(at.get("scp").is_none(), "app-only tokens have no scp: {at}");
    }
    // Only RESOURCE/.default: a named scope is refused.
    let a = grant("api://orders/read".into()).await?;
    assert_eq!(code_of(&body(&a)), 70011, "{}", a.body);
    // Removing the assignment takes the role out of new tokens.
    let removed = bed
        .send(
            Request::delete(format!(
                "/contoso/admin/apps/{api}/role-assignments/Writer/app/{daemon_id}"
            ))
            .header(
                "authorization",
                format!(
                    "Bearer {}",
                    crate::test_state::admin_token_of(
                        &bed.state,
                        bed.tenant.id,
                        "admin@contoso.example"
                    )
                    .await?
                ),
            )
            .body(Body::empty())?,
        )
        .await?;
    assert_eq!(removed.status, 200, "{}", removed.body);
    let v = body(&grant("api://orders/.default".into()).await?);
    assert!(claims(v["access_token"].as_str().unwrap_or_default())?
        .get("roles")
        .is_none());
    Ok(())
}

/// A single-page app registered through the admin API; returns its client id.
async fn spa(bed: &Bed) -> anyhow::Result<String> {
    let v = admin(
        bed,
        "POST",
        "/apps",
        json!({"name": "Dashboard", "spa": true, "redirect_uris": [SPA_REDIRECT]}),
    )
    .await?;
    anyhow::ensure!(v["public"] == true && v["spa"] == true, "{v}");
    Ok(v["client_id"].as_str().unwrap_or_default().to_string())
}

async fn with_origin(
    bed: &Bed,
    method: &str,
    path: &str,
    origin: &str,
    extra: &[(&str, &str)],
    body: String,
) -> anyhow::Result<Answer> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("origin", origin);
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    bed.send(b.body(Body::from(body))?).await
}

#[tokio::test]
async fn single_page_apps_get_cors_for_their_origins_only() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    spa(&bed).await?;
    let paths = [
        "/contoso/v2.0/.well-known/openid-configuration",
        "/contoso/discovery/v2.0/keys",
        "/contoso/oauth2/v2.0/token",
    ];
    for path in paths {
        // Preflight from the SPA's origin: allowed, with the headers MSAL.js asks for.
        let pre = with_origin(
            &bed,
            "OPTIONS",
            path,
            SPA_ORIGIN,
            &[
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "content-type, client-request-id, x-client-sku",
                ),
            ],
            String::new(),
        )
        .await?;
        assert_eq!(pre.status, 204, "{path}: {}", pre.body);
        assert_eq!(pre.headers["access-control-allow-origin"], SPA_ORIGIN);
        let allowed = pre.headers["access-control-allow-headers"].to_str()?;
        assert!(
            allowed.contains("client-request-id") && allowed.contains("content-type"),
            "{allowed}"
        );
        // Another origin: no CORS (the browser blocks the answer).
        let evil = with_origin(
            &bed,
            "OPTIONS",
            path,
            "https://evil.example",
            &[("access-control-request-method", "POST")],
            String::new(),
        )
        .await?;
        assert_eq!(evil.status, 403, "{path}");
        assert!(evil.headers.get("access-control-allow-origin").is_none());
    }
    let get = with_origin(&bed, "GET", paths[1], SPA_ORIGIN, &[], String::new()).await?;
    assert_eq!(get.status, 200);
    assert_eq!(get.headers["access-control-allow-origin"], SPA_ORIGIN);
    let get = with_origin(
        &bed,
        "GET",
        paths[1],
        "http://localhost:5174",
        &[],
        String::new(),
    )
    .await?;
    assert!(
        get.headers.get("access-control-allow-origin").is_none(),
        "another port is another origin"
    );
    // Pages other than the three stay same-origin.
    let page = with_origin(
        &bed,
        "OPTIONS",
        "/contoso/oauth2/v2.0/authorize",
        SPA_ORIGIN,
        &[("access-control-request-method", "GET")],
        String::new(),
    )
    .await?;
    assert!(page.headers.get("access-control-allow-origin").is_none());
    Ok(())
}

/// Signs `name` in to the app `client_id` at `redirect` with response_mode=fragment; the
/// code from the fragment.
async fn fragment_code(
    bed: &Bed,
    client_id: &str,
    redirect: &str,
    name: &str,
) -> anyhow::Result<String> {
    let first = bed
        .authorize_with(
            &[
                ("client_id", Some(client_id)),
                ("redirect_uri", Some(redirect)),
                ("response_mode", Some("fragment")),
                ("scope", Some("openid profile offline_access")),
            ],
            "",
        )
        .await?;
    let done = bed.password_pages(&first, name).await?;
    let loc = url::Url::parse(done.location())?;
    anyhow::ensure!(
        loc.query().is_none(),
        "the answer is in the fragment only: {loc}"
    );
    let fragment = loc.fragment().unwrap_or_default();
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(fragment.as_bytes())
        .into_owned()
        .collect();
    anyhow::ensure!(pairs.iter().any(|(k, v)| k == "state" && v == "s"), "{loc}");
    pairs
        .into_iter()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v)
        .ok_or_else(|| anyhow::anyhow!("no code in {loc}"))
}

#[tokio::test]
async fn single_page_apps_redeem_cross_origin_and_refresh_for_a_day() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let spa_id = spa(&bed).await?;
    let form = |code: &str| {
        serde_urlencoded::to_string([
            ("grant_type", "authorization_code"),
            ("client_id", spa_id.as_str()),
            ("code", code),
            ("redirect_uri", SPA_REDIRECT),
            ("code_verifier", VERIFIER),
        ])
    };
    let ct = [("content-type", "application/x-www-form-urlencoded")];
    // Without an Origin (a server redeeming a browser's code): 9002327, and the code is not
    // spent by the refusal.
    let code = fragment_code(&bed, &spa_id, SPA_REDIRECT, "bo").await?;
    let a = bed
        .send(
            Request::post("/contoso/oauth2/v2.0/token")
                .header("content-type", "application/x-www-form-urlencoded")
                .body(Body::from(form(&code)?))?,
        )
        .await?;
    assert_eq!(code_of(&body(&a)), 9002327, "{}", a.body);
    // From another origin: refused too.
    let a = with_origin(
        &bed,
        "POST",
        "/contoso/oauth2/v2.0/token",
        "https://evil.example",
        &ct,
        form(&code)?,
    )
    .await?;
    assert_eq!(code_of(&body(&a)), 9002327, "{}", a.body);
    // From the SPA's origin: tokens, with CORS, and a refresh token for 24 hours.
    let a = with_origin(
        &bed,
        "POST",
        "/contoso/oauth2/v2.0/token",
        SPA_ORIGIN,
        &ct,
        form(&code)?,
    )
    .await?;
    let v = body(&a);
    assert_eq!(a.status, 200, "{v}");
    assert_eq!(a.headers["access-control-allow-origin"], SPA_ORIGIN);
    let lives = v["refresh_token_expires_in"].as_i64().unwrap_or_default();
    assert!((86_390..=86_400).contains(&lives), "{v}");
    // A rotation keeps the first token's end: never extended.
    let rt = v["refresh_token"].as_str().unwrap_or_default().to_string();
    let refresh = serde_urlencoded::to_string([
        ("grant_type", "refresh_token"),
        ("client_id", spa_id.as_str()),
        ("refresh_token", rt.as_str()),
    ])?;
    let r = with_origin(
        &bed,
        "POST",
        "/contoso/oauth2/v2.0/token",
        SPA_ORIGIN,
        &ct,
        refresh.clone(),
    )
    .await?;
    let rv = body(&r);
    assert_eq!(r.status, 200, "{rv}");
    assert!(
        rv["refresh_token_expires_in"].as_i64().unwrap_or(i64::MAX) <= lives,
        "{rv}"
    );
    let stored = bed
        .state
        .store
        .use_refresh_token(
            &crate::issue::hash_secret(rv["refresh_token"].as_str().unwrap_or_default()),
            crate::clock::unix_now(),
        )
        .await?;
    match stored {
        crate::store::oidc::RefreshUse::Fresh(rec) => {
            assert!(
                rec.expires_at
                    <= crate::clock::unix_now() + crate::issue::SPA_REFRESH_LIFETIME_SECS
            );
        }
        _ => anyhow::bail!("the rotated refresh token was not stored"),
    }

    // The bed's (non-SPA) app: a cross-origin redemption is refused with 9002326.
    let first = bed.authorize().await?;
    let done = bed.password_pages(&first, "bo").await?;
    let code = url::Url::parse(done.location())?
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let web = serde_urlencoded::to_string([
        ("grant_type", "authorization_code"),
        ("client_id", bed.client_id.as_str()),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ])?;
    let a = with_origin(
        &bed,
        "POST",
        "/contoso/oauth2/v2.0/token",
        SPA_ORIGIN,
        &ct,
        web,
    )
    .await?;
    assert_eq!(code_of(&body(&a)), 9002326, "{}", a.body);
    Ok(())
}

#[tokio::test]
async fn tokens_carry_the_claims_generic_clients_read() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let user = bed.synced_user("cy").await?;
    let first = body(&password_grant(&bed, "cy", "openid profile email offline_access").await?);
    let sid = claims(first["id_token"].as_str().unwrap_or_default())?["sid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(uuid::Uuid::parse_str(&sid).is_ok(), "{first}");
    // Directory sync brings the names and the mail (a sign-in's answer carries what the
    // agent read; the in-process agent reads none).
    {
        use passthru_proto::sync::{SyncBatch, SyncObject, SyncUser};
        let dir = crate::in_process::directory_user("cy");
        let batch = SyncBatch {
            run_id: uuid::Uuid::new_v4(),
            objects: vec![SyncObject::User(SyncUser {
                object_guid: dir.object_guid,
                consistency_guid: None,
                dn: "CN=cy,CN=Users,DC=corp,DC=example,DC=test".into(),
                user_principal_name: Some(user.upn.clone()),
                sam_account_name: Some("cy".into()),
                mail: Some("cy.lane@corp.example.test".into()),
                display_name: Some("Cy Lane".into()),
                given_name: Some("Cy".into()),
                surname: Some("Lane".into()),
                enabled: true,
                account_expires: None,
                usn_changed: 2,
                when_changed: None,
                password_last_set: Some(1_000),
            })],
            present: Vec::new(),
            done: 1,
            estimated_total: None,
        };
        bed.state
            .store
            .apply_sync_batch(bed.tenant.id, DOMAIN, &batch, crate::clock::unix_now())
            .await?;
    }
    // The refresh's ID token: the synced claims, and the sign-in's sid.
    let r = bed
        .post(
            "/contoso/oauth2/v2.0/token",
            &[
                ("grant_type", "refresh_token"),
                ("client_id", bed.client_id.as_str()),
                (
                    "refresh_token",
                    first["refresh_token"].as_str().unwrap_or_default(),
                ),
            ],
            "",
        )
        .await?;
    let v = body(&r);
    assert_eq!(r.status, 200, "{v}");
    let id = claims(v["id_token"].as_str().unwrap_or_default())?;
    assert_eq!(id["email"], "cy.lane@corp.example.test", "{id}");
    assert_eq!(id["email_verified"], true);
    assert_eq!(
        (id["given_name"].as_str(), id["family_name"].as_str()),
        (Some("Cy"), Some("Lane"))
    );
    assert_eq!(id["name"], "Cy Lane");
    assert_eq!(id["preferred_username"], user.upn.as_str());
    assert_eq!(id["ver"], "2.0");
    assert_eq!(id["sid"], sid.as_str(), "a refresh keeps the sign-in's sid");
    // login_hint is opaque and names the account when sent back.
    let hint = id["login_hint"].as_str().unwrap_or_default();
    assert!(!hint.contains('@'), "{hint}");
    assert_eq!(crate::issue::login_hint_username(hint), user.upn);
    let page = bed
        .authorize_with(&[("login_hint", Some(hint))], "")
        .await?;
    assert!(
        page.body.contains(&user.upn),
        "the username page is filled in"
    );
    // Without the email scope, no email.
    let v = body(&password_grant(&bed, "cy", "openid profile").await?);
    assert!(claims(v["id_token"].as_str().unwrap_or_default())?
        .get("email")
        .is_none());

    // Discovery says which algorithms, modes and claims.
    let d = body(
        &bed.get("/contoso/v2.0/.well-known/openid-configuration", "")
            .await?,
    );
    assert_eq!(
        d["id_token_signing_alg_values_supported"],
        json!(["RS256", "ES256"])
    );
    assert_eq!(
        d["response_modes_supported"],
        json!(["query", "fragment", "form_post"])
    );
    for c in [
        "email_verified",
        "given_name",
        "family_name",
        "sid",
        "login_hint",
        "roles",
    ] {
        assert!(
            d["claims_supported"]
                .as_array()
                .is_some_and(|a| a.contains(&json!(c))),
            "{c}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_organizations_authority_finds_the_tenant() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    bed.onprem_user("di").await?;
    // The password grant: the tenant of the user's domain.
    let upn = format!("di@{DOMAIN}");
    let a = bed
        .post(
            "/organizations/oauth2/v2.0/token",
            &[
                ("grant_type", "password"),
                ("client_id", bed.client_id.as_str()),
                ("username", upn.as_str()),
                ("password", RIGHT),
                ("scope", "openid"),
            ],
            "",
        )
        .await?;
    let v = body(&a);
    assert_eq!(a.status, 200, "{v}");
    let id = claims(v["id_token"].as_str().unwrap_or_default())?;
    assert_eq!(id["tid"], bed.tenant.id.to_string());
    assert!(id["iss"]
        .as_str()
        .unwrap_or_default()
        .ends_with(&format!("/{}/v2.0", bed.tenant.id)));
    // A user of no tenant: 90002 naming the domain.
    let a = bed
        .post(
            "/organizations/oauth2/v2.0/token",
            &[
                ("grant_type", "password"),
                ("client_id", bed.client_id.as_str()),
                ("username", "x@nowhere.example"),
                ("password", RIGHT),
            ],
            "",
        )
        .await?;
    let v = body(&a);
    assert_eq!(code_of(&v), 90002, "{v}");
    assert!(v["error_description"]
        .as_str()
        .unwrap_or_default()
        .contains("nowhere.example"));
    // The authorize endpoint: the app's tenant; the sign-in continues on its pages.
    let first = bed
        .get(
            &format!(
                "/organizations/oauth2/v2.0/authorize?client_id={}&response_type=code&redirect_uri={}&scope=openid&code_challenge={CHALLENGE}&code_challenge_method=S256",
                bed.client_id,
                url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
            ),
            "",
        )
        .await?;
    assert_eq!(first.status, 200, "{}", first.body);
    let done = bed.password_pages(&first, "di").await?;
    assert!(
        done.location().starts_with(REDIRECT) && done.location().contains("code="),
        "{}",
        done.location()
    );
    // Discovery: a template issuer, the organizations endpoints.
    let d = body(
        &bed.get("/organizations/v2.0/.well-known/openid-configuration", "")
            .await?,
    );
    assert!(
        d["issuer"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/{tenantid}/v2.0"),
        "{d}"
    );
    assert!(d["token_endpoint"]
        .as_str()
        .unwrap_or_default()
        .ends_with("/organizations/oauth2/v2.0/token"));
    Ok(())
}

#[tokio::test]
async fn client_request_id_is_echoed() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let id = "8f3c2b9e-6f0a-4d57-9c2e-1b2a3c4d5e6f";
    for path in [
        "/contoso/v2.0/.well-known/openid-configuration",
        "/contoso/oauth2/v2.0/token",
    ] {
        let a = bed
            .send(
                Request::post(path)
                    .header("client-request-id", id)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from("grant_type=password"))?,
            )
            .await?;
        assert_eq!(a.headers["client-request-id"], id, "{path}");
    }
    // Not a plain value: not echoed.
    let a = bed
        .send(
            Request::get("/contoso/discovery/v2.0/keys")
                .header("client-request-id", "a b<script>")
                .body(Body::empty())?,
        )
        .await?;
    assert!(a.headers.get("client-request-id").is_none());
    Ok(())
}

#[tokio::test]
async fn an_app_may_have_rs256_id_tokens() -> anyhow::Result<()> {
    let bed = Bed::new(ad).await?;
    let app = admin(
        &bed,
        "PUT",
        &format!("/apps/{}/id-token-alg", bed.client_id),
        json!({"alg": "RS256"}),
    )
    .await?;
    assert_eq!(app["id_token_alg"], "RS256", "{app}");
    let v = body(&password_grant(&bed, "eve", "openid profile").await?);
    let id_token = v["id_token"].as_str().unwrap_or_default();
    let header = jsonwebtoken::decode_header(id_token)?;
    assert_eq!(header.alg, jsonwebtoken::Algorithm::RS256);
    // It verifies against the RSA key the JWKS publishes under its kid.
    let jwks = body(&bed.get("/contoso/discovery/v2.0/keys", "").await?);
    let jwk = jwks["keys"]
        .as_array()
        .and_then(|keys| {
            keys.iter()
                .find(|k| k["kid"].as_str() == header.kid.as_deref())
        })
        .ok_or_else(|| anyhow::anyhow!("kid {:?} not in {jwks}", header.kid))?;
    assert_eq!(
        (jwk["kty"].as_str(), jwk["alg"].as_str()),
        (Some("RSA"), Some("RS256"))
    );
    let key = jsonwebtoken::DecodingKey::from_rsa_components(
        jwk["n"].as_str().unwrap_or_default(),
        jwk["e"].as_str().unwrap_or_default(),
    )?;
    let mut check = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    check.set_audience(&[bed.client_id.as_str()]);
    let got = jsonwebtoken::decode::<Value>(id_token, &key, &check)?;
    assert_eq!(got.claims["tid"], bed.tenant.id.to_string());
    // Access tokens stay ES256.
    let at = jsonwebtoken::decode_header(v["access_token"].as_str().unwrap_or_default())?;
    assert_eq!(at.alg, jsonwebtoken::Algorithm::ES256);
    // An algorithm Passthru does not sign with is refused with what to give.
    let token =
        crate::test_state::admin_token_of(&bed.state, bed.tenant.id, "admin@contoso.example")
            .await?;
    let bad = bed
        .send(
            Request::put(format!(
                "/contoso/admin/apps/{}/id-token-alg",
                bed.client_id
            ))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(json!({"alg": "HS256"}).to_string()))?,
        )
        .await?;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("RS256 or ES256"), "{}", bad.body);
    Ok(())
}
