//! What the pages people see look like for one request: the tenant's branding (its
//! `branding_*` settings, cached with the tenant, and whether it has a logo) and the language
//! ([`crate::i18n`]), read by a middleware on the page routes and handed to
//! [`crate::pages::page`] for the time of the handler.

use axum::response::Response;

/// Middleware of the pages people see: reads the tenant's branding (its settings, cached
/// with the tenant, and whether it has a logo) and the language for [`crate::pages::page`].
pub(crate) async fn with_branding(
    axum::extract::State(state): axum::extract::State<crate::state::Shared>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let name = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or_default()
        .to_string();
    // The language: the app's `ui_locales` (kept for the rest of the sign-in in a cookie),
    // that cookie, the browser's Accept-Language, English.
    let asked = req.uri().query().and_then(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == "ui_locales")
            .and_then(|(_, v)| crate::i18n::from_ui_locales(&v))
    });
    let cookie = crate::browser_policy::tenant_cookie(LANG_COOKIE, &name);
    let kept = crate::http::cookie_value(req.headers(), &cookie)
        .and_then(|v| crate::i18n::Locale::from_tag(&v));
    let browser = req
        .headers()
        .get("accept-language")
        .and_then(|v| v.to_str().ok())
        .and_then(crate::i18n::from_accept_language);
    let locale = asked.or(kept).or(browser).unwrap_or_default();
    let branding = match state.store.tenant(&name).await {
        Ok(Some(t)) => crate::pages::Branding {
            logo: state.store.logo_version(t.id).await.ok().flatten(),
            name: t.settings.branding_name.clone(),
            accent: t.settings.branding_accent_color.clone(),
            text: t.settings.branding_sign_in_text.clone(),
            tenant: t.name,
            locale,
        },
        _ => crate::pages::Branding {
            locale,
            ..crate::pages::Branding::default()
        },
    };
    let mut r = crate::pages::with(branding, next.run(req)).await;
    if let Some(l) = asked.filter(|l| Some(*l) != kept) {
        r.headers_mut().append(
            "set-cookie",
            crate::browser_policy::host_cookie(&cookie, l.tag(), "Lax", LANG_COOKIE_SECS),
        );
    }
    r
}

/// The cookie that keeps the language an app asked for (`ui_locales`) for the rest of the
/// sign-in (`__Host-passthru_lang.TENANT`).
const LANG_COOKIE: &str = "passthru_lang";
/// How long it is kept, seconds.
const LANG_COOKIE_SECS: i64 = 12 * 3600;
