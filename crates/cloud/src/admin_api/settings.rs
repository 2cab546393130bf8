//! Tenant settings: read all, set one (validated by [`crate::model::settings`]).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use passthru_admin::api;

use super::{authorize, ops};
use crate::model::settings::{Settings, KEYS};
use crate::oauth_error::ApiError;
use crate::state::Shared;

fn settings_json(s: &Settings) -> api::Settings {
    let pairs = s.pairs();
    api::Settings {
        settings: KEYS
            .iter()
            .zip(pairs)
            .map(|(k, (_, v))| api::Setting {
                key: k.name.to_string(),
                value: v,
                help: k.help.to_string(),
            })
            .collect(),
    }
}

/// `GET /{tenant}/admin/settings`
#[utoipa::path(
    get,
    path = "/settings",
    operation_id = ops::GET_SETTINGS.id,
    summary = ops::GET_SETTINGS.summary,
    responses((status = 200, description = "Done.", body = api::Settings))
)]
pub async fn get(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::Settings>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::GET_SETTINGS).await?;
    Ok(Json(settings_json(&t.settings)))
}

/// `PUT /{tenant}/admin/settings/{key}` with `{"value": "..."}` (a JSON number or boolean
/// is taken as its text).
#[utoipa::path(
    put,
    path = "/settings/{key}",
    operation_id = ops::SET_SETTING.id,
    summary = ops::SET_SETTING.summary,
    request_body = api::SetSetting,
    responses((status = 200, description = "Done.", body = api::Settings))
)]
pub async fn set(
    State(state): State<Shared>,
    Path((tenant, key)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetSetting>,
) -> Result<Json<api::Settings>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_SETTING).await?;
    let value = body.value.text();
    let mut settings = t.settings.clone();
    settings
        .set(&key, &value)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    state.store.save_settings(t.id, &settings).await?;
    let shown = settings.get(&key).unwrap_or_default();
    tracing::info!(tenant = %t.name, key = %key, value = %shown, by = %admin.upn, "setting changed");
    Ok(Json(settings_json(&settings)))
}
