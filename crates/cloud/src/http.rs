//! What every HTTP surface reads off a request, below the handlers: who is on the other end
//! of the connection, and the request's correlation id.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use uuid::Uuid;

/// Who is on the other end of a connection.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub addr: SocketAddr,
    /// SHA-256 of the client certificate, when one was presented and verified.
    pub peer_cert_fingerprint: Option<String>,
}

/// The request's correlation id: the client's `client-request-id` when it is a UUID (as MSAL
/// sends), else a new one. Every error and sign-in log entry carries it.
pub fn correlation_id(headers: &HeaderMap) -> Uuid {
    headers
        .get("client-request-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Uuid::parse_str(v).ok())
        .unwrap_or_else(Uuid::new_v4)
}

/// The value of the cookie `name` of a request, if it has one.
pub fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all("cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Echoes a request's `client-request-id` on its response, as the Microsoft identity
/// platform does (MSAL logs it and matches answers to requests with it), when it is a short
/// plain value.
pub(crate) async fn echo_client_request_id(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let id = req
        .headers()
        .get("client-request-id")
        .filter(|v| {
            v.len() <= 128
                && v.as_bytes()
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .cloned();
    let mut resp = next.run(req).await;
    if let Some(id) = id {
        resp.headers_mut().entry("client-request-id").or_insert(id);
    }
    resp
}
