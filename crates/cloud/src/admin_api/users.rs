//! Users: list, show, add, password, block, role, delete.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::{unix_now, Shared};
use zeroize::Zeroizing;

#[derive(Deserialize)]
pub struct UserBody {
    upn: String,
    password: Zeroizing<String>,
}

impl std::fmt::Debug for UserBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserBody")
            .field("upn", &self.upn)
            .finish_non_exhaustive()
    }
}

/// `POST /{tenant}/admin/users`: adds a cloud-only user.
pub async fn add(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(body): Json<UserBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::ADD_USER).await?;
    let upn = body.upn.trim().to_string();
    let Some((local, domain)) = upn.rsplit_once('@') else {
        return Err(ApiError::bad_request("The UPN must look like name@domain."));
    };
    if local.is_empty() {
        return Err(ApiError::bad_request("The UPN must look like name@domain."));
    }
    match state.store.domain(domain).await? {
        Some(d) if d.tenant_id == t.id => {}
        _ => {
            return Err(ApiError::bad_request(format!(
            "'{domain}' is not a domain of this tenant: add it with `domain add {domain}` first."
        )))
        }
    }
    if body.password.chars().count() < 8 {
        return Err(ApiError::bad_request(
            "The password must have at least 8 characters.",
        ));
    }
    let hash = crate::passwords::hash(body.password)
        .await
        .map_err(ApiError::internal)?;
    let id = state
        .store
        .add_cloud_user(t.id, &upn, &hash, "none", unix_now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "id": id, "upn": upn, "source": "cloud" })),
    ))
}

/// `GET /{tenant}/admin/users`
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_USERS).await?;
    Ok(Json(json!({ "users": state.store.users(t.id).await? })))
}

/// Not yet built.
pub async fn show(
    State(_state): State<Shared>,
    Path((tenant, _key)): Path<(String, String)>,
    _headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let _ = tenant;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "not yet",
    ))
}

/// Not yet built.
pub async fn set_password(
    State(_state): State<Shared>,
    Path((tenant, _key)): Path<(String, String)>,
    _headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let _ = tenant;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "not yet",
    ))
}

/// Not yet built.
pub async fn disable(
    State(_state): State<Shared>,
    Path((tenant, _key)): Path<(String, String)>,
    _headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let _ = tenant;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "not yet",
    ))
}

/// Not yet built.
pub async fn enable(
    State(_state): State<Shared>,
    Path((tenant, _key)): Path<(String, String)>,
    _headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let _ = tenant;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "not yet",
    ))
}

/// Not yet built.
pub async fn set_role(
    State(_state): State<Shared>,
    Path((tenant, _key)): Path<(String, String)>,
    _headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let _ = tenant;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "not yet",
    ))
}

/// Not yet built.
pub async fn remove(
    State(_state): State<Shared>,
    Path((tenant, _key)): Path<(String, String)>,
    _headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let _ = tenant;
    Err(ApiError::new(
        StatusCode::NOT_IMPLEMENTED,
        "not_implemented",
        "not yet",
    ))
}
