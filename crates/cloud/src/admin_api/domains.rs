//! Domains: add, verify, convert, remove.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;

use super::{authorize, ops};
use crate::clock::unix_now;
use crate::domain_proof::Proof;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::{Domain, DomainKind, Tenant};

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

/// A new proof-of-control code (random, URL-safe).
pub fn new_code() -> String {
    crate::issue::random_token().chars().take(32).collect()
}

/// A domain of `kind` waiting for its proof, with the record to publish.
pub fn proof_json(name: &str, code: &str, kind: DomainKind) -> api::Domain {
    api::Domain {
        name: name.to_string(),
        verified: false,
        kind: kind.as_str().to_string(),
        verification: Some(api::DnsProof {
            record_type: "TXT".to_string(),
            name: name.to_string(),
            value: format!("{}{code}", crate::domain_proof::PREFIX),
            ttl: 3600,
            next: format!("Publish this TXT record in the DNS zone of {name}, then run `passthru-cloud admin domain verify {name}`. Until then the domain takes no part in sign-in; a claim never verified is dropped after 7 days."),
        }),
        issuer: None,
        client_id: None,
        users: None,
    }
}

pub(super) fn domain_json(d: &Domain) -> api::Domain {
    match (&d.verification_code, d.verified) {
        (Some(code), false) => proof_json(&d.name, code, d.kind),
        _ => api::Domain {
            name: d.name.clone(),
            verified: d.verified,
            kind: d.kind.as_str().to_string(),
            verification: None,
            issuer: None,
            client_id: None,
            users: None,
        },
    }
}

async fn find(state: &Shared, t: &Tenant, name: &str) -> Result<Domain, ApiError> {
    match state.store.domain_any(name.trim()).await? {
        Some(d) if d.tenant_id == t.id => Ok(d),
        _ => Err(ApiError::not_found(format!(
            "'{}' is not a domain of this tenant: `domain list` shows them.",
            name.trim()
        ))),
    }
}

/// `POST /{tenant}/admin/domains`: adds a managed domain, or a federated one when the body
/// has `federated: {issuer, client_id, client_secret}`. Either waits for its DNS proof.
#[utoipa::path(
    post,
    path = "/domains",
    operation_id = ops::ADD_DOMAIN.id,
    summary = ops::ADD_DOMAIN.summary,
    request_body = api::NewDomain,
    responses((status = 201, description = "Done.", body = api::Domain))
)]
pub async fn add(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::NewDomain>,
) -> Result<(StatusCode, Json<api::Domain>), ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ADD_DOMAIN).await?;
    let name = body.name.trim().trim_end_matches('.').to_ascii_lowercase();
    if !valid_domain(&name) {
        return Err(ApiError::bad_request(format!(
            "'{}' is not a valid DNS domain name.",
            name.chars().take(256).collect::<String>()
        )));
    }
    if let Some(d) = state.store.domain_any(&name).await? {
        return Err(ApiError::conflict(if d.tenant_id == t.id {
            format!("'{name}' is already a domain of this tenant: `domain show {name}` shows its state.")
        } else {
            format!("'{name}' is claimed by another tenant. If it is yours, ask Passthru support; an unverified claim lapses after 7 days.")
        }));
    }
    if let Some(f) = body.federated {
        return super::federated_domains::add_federated_domain(&state, &t, &name, f).await;
    }
    let code = new_code();
    state
        .store
        .add_domain(t.id, &name, DomainKind::Managed, Some(&code), unix_now())
        .await?;
    tracing::info!(tenant = %t.name, domain = %name, by = %admin.upn, "domain added, waiting for its proof");
    Ok((
        StatusCode::CREATED,
        Json(proof_json(&name, &code, DomainKind::Managed)),
    ))
}

/// `GET /{tenant}/admin/domains`
#[utoipa::path(
    get,
    path = "/domains",
    operation_id = ops::LIST_DOMAINS.id,
    summary = ops::LIST_DOMAINS.summary,
    responses((status = 200, description = "Done.", body = api::DomainList))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
) -> Result<Json<api::DomainList>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_DOMAINS).await?;
    let domains = state.store.domains(t.id).await?;
    Ok(Json(api::DomainList {
        domains: domains.iter().map(domain_json).collect(),
    }))
}

/// `GET /{tenant}/admin/domains/{name}`
#[utoipa::path(
    get,
    path = "/domains/{name}",
    operation_id = ops::SHOW_DOMAIN.id,
    summary = ops::SHOW_DOMAIN.summary,
    responses((status = 200, description = "Done.", body = api::Domain))
)]
pub async fn show(
    State(state): State<Shared>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::Domain>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::SHOW_DOMAIN).await?;
    let d = find(&state, &t, &name).await?;
    let mut v = domain_json(&d);
    v.users = Some(state.store.domain_user_count(t.id, &d.name).await?);
    Ok(Json(v))
}

/// `POST /{tenant}/admin/domains/{name}/verify`: looks the TXT record up now.
#[utoipa::path(
    post,
    path = "/domains/{name}/verify",
    operation_id = ops::VERIFY_DOMAIN.id,
    summary = ops::VERIFY_DOMAIN.summary,
    responses((status = 200, description = "Done.", body = api::Domain))
)]
pub async fn verify(
    State(state): State<Shared>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::Domain>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::VERIFY_DOMAIN).await?;
    let d = find(&state, &t, &name).await?;
    if d.verified {
        return Ok(Json(domain_json(&d)));
    }
    let Some(code) = d.verification_code.as_deref() else {
        return Err(ApiError::internal("the domain has no verification code"));
    };
    let proof =
        state.domain_proof.check(&d.name, code).await.map_err(|e| {
            ApiError::new(StatusCode::BAD_GATEWAY, "dns_lookup_failed", e.to_string())
        })?;
    match proof {
        Proof::Found => {
            state.store.set_domain_verified(t.id, &d.name).await?;
            tracing::info!(tenant = %t.name, domain = %d.name, by = %admin.upn, "domain verified");
            let d = find(&state, &t, &name).await?;
            Ok(Json(domain_json(&d)))
        }
        Proof::Missing(seen) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "not_verified",
            format!(
                "No TXT record \"{}{code}\" was found at {}{}. DNS changes can take a while to reach every server: publish the record, wait for its TTL, and run `domain verify {}` again.",
                crate::domain_proof::PREFIX,
                d.name,
                if seen.is_empty() {
                    " (it has no TXT records)".to_string()
                } else {
                    format!(" (its TXT records: {})", seen.join("; "))
                },
                d.name
            ),
        )),
    }
}

/// `DELETE /{tenant}/admin/domains/{name}`: refused while users have UPNs in it, and for
/// the tenant's initial domain.
#[utoipa::path(
    delete,
    path = "/domains/{name}",
    operation_id = ops::REMOVE_DOMAIN.id,
    summary = ops::REMOVE_DOMAIN.summary,
    responses((status = 200, description = "Done.", body = api::DomainRemoved))
)]
pub async fn remove(
    State(state): State<Shared>,
    Path((tenant, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::DomainRemoved>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::REMOVE_DOMAIN).await?;
    let d = find(&state, &t, &name).await?;
    if d.kind == DomainKind::Cloud {
        return Err(ApiError::conflict(format!(
            "'{}' is the tenant's initial domain and cannot be removed.",
            d.name
        )));
    }
    let users = state.store.domain_user_count(t.id, &d.name).await?;
    if users > 0 {
        return Err(ApiError::conflict(format!(
            "'{}' is used by {users} user(s): delete them or change their UPNs first (`user list --search @{}`).",
            d.name, d.name
        )));
    }
    state.store.remove_domain(t.id, &d.name).await?;
    tracing::warn!(tenant = %t.name, domain = %d.name, by = %admin.upn, "domain removed");
    Ok(Json(api::DomainRemoved {
        name: d.name,
        removed: true,
    }))
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
