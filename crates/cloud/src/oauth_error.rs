//! Errors of the OAuth endpoints, in the Microsoft identity platform's JSON shape, mapped to
//! the wire in this one place.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use passthru_proto::Aadsts;
use serde::Serialize;
use uuid::Uuid;

/// An AADSTS-coded error for a client.
#[derive(Debug, Clone)]
pub struct OAuthError {
    pub code: Aadsts,
    /// Extra words after the catalog description (never a password).
    pub detail: Option<String>,
    pub correlation_id: Uuid,
}

#[derive(Serialize)]
struct Body {
    error: &'static str,
    error_description: String,
    error_codes: [u32; 1],
    timestamp: String,
    trace_id: String,
    correlation_id: String,
    error_uri: String,
}

/// `2026-11-29 03:01:02Z`, as Microsoft prints it.
pub fn timestamp_now() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

impl OAuthError {
    pub fn new(code: Aadsts, correlation_id: Uuid) -> OAuthError {
        OAuthError {
            code,
            detail: None,
            correlation_id,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> OAuthError {
        self.detail = Some(detail.into());
        self
    }

    /// The `error_description` text.
    pub fn description(&self, trace_id: Uuid, timestamp: &str) -> String {
        let mut d = format!("AADSTS{}: {}", self.code.code(), self.code.description());
        if let Some(extra) = &self.detail {
            d.push(' ');
            d.push_str(extra);
        }
        d.push_str(&format!(
            " Trace ID: {trace_id} Correlation ID: {} Timestamp: {timestamp}",
            self.correlation_id
        ));
        d
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let trace_id = Uuid::new_v4();
        let timestamp = timestamp_now();
        let body = Body {
            error: self.code.oauth_error(),
            error_description: self.description(trace_id, &timestamp),
            error_codes: [self.code.code()],
            timestamp,
            trace_id: trace_id.to_string(),
            correlation_id: self.correlation_id.to_string(),
            error_uri: format!("/error?code={}", self.code.code()),
        };
        let status =
            StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        let mut r = (status, [("cache-control", "no-store")], Json(body)).into_response();
        if self.code == Aadsts::Throttled {
            // A throttled client may try again after a second unless the limiter knows
            // better (it then replaces the header).
            r.headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        r
    }
}

/// An error of the admin API: `{error, error_description}` with an HTTP status.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
    ) -> ApiError {
        ApiError {
            status,
            error,
            description: description.into(),
        }
    }
    pub fn bad_request(d: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", d)
    }
    pub fn not_found(d: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", d)
    }
    pub fn conflict(d: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, "conflict", d)
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %e, "admin API failure");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("The server failed: {e}"),
        )
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::Conflict(what) => {
                ApiError::conflict(format!("{what} already exists."))
            }
            crate::store::StoreError::NotFound(what) => {
                ApiError::not_found(format!("{what} not found."))
            }
            crate::store::StoreError::LastGlobalAdmin => ApiError::conflict(
                "The change would leave the tenant without an enabled Global Administrator: give the role to someone else first.",
            ),
            other => ApiError::internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = passthru_proto::admin::ApiError {
            error: self.error.to_string(),
            error_description: self.description,
        };
        (self.status, [("cache-control", "no-store")], Json(body)).into_response()
    }
}
