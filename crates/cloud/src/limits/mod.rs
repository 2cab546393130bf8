//! Bounds on what clients can make the cloud do: request rates per client address and per
//! tenant ([`rate`]), request sizes and read deadlines ([`body`]), open connections
//! ([`conn`]), field lengths ([`fields`]), and fair shares of argon2 checks and agent
//! requests between tenants ([`fair`]). The operator sets them with `serve` flags
//! ([`Limits`]); docs/operations.md lists the defaults.

pub(crate) mod body;
pub(crate) mod conn;
pub mod fair;
pub(crate) mod fields;
pub(crate) mod rate;

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use passthru_proto::Aadsts;
use uuid::Uuid;

use crate::oauth_error::OAuthError;

pub use rate::RateLimits;

/// The operator's limits (`passthru-cloud serve` flags).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Requests per second one client address may make to the sign-in endpoints (0: no
    /// limit), and the burst it may make at once.
    pub per_address_rate: u32,
    pub per_address_burst: u32,
    /// Requests per second the sign-in endpoints of one tenant take from all addresses
    /// together (0: no limit), and the burst.
    pub per_tenant_rate: u32,
    pub per_tenant_burst: u32,
    /// Client addresses whose rate state is kept (beyond: new addresses share one bucket).
    pub tracked_addresses: usize,
    /// Open connections at most, and from one client address.
    pub max_connections: usize,
    pub max_connections_per_address: usize,
    /// How long a client has to send a request's headers (HTTP/1: also how long a
    /// keep-alive connection may wait for its next request).
    pub header_read_timeout: Duration,
    /// How long a client has to send a request's whole body.
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// Agent requests (validations and password writes) one tenant may have in flight.
    pub agent_requests_per_tenant: usize,
    /// Pending sign-in rows (authorization requests, device codes, password reset flows,
    /// federation and portal sign-in states) one tenant may have in each table.
    pub pending_rows_per_tenant: i64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            per_address_rate: 100,
            per_address_burst: 1_000,
            per_tenant_rate: 1_000,
            per_tenant_burst: 5_000,
            tracked_addresses: 100_000,
            max_connections: 10_000,
            max_connections_per_address: 512,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            agent_requests_per_tenant: 1_000,
            pending_rows_per_tenant: crate::store::DEFAULT_PENDING_ROWS_PER_TENANT,
        }
    }
}

/// The largest request body the cloud reads (every endpoint takes small forms or JSON),
/// but for an agent release's upload ([`MAX_RELEASE_BYTES`]).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest agent release package an administrator may upload
/// (`POST /{tenant}/admin/agents/releases`).
pub const MAX_RELEASE_BYTES: usize = 256 * 1024 * 1024;
/// How long an administrator has to send a release package (at least; the body read
/// deadline when longer).
pub const RELEASE_UPLOAD_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether a request is an agent release upload (`POST /{tenant}/admin/agents/releases`),
/// whose body may be [`MAX_RELEASE_BYTES`] and take [`RELEASE_UPLOAD_TIMEOUT`].
pub(crate) fn is_release_upload(method: &axum::http::Method, path: &str) -> bool {
    let mut segs = path.trim_start_matches('/').split('/');
    method == axum::http::Method::POST
        && segs.next().is_some_and(|t| !t.is_empty())
        && segs.next() == Some("admin")
        && segs.next() == Some("agents")
        && segs.next() == Some("releases")
        && segs.next().is_none()
}

/// HTTP 429 with `Retry-After` (whole seconds, at least 1) and Microsoft's error JSON
/// (AADSTS90055).
pub(crate) fn too_many(retry_after: Duration, detail: &str, corr: Uuid) -> Response {
    let secs = retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0);
    let mut r = OAuthError::new(Aadsts::Throttled, corr)
        .with_detail(detail)
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&secs.max(1).to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

/// An error of the request's shape (too large, too slow, a field too long), in Microsoft's
/// error JSON with `invalid_request` and the given HTTP status.
pub(crate) fn refused(status: StatusCode, detail: impl Into<String>, corr: Uuid) -> Response {
    let mut r = OAuthError::new(Aadsts::InvalidRequest, corr)
        .with_detail(detail)
        .into_response();
    *r.status_mut() = status;
    r
}

/// Wraps the routes in the request-level limits, outermost first: the connection's activity,
/// the rate limits, the body reader, the field caps.
pub fn protect(
    routes: axum::Router,
    rate: std::sync::Arc<RateLimits>,
    store: crate::store::Store,
    body_read_timeout: Duration,
) -> axum::Router {
    use axum::middleware::{from_fn, from_fn_with_state};
    routes
        .layer(from_fn(fields::check))
        .layer(from_fn_with_state(body_read_timeout, body::read_whole))
        .layer(from_fn_with_state(
            rate::Gate { rate, store },
            rate::enforce,
        ))
        .layer(from_fn(conn::track))
}

/// How long a client refused for a full table of pending rows should wait.
pub(crate) const PENDING_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The sign-in page for a store refusal when a tenant's table of pending rows is full
/// (429, `Retry-After`); `None` for any other store error.
pub(crate) fn pending_full_page(e: &crate::store::StoreError, corr: Uuid) -> Option<Response> {
    let crate::store::StoreError::TooManyPending { .. } = e else {
        return None;
    };
    tracing::warn!(error = %e, "a sign-in start was refused (serve --max-pending-per-tenant)");
    let mut r = crate::pages::error_page(
        Aadsts::Throttled,
        corr,
        &format!("{}.", capital(&e.to_string())),
    );
    *r.status_mut() = StatusCode::TOO_MANY_REQUESTS;
    if let Ok(v) = HeaderValue::from_str(&PENDING_RETRY_AFTER.as_secs().to_string()) {
        r.headers_mut().insert("retry-after", v);
    }
    Some(r)
}

/// The JSON answer (429, AADSTS90055, `Retry-After`) for the same refusal.
pub(crate) fn pending_full_json(e: &crate::store::StoreError, corr: Uuid) -> Option<Response> {
    let crate::store::StoreError::TooManyPending { .. } = e else {
        return None;
    };
    tracing::warn!(error = %e, "a sign-in start was refused (serve --max-pending-per-tenant)");
    Some(too_many(
        PENDING_RETRY_AFTER,
        &format!("{}.", capital(&e.to_string())),
        corr,
    ))
}

fn capital(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
