//! What an app offers other apps: the ID-token algorithm, the API it exposes (identifier
//! URI, delegated scopes, app roles) and who holds its roles.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;

use super::apps::{app_json, find, id_token_alg};
use super::{authorize, ops};
use crate::clock::unix_now;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::{PrincipalKind, RoleAssignment, StoreError, Tenant};

/// Most scopes, and most roles, an API defines.
const MAX_NAMES: usize = 50;

/// `PUT /{tenant}/admin/apps/{client_id}/id-token-alg`
#[utoipa::path(
    put,
    path = "/apps/{client_id}/id-token-alg",
    operation_id = ops::SET_APP_ID_TOKEN_ALG.id,
    summary = ops::SET_APP_ID_TOKEN_ALG.summary,
    request_body = api::SetIdTokenAlg,
    responses((status = 200, description = "Done.", body = api::App))
)]
pub async fn set_id_token_alg(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetIdTokenAlg>,
) -> Result<Json<api::App>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_APP_ID_TOKEN_ALG).await?;
    let app = find(&state, &t, &client_id).await?;
    let alg = id_token_alg(&body.alg)?;
    state
        .store
        .set_app_id_token_alg(t.id, &app.client_id, alg)
        .await?;
    tracing::info!(tenant = %t.name, app = %app.client_id, by = %admin.upn, alg, "ID-token algorithm set");
    Ok(Json(app_json(&find(&state, &t, &client_id).await?)))
}

/// An identifier URI: `api://NAME` or an https URL, without query, fragment or a trailing
/// slash (scopes are written `URI/scope`).
pub(crate) fn valid_identifier_uri(uri: &str) -> Result<(), String> {
    let u = url::Url::parse(uri)
        .map_err(|e| format!("'{uri}' is not an absolute URI ({e}): give it like api://orders"))?;
    if !matches!(u.scheme(), "api" | "https") {
        return Err(format!(
            "'{uri}' must start with api:// or https:// (for example api://orders)"
        ));
    }
    if u.query().is_some() || u.fragment().is_some() || uri.ends_with('/') || uri.len() > 200 {
        return Err(format!(
            "'{uri}' must have no query, fragment or trailing slash, and at most 200 characters"
        ));
    }
    if uri.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("'{uri}' must not contain spaces"));
    }
    Ok(())
}

/// A scope or role name: 1 to 64 of letters, digits, `.`, `_`, `-`, not starting with `.`
/// (so never `.default`).
pub(crate) fn valid_name(kind: &str, name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "'{}' is not a valid {kind} name: 1 to 64 letters, digits, '.', '_' or '-', not starting with '.'",
            name.chars().take(64).collect::<String>()
        ))
    }
}

fn names(kind: &str, raw: &[String]) -> Result<Vec<String>, ApiError> {
    if raw.len() > MAX_NAMES {
        return Err(ApiError::bad_request(format!(
            "At most {MAX_NAMES} {kind}s."
        )));
    }
    let mut out: Vec<String> = Vec::new();
    for n in raw {
        let n = n.trim();
        valid_name(kind, n).map_err(ApiError::bad_request)?;
        if !out.iter().any(|x| x == n) {
            out.push(n.to_string());
        }
    }
    Ok(out)
}

/// `PUT /{tenant}/admin/apps/{client_id}/api`
#[utoipa::path(
    put,
    path = "/apps/{client_id}/api",
    operation_id = ops::EXPOSE_APP_API.id,
    summary = ops::EXPOSE_APP_API.summary,
    request_body = api::ExposeApi,
    responses((status = 200, description = "Done.", body = api::App))
)]
pub async fn expose(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::ExposeApi>,
) -> Result<Json<api::App>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::EXPOSE_APP_API).await?;
    let app = find(&state, &t, &client_id).await?;
    let uri = body.identifier_uri.as_deref().map(str::trim);
    if let Some(u) = uri {
        valid_identifier_uri(u).map_err(ApiError::bad_request)?;
    }
    let scopes = names("scope", &body.scopes)?;
    let roles = names("app role", &body.app_roles)?;
    if uri.is_none() && !scopes.is_empty() {
        return Err(ApiError::bad_request(
            "Scopes need an identifier URI: give --identifier-uri api://NAME.",
        ));
    }
    match state
        .store
        .set_app_api(t.id, &app.client_id, uri, &scopes, &roles)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(ApiError::conflict(format!(
                "Another app of this tenant already has the identifier URI '{}': choose another.",
                uri.unwrap_or_default()
            )))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(tenant = %t.name, app = %app.client_id, by = %admin.upn, identifier_uri = ?uri,
        scopes = scopes.len(), roles = roles.len(), "API exposed");
    Ok(Json(app_json(&find(&state, &t, &client_id).await?)))
}

/// The principal an assignment names, resolved in the tenant: (kind, id, display name).
async fn principal(
    state: &Shared,
    t: &Tenant,
    body: &api::AssignRole,
) -> Result<(PrincipalKind, String, Option<String>), ApiError> {
    match (&body.user, &body.group, &body.app) {
        (Some(user), None, None) => {
            let user = user.trim();
            let found = match uuid::Uuid::parse_str(user) {
                Ok(id) => state.store.user_by_id(t.id, id).await?,
                Err(_) => state.store.user_by_upn(t.id, user).await?,
            };
            let u = found.ok_or_else(|| {
                ApiError::not_found(format!(
                    "No user '{user}' in this tenant: `user list` shows them (synced users appear after a sync or their first sign-in)."
                ))
            })?;
            Ok((PrincipalKind::User, u.id.to_string(), Some(u.upn)))
        }
        (None, Some(group), None) => {
            let group = group.trim();
            let (g, _) = state.store.group(t.id, group).await?.ok_or_else(|| {
                ApiError::not_found(format!(
                    "No synced group '{group}' in this tenant: `group list` shows them."
                ))
            })?;
            Ok((PrincipalKind::Group, g.id.to_string(), g.name))
        }
        (None, None, Some(client)) => {
            let a = find(state, t, client).await?;
            Ok((PrincipalKind::App, a.client_id, Some(a.name)))
        }
        _ => Err(ApiError::bad_request(
            "Name exactly one of --user, --group or --app.",
        )),
    }
}

/// `POST /{tenant}/admin/apps/{client_id}/role-assignments`
#[utoipa::path(
    post,
    path = "/apps/{client_id}/role-assignments",
    operation_id = ops::ASSIGN_APP_ROLE.id,
    summary = ops::ASSIGN_APP_ROLE.summary,
    request_body = api::AssignRole,
    responses((status = 201, description = "Done.", body = api::RoleAssignment))
)]
pub async fn assign(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::AssignRole>,
) -> Result<(StatusCode, Json<api::RoleAssignment>), ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ASSIGN_APP_ROLE).await?;
    let app = find(&state, &t, &client_id).await?;
    let role = body.role.trim();
    if !app.app_roles.iter().any(|r| r == role) {
        return Err(ApiError::bad_request(format!(
            "The app '{}' has no role '{}'. Its roles: {}. Define roles with `app expose ... --app-role NAME`.",
            app.name,
            role.chars().take(64).collect::<String>(),
            if app.app_roles.is_empty() { "none".to_string() } else { app.app_roles.join(", ") }
        )));
    }
    let (kind, id, name) = principal(&state, &t, &body).await?;
    let a = RoleAssignment {
        resource_client_id: app.client_id.clone(),
        role: role.to_string(),
        principal_kind: kind,
        principal_id: id.clone(),
        created_at: unix_now(),
    };
    state.store.assign_app_role(t.id, &a).await?;
    tracing::info!(tenant = %t.name, app = %app.client_id, by = %admin.upn, role,
        principal_kind = kind.as_str(), principal = %id, "app role assigned");
    Ok((
        StatusCode::CREATED,
        Json(api::RoleAssignment {
            role: a.role,
            principal_kind: kind.as_str().to_string(),
            principal_id: id,
            principal_name: name,
        }),
    ))
}

/// `GET /{tenant}/admin/apps/{client_id}/role-assignments`
#[utoipa::path(
    get,
    path = "/apps/{client_id}/role-assignments",
    operation_id = ops::LIST_APP_ROLE_ASSIGNMENTS.id,
    summary = ops::LIST_APP_ROLE_ASSIGNMENTS.summary,
    responses((status = 200, description = "Done.", body = api::RoleAssignmentList))
)]
pub async fn list(
    State(state): State<Shared>,
    Path((tenant, client_id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::RoleAssignmentList>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_APP_ROLE_ASSIGNMENTS).await?;
    let app = find(&state, &t, &client_id).await?;
    let rows = state
        .store
        .app_role_assignments(t.id, &app.client_id)
        .await?;
    Ok(Json(api::RoleAssignmentList {
        assignments: rows
            .into_iter()
            .map(|a| api::RoleAssignment {
                role: a.role,
                principal_kind: a.principal_kind.as_str().to_string(),
                principal_id: a.principal_id,
                principal_name: None,
            })
            .collect(),
    }))
}

/// `DELETE /{tenant}/admin/apps/{client_id}/role-assignments/{role}/{kind}/{principal_id}`:
/// the principal as `POST` names it (UPN or object id, group name or object id, client id).
#[utoipa::path(
    delete,
    path = "/apps/{client_id}/role-assignments/{role}/{kind}/{principal_id}",
    operation_id = ops::UNASSIGN_APP_ROLE.id,
    summary = ops::UNASSIGN_APP_ROLE.summary,
    responses((status = 200, description = "Done.", body = api::RoleAssignment))
)]
pub async fn unassign(
    State(state): State<Shared>,
    Path((tenant, client_id, role, kind, principal_id)): Path<(
        String,
        String,
        String,
        String,
        String,
    )>,
    headers: HeaderMap,
) -> Result<Json<api::RoleAssignment>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::UNASSIGN_APP_ROLE).await?;
    let app = find(&state, &t, &client_id).await?;
    let named = |k: &str| (k == kind).then(|| principal_id.clone());
    let spec = api::AssignRole {
        role: role.clone(),
        user: named("user"),
        group: named("group"),
        app: named("app"),
    };
    let (kind, principal_id, _) = principal(&state, &t, &spec).await.map_err(|e| {
        if PrincipalKind::parse(&kind).is_none() {
            ApiError::bad_request("The principal kind is user, group or app.")
        } else {
            e
        }
    })?;
    let a = RoleAssignment {
        resource_client_id: app.client_id.clone(),
        role: role.clone(),
        principal_kind: kind,
        principal_id: principal_id.clone(),
        created_at: 0,
    };
    match state.store.unassign_app_role(t.id, &a).await {
        Ok(()) => {}
        Err(StoreError::NotFound(_)) => {
            return Err(ApiError::not_found(format!(
            "No assignment of role '{role}' to that {} on this app: `app role list {}` shows them.",
            kind.as_str(),
            app.client_id
        )))
        }
        Err(e) => return Err(e.into()),
    }
    tracing::info!(tenant = %t.name, app = %app.client_id, by = %admin.upn, role = %role,
        principal_kind = kind.as_str(), principal = %principal_id, "app role assignment removed");
    Ok(Json(api::RoleAssignment {
        role,
        principal_kind: kind.as_str().to_string(),
        principal_id,
        principal_name: None,
    }))
}

#[cfg(test)]
mod tests {
    use super::{valid_identifier_uri, valid_name};

    #[test]
    fn identifier_uris_and_names_are_checked() {
        for good in [
            "api://orders",
            "api://contoso.example/orders",
            "https://api.contoso.example/orders",
        ] {
            assert!(valid_identifier_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "orders",
            "api://orders/",
            "http://x.example/a",
            "api://o?x=1",
            "api://o#f",
            "ftp://x",
        ] {
            assert!(valid_identifier_uri(bad).is_err(), "{bad}");
        }
        for good in ["read", "Orders.Read", "write_all", "a-b"] {
            assert!(valid_name("scope", good).is_ok(), "{good}");
        }
        for bad in ["", ".default", "has space", "a/b", &"x".repeat(65)] {
            assert!(valid_name("scope", bad).is_err(), "{bad}");
        }
    }
}
