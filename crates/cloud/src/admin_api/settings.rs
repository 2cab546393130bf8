//! Tenant settings: read all, set one (validated by [`crate::model::settings`]).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{authorize, ops};
use crate::model::settings::{Settings, KEYS};
use crate::oauth_error::ApiError;
use crate::state::Shared;

fn settings_json(s: &Settings) -> Value {
    let pairs = s.pairs();
    json!({
        "settings": KEYS
            .iter()
            .zip(pairs)
            .map(|(k, (_, v))| json!({ "key": k.name, "value": v, "help": k.help }))
            .collect::<Vec<_>>()
    })
}

/// `GET /{tenant}/admin/settings`
pub async fn get(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::GET_SETTINGS).await?;
    Ok(Json(settings_json(&t.settings)))
}

#[derive(Debug, Deserialize)]
pub struct SetBody {
    value: serde_json::Value,
}

/// `PUT /{tenant}/admin/settings/{key}` with `{"value": "..."}` (a JSON number or boolean
/// is taken as its text).
pub async fn set(
    State(state): State<Shared>,
    Path((tenant, key)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<SetBody>,
) -> Result<Json<Value>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_SETTING).await?;
    let value = match &body.value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => {
            return Err(ApiError::bad_request(
                "value must be a string, number or boolean.",
            ))
        }
    };
    let mut settings = t.settings.clone();
    settings
        .set(&key, &value)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    state.store.save_settings(t.id, &settings).await?;
    let shown = settings.get(&key).unwrap_or_default();
    tracing::info!(tenant = %t.name, key = %key, value = %shown, by = %admin.upn, "setting changed");
    Ok(Json(settings_json(&settings)))
}
