//! The device authorization grant (RFC 8628): `POST /{tenant}/oauth2/v2.0/devicecode` gives a
//! device a code to show; the user enters it at `/{tenant}/devicelogin`, signs in through the
//! usual pages, and the device's polling of the token endpoint then gets the tokens (once).
//! The device flow always asks for the password (no silent SSO) so that a code phished from a
//! victim cannot be approved without the victim noticing. Besides the tenant's public apps,
//! the first-party admin client (`ADMIN_CLIENT_ID`, no app of the store) may use it: that is
//! how an administrator who must prove a second factor signs in to `passthru-cloud admin` and
//! `passthru-agent register`.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use maud::html;
use passthru_proto::admin::ADMIN_CLIENT_ID;
use passthru_proto::Aadsts;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use crate::clock::unix_now;
use crate::http::correlation_id;
use crate::issue::{hash_secret, random_token, user_tokens, Grant};
use crate::oauth_error::OAuthError;
use crate::pages::{alert, error_page, fault_page, hidden, page, username_page};
use crate::state::Shared;
use crate::store::device::DeviceCode;
use crate::store::{AuthzRequest, Tenant};
use crate::sts::{load_tenant, BaseUrl};

/// How long a device code lives, seconds.
const DEVICE_LIFETIME: i64 = 900;
/// Seconds a device must wait between polls.
const INTERVAL: i64 = 5;
/// Letters of user codes: no vowels (no words), no look-alikes.
const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

fn user_code() -> String {
    let mut raw = [0u8; 8];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut raw);
    let letters: String = raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    format!("{}-{}", &letters[..4], &letters[4..])
}

/// Normalises what a person typed: upper case, dash optional.
fn normalise(typed: &str) -> String {
    let letters: String = typed
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    if letters.len() == 8 {
        format!("{}-{}", &letters[..4], &letters[4..])
    } else {
        letters
    }
}

#[derive(Deserialize)]
struct DeviceForm {
    client_id: Option<String>,
    scope: Option<String>,
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`
pub async fn device_code(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    BaseUrl(base): BaseUrl,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OAuthError> {
    let corr = correlation_id(&headers);
    let form: DeviceForm = serde_urlencoded::from_bytes(&body)
        .map_err(|_| OAuthError::new(Aadsts::InvalidRequest, corr))?;
    let t = if crate::sts::is_multi_tenant(&tenant) {
        crate::sts::resolve_multi_tenant(&state, form.client_id.as_deref(), None, corr).await?
    } else {
        load_tenant(&state, &tenant, corr).await?
    };
    let client_id = form
        .client_id
        .map(|c| c.to_ascii_lowercase())
        .ok_or_else(|| {
            OAuthError::new(Aadsts::MissingParameter, corr).with_detail("client_id is required.")
        })?;
    // The admin client is first-party and public: no app of the store.
    if client_id != ADMIN_CLIENT_ID {
        match state.store.app(t.id, &client_id).await {
            Ok(Some(app)) if app.public => {}
            Ok(Some(_)) => {
                return Err(OAuthError::new(Aadsts::UnauthorizedClient, corr)
                    .with_detail("The device code flow is for public client applications."))
            }
            Ok(None) => return Err(OAuthError::new(Aadsts::UnknownClient, corr)),
            Err(e) => return Err(OAuthError::fault(corr, e)),
        }
    }
    let device = random_token();
    let now = unix_now();
    let mut d = DeviceCode {
        tenant_id: t.id,
        client_id,
        scope: form.scope.unwrap_or_else(|| "openid profile".into()),
        user_code: user_code(),
        expires_at: now + DEVICE_LIFETIME,
        interval_secs: INTERVAL,
        last_poll: 0,
        approved: None,
    };
    // A clash of user codes is rare; try again a few times.
    let mut stored = false;
    for _ in 0..5 {
        match state.store.add_device_code(&hash_secret(&device), &d).await {
            Ok(()) => {
                stored = true;
                break;
            }
            Err(e) => {
                if let Some(r) = crate::limits::pending_full_json(&e, corr) {
                    return Ok(r);
                }
            }
        }
        d.user_code = user_code();
    }
    if !stored {
        return Err(OAuthError::new(Aadsts::ServerError, corr));
    }
    let uri = format!("{base}/{}/devicelogin", t.name);
    Ok((
        [("cache-control", "no-store")],
        Json(json!({
            "device_code": device,
            "user_code": d.user_code,
            "verification_uri": uri,
            "expires_in": DEVICE_LIFETIME,
            "interval": INTERVAL,
            "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {} to authenticate.", d.user_code),
        })),
    )
        .into_response())
}

/// The code form's CSRF token travels twice: in a `SameSite=Strict` cookie and in the form;
/// a cross-site form post carries no cookie and is refused.
const CSRF_COOKIE: &str = "__Host-passthru_device_csrf";

fn code_page(tenant: &str, error: Option<&str>) -> Response {
    let csrf = random_token();
    let body = html! {
        h1 { "Enter code" }
        p { "Enter the code displayed on your app or device." }
        (alert(error))
        form method="post" action={ "/" (tenant) "/devicelogin" } {
            (hidden("csrf", &csrf))
            label for="user_code" { "Code" }
            input type="text" id="user_code" name="user_code" autocomplete="off" required autofocus;
            button type="submit" id="next" { "Next" }
        }
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let mut r = page(status, "Enter code", body, "'self'");
    r.headers_mut().append(
        "set-cookie",
        crate::browser_policy::host_cookie(CSRF_COOKIE, &csrf, "Strict", 900),
    );
    r
}

/// `GET /{tenant}/devicelogin`
pub async fn code_entry(State(state): State<Shared>, Path(tenant): Path<String>) -> Response {
    match state.store.tenant(&tenant).await {
        Ok(Some(t)) => code_page(&t.name, None),
        _ => error_page(
            Aadsts::TenantNotFound,
            Uuid::new_v4(),
            "This organization was not found.",
        ),
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    user_code: String,
    #[serde(default)]
    csrf: String,
}

impl std::fmt::Debug for CodeForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeForm").finish_non_exhaustive()
    }
}

/// `POST /{tenant}/devicelogin`: a valid code starts the sign-in pages for that device.
pub async fn code_submit(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    axum::Form(f): axum::Form<CodeForm>,
) -> Response {
    let corr = Uuid::new_v4();
    let cookie = crate::http::cookie_value(&headers, CSRF_COOKIE).unwrap_or_default();
    if f.csrf.is_empty() || !crate::issue::secrets_equal(&cookie, &f.csrf) {
        let mut r = error_page(
            Aadsts::InvalidRequest,
            corr,
            "This form has expired or was not ours (missing or wrong CSRF token). Open the code page again.",
        );
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let t: Tenant = match state.store.tenant(&tenant).await {
        Ok(Some(t)) => t,
        _ => {
            return error_page(
                Aadsts::TenantNotFound,
                corr,
                "This organization was not found.",
            )
        }
    };
    let code = normalise(&f.user_code);
    let Ok(Some(d)) = state
        .store
        .pending_device_by_user_code(t.id, &code, unix_now())
        .await
    else {
        return code_page(
            &t.name,
            Some("That code didn't work. Check the code and try again."),
        );
    };
    let req = AuthzRequest {
        id: random_token(),
        tenant_id: t.id,
        client_id: d.client_id.clone(),
        redirect_uri: String::new(),
        scope: d.scope.clone(),
        state: None,
        nonce: None,
        code_challenge: None,
        response_mode: "query".into(),
        prompt: Some("login".into()),
        max_age: None,
        login_hint: None,
        csrf: random_token(),
        username: None,
        device_user_code: Some(code),
        password_change: None,
    };
    if let Err(e) = state.store.put_authz(&req, d.expires_at).await {
        if let Some(page) = crate::limits::pending_full_page(&e, corr) {
            return page;
        }
        return fault_page(corr, e);
    }
    username_page(&t.name, &req.id, &req.csrf, "", None)
}

/// The device's poll at the token endpoint.
pub async fn redeem(
    state: &Shared,
    base: &str,
    tenant: &Tenant,
    client_id: &str,
    device_code: &str,
    want_client_info: bool,
    corr: Uuid,
) -> Result<Response, OAuthError> {
    let now = unix_now();
    let d = state
        .store
        .poll_device(&hash_secret(device_code), now)
        .await
        .map_err(|e| OAuthError::fault(corr, e))?
        .ok_or_else(|| OAuthError::new(Aadsts::ExpiredOrUsedGrant, corr))?;
    if d.tenant_id != tenant.id || d.client_id != client_id {
        return Err(OAuthError::new(Aadsts::InvalidGrant, corr));
    }
    let Some((user_id, auth_time)) = d.approved else {
        if d.expires_at <= now {
            return Err(OAuthError::new(Aadsts::DeviceCodeExpired, corr));
        }
        if d.last_poll > 0 && now - d.last_poll < d.interval_secs {
            return Err(OAuthError::new(Aadsts::SlowDown, corr));
        }
        return Err(OAuthError::new(Aadsts::AuthorizationPending, corr));
    };
    let user = state
        .store
        .user_by_id(tenant.id, user_id)
        .await
        .ok()
        .flatten()
        .ok_or_else(|| OAuthError::new(Aadsts::ExpiredOrUsedGrant, corr))?;
    let g = Grant {
        base,
        tenant,
        user: &user,
        client_id,
        scope: &d.scope,
        nonce: None,
        auth_time,
        want_client_info,
        family: None,
        refresh_expires_at: None,
        correlation_id: corr,
    };
    user_tokens(state, &g).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_readable_and_normalised() {
        let c = user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(&c[4..5], "-");
        assert!(c
            .chars()
            .filter(|c| *c != '-')
            .all(|c| ALPHABET.contains(&(c as u8))));
        assert_eq!(normalise(" bcdf ghjk "), "BCDF-GHJK");
        assert_eq!(normalise(&c.to_lowercase()), c);
    }

    use crate::in_process::{ad, jar, Answer, Bed};

    /// A device's `POST /devicecode` for `client_id`: status and JSON.
    async fn start(bed: &Bed, client_id: &str) -> anyhow::Result<(u16, serde_json::Value)> {
        let a = bed
            .post(
                "/contoso/oauth2/v2.0/devicecode",
                &[("client_id", client_id), ("scope", "openid profile")],
                "",
            )
            .await?;
        Ok((a.status.as_u16(), serde_json::from_str(&a.body)?))
    }

    /// One poll of the token endpoint: status and JSON.
    async fn poll(
        bed: &Bed,
        client_id: &str,
        device_code: &str,
    ) -> anyhow::Result<(u16, serde_json::Value)> {
        let a = bed
            .post(
                "/contoso/oauth2/v2.0/token",
                &[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("client_id", client_id),
                    ("device_code", device_code),
                ],
                "",
            )
            .await?;
        Ok((a.status.as_u16(), serde_json::from_str(&a.body)?))
    }

    fn error_of(v: &serde_json::Value) -> (Option<&str>, Option<u64>) {
        (v["error"].as_str(), v["error_codes"][0].as_u64())
    }

    /// The user's side: the code page, the code, then the usual sign-in pages.
    async fn approve(bed: &Bed, user_code: &str, name: &str) -> anyhow::Result<Answer> {
        let entry = bed.get("/contoso/devicelogin", "").await?;
        let cookie = jar(&[&entry]);
        let pages = bed
            .post(
                "/contoso/devicelogin",
                &[("csrf", &entry.hidden("csrf")), ("user_code", user_code)],
                &cookie,
            )
            .await?;
        bed.password_pages(&pages, name).await
    }

    #[tokio::test]
    async fn a_device_code_goes_pending_slow_down_approved_used() -> anyhow::Result<()> {
        let bed = Bed::new(ad).await?;
        let (status, v) = start(&bed, &bed.client_id).await?;
        assert_eq!(status, 200, "{v}");
        let device = v["device_code"].as_str().unwrap_or_default().to_string();
        let user_code = v["user_code"].as_str().unwrap_or_default().to_string();
        assert!(v["verification_uri"]
            .as_str()
            .is_some_and(|u| u.ends_with("/contoso/devicelogin")));
        assert_eq!(v["interval"], 5);

        // Waiting for the user, then polling too fast.
        let (status, v) = poll(&bed, &bed.client_id, &device).await?;
        assert_eq!(
            (status, error_of(&v)),
            (400, (Some("authorization_pending"), Some(70016)))
        );
        let (status, v) = poll(&bed, &bed.client_id, &device).await?;
        assert_eq!(
            (status, error_of(&v)),
            (400, (Some("slow_down"), Some(70016)))
        );
        // Another app cannot redeem this app's code.
        let other = Uuid::new_v4().to_string();
        let (_, v) = poll(&bed, &other, &device).await?;
        assert!(v["access_token"].is_null() && v["error"].is_string(), "{v}");

        // The user approves in a browser; the device then gets tokens, once.
        let done = approve(&bed, &user_code.to_lowercase(), "dora").await?;
        assert_eq!(done.status, 200, "{}", done.body);
        assert!(done.body.contains("signed in to App"), "{}", done.body);
        let (status, v) = poll(&bed, &bed.client_id, &device).await?;
        assert_eq!(status, 200, "{v}");
        assert!(
            v["access_token"].is_string() && v["id_token"].is_string(),
            "{v}"
        );
        let (status, v) = poll(&bed, &bed.client_id, &device).await?;
        assert_eq!(
            (status, error_of(&v)),
            (400, (Some("invalid_grant"), Some(70008)))
        );
        // The code cannot be entered again either.
        let again = approve(&bed, &user_code, "eve").await?;
        assert_ne!(again.status, 200, "{}", again.body);
        assert_eq!(bed.asked().len(), 1, "{:?}", bed.asked());
        Ok(())
    }

    /// MSAL (Node, browser, Python) sends `grant_type=device_code`, the short form Entra
    /// accepts beside the URN.
    #[tokio::test]
    async fn the_short_grant_type_msal_sends_redeems_a_device_code() -> anyhow::Result<()> {
        let bed = Bed::new(ad).await?;
        let (_, v) = start(&bed, &bed.client_id).await?;
        let device = v["device_code"].as_str().unwrap_or_default().to_string();
        let user_code = v["user_code"].as_str().unwrap_or_default().to_string();
        let done = approve(&bed, &user_code, "dora").await?;
        assert_eq!(done.status, 200, "{}", done.body);
        let a = bed
            .post(
                "/contoso/oauth2/v2.0/token",
                &[
                    ("grant_type", "device_code"),
                    ("client_id", &bed.client_id),
                    ("device_code", &device),
                ],
                "",
            )
            .await?;
        let v: serde_json::Value = serde_json::from_str(&a.body)?;
        assert_eq!(a.status.as_u16(), 200, "{v}");
        assert!(v["access_token"].is_string(), "{v}");
        Ok(())
    }

    /// The tenant's Global Administrator (a cloud-only user) signs in on the device pages of
    /// `user_code`: the answer to the password.
    async fn admin_approves(bed: &Bed, user_code: &str) -> anyhow::Result<Answer> {
        let entry = bed.get("/contoso/devicelogin", "").await?;
        let first = bed
            .post(
                "/contoso/devicelogin",
                &[("csrf", &entry.hidden("csrf")), ("user_code", user_code)],
                &jar(&[&entry]),
            )
            .await?;
        let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
        bed.post(
            "/contoso/login",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("username", "admin@contoso.example"),
            ],
            "",
        )
        .await?;
        bed.post(
            "/contoso/login/password",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("password", "Admin-Passw0rd-1"),
            ],
            "",
        )
        .await
    }

    /// `GET /contoso/admin/agents` with `token`: the status.
    async fn list_agents(bed: &Bed, token: &str) -> anyhow::Result<u16> {
        let req = axum::http::Request::get("/contoso/admin/agents")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())?;
        Ok(bed.send(req).await?.status.as_u16())
    }

    #[tokio::test]
    async fn the_admin_client_signs_in_with_a_device_code_and_refreshes() -> anyhow::Result<()> {
        use passthru_proto::admin::{ADMIN_AUDIENCE, ADMIN_CLIENT_NAME, ADMIN_SCOPE};
        let mut bed = Bed::new(ad).await?;
        let scope = format!("{ADMIN_SCOPE} offline_access");
        let a = bed
            .post(
                "/contoso/oauth2/v2.0/devicecode",
                &[("client_id", ADMIN_CLIENT_ID), ("scope", &scope)],
                "",
            )
            .await?;
        assert_eq!(a.status, 200, "{}", a.body);
        let v: serde_json::Value = serde_json::from_str(&a.body)?;
        let device = v["device_code"].as_str().unwrap_or_default().to_string();
        let user_code = v["user_code"].as_str().unwrap_or_default().to_string();
        let (_, pending) = poll(&bed, ADMIN_CLIENT_ID, &device).await?;
        assert_eq!(pending["error"], "authorization_pending", "{pending}");

        // The pages name the administration client.
        let done = admin_approves(&bed, &user_code).await?;
        assert_eq!(done.status, 200, "{}", done.body);
        assert!(
            done.body.contains(&format!(
                "You have signed in to {ADMIN_CLIENT_NAME} on your device"
            )),
            "{}",
            done.body
        );
        let (status, tokens) = poll(&bed, ADMIN_CLIENT_ID, &device).await?;
        assert_eq!(status, 200, "{tokens}");
        let access = tokens["access_token"].as_str().unwrap_or_default();
        let refresh = tokens["refresh_token"].as_str().unwrap_or_default();
        assert!(!refresh.is_empty(), "{tokens}");
        // An admin API token: its audience, its client, and the API takes it.
        let keys = bed.state.signer.keys(bed.tenant.id).await?;
        let claims = keys.verify_access(access, ADMIN_AUDIENCE)?;
        assert_eq!(claims.azp, ADMIN_CLIENT_ID);
        assert_eq!(claims.preferred_username, "admin@contoso.example");
        assert_eq!(list_agents(&bed, access).await?, 200);

        // The refresh token grant keeps the admin audience, and rotates.
        let refreshed = bed
            .post(
                "/contoso/oauth2/v2.0/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", ADMIN_CLIENT_ID),
                    ("scope", &scope),
                    ("refresh_token", refresh),
                ],
                "",
            )
            .await?;
        assert_eq!(refreshed.status, 200, "{}", refreshed.body);
        let r: serde_json::Value = serde_json::from_str(&refreshed.body)?;
        let access2 = r["access_token"].as_str().unwrap_or_default();
        let claims = keys.verify_access(access2, ADMIN_AUDIENCE)?;
        assert_eq!(claims.azp, ADMIN_CLIENT_ID);
        assert_eq!(list_agents(&bed, access2).await?, 200);
        assert!(r["refresh_token"]
            .as_str()
            .is_some_and(|n| !n.is_empty() && n != refresh));
        let again = bed
            .post(
                "/contoso/oauth2/v2.0/token",
                &[
                    ("grant_type", "refresh_token"),
                    ("client_id", ADMIN_CLIENT_ID),
                    ("refresh_token", refresh),
                ],
                "",
            )
            .await?;
        assert_eq!(again.status, 400, "{}", again.body);

        // Under `mfa required` the administrator's device sign-in asks for the second factor
        // (here: enrolment), and the device waits meanwhile.
        bed.settings(|s| s.mfa = crate::model::mfa_policy::Policy::Required)
            .await?;
        let a = bed
            .post(
                "/contoso/oauth2/v2.0/devicecode",
                &[("client_id", ADMIN_CLIENT_ID), ("scope", &scope)],
                "",
            )
            .await?;
        let v: serde_json::Value = serde_json::from_str(&a.body)?;
        let device = v["device_code"].as_str().unwrap_or_default().to_string();
        let page = admin_approves(&bed, v["user_code"].as_str().unwrap_or_default()).await?;
        assert!(page.body.contains("id=\"secret\""), "{}", page.body);
        let (_, pending) = poll(&bed, ADMIN_CLIENT_ID, &device).await?;
        assert_eq!(pending["error"], "authorization_pending", "{pending}");
        Ok(())
    }

    #[tokio::test]
    async fn an_expired_device_code_says_so_once() -> anyhow::Result<()> {
        let bed = Bed::new(ad).await?;
        let now = unix_now();
        let d = DeviceCode {
            tenant_id: bed.tenant.id,
            client_id: bed.client_id.clone(),
            scope: "openid".into(),
            user_code: "BCDF-GHJK".into(),
            expires_at: now - 1,
            interval_secs: INTERVAL,
            last_poll: 0,
            approved: None,
        };
        bed.state
            .store
            .add_device_code(&hash_secret("old-device"), &d)
            .await?;
        let (status, v) = poll(&bed, &bed.client_id, "old-device").await?;
        assert_eq!(
            (status, error_of(&v)),
            (400, (Some("expired_token"), Some(70019)))
        );
        let (_, v) = poll(&bed, &bed.client_id, "old-device").await?;
        assert_eq!(error_of(&v), (Some("invalid_grant"), Some(70008)));
        // Nor can a user enter it.
        let entry = bed.get("/contoso/devicelogin", "").await?;
        let page = bed
            .post(
                "/contoso/devicelogin",
                &[("csrf", &entry.hidden("csrf")), ("user_code", "BCDF-GHJK")],
                &jar(&[&entry]),
            )
            .await?;
        assert_eq!(page.status, 400, "{}", page.body);
        Ok(())
    }

    #[tokio::test]
    async fn the_code_page_and_the_grant_refuse_what_is_not_theirs() -> anyhow::Result<()> {
        let bed = Bed::new(ad).await?;
        // Unknown app, missing client_id.
        let (status, v) = start(&bed, &Uuid::new_v4().to_string()).await?;
        assert_eq!((status, error_of(&v).1), (400, Some(700016)), "{v}");
        let a = bed
            .post(
                "/contoso/oauth2/v2.0/devicecode",
                &[("scope", "openid")],
                "",
            )
            .await?;
        assert_eq!(a.status, 400, "{}", a.body);
        // A confidential app may not use the device flow.
        let confidential = Uuid::new_v4().to_string();
        bed.state
            .store
            .add_app(
                &crate::store::App {
                    client_id: confidential.clone(),
                    tenant_id: bed.tenant.id,
                    name: "Web".into(),
                    public: false,
                    redirect_uris: vec!["https://web.example/cb".into()],
                    secret_hash: Some("x".into()),
                    groups_claim: false,
                    ..Default::default()
                },
                unix_now(),
            )
            .await?;
        let (status, v) = start(&bed, &confidential).await?;
        assert_eq!(
            (status, error_of(&v)),
            (400, (Some("unauthorized_client"), Some(7000112)))
        );

        // The code form: without the cookie's CSRF token, refused; a wrong code, its page.
        let (_, v) = start(&bed, &bed.client_id).await?;
        let user_code = v["user_code"].as_str().unwrap_or_default().to_string();
        let entry = bed.get("/contoso/devicelogin", "").await?;
        for (csrf, cookie) in [
            (entry.hidden("csrf"), String::new()),
            ("forged".to_string(), jar(&[&entry])),
            (String::new(), jar(&[&entry])),
        ] {
            let a = bed
                .post(
                    "/contoso/devicelogin",
                    &[("csrf", &csrf), ("user_code", &user_code)],
                    &cookie,
                )
                .await?;
            assert_eq!(a.status, 403, "{}", a.body);
        }
        let wrong = bed
            .post(
                "/contoso/devicelogin",
                &[("csrf", &entry.hidden("csrf")), ("user_code", "ZZZZ-ZZZZ")],
                &jar(&[&entry]),
            )
            .await?;
        assert_eq!(wrong.status, 400);
        assert!(wrong.body.contains("didn't work"), "{}", wrong.body);
        Ok(())
    }
}
