//! Request bodies: at most [`MAX_BODY_BYTES`](super::MAX_BODY_BYTES) (413 beyond, refused
//! from `Content-Length` before anything is read), read whole within the body read
//! deadline (408 and the connection closed otherwise, so a client trickling its body
//! holds a connection for seconds, not forever). Handlers then get the body from memory.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use http_body_util::{BodyExt as _, LengthLimitError, Limited};

use super::{refused, MAX_BODY_BYTES};

fn too_large(limit: usize, corr: uuid::Uuid) -> Response {
    refused(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("The request body is larger than the limit of {limit} bytes."),
        corr,
    )
}

/// The middleware; its state is the body read deadline.
pub(crate) async fn read_whole(
    State(deadline): State<Duration>,
    req: Request,
    next: Next,
) -> Response {
    let corr = crate::http::correlation_id(req.headers());
    // An agent release's package may be large and slow to arrive.
    let (limit, deadline) = if super::is_release_upload(req.method(), req.uri().path()) {
        (
            super::MAX_RELEASE_BYTES,
            deadline.max(super::RELEASE_UPLOAD_TIMEOUT),
        )
    } else {
        (MAX_BODY_BYTES, deadline)
    };
    let declared = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large(limit, corr);
    }
    let (parts, body) = req.into_parts();
    let read = tokio::time::timeout(deadline, Limited::new(body, limit).collect()).await;
    let bytes = match read {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return too_large(limit, corr)
        }
        Ok(Err(_)) => return refused(
            StatusCode::BAD_REQUEST,
            "The request body could not be read (the connection broke or the body is malformed).",
            corr,
        ),
        Err(_) => {
            tracing::debug!(
                seconds = deadline.as_secs(),
                "a request body took too long to arrive"
            );
            let mut r = refused(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "The request body did not arrive within {} seconds.",
                    deadline.as_secs()
                ),
                corr,
            );
            r.headers_mut()
                .insert("connection", HeaderValue::from_static("close"));
            return r;
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
