//! Applications: register, list, redirect URIs, secrets, delete.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;

use super::{authorize, ops};
use crate::clock::unix_now;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use uuid::Uuid;

use crate::store::{App, Tenant};

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
#[utoipa::path(
    post,
    path = "/apps",
    operation_id = ops::ADD_APP.id,
    summary = ops::ADD_APP.summary,
    request_body = api::NewApp,
    responses((status = 201, description = "Done.", body = api::App))
)]
pub async fn add(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::NewApp>,
) -> Result<(StatusCode, Json<api::App>), ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::ADD_APP).await?;
    let name = body.name.trim();
    if name.is_empty() || name.len() > 120 {
        return Err(ApiError::bad_request(
            "The app name must be 1 to 120 characters.",
        ));
    }
    // A single-page app is a public client (a browser keeps no secret).
    let public = body.public || body.spa;
    if public == body.confidential {
        return Err(ApiError::bad_request(
            "Say whether the app is --public (or --spa) or --confidential (one of them).",
        ));
    }
    let alg = match body.id_token_alg.as_deref() {
        None => "ES256".to_string(),
        Some(a) => id_token_alg(a)?.to_string(),
    };
    check_uris(&body.redirect_uris)?;
    if body.spa {
        check_spa_uris(&body.redirect_uris)?;
    }
    let client_id = Uuid::new_v4().to_string();
    let secret = body.confidential.then(crate::issue::random_token);
    let app = App {
        client_id: client_id.clone(),
        tenant_id: t.id,
        name: name.to_string(),
        public,
        redirect_uris: body.redirect_uris.clone(),
        secret_hash: secret.as_deref().map(crate::issue::hash_secret),
        groups_claim: false,
        spa: body.spa,
        id_token_alg: alg,
        ..Default::default()
    };
    state.store.add_app(&app, unix_now()).await?;
    let mut answer = app_json(&app);
    answer.confidential = None;
    answer.groups_claim = None;
    answer.client_secret = secret;
    Ok((StatusCode::CREATED, Json(answer)))
}

pub(super) fn app_json(a: &App) -> api::App {
    api::App {
        client_id: a.client_id.clone(),
        name: a.name.clone(),
        public: a.public,
        confidential: Some(!a.public),
        redirect_uris: a.redirect_uris.clone(),
        groups_claim: Some(a.groups_claim),
        client_secret: None,
        spa: a.spa,
        id_token_alg: Some(a.id_token_alg().to_string()),
        identifier_uri: a.identifier_uri.clone(),
        api_scopes: a.api_scopes.clone(),
        app_roles: a.app_roles.clone(),
    }
}

/// An ID-token algorithm an app may choose.
pub(super) fn id_token_alg(raw: &str) -> Result<&'static str, ApiError> {
    match raw.trim().to_ascii_uppercase().as_str() {
        "ES256" => Ok("ES256"),
        "RS256" => Ok("RS256"),
        _ => Err(ApiError::bad_request(format!(
            "'{}' is not an ID-token algorithm Passthru signs with: give RS256 or ES256.",
            raw.chars().take(32).collect::<String>()
        ))),
    }
}

/// A single-page app's redirect URIs are where a browser runs it: each names an origin
/// (CORS answers that origin).
fn check_spa_uris(uris: &[String]) -> Result<(), ApiError> {
    for uri in uris {
        if crate::store::origin_of(uri).is_none() {
            return Err(ApiError::bad_request(format!(
                "'{uri}' has no web origin: a single-page app's redirect URI is an http(s) page address."
            )));
        }
    }
    Ok(())
}

pub(super) async fn find(state: &Shared, t: &Tenant, client_id: &str) -> Result<App, ApiError> {
    state
        .store
        .app(t.id, client_id.trim())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No app with client id '{}' in this tenant: `app list` shows them.",
                client_id.trim().chars().take(64).collect::<String>()
            ))
        })
}

fn check_uris(uris: &[String]) -> Result<(), ApiError> {
    if uris.len() > 50 {
        return Err(ApiError::bad_request("At most 50 redirect URIs."));
    }
    for uri in uris {
        valid_redirect_uri(uri).map_err(ApiError::bad_request)?;
    }
    Ok(())
}

/// `GET /{tenant}/admin/apps`
#[utoipa::path(
    get,
    path = "/apps",
    operation_id = ops::LIST_APPS.id,
    summary = ops::LIST_APPS.summary,
    responses((status = 200, description = "Done.", body = api::AppList))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::AppList>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_APPS).await?;
    let apps = state.store.apps(t.id).await?;
    Ok(Json(api::AppList {
        apps: apps.iter().map(app_json).collect(),
    }))
}

/// `GET /{tenant}/admin/apps/{client_id}`
#[utoipa::path(
    get,
    path = "/apps/{client_id}",
    operation_id = ops::SHOW_APP.id,
    summary = ops::SHOW_APP.summary,
    responses((status = 200, description = "Done.", body = api::App))
)]
pub async fn show(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::App>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::SHOW_APP).await?;
    Ok(Json(app_json(&find(&state, &t, &client_id).await?)))
}

/// `PUT /{tenant}/admin/apps/{client_id}/redirect-uris`
#[utoipa::path(
    put,
    path = "/apps/{client_id}/redirect-uris",
    operation_id = ops::SET_APP_REDIRECT_URIS.id,
    summary = ops::SET_APP_REDIRECT_URIS.summary,
    request_body = api::SetRedirectUris,
    responses((status = 200, description = "Done.", body = api::App))
)]
pub async fn set_redirect_uris(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetRedirectUris>,
) -> Result<Json<api::App>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_APP_REDIRECT_URIS).await?;
    let app = find(&state, &t, &client_id).await?;
    check_uris(&body.redirect_uris)?;
    if app.spa {
        check_spa_uris(&body.redirect_uris)?;
    }
    state
        .store
        .set_app_redirect_uris(t.id, &app.client_id, &body.redirect_uris)
        .await?;
    tracing::info!(tenant = %t.name, app = %app.client_id, by = %admin.upn, "redirect URIs replaced");
    Ok(Json(app_json(&find(&state, &t, &client_id).await?)))
}

/// `PUT /{tenant}/admin/apps/{client_id}/groups-claim`
#[utoipa::path(
    put,
    path = "/apps/{client_id}/groups-claim",
    operation_id = ops::SET_APP_GROUPS_CLAIM.id,
    summary = ops::SET_APP_GROUPS_CLAIM.summary,
    request_body = api::SetGroupsClaim,
    responses((status = 200, description = "Done.", body = api::App))
)]
pub async fn set_groups_claim(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetGroupsClaim>,
) -> Result<Json<api::App>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_APP_GROUPS_CLAIM).await?;
    let app = find(&state, &t, &client_id).await?;
    state
        .store
        .set_app_groups_claim(t.id, &app.client_id, body.enabled)
        .await?;
    tracing::info!(tenant = %t.name, app = %app.client_id, by = %admin.upn, enabled = body.enabled, "groups claim set");
    Ok(Json(app_json(&find(&state, &t, &client_id).await?)))
}

/// `POST /{tenant}/admin/apps/{client_id}/secret`: a new secret, in this answer only; the
/// old one stops working at once.
#[utoipa::path(
    post,
    path = "/apps/{client_id}/secret",
    operation_id = ops::ROTATE_APP_SECRET.id,
    summary = ops::ROTATE_APP_SECRET.summary,
    responses((status = 200, description = "Done.", body = api::App))
)]
pub async fn rotate_secret(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::App>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ROTATE_APP_SECRET).await?;
    let app = find(&state, &t, &client_id).await?;
    if app.public {
        return Err(ApiError::conflict(format!(
            "'{}' is a public client: it has no secret (it proves itself with PKCE).",
            app.name
        )));
    }
    let secret = crate::issue::random_token();
    state
        .store
        .set_app_secret_hash(t.id, &app.client_id, &crate::issue::hash_secret(&secret))
        .await?;
    tracing::warn!(tenant = %t.name, app = %app.client_id, by = %admin.upn, "client secret rotated");
    let mut v = app_json(&app);
    v.client_secret = Some(secret);
    Ok(Json(v))
}

/// `DELETE /{tenant}/admin/apps/{client_id}`: the app and every refresh token and code
/// issued to it.
#[utoipa::path(
    delete,
    path = "/apps/{client_id}",
    operation_id = ops::DELETE_APP.id,
    summary = ops::DELETE_APP.summary,
    responses((status = 200, description = "Done.", body = api::AppDeleted))
)]
pub async fn remove(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::AppDeleted>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::DELETE_APP).await?;
    let app = find(&state, &t, &client_id).await?;
    state.store.delete_app(t.id, &app.client_id).await?;
    tracing::warn!(tenant = %t.name, app = %app.client_id, by = %admin.upn, "app deleted");
    Ok(Json(api::AppDeleted {
        client_id: app.client_id,
        deleted: true,
    }))
}
