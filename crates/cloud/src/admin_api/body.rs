//! The admin API's JSON request bodies: axum's `Json`, with its refusals answered as the
//! admin API answers every error (`{error, error_description}`, [`ApiError`]) instead of
//! axum's plain-text 400/415/422. The body's type is one of [`passthru_admin::api`]'s, whose
//! schema the OpenAPI document shows; a refusal names it, so a test can check that the type a
//! handler reads is the one its document describes.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, OptionalFromRequest, Request};
use axum::http::StatusCode;
use axum::Json;
use serde::de::DeserializeOwned;
use utoipa::ToSchema;

use crate::oauth_error::ApiError;

/// A JSON request body of the admin API.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + ToSchema,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match <Json<T> as FromRequest<S>>::from_request(req, state).await {
            Ok(Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(refusal::<T>(&rejection)),
        }
    }
}

/// An optional body (`Option<ApiJson<T>>`): none without a `Content-Type`, else it must be
/// a readable JSON body.
impl<S, T> OptionalFromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + ToSchema,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Option<Self>, ApiError> {
        match <Json<T> as OptionalFromRequest<S>>::from_request(req, state).await {
            Ok(v) => Ok(v.map(|Json(v)| ApiJson(v))),
            Err(rejection) => Err(refusal::<T>(&rejection)),
        }
    }
}

/// The admin API's answer to a body axum could not read as a `T`.
fn refusal<T: ToSchema>(rejection: &JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "The request body must be JSON, sent with `Content-Type: application/json`.",
        ),
        other => ApiError::bad_request(format!(
            "The request body is not what this operation takes ({}): it takes a {}, whose schema is in /{{tenant}}/admin/openapi.json.",
            other.body_text(),
            T::name()
        )),
    }
}
