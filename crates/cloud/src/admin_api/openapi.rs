//! The OpenAPI document.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::{unix_now, Shared};

/// Not yet built.
pub async fn document(
    State(_state): State<Shared>,
    Path(tenant): Path<String>,
    _headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let _ = tenant;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "not yet",
    ))
}
