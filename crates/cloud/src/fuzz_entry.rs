//! For the fuzz targets only (the `fuzzing` feature): the request parsers of the
//! unauthenticated endpoints that are crate-private. Nothing here is a supported API.

use axum::http::{HeaderMap, HeaderValue};

/// Parses a token endpoint request body as the endpoint does. Answers whether it is a form.
pub fn token_form(body: &[u8]) -> bool {
    crate::token::parse_token_form(body).is_some()
}

/// The client id and the length of the secret of an `Authorization: Basic` header value, as
/// the token endpoint reads it (`None` when the header is not one it accepts).
pub fn basic_auth(value: HeaderValue) -> Option<(String, usize)> {
    let mut headers = HeaderMap::new();
    headers.insert("authorization", value);
    crate::client_auth::basic_auth(&headers).map(|(id, secret)| (id, secret.len()))
}

/// The value of the cookie `name` among the `Cookie` headers `values`, as the authorize
/// endpoint reads it.
pub fn cookie_value(values: Vec<HeaderValue>, name: &str) -> Option<String> {
    let mut headers = HeaderMap::new();
    for v in values {
        headers.append("cookie", v);
    }
    crate::http::cookie_value(&headers, name)
}

/// The base URL a request's authority or `Host` header gives (no `--public-url` set), as the
/// `BaseUrl` extractor reads it.
pub fn base_url(parts: &axum::http::request::Parts) -> String {
    crate::sts::BaseUrl::from_request_host(parts).0
}

/// A certificate credential as `admin app credential add` registers it from `pem` at `now`:
/// its SHA-1 and SHA-256 thumbprints (hex) and SubjectPublicKeyInfo, or the refusal.
pub fn registered_certificate(pem: &str, now: i64) -> Result<(String, String, Vec<u8>), String> {
    crate::client_auth::certificate::registered_certificate(pem, now)
        .map(|r| (r.key.sha1, r.key.sha256, r.key.public_key))
        .map_err(|e| e.to_string())
}

/// Verifies a client assertion for `client_id` at `now` against the certificate `pem`
/// (registered at `now`), accepting the audiences `audiences`, as the token endpoint does.
/// Answers the assertion's `exp` when it is accepted, the refusal otherwise.
pub fn client_assertion(
    assertion: &str,
    pem: &str,
    client_id: &str,
    audiences: &[String],
    now: i64,
) -> Result<i64, String> {
    use crate::store::app_credentials::{AppCredential, CredentialKey};
    let r = crate::client_auth::certificate::registered_certificate(pem, now)
        .map_err(|e| e.to_string())?;
    let credential = AppCredential {
        id: uuid::Uuid::nil(),
        tenant_id: uuid::Uuid::nil(),
        client_id: client_id.to_string(),
        key: CredentialKey::Certificate(r.key),
        hint: None,
        created_at: now,
        starts_at: Some(r.not_before),
        expires_at: Some(r.not_after),
    };
    let expected = crate::client_auth::assertion::Expected {
        client_id,
        audiences,
        now,
    };
    crate::client_auth::assertion::verify(assertion, &expected, &[credential])
        .map(|v| v.expires_at)
        .map_err(|e| e.to_string())
}

/// The client id an assertion names (its `sub`, unverified), as `/organizations` reads it.
pub fn assertion_subject(assertion: &str) -> Option<String> {
    crate::client_auth::assertion::unverified_subject(assertion)
}
