//! The admin API of federated domains: `POST /{tenant}/admin/domains` with `federated:
//! {issuer, client_id, client_secret}` adds one (the issuer checked as [`crate::federation`]
//! checks it at sign-in), `POST /{tenant}/admin/domains/{name}/convert` with `{"to":
//! "managed"}` makes it managed (its users sign in by pass-through authentication at their
//! next sign-in).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;
use zeroize::Zeroizing;

use super::{authorize, ops};
use crate::clock::unix_now;
use crate::federation::{allow_private, valid_issuer};
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::federation::{Conversion, FederationConfig};
use crate::store::{DomainKind, Tenant};

/// Adds the federated domain `name` (already validated as a DNS name) to `t`.
pub(crate) async fn add_federated_domain(
    state: &Shared,
    t: &Tenant,
    name: &str,
    body: api::FederatedIdp,
) -> Result<(StatusCode, Json<api::Domain>), ApiError> {
    let issuer = valid_issuer(&body.issuer).map_err(ApiError::bad_request)?;
    if let Ok(u) = url::Url::parse(&issuer) {
        crate::public_addr::check_issuer(&u, allow_private())
            .await
            .map_err(ApiError::bad_request)?;
    }
    let client_id = body.client_id.trim().to_string();
    if client_id.is_empty()
        || client_id.len() > 256
        || client_id
            .chars()
            .any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ApiError::bad_request(
            "client_id must be 1 to 256 characters without spaces.",
        ));
    }
    let secret = Zeroizing::new(body.client_secret.trim().to_string());
    if secret.is_empty() || secret.len() > 1024 || secret.chars().any(char::is_control) {
        return Err(ApiError::bad_request(
            "client_secret must be 1 to 1024 characters without control characters.",
        ));
    }
    let cfg = FederationConfig {
        domain: name.to_string(),
        tenant_id: t.id,
        issuer: issuer.clone(),
        client_id: client_id.clone(),
        client_secret: secret,
    };
    let code = super::domains::new_code();
    state
        .store
        .add_federated_domain(&cfg, &code, unix_now(), &state.mfa_box)
        .await?;
    tracing::info!(tenant = %t.name, domain = %name, %issuer, "federated domain added");
    let mut answer = super::domains::proof_json(name, &code, DomainKind::Federated);
    answer.issuer = Some(issuer);
    answer.client_id = Some(client_id);
    Ok((StatusCode::CREATED, Json(answer)))
}

/// `POST /{tenant}/admin/domains/{name}/convert` with `{"to": "managed"}`: a federated domain
/// becomes managed; its identity provider settings are deleted.
#[utoipa::path(
    post,
    path = "/domains/{name}/convert",
    operation_id = ops::CONVERT_DOMAIN.id,
    summary = ops::CONVERT_DOMAIN.summary,
    request_body = api::ConvertDomain,
    responses((status = 200, description = "Done.", body = api::DomainConverted))
)]
pub async fn convert_domain(
    State(state): State<Shared>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::ConvertDomain>,
) -> Result<Json<api::DomainConverted>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::CONVERT_DOMAIN).await?;
    if body.to != api::MANAGED {
        return Err(ApiError::bad_request(format!(
            "A domain can be converted to \"managed\" only (not \"{}\").",
            body.to
        )));
    }
    let name = name.trim().to_ascii_lowercase();
    match state.store.convert_to_managed(t.id, &name).await? {
        Conversion::Converted => {
            tracing::info!(tenant = %t.name, domain = %name, by = %admin.upn,
                "federated domain converted to managed: its users sign in by pass-through authentication from now on");
            Ok(Json(api::DomainConverted {
                name,
                kind: DomainKind::Managed.as_str().to_string(),
                pta_enabled: t.pta_enabled,
            }))
        }
        Conversion::AlreadyManaged => Err(ApiError::conflict(format!(
            "{name} is already a managed domain."
        ))),
        Conversion::CloudDomain => Err(ApiError::bad_request(format!(
            "{name} is the tenant's initial domain: its cloud-only users keep their cloud passwords."
        ))),
    }
}
