//! Applications: register, list, redirect URIs, secrets, delete.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::{unix_now, Shared};
use uuid::Uuid;

use crate::store::App;

#[derive(Debug, Deserialize)]
pub struct AppBody {
    name: String,
    #[serde(default)]
    public: bool,
    #[serde(default)]
    confidential: bool,
    #[serde(default)]
    redirect_uris: Vec<String>,
}

/// A redirect URI is absolute, has no fragment, and uses https (http only for loopback, as
/// native apps do per RFC 8252).
pub fn valid_redirect_uri(uri: &str) -> Result<(), String> {
    let u = url::Url::parse(uri).map_err(|e| format!("'{uri}' is not an absolute URL: {e}"))?;
    if u.fragment().is_some() {
        return Err(format!("'{uri}' must not have a fragment"));
    }
    let loopback = matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"));
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "'{uri}' must use https (http is allowed only for localhost)"
        )),
    }
}

/// `POST /{tenant}/admin/apps`: registers an app. A confidential app's secret is in this
/// answer and nowhere else: only its hash is stored.
pub async fn add(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(body): Json<AppBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::ADD_APP).await?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 120 {
        return Err(ApiError::bad_request(
            "The app name must be 1 to 120 characters.",
        ));
    }
    if body.public == body.confidential {
        return Err(ApiError::bad_request(
            "Say whether the app is --public or --confidential (one of them).",
        ));
    }
    if body.redirect_uris.len() > 50 {
        return Err(ApiError::bad_request("At most 50 redirect URIs."));
    }
    for uri in &body.redirect_uris {
        valid_redirect_uri(uri).map_err(ApiError::bad_request)?;
    }
    let client_id = Uuid::new_v4().to_string();
    let secret = body.confidential.then(crate::issue::random_token);
    let app = App {
        client_id: client_id.clone(),
        tenant_id: t.id,
        name: name.to_string(),
        public: body.public,
        redirect_uris: body.redirect_uris.clone(),
        secret_hash: secret.as_deref().map(crate::issue::hash_secret),
    };
    state.store.add_app(&app, unix_now()).await?;
    let mut answer = json!({ "client_id": client_id, "name": name, "public": body.public, "redirect_uris": body.redirect_uris });
    if let Some(s) = secret {
        answer["client_secret"] = Value::String(s);
    }
    Ok((StatusCode::CREATED, Json(answer)))
}

/// Not yet built.
pub async fn list(
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
pub async fn set_redirect_uris(
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
pub async fn rotate_secret(
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
