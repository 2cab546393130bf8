//! Domains: add, verify, convert, remove.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use super::{authorize, ops};
use crate::oauth_error::ApiError;
use crate::state::{unix_now, Shared};
use crate::store::DomainKind;

#[derive(Debug, Deserialize)]
pub struct DomainBody {
    name: String,
    /// Present for a federated domain: its identity provider (see `federation`).
    #[serde(default)]
    federated: Option<crate::federation::FederatedBody>,
}

pub fn valid_domain(name: &str) -> bool {
    let labels: Vec<&str> = name.split('.').collect();
    labels.len() >= 2
        && name.len() <= 253
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

/// `POST /{tenant}/admin/domains`: adds a managed domain, or a federated one when the body
/// has `federated: {issuer, client_id, client_secret}`.
pub async fn add(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    Json(body): Json<DomainBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::ADD_DOMAIN).await?;
    let name = body.name.trim().to_ascii_lowercase();
    if !valid_domain(&name) {
        return Err(ApiError::bad_request(format!(
            "'{name}' is not a valid DNS domain name."
        )));
    }
    if let Some(f) = body.federated {
        return crate::federation::add_federated_domain(&state, &t, &name, f).await;
    }
    state
        .store
        .add_domain(t.id, &name, DomainKind::Managed, None, unix_now())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "name": name, "kind": "managed" })),
    ))
}

/// `GET /{tenant}/admin/domains`
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_DOMAINS).await?;
    Ok(Json(json!({ "domains": state.store.domains(t.id).await? })))
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
pub async fn verify(
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
#[cfg(test)]
mod tests {
    use super::valid_domain;

    #[test]
    fn domain_names() {
        assert!(valid_domain("corp.example.test"));
        assert!(!valid_domain("localhost"));
        assert!(!valid_domain("-bad.example"));
        assert!(!valid_domain("a..b"));
        assert!(!valid_domain("sp ace.example"));
    }
}
