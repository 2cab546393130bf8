//! The admin API under `/{tenant}/admin/`, authenticated with access tokens from our own STS
//! (audience `passthru-admin`, issued to the administration client). The caller's role is
//! read from the store on every request, so a role change takes effect at once. Which roles
//! may call what is in [`ops`]; each handler's route, parameters and bodies are in its
//! `#[utoipa::path]`, from which both the router and the OpenAPI document are built
//! ([`openapi`]). The bodies are the shared types of [`passthru_admin::api`].

use axum::extract::{MatchedPath, Path, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use passthru_proto::admin::ADMIN_AUDIENCE;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::oauth_error::ApiError;

pub mod body;
use crate::state::Shared;
use crate::store::{Tenant, User};
use crate::tokens::SigningAlg;
pub use body::ApiJson;

pub mod agents;
pub mod app_apis;
pub mod app_credentials;
pub mod apps;
pub mod audit;
pub mod audit_log;
pub mod branding;
pub mod domains;
pub mod federated_domains;
pub mod groups;
pub mod keys;
pub mod openapi;
pub mod ops;
pub mod pta;
pub mod releases;
pub mod settings;
pub mod signins;
pub mod user_passwords;
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
    match state.signer.keys_for(other.id, SigningAlg::Es256).await {
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
    // Only the tenant's own keys verify (keys are per tenant); admin API tokens are ES256.
    let verified = state
        .signer
        .keys_for(t.id, SigningAlg::Es256)
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
    // axum answers HEAD with the GET handler: it is that operation.
    let method = match request.method().as_str() {
        "HEAD" => "GET",
        m => m,
    };
    let op = ops::ALL.iter().find(|o| {
        o.method == method
            && path
                .strip_suffix(o.path)
                .is_some_and(|head| head.ends_with("/admin"))
    });
    // Every route is an operation of the table (a test holds them to each other): one that is
    // not is never served, rather than served unchecked.
    let (Some(op), Some(tenant)) = (op, params.get("tenant")) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "This route is not an operation of the admin API's table.",
        )
        .into_response();
    };
    let (t, caller) = match authorize(&state, tenant, request.headers(), op).await {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    if op.method == "GET" {
        return next.run(request).await;
    }
    audit::recorded(&state, &t, &caller, op, &params, request, next).await
}

/// Every admin operation: each handler routed by its `#[utoipa::path]`, which also documents
/// it, so the router and the OpenAPI document are built from the same attributes.
pub fn operations() -> OpenApiRouter<Shared> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(users::list, users::add))
        .routes(routes!(users::show, users::remove))
        .routes(routes!(user_passwords::set_password))
        .routes(routes!(users::disable))
        .routes(routes!(users::enable))
        .routes(routes!(users::unlock))
        .routes(routes!(user_passwords::reset_password))
        .routes(routes!(user_passwords::set_writeback))
        .routes(routes!(users::set_mfa))
        .routes(routes!(users::reset_mfa))
        .routes(routes!(users::set_role))
        .routes(routes!(groups::list))
        .routes(routes!(groups::show))
        .routes(routes!(groups::status))
        .routes(routes!(groups::run))
        .routes(routes!(domains::list, domains::add))
        .routes(routes!(domains::show, domains::remove))
        .routes(routes!(domains::verify))
        .routes(routes!(federated_domains::convert_domain))
        .routes(routes!(apps::list, apps::add))
        .routes(routes!(apps::show, apps::remove))
        .routes(routes!(apps::set_redirect_uris))
        .routes(routes!(apps::set_groups_claim))
        .routes(routes!(apps::rotate_secret))
        .routes(routes!(app_credentials::list))
        .routes(routes!(app_credentials::add_secret))
        .routes(routes!(app_credentials::remove_secret))
        .routes(routes!(app_credentials::add_certificate))
        .routes(routes!(app_credentials::remove))
        .routes(routes!(app_apis::set_id_token_alg))
        .routes(routes!(app_apis::expose))
        .routes(routes!(app_apis::list, app_apis::assign))
        .routes(routes!(app_apis::unassign))
        .routes(routes!(pta::get, pta::set))
        .routes(routes!(settings::get))
        .routes(routes!(settings::set))
        .routes(routes!(agents::register))
        .routes(routes!(agents::list))
        .routes(routes!(agents::revoke))
        .routes(routes!(releases::list, releases::add))
        .routes(routes!(releases::remove))
        .routes(routes!(signins::list))
        .routes(routes!(signins::show))
        .routes(routes!(audit_log::list))
        .routes(routes!(branding::set, branding::remove))
        .routes(routes!(keys::list))
        .routes(routes!(keys::rotate))
}

/// The operations behind the role guard (and the audit of changes).
fn guarded(router: Router<Shared>, state: Shared) -> Router<Shared> {
    router.route_layer(axum::middleware::from_fn_with_state(state, guard))
}

/// The operations alone, without their OpenAPI document, nested under `/{tenant}/admin`: what
/// the portal calls in-process ([`crate::portal::act`]).
pub(crate) fn operations_router(state: Shared) -> Router {
    let (router, _) = operations().split_for_parts();
    Router::new()
        .nest("/{tenant}/admin", guarded(router, state.clone()))
        .with_state(state)
}

/// The admin routes, nested under `/{tenant}/admin` by the server: the operations behind the
/// role guard, and their document at `/openapi.json` (public).
pub fn routes(state: Shared) -> Router<Shared> {
    let (router, derived) = operations().split_for_parts();
    let doc = Arc::new(openapi::finish(&derived));
    guarded(router, state).route(
        "/openapi.json",
        get(move |base: crate::sts::BaseUrl| openapi::document(base, doc.clone())),
    )
}

#[cfg(test)]
mod audit_tests;
#[cfg(test)]
mod openapi_tests;
#[cfg(test)]
mod records_tests;
#[cfg(test)]
pub(crate) mod tests;
#[cfg(test)]
mod users_tests;
