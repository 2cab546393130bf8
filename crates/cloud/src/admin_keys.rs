//! Token signing key rotation: `POST /{tenant}/admin/keys/rotate` gives the tenant a new
//! signing key (it signs the tenant's tokens from now on) and keeps its previous keys in its
//! JWKS until every token they signed has expired (at most [`MAX_RETIRED_KEYS`] of them).
//! Keys are per tenant: a tenant's Global Administrator rotates that tenant's keys only.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::admin_api::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::{unix_now, Shared};
use crate::tokens::{TenantKeys, MAX_RETIRED_KEYS};

fn summary(keys: &TenantKeys) -> Value {
    json!({
        "current": keys.current_kid(),
        "published": keys.jwks().into_iter().map(|k| k.kid).collect::<Vec<_>>(),
        "max_retired": MAX_RETIRED_KEYS,
    })
}

/// `POST /{tenant}/admin/keys/rotate`
pub async fn rotate(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ROTATE_KEYS).await?;
    let keys = state
        .signer
        .rotate(t.id, unix_now())
        .await
        .map_err(ApiError::internal)?;
    tracing::info!(tenant = %t.name, by = %admin.upn, kid = keys.current_kid().unwrap_or_default(),
        "the tenant's token signing key rotated");
    Ok(Json(summary(&keys)))
}

/// `GET /{tenant}/admin/keys`
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_KEYS).await?;
    let keys = state
        .signer
        .keys(t.id)
        .await
        .map_err(ApiError::internal)?;
    Ok(Json(summary(&keys)))
}
