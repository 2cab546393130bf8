//! What the cloud tells browsers about itself: HTTP Strict Transport Security on every
//! HTTPS response, and cookies that are all `__Host-` prefixed (`Secure`, `Path=/`, no
//! `Domain`), so that neither a plain-HTTP page nor a sibling host can set or shadow them. A
//! cookie that used to be scoped to a tenant's path carries the tenant in its name instead.

use axum::http::header::STRICT_TRANSPORT_SECURITY;
use axum::http::HeaderValue;
use axum::response::Response;

/// The `Strict-Transport-Security` value: one year, subdomains included.
pub const HSTS: &str = "max-age=31536000; includeSubDomains";

/// Adds HSTS to a response of the HTTPS listener (a layer of the router).
pub(crate) async fn hsts(mut r: Response) -> Response {
    r.headers_mut()
        .insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static(HSTS));
    r
}

/// The name of a cookie kept per tenant: `__Host-BASE.TENANT` (tenant names are letters,
/// digits, '-', '.' and '_', all valid in a cookie name).
pub(crate) fn tenant_cookie(base: &str, tenant: &str) -> String {
    format!("__Host-{base}.{tenant}")
}

/// A `Set-Cookie` value for the `__Host-` cookie `name` (`HttpOnly`; `Max-Age=0` removes
/// it).
pub(crate) fn host_cookie(name: &str, value: &str, same_site: &str, max_age: i64) -> HeaderValue {
    debug_assert!(name.starts_with("__Host-"));
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite={same_site}; Max-Age={max_age}"
    ))
    .unwrap_or_else(|_| {
        HeaderValue::from_static("__Host-passthru_invalid=; Path=/; Secure; Max-Age=0")
    })
}

#[cfg(test)]
mod tests {

    use super::HSTS;
    use crate::clock::unix_now;
    use crate::in_process::{ad, jar, Answer, Bed, DOMAIN, REDIRECT, VERIFIER};

    async fn sign_in(bed: &Bed, name: &str) -> anyhow::Result<Answer> {
        bed.sign_in(name).await
    }

    /// Whether single sign-on still answers `prompt=none` for the browser with `cookie`.
    async fn signed_in(bed: &Bed, cookie: &str) -> anyhow::Result<bool> {
        let q = serde_urlencoded::to_string([
            ("client_id", bed.client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", REDIRECT),
            ("prompt", "none"),
            (
                "code_challenge",
                "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            ),
            ("code_challenge_method", "S256"),
        ])?;
        let a = bed
            .get(&format!("/contoso/oauth2/v2.0/authorize?{q}"), cookie)
            .await?;
        Ok(a.location().contains("code="))
    }

    #[tokio::test]
    async fn every_response_of_the_https_router_has_hsts() -> anyhow::Result<()> {
        let bed = Bed::new(ad).await?;
        let answers = [
            bed.get("/healthz", "").await?,
            bed.get("/contoso/v2.0/.well-known/openid-configuration", "")
                .await?,
            bed.get("/no/such/page", "").await?,
            bed.post("/contoso/oauth2/v2.0/token", &[("grant_type", "nope")], "")
                .await?,
            bed.authorize().await?,
            bed.get("/contoso/admin/users", "").await?,
        ];
        for a in &answers {
            assert_eq!(
                a.headers
                    .get("strict-transport-security")
                    .and_then(|v| v.to_str().ok()),
                Some(HSTS),
                "{} {:?}",
                a.status,
                a.headers
            );
        }
        assert_eq!(HSTS, "max-age=31536000; includeSubDomains");
        Ok(())
    }

    #[tokio::test]
    async fn every_cookie_the_cloud_sets_is_host_prefixed() -> anyhow::Result<()> {
        let mut bed = Bed::new(ad).await?;
        bed.settings(|s| s.writeback = true).await?;
        let mut set = Vec::new();
        // The sign-on session.
        let signed = sign_in(&bed, "alice").await?;
        set.extend(signed.set_cookies());
        // The device code page's CSRF cookie.
        set.extend(bed.get("/contoso/devicelogin", "").await?.set_cookies());
        // The portal's sign-in state, and after sign-out its cleared cookies.
        set.extend(bed.get("/contoso/portal/", "").await?.set_cookies());
        // Self-service reset's flow cookie (a user with writeback and a second factor).
        let alice = bed.onprem_user("alice").await?;
        bed.state
            .store
            .set_writeback_allowed(bed.tenant.id, alice.id, true, unix_now())
            .await?;
        let secret = crate::mfa::totp::new_secret();
        let sealed = bed.state.mfa_box.seal(alice.id, &secret)?;
        bed.state
            .store
            .start_mfa_enrolment(bed.tenant.id, alice.id, &sealed)
            .await?;
        bed.state
            .store
            .confirm_mfa_enrolment(bed.tenant.id, alice.id, 1, &[], unix_now())
            .await?;
        let upn = format!("alice@{DOMAIN}");
        let reset = bed
            .post("/contoso/password/reset", &[("username", &upn)], "")
            .await?;
        assert!(!reset.set_cookies().is_empty(), "{}", reset.body);
        set.extend(reset.set_cookies());
        // Logout's removal of the session cookie.
        set.extend(
            bed.get("/contoso/oauth2/v2.0/logout", "")
                .await?
                .set_cookies(),
        );
        let names: Vec<&str> = set.iter().filter_map(|c| c.split('=').next()).collect();
        for wanted in [
            "__Host-passthru_session",
            "__Host-passthru_device_csrf",
            "__Host-passthru_portal_login.contoso",
            "__Host-passthru_reset.contoso",
        ] {
            assert!(names.contains(&wanted), "{wanted} in {names:?}");
        }
        for c in &set {
            let attrs: Vec<&str> = c.split(';').map(str::trim).collect();
            assert!(c.starts_with("__Host-"), "{c}");
            assert!(attrs.contains(&"Path=/"), "{c}");
            assert!(attrs.contains(&"Secure"), "{c}");
            assert!(attrs.contains(&"HttpOnly"), "{c}");
            assert!(
                !attrs
                    .iter()
                    .any(|a| a.to_ascii_lowercase().starts_with("domain")),
                "{c}"
            );
        }
        Ok(())
    }

    #[tokio::test]
    async fn a_cross_site_get_cannot_sign_out() -> anyhow::Result<()> {
        let bed = Bed::new(ad).await?;
        let signed = sign_in(&bed, "alice").await?;
        let cookie = jar(&[&signed]);
        assert!(signed_in(&bed, &cookie).await?);
        let q = serde_urlencoded::to_string([
            ("post_logout_redirect_uri", REDIRECT),
            ("state", "bye"),
        ])?;
        let logout = format!("/contoso/oauth2/v2.0/logout?{q}");

        // A GET (a link or an image on another site): a confirmation page, still signed in.
        let page = bed.get(&logout, &cookie).await?;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(page.location().is_empty());
        assert!(page.body.contains("method=\"post\""), "{}", page.body);
        assert!(signed_in(&bed, &cookie).await?, "a GET signed the user out");
        // A form posted from elsewhere (no or a wrong CSRF token): refused.
        for csrf in ["", "forged"] {
            let forged = bed
                .post(
                    "/contoso/oauth2/v2.0/logout",
                    &[("csrf", csrf), ("post_logout_redirect_uri", REDIRECT)],
                    &cookie,
                )
                .await?;
            assert_eq!(forged.status, 403, "{}", forged.body);
            assert!(signed_in(&bed, &cookie).await?);
        }
        // The user confirms: signed out, back to the app with its state.
        let confirmed = bed
            .post(
                "/contoso/oauth2/v2.0/logout",
                &[
                    ("csrf", page.hidden("csrf").as_str()),
                    ("post_logout_redirect_uri", REDIRECT),
                    ("state", "bye"),
                ],
                &cookie,
            )
            .await?;
        assert!(
            confirmed.location().starts_with(REDIRECT)
                && confirmed.location().contains("state=bye"),
            "{} {}",
            confirmed.status,
            confirmed.body
        );
        assert!(!signed_in(&bed, &cookie).await?);
        Ok(())
    }

    #[tokio::test]
    async fn a_relying_party_with_an_id_token_hint_signs_out_at_once() -> anyhow::Result<()> {
        let bed = Bed::new(ad).await?;
        let signed = sign_in(&bed, "alice").await?;
        let cookie = jar(&[&signed]);
        let code = url::Url::parse(signed.location())?
            .query_pairs()
            .find(|(k, _)| k == "code")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default();
        let tokens = bed
            .post(
                "/contoso/oauth2/v2.0/token",
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", bed.client_id.as_str()),
                    ("code", code.as_str()),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
                "",
            )
            .await?;
        let body: serde_json::Value = serde_json::from_str(&tokens.body)?;
        let id_token = body["id_token"].as_str().unwrap_or_default().to_string();
        assert!(!id_token.is_empty(), "{}", tokens.body);

        // Another user's ID token is no hint for this session: the confirmation page.
        let other = sign_in(&bed, "bob").await?;
        let other_cookie = jar(&[&other]);
        let q = serde_urlencoded::to_string([
            ("id_token_hint", id_token.as_str()),
            ("post_logout_redirect_uri", REDIRECT),
            ("state", "bye"),
        ])?;
        let logout = format!("/contoso/oauth2/v2.0/logout?{q}");
        let page = bed.get(&logout, &other_cookie).await?;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(signed_in(&bed, &other_cookie).await?);
        // A forged hint neither.
        let forged = format!(
            "/contoso/oauth2/v2.0/logout?id_token_hint={}x&post_logout_redirect_uri={REDIRECT}",
            &id_token[..id_token.len() - 1]
        );
        let page = bed.get(&forged, &cookie).await?;
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(signed_in(&bed, &cookie).await?);
        // The user's own: signed out, back to the app.
        let out = bed.get(&logout, &cookie).await?;
        assert!(
            out.location().starts_with(REDIRECT) && out.location().contains("state=bye"),
            "{} {}",
            out.status,
            out.body
        );
        assert!(!signed_in(&bed, &cookie).await?);
        Ok(())
    }
}
