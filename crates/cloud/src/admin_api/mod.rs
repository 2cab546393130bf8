//! The admin API under `/{tenant}/admin/`, authenticated with access tokens from our own STS
//! (audience `passthru-admin`, issued to the administration client). The caller's role is
//! read from the store on every request, so a role change takes effect at once. Which roles
//! may call what is in [`ops`], the one table the router, the checks and the OpenAPI
//! document share.

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;
use passthru_proto::admin::ADMIN_AUDIENCE;

use crate::oauth_error::ApiError;

pub mod body;
use crate::state::Shared;
use crate::store::{Tenant, User};
pub use body::ApiJson;

pub mod agents;
pub mod apps;
pub mod domains;
pub mod federated_domains;
pub mod groups;
pub mod keys;
pub mod openapi;
pub mod ops;
pub mod pta;
pub mod settings;
pub mod signins;
pub mod users;

pub use ops::{Operation, GLOBAL_ADMIN};

/// Whether `token`, which the keys of `tenant_id` refused, is a valid admin token of the
/// tenant it names (so the caller hears "another tenant" rather than "invalid").
async fn issued_by_other_tenant(state: &Shared, token: &str, tenant_id: uuid::Uuid) -> bool {
    use base64::Engine as _;
    #[derive(serde::Deserialize)]
    struct Tid {
        tid: uuid::Uuid,
    }
    let Some(tid) = token
        .split('.')
        .nth(1)
        .and_then(|p| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(p)
                .ok()
        })
        .and_then(|p| serde_json::from_slice::<Tid>(&p).ok())
        .map(|c| c.tid)
        .filter(|tid| *tid != tenant_id)
    else {
        return false;
    };
    let Ok(Some(other)) = state.store.tenant(&tid.to_string()).await else {
        return false;
    };
    match state.signer.keys(other.id).await {
        Ok(keys) => keys.verify_access(token, ADMIN_AUDIENCE).is_ok(),
        Err(_) => false,
    }
}

/// Checks the bearer token and that the caller's role may perform `op` in `tenant`.
pub async fn authorize(
    state: &Shared,
    tenant: &str,
    headers: &HeaderMap,
    op: &Operation,
) -> Result<(Tenant, User), ApiError> {
    let unauthorized = |d: &str| ApiError::new(StatusCode::UNAUTHORIZED, "invalid_token", d);
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| unauthorized("An access token is required (Authorization: Bearer ...)."))?;
    let t = state
        .store
        .tenant(tenant)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("Tenant '{tenant}' not found.")))?;
    // Only the tenant's own keys verify (keys are per tenant).
    let verified = state
        .signer
        .keys(t.id)
        .await
        .map_err(ApiError::internal)?
        .verify_access(token, ADMIN_AUDIENCE);
    let claims = match verified {
        Ok(c) => c,
        Err(_) if issued_by_other_tenant(state, token, t.id).await => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "access_denied",
                "The access token was issued for another tenant.",
            ))
        }
        Err(_) => {
            return Err(unauthorized(
                "The access token is invalid or expired. Sign in again.",
            ))
        }
    };
    if claims.azp != passthru_proto::admin::ADMIN_CLIENT_ID {
        return Err(unauthorized(
            "This access token was not issued to the Passthru administration client.",
        ));
    }
    if claims.tid != t.id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            "The access token was issued for another tenant.",
        ));
    }
    let user = state
        .store
        .user_by_id(t.id, claims.oid)
        .await?
        .filter(|u| u.enabled)
        .ok_or_else(|| unauthorized("The signed-in user no longer exists or is blocked."))?;
    if !op.roles.contains(&user.role.as_str()) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "access_denied",
            format!(
                "'{}' is not allowed to {}: it needs the role {}.",
                user.upn,
                op.id,
                op.roles.join(" or ")
            ),
        ));
    }
    Ok((t, user))
}

/// Checks the caller against the operation's roles before anything else of the request is
/// read, so a caller who may not perform an operation learns nothing from how its body would
/// have been judged. (Handlers check again and use the caller they get.)
async fn guard(
    State(state): State<Shared>,
    matched: Option<MatchedPath>,
    Path(params): Path<std::collections::HashMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    let path = matched
        .as_ref()
        .map(MatchedPath::as_str)
        .unwrap_or_default();
    let op = ops::ALL.iter().find(|o| {
        o.method == request.method().as_str()
            && path
                .strip_suffix(o.path)
                .is_some_and(|head| head.ends_with("/admin"))
    });
    if let (Some(op), Some(tenant)) = (op, params.get("tenant")) {
        if let Err(e) = authorize(&state, tenant, request.headers(), op).await {
            return e.into_response();
        }
    }
    next.run(request).await
}

/// The admin routes, nested under `/{tenant}/admin` by the server.
pub fn routes(state: Shared) -> Router<Shared> {
    Router::new()
        .route("/openapi.json", get(openapi::document))
        .route("/users", get(users::list).post(users::add))
        .route("/users/{upn}", get(users::show).delete(users::remove))
        .route("/users/{upn}/password", post(users::set_password))
        .route("/users/{upn}/disable", post(users::disable))
        .route("/users/{upn}/enable", post(users::enable))
        .route("/users/{upn}/unlock", post(users::unlock))
        .route("/users/{upn}/reset-password", post(users::reset_password))
        .route("/users/{upn}/writeback", put(users::set_writeback))
        .route("/users/{upn}/mfa", put(users::set_mfa))
        .route("/users/{upn}/mfa/reset", post(users::reset_mfa))
        .route("/users/{upn}/role", put(users::set_role))
        .route("/groups", get(groups::list))
        .route("/groups/{id}", get(groups::show))
        .route("/sync", get(groups::status))
        .route("/sync/{forest}/run", post(groups::run))
        .route(
            "/apps/{client_id}/groups-claim",
            put(apps::set_groups_claim),
        )
        .route("/domains", get(domains::list).post(domains::add))
        .route(
            "/domains/{name}",
            get(domains::show).delete(domains::remove),
        )
        .route("/domains/{name}/verify", post(domains::verify))
        .route(
            "/domains/{name}/convert",
            post(federated_domains::convert_domain),
        )
        .route("/apps", get(apps::list).post(apps::add))
        .route("/apps/{client_id}", get(apps::show).delete(apps::remove))
        .route(
            "/apps/{client_id}/redirect-uris",
            put(apps::set_redirect_uris),
        )
        .route("/apps/{client_id}/secret", post(apps::rotate_secret))
        .route("/pta", get(pta::get).post(pta::set))
        .route("/settings", get(settings::get))
        .route("/settings/{key}", put(settings::set))
        .route("/agents/register", post(agents::register))
        .route("/agents", get(agents::list))
        .route("/agents/{id}/revoke", post(agents::revoke))
        .route("/signins", get(signins::list))
        .route("/keys", get(keys::list))
        .route("/keys/rotate", post(keys::rotate))
        .route_layer(axum::middleware::from_fn_with_state(state, guard))
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod users_tests;
