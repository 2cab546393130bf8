//! The sign-in log.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::{unix_now, Shared};

/// `GET /{tenant}/admin/signins`
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_SIGNINS).await?;
    Ok(Json(
        json!({ "signins": state.store.sign_ins(t.id, 500).await? }),
    ))
}
