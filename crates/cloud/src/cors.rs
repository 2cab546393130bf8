//! Cross-origin requests from single-page apps: discovery, the JWKS and the token endpoint
//! answer CORS for the origins of single-page apps' redirect URIs, and for no one else.
//!
//! Only these three endpoints: a browser app reads the metadata and keys and redeems its
//! code and refresh token there; every other endpoint (sign-in pages, admin API, portal)
//! stays same-origin. No credentials mode (cookies are never sent cross-origin), so the
//! allowed request headers can be what the preflight asks for.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::state::Shared;

/// How long a browser may cache a preflight answer, seconds.
const PREFLIGHT_MAX_AGE: &str = "86400";

/// Most request headers a preflight may ask for.
const MAX_REQUESTED_HEADERS: usize = 32;

/// The tenant segment of a path CORS applies to (`/{tenant}/...`), or `None`.
fn cors_tenant(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let (tenant, tail) = rest.split_once('/')?;
    let known = matches!(
        tail,
        "v2.0/.well-known/openid-configuration" | "discovery/v2.0/keys" | "oauth2/v2.0/token"
    );
    (known && !tenant.is_empty()).then_some(tenant)
}

/// Whether `origin` is a single-page app's for `tenant` (any tenant's for the `organizations`
/// and `common` authorities).
async fn allowed(state: &Shared, tenant: &str, origin: &str) -> bool {
    let tenant_id = if crate::sts::is_multi_tenant(tenant) {
        None
    } else {
        match state.store.tenant(tenant).await {
            Ok(Some(t)) => Some(t.id),
            _ => return false,
        }
    };
    match state.store.spa_origins(tenant_id).await {
        Ok(origins) => origins.iter().any(|o| o == origin),
        Err(e) => {
            tracing::warn!(error = %e, "the single-page apps' origins could not be read; the cross-origin request is refused");
            false
        }
    }
}

/// The headers a preflight asked for, when each is a plain header name.
fn requested_headers(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = headers
        .get("access-control-request-headers")?
        .to_str()
        .ok()?;
    let names: Vec<&str> = asked
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    let plain = names.len() <= MAX_REQUESTED_HEADERS
        && names.iter().all(|n| {
            n.len() <= 64
                && n.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        });
    if !plain {
        return None;
    }
    HeaderValue::from_str(&names.join(", ")).ok()
}

/// The middleware.
pub(crate) async fn cors(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let origin = req
        .headers()
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let (Some(origin), Some(tenant)) = (origin, cors_tenant(req.uri().path())) else {
        return next.run(req).await;
    };
    let tenant = tenant.to_string();
    let ok = allowed(&state, &tenant, &origin).await;
    let preflight = req.method() == Method::OPTIONS
        && req.headers().contains_key("access-control-request-method");
    if preflight {
        if !ok {
            return (
                StatusCode::FORBIDDEN,
                "This origin is not a redirect URI origin of any single-page app of this organization.",
            )
                .into_response();
        }
        let mut resp = Response::new(Body::empty());
        *resp.status_mut() = StatusCode::NO_CONTENT;
        let h = resp.headers_mut();
        add_origin(h, &origin);
        h.insert(
            "access-control-allow-methods",
            HeaderValue::from_static("GET, POST, OPTIONS"),
        );
        if let Some(asked) = requested_headers(req.headers()) {
            h.insert("access-control-allow-headers", asked);
        }
        h.insert(
            "access-control-max-age",
            HeaderValue::from_static(PREFLIGHT_MAX_AGE),
        );
        return resp;
    }
    let mut resp = next.run(req).await;
    if ok {
        add_origin(resp.headers_mut(), &origin);
        resp.headers_mut().insert(
            "access-control-expose-headers",
            HeaderValue::from_static("client-request-id, x-ms-request-id"),
        );
    }
    resp
}

fn add_origin(h: &mut HeaderMap, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        h.insert("access-control-allow-origin", v);
    }
    h.append("vary", HeaderValue::from_static("origin"));
}

#[cfg(test)]
mod tests {
    use super::cors_tenant;

    #[test]
    fn only_metadata_keys_and_token_are_cross_origin() {
        assert_eq!(
            cors_tenant("/contoso/v2.0/.well-known/openid-configuration"),
            Some("contoso")
        );
        assert_eq!(cors_tenant("/contoso/discovery/v2.0/keys"), Some("contoso"));
        assert_eq!(
            cors_tenant("/organizations/oauth2/v2.0/token"),
            Some("organizations")
        );
        for other in [
            "/contoso/oauth2/v2.0/authorize",
            "/contoso/admin/apps",
            "/contoso/oauth2/v2.0/token/x",
            "//oauth2/v2.0/token",
            "/portal",
            "",
        ] {
            assert_eq!(cors_tenant(other), None, "{other}");
        }
    }
}
