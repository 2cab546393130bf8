//! An application's credentials: several client secrets and certificates at once, each with
//! its own expiry, so that one is replaced without an outage (add the new one, move the app
//! to it, remove the old one). A secret is in the answer that adds it and nowhere else; a
//! certificate is registered from its PEM (never its private key).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;
use uuid::Uuid;

use super::{authorize, ops};
use crate::client_auth::certificate::registered_certificate;
use crate::clock::unix_now;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::app_credentials::{AppCredential, CredentialKey};
use crate::store::{App, StoreError, Tenant};

/// Characters of a secret kept as its hint (as Entra shows them).
const HINT_CHARS: usize = 3;

/// The app `client_id` of `t`, confidential.
async fn confidential_app(state: &Shared, t: &Tenant, client_id: &str) -> Result<App, ApiError> {
    let app = state
        .store
        .app(t.id, client_id.trim())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No app with client id '{}' in this tenant: `app list` shows them.",
                client_id.trim().chars().take(64).collect::<String>()
            ))
        })?;
    if app.public {
        return Err(ApiError::conflict(format!(
            "'{}' is a public client: it has no credentials (it proves itself with PKCE).",
            app.name
        )));
    }
    Ok(app)
}

/// A credential id of the path.
fn credential_id(id: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(id.trim()).map_err(|_| {
        ApiError::bad_request(
            "A credential id is a UUID: `app credential list CLIENT_ID` shows them.",
        )
    })
}

/// What the API shows of a credential at `now` (never a secret or its hash).
pub(crate) fn credential_json(c: &AppCredential, now: i64) -> api::Credential {
    let cert = match &c.key {
        CredentialKey::Certificate(k) => Some(k),
        CredentialKey::Secret { .. } => None,
    };
    api::Credential {
        id: c.id,
        kind: c.kind().into(),
        hint: c.hint.clone(),
        thumbprint: cert.map(|k| k.sha1.to_ascii_uppercase()),
        thumbprint_sha256: cert.map(|k| k.sha256.to_ascii_uppercase()),
        subject: cert.map(|k| k.subject.clone()),
        created_at: c.created_at,
        starts_at: c.starts_at,
        expires_at: c.expires_at,
        expired: c.expires_at.is_some_and(|e| e <= now),
    }
}

/// The store's refusal of an 11th credential, said for an administrator.
pub(crate) fn refused(e: StoreError) -> ApiError {
    match e {
        StoreError::TooManyCredentials { max } => ApiError::conflict(format!(
            "The app already has {max} credentials (secrets and certificates, expired ones included), the most it may have: remove one first (`app credential list CLIENT_ID`, then `app credential remove CLIENT_ID ID`)."
        )),
        StoreError::Conflict(_) => ApiError::conflict(
            "This certificate is registered for the app already: `app credential list CLIENT_ID` shows it.",
        ),
        other => other.into(),
    }
}

/// A new random secret and its credential for `app`, expiring at `expires_at`.
pub(crate) fn new_secret(app: &App, now: i64, expires_at: Option<i64>) -> (String, AppCredential) {
    let secret = crate::issue::random_token();
    let c = AppCredential {
        id: Uuid::new_v4(),
        tenant_id: app.tenant_id,
        client_id: app.client_id.clone(),
        key: CredentialKey::Secret {
            hash: crate::issue::hash_secret(&secret),
        },
        hint: Some(secret.chars().take(HINT_CHARS).collect()),
        created_at: now,
        starts_at: None,
        expires_at,
    };
    (secret, c)
}

/// `GET /{tenant}/admin/apps/{client_id}/credentials`
#[utoipa::path(
    get,
    path = "/apps/{client_id}/credentials",
    operation_id = ops::LIST_APP_CREDENTIALS.id,
    summary = ops::LIST_APP_CREDENTIALS.summary,
    responses((status = 200, description = "Done.", body = api::CredentialList))
)]
pub async fn list(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::CredentialList>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_APP_CREDENTIALS).await?;
    let app = confidential_app(&state, &t, &client_id).await?;
    let now = unix_now();
    let credentials = state.store.app_credentials(t.id, &app.client_id).await?;
    Ok(Json(api::CredentialList {
        client_id: app.client_id,
        credentials: credentials
            .iter()
            .map(|c| credential_json(c, now))
            .collect(),
    }))
}

/// `POST /{tenant}/admin/apps/{client_id}/credentials/secrets`: the secret is in this answer
/// only.
#[utoipa::path(
    post,
    path = "/apps/{client_id}/credentials/secrets",
    operation_id = ops::ADD_APP_SECRET.id,
    summary = ops::ADD_APP_SECRET.summary,
    request_body = api::NewSecret,
    responses((status = 201, description = "Done.", body = api::SecretAdded))
)]
pub async fn add_secret(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::NewSecret>,
) -> Result<(StatusCode, Json<api::SecretAdded>), ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ADD_APP_SECRET).await?;
    let days = body.expires_in_days.unwrap_or(api::DEFAULT_SECRET_DAYS);
    if !(1..=api::MAX_SECRET_DAYS).contains(&days) {
        return Err(ApiError::bad_request(format!(
            "expires_in_days must be 1 to {} (a secret lives at most 24 months; add a new one before it expires).",
            api::MAX_SECRET_DAYS
        )));
    }
    let app = confidential_app(&state, &t, &client_id).await?;
    let now = unix_now();
    let expires_at = now + i64::from(days) * 86_400;
    let (secret, c) = new_secret(&app, now, Some(expires_at));
    state.store.add_app_credential(&c).await.map_err(refused)?;
    tracing::warn!(tenant = %t.name, app = %app.client_id, credential = %c.id, by = %admin.upn, days, "client secret added");
    Ok((
        StatusCode::CREATED,
        Json(api::SecretAdded {
            id: c.id,
            secret,
            hint: c.hint.unwrap_or_default(),
            expires_at,
        }),
    ))
}

/// `POST /{tenant}/admin/apps/{client_id}/credentials/certificates`
#[utoipa::path(
    post,
    path = "/apps/{client_id}/credentials/certificates",
    operation_id = ops::ADD_APP_CERTIFICATE.id,
    summary = ops::ADD_APP_CERTIFICATE.summary,
    request_body = api::NewCertificate,
    responses((status = 201, description = "Done.", body = api::Credential))
)]
pub async fn add_certificate(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::NewCertificate>,
) -> Result<(StatusCode, Json<api::Credential>), ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ADD_APP_CERTIFICATE).await?;
    let app = confidential_app(&state, &t, &client_id).await?;
    let now = unix_now();
    let cert = registered_certificate(&body.certificate, now)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let c = AppCredential {
        id: Uuid::new_v4(),
        tenant_id: t.id,
        client_id: app.client_id.clone(),
        key: CredentialKey::Certificate(cert.key),
        hint: None,
        created_at: now,
        starts_at: Some(cert.not_before),
        expires_at: Some(cert.not_after),
    };
    state.store.add_app_credential(&c).await.map_err(refused)?;
    tracing::warn!(tenant = %t.name, app = %app.client_id, credential = %c.id, by = %admin.upn, "certificate credential added");
    Ok((StatusCode::CREATED, Json(credential_json(&c, now))))
}

/// Removes credential `id` of `client_id` when it is of `kind` (any kind when `None`).
async fn remove_of_kind(
    state: &Shared,
    t: &Tenant,
    admin: &str,
    client_id: &str,
    id: &str,
    kind: Option<&str>,
) -> Result<Json<api::CredentialRemoved>, ApiError> {
    let app = confidential_app(state, t, client_id).await?;
    let id = credential_id(id)?;
    let found = state
        .store
        .app_credentials(t.id, &app.client_id)
        .await?
        .into_iter()
        .find(|c| c.id == id);
    match (found, kind) {
        (None, _) => {
            return Err(ApiError::not_found(format!(
                "The app has no credential {id}: `app credential list {}` shows them.",
                app.client_id
            )))
        }
        (Some(c), Some(kind)) if c.kind() != kind => {
            return Err(ApiError::not_found(format!(
                "The app's credential {id} is a {}, not a {kind}: remove it with `app credential remove {} {id}`.",
                c.kind(),
                app.client_id
            )))
        }
        (Some(_), _) => {}
    }
    state
        .store
        .remove_app_credential(t.id, &app.client_id, id)
        .await?;
    tracing::warn!(tenant = %t.name, app = %app.client_id, credential = %id, by = %admin, "app credential removed");
    Ok(Json(api::CredentialRemoved {
        client_id: app.client_id,
        id,
        removed: true,
    }))
}

/// `DELETE /{tenant}/admin/apps/{client_id}/credentials/secrets/{id}`
#[utoipa::path(
    delete,
    path = "/apps/{client_id}/credentials/secrets/{id}",
    operation_id = ops::REMOVE_APP_SECRET.id,
    summary = ops::REMOVE_APP_SECRET.summary,
    responses((status = 200, description = "Done.", body = api::CredentialRemoved))
)]
pub async fn remove_secret(
    State(state): State<Shared>,
    Path((tenant, client_id, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::CredentialRemoved>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::REMOVE_APP_SECRET).await?;
    remove_of_kind(&state, &t, &admin.upn, &client_id, &id, Some("secret")).await
}

/// `DELETE /{tenant}/admin/apps/{client_id}/credentials/{id}`
#[utoipa::path(
    delete,
    path = "/apps/{client_id}/credentials/{id}",
    operation_id = ops::REMOVE_APP_CREDENTIAL.id,
    summary = ops::REMOVE_APP_CREDENTIAL.summary,
    responses((status = 200, description = "Done.", body = api::CredentialRemoved))
)]
pub async fn remove(
    State(state): State<Shared>,
    Path((tenant, client_id, id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::CredentialRemoved>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::REMOVE_APP_CREDENTIAL).await?;
    remove_of_kind(&state, &t, &admin.upn, &client_id, &id, None).await
}
