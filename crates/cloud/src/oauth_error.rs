//! Errors of the OAuth endpoints, in the Microsoft identity platform's JSON shape, and of the
//! admin API, each mapped to the wire in this one place; and [`Fault`], a failure of what a
//! request depends on, which every surface (OAuth JSON here, HTML pages in
//! [`crate::pages::fault_page`], the admin API through `ApiError: From`) turns into its answer
//! in one place, logging it there once.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use passthru_proto::Aadsts;
use serde::Serialize;
use uuid::Uuid;

use crate::dispatcher::DispatchError;
use crate::store::StoreError;

/// A failure of what a request depends on (the store, the agents, the signing keys): an
/// outage, never an outcome (a wrong password is an outcome). It carries no password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Fault {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// No agent gave an answer.
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
    /// Anything else of ours failed (signing a token, building a key): its words.
    #[error("{0}")]
    Other(String),
}

impl Fault {
    /// Something else of ours that failed, by its message.
    pub(crate) fn other(e: impl std::fmt::Display) -> Fault {
        Fault::Other(e.to_string())
    }

    /// The AADSTS code a client is shown for it.
    pub(crate) fn aadsts(&self) -> Aadsts {
        match self {
            Fault::Dispatch(d) => d.aadsts(),
            Fault::Store(_) | Fault::Other(_) => Aadsts::ServerError,
        }
    }

    /// Logs it, once, with the request's correlation id; the surfaces call this where they
    /// turn it into their answer.
    pub(crate) fn log(&self, correlation_id: Uuid) {
        tracing::error!(error = %self, correlation = %correlation_id, "request failed on a server fault");
    }
}

impl From<String> for Fault {
    fn from(what: String) -> Fault {
        Fault::Other(what)
    }
}

impl From<&str> for Fault {
    fn from(what: &str) -> Fault {
        Fault::Other(what.to_string())
    }
}

impl From<crate::tokens::TokenError> for Fault {
    fn from(e: crate::tokens::TokenError) -> Fault {
        Fault::other(e)
    }
}

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

    /// The answer to a [`Fault`] (logged here, once).
    pub(crate) fn fault(correlation_id: Uuid, e: impl Into<Fault>) -> OAuthError {
        let f = e.into();
        f.log(correlation_id);
        OAuthError::new(f.aadsts(), correlation_id)
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
    /// A failure of ours: logged here, once, under an incident id the answer gives (the
    /// error's own words stay in the log).
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        let incident = Uuid::new_v4();
        tracing::error!(error = %e, %incident, "admin API failure");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!("The server failed (incident {incident}); the cloud's log has the details."),
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

impl From<DispatchError> for ApiError {
    fn from(e: DispatchError) -> ApiError {
        tracing::warn!(error = %e, "admin API: no answer from the agents");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            format!("{e}. Check that an authentication agent of the organization is running and connected (passthru-cloud admin agents list), then try again."),
        )
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

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use passthru_proto::Aadsts;

    use super::{ApiError, Fault};
    use crate::dispatcher::DispatchError;
    use crate::in_process::Bed;
    use crate::store::StoreError;

    #[test]
    fn each_fault_has_its_code() {
        for (d, code) in [
            (DispatchError::NoAgent, Aadsts::AgentUnavailable),
            (DispatchError::Timeout, Aadsts::AgentTimeout),
            (DispatchError::Busy, Aadsts::Throttled),
        ] {
            assert_eq!(Fault::from(d).aadsts(), code, "{d:?}");
        }
        let store = Fault::from(StoreError::NotFound("x".into()));
        assert_eq!(store.aadsts(), Aadsts::ServerError);
        assert_eq!(Fault::from("signing failed").aadsts(), Aadsts::ServerError);
        let api = ApiError::from(DispatchError::NoAgent);
        assert_eq!(api.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(
            api.description.contains("agents list"),
            "{}",
            api.description
        );
    }

    /// With the store gone, the OAuth surface answers its JSON error and the HTML surface
    /// its error page, each with the server-error code and the request's correlation id,
    /// and neither shows the store's own words.
    #[tokio::test]
    async fn a_store_outage_gets_each_surfaces_answer() -> anyhow::Result<()> {
        let bed = Bed::new(crate::in_process::ad).await?;
        let page = bed.authorize().await?;
        anyhow::ensure!(page.status == StatusCode::OK, "{}", page.body);
        bed.state.store.close().await;

        let corr = uuid::Uuid::new_v4().to_string();
        let body = serde_urlencoded::to_string([
            ("grant_type", "refresh_token"),
            ("refresh_token", "not-a-token"),
            ("client_id", bed.client_id.as_str()),
        ])?;
        let token = bed
            .send(
                axum::http::Request::post("/contoso/oauth2/v2.0/token")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .header("client-request-id", corr.as_str())
                    .body(axum::body::Body::from(body))?,
            )
            .await?;
        let json: serde_json::Value = serde_json::from_str(&token.body)?;
        assert_eq!(json["error_codes"][0], 50000, "{}", token.body);
        assert_eq!(json["correlation_id"], corr.as_str());
        assert!(token.status.is_server_error(), "{}", token.status);
        assert!(
            !token.body.to_ascii_lowercase().contains("pool"),
            "{}",
            token.body
        );

        let page = bed.authorize().await?;
        assert!(page.body.contains("AADSTS50000"), "{}", page.body);
        assert!(
            !page.body.to_ascii_lowercase().contains("pool"),
            "{}",
            page.body
        );
        Ok(())
    }
}
