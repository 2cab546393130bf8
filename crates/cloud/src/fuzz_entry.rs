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
