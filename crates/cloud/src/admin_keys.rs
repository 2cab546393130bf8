//! Token signing key rotation: `POST /{tenant}/admin/keys/rotate` adds a new signing key
//! (it signs from now on) and keeps the previous keys in the JWKS until every token they
//! signed has expired. Keys are deployment-wide: any Global Administrator may rotate them.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Value};

use crate::admin_api::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::{unix_now, Shared};
use crate::tokens::{generate_signing_key, KEY_KEEP_SECS};

/// `POST /{tenant}/admin/keys/rotate`
pub async fn rotate(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ROTATE_KEYS).await?;
    let key = generate_signing_key().map_err(ApiError::internal)?;
    let now = unix_now();
    state.store.rotate_signing_key(&key, now).await?;
    let published = state
        .store
        .signing_keys_published(now, KEY_KEEP_SECS)
        .await?;
    state
        .signer
        .reload(&published)
        .map_err(ApiError::internal)?;
    tracing::info!(tenant = %t.name, by = %admin.upn, kid = %key.kid, "token signing key rotated");
    Ok(Json(
        json!({ "current": key.kid, "published": published.iter().map(|k| k.kid.clone()).collect::<Vec<_>>() }),
    ))
}

/// `GET /{tenant}/admin/keys`
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &tenant, &headers, ops::LIST_KEYS).await?;
    let jwks = state.signer.jwks();
    Ok(Json(json!({
        "current": jwks.first().map(|k| k.kid.clone()),
        "published": jwks.iter().map(|k| k.kid.clone()).collect::<Vec<_>>(),
    })))
}
