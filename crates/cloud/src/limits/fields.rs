//! Length caps on what a client sends to the sign-in endpoints: every known field of the
//! query string and of a form body (and the path's tenant and user name), checked before
//! any handler stores or logs it. A field over its maximum gets 400 `invalid_request`
//! naming the field and its maximum (never its value: it may be a password).
//!
//! Lengths are of the decoded value in bytes, counted without decoding (no copy of a
//! secret is made here). Fields not in the table are neither stored nor logged; the body
//! limit bounds them.

use axum::body::Body;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::BodyExt as _;

use super::refused;

/// The maximum length in bytes of each field a client may send.
pub(crate) const MAX_LEN: &[(&str, usize)] = &[
    // OAuth 2.0 and OpenID Connect.
    ("client_id", 256),
    ("redirect_uri", 2048),
    ("post_logout_redirect_uri", 2048),
    ("response_type", 64),
    ("response_mode", 64),
    ("grant_type", 128),
    ("scope", 2048),
    ("state", 4096),
    ("nonce", 1024),
    ("prompt", 64),
    ("login_hint", 320),
    ("domain_hint", 256),
    ("max_age", 32),
    ("code_challenge", 128),
    ("code_challenge_method", 16),
    ("code_verifier", 128),
    ("code", 4096),
    ("refresh_token", 4096),
    ("device_code", 256),
    ("client_secret", 1024),
    ("client_assertion_type", 128),
    ("client_assertion", 16 * 1024),
    ("client_info", 16),
    ("error", 256),
    ("error_description", 4096),
    ("user_code", 64),
    // The sign-in forms.
    ("username", 320),
    ("password", 1024),
    ("current", 1024),
    ("new", 1024),
    ("confirm", 1024),
    ("req", 128),
    ("csrf", 128),
    ("id", 128),
];

/// The maximum of a named path part: the tenant, and the user name of `userrealm`.
pub(crate) const MAX_TENANT: usize = 256;
pub(crate) const MAX_USERNAME: usize = 320;

/// The length of a form-encoded value once decoded (`%XX` is one byte, `+` a space).
fn decoded_len(raw: &[u8]) -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%'
            && i + 2 < raw.len()
            && raw[i + 1].is_ascii_hexdigit()
            && raw[i + 2].is_ascii_hexdigit()
        {
            i += 3;
        } else {
            i += 1;
        }
        n += 1;
    }
    n
}

/// The first field of a form-encoded string over its maximum: (name, maximum).
pub(crate) fn first_too_long(encoded: &[u8]) -> Option<(&'static str, usize)> {
    for pair in encoded.split(|b| *b == b'&') {
        let (raw_name, raw_value) = match pair.iter().position(|b| *b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &[][..]),
        };
        if raw_value.len() <= 16 {
            continue; // under every maximum, whatever its name
        }
        // Names are short and never secret: decoding them is safe.
        let name = percent_encoding::percent_decode(raw_name).decode_utf8_lossy();
        if let Some((known, max)) = MAX_LEN.iter().find(|(n, _)| *n == name) {
            if decoded_len(raw_value) > *max {
                return Some((known, *max));
            }
        }
    }
    None
}

fn percent_decoded_len(segment: &str) -> usize {
    decoded_len(segment.as_bytes())
}

/// The path's named parts over their maximum.
fn path_too_long(path: &str) -> Option<(&'static str, usize)> {
    let mut segs = path.trim_start_matches('/').split('/');
    let tenant = segs.next().unwrap_or("");
    if percent_decoded_len(tenant) > MAX_TENANT {
        return Some(("tenant", MAX_TENANT));
    }
    if tenant == "common" && segs.next() == Some("userrealm") {
        if let Some(user) = segs.next() {
            if percent_decoded_len(user) > MAX_USERNAME {
                return Some(("username", MAX_USERNAME));
            }
        }
    }
    None
}

fn too_long(name: &str, max: usize, corr: uuid::Uuid) -> Response {
    refused(
        StatusCode::BAD_REQUEST,
        format!("The parameter '{name}' is longer than its maximum of {max} bytes."),
        corr,
    )
}

/// The middleware (inside the body reader: the body is in memory already).
pub(crate) async fn check(req: Request, next: Next) -> Response {
    if super::rate::limited_tenant(req.uri().path()).is_none() {
        return next.run(req).await;
    }
    let corr = crate::http::correlation_id(req.headers());
    if let Some((name, max)) = path_too_long(req.uri().path()) {
        return too_long(name, max, corr);
    }
    if let Some((name, max)) = req.uri().query().and_then(|q| first_too_long(q.as_bytes())) {
        return too_long(name, max, corr);
    }
    let form = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    // The body reader has the body in memory: this takes the same buffer back.
    let bytes = match body.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return refused(
                StatusCode::BAD_REQUEST,
                "The request body could not be read.",
                corr,
            )
        }
    };
    if let Some((name, max)) = first_too_long(&bytes) {
        return too_long(name, max, corr);
    }
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_lengths() {
        assert_eq!(decoded_len(b"abc"), 3);
        assert_eq!(decoded_len(b"a%20b+c"), 5);
        assert_eq!(decoded_len(b"%zz"), 3);
        assert_eq!(decoded_len(b"%4"), 2);
        assert_eq!(decoded_len(b"%C3%A4"), 2);
    }

    #[test]
    fn finds_the_field_over_its_maximum() {
        let ok = format!("state={}&nonce=n", "s".repeat(4096));
        assert_eq!(first_too_long(ok.as_bytes()), None);
        let long = format!("nonce=n&state={}", "s".repeat(4097));
        assert_eq!(first_too_long(long.as_bytes()), Some(("state", 4096)));
        // Percent-encoding counts as the byte it stands for, and the name may be encoded.
        let encoded = format!("st%61te={}", "%41".repeat(4096));
        assert_eq!(first_too_long(encoded.as_bytes()), None);
        let encoded = format!("st%61te={}", "%41".repeat(4097));
        assert_eq!(first_too_long(encoded.as_bytes()), Some(("state", 4096)));
        // Unknown fields are not capped here (the body limit bounds them).
        let other = format!("x-client-SKU={}", "a".repeat(10_000));
        assert_eq!(first_too_long(other.as_bytes()), None);
        for (name, max) in MAX_LEN {
            let over = format!("{name}={}", "a".repeat(max + 1));
            assert_eq!(first_too_long(over.as_bytes()), Some((*name, *max)));
            let at = format!("{name}={}", "a".repeat(*max));
            assert_eq!(first_too_long(at.as_bytes()), None, "{name}");
        }
    }

    #[test]
    fn path_parts() {
        assert_eq!(path_too_long("/contoso/oauth2/v2.0/token"), None);
        let t = format!("/{}/oauth2/v2.0/token", "t".repeat(257));
        assert_eq!(path_too_long(&t), Some(("tenant", 256)));
        let u = format!("/common/userrealm/{}", "u".repeat(321));
        assert_eq!(path_too_long(&u), Some(("username", 320)));
    }
}
