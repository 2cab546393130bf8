//! Users' passwords: an administrator sets a cloud-only user's, or resets anyone's (an
//! on-premises user's in Active Directory, through an agent), and allows or forbids a user's
//! self-service password writeback.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;
use zeroize::Zeroizing;

use super::users::{cloud_only, find};
use super::{authorize, ops};
use crate::clock::unix_now;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::{Tenant, User};
use crate::writeback::{self, Actor, WritebackError};
use passthru_proto::AgentError;

/// Shortest cloud password accepted.
const MIN_PASSWORD_CHARS: usize = 8;

pub(super) fn check_password(p: &str) -> Result<(), ApiError> {
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::bad_request(format!(
            "The password must have at least {MIN_PASSWORD_CHARS} characters."
        )));
    }
    if p.len() > 256 {
        return Err(ApiError::bad_request(
            "The password must have at most 256 bytes.",
        ));
    }
    Ok(())
}

/// `POST /{tenant}/admin/users/{upn}/password`: a cloud-only user's new password; their
/// sessions and refresh tokens end.
#[utoipa::path(
    post,
    path = "/users/{upn}/password",
    operation_id = ops::SET_USER_PASSWORD.id,
    summary = ops::SET_USER_PASSWORD.summary,
    request_body = api::SetPassword,
    responses((status = 200, description = "Done.", body = api::PasswordSet))
)]
pub async fn set_password(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetPassword>,
) -> Result<Json<api::PasswordSet>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_USER_PASSWORD).await?;
    let user = find(&state, &t, &upn).await?;
    cloud_only(&user, "change the password")?;
    set_cloud_password(&state, &t, &user, body.password).await?;
    tracing::info!(tenant = %t.name, user = %user.upn, by = %admin.upn, "password set by an administrator");
    Ok(Json(api::PasswordSet {
        upn: user.upn,
        password_set: true,
        written_to: None,
        must_change: None,
    }))
}

/// `POST /{tenant}/admin/users/{upn}/reset-password`: an administrator's reset. An
/// on-premises user's password is reset in AD by an agent (the tenant's `writeback` setting
/// must be on); a cloud-only user's is set in the cloud. Sessions and refresh tokens end.
#[utoipa::path(
    post,
    path = "/users/{upn}/reset-password",
    operation_id = ops::RESET_USER_PASSWORD.id,
    summary = ops::RESET_USER_PASSWORD.summary,
    request_body = api::ResetPassword,
    responses((status = 200, description = "Done.", body = api::PasswordSet))
)]
pub async fn reset_password(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::ResetPassword>,
) -> Result<Json<api::PasswordSet>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::RESET_USER_PASSWORD).await?;
    let corr = crate::http::correlation_id(&headers);
    let user = find(&state, &t, &upn).await?;
    if body.password.is_empty() {
        return Err(ApiError::bad_request("The new password is empty."));
    }
    if user.source == "cloud" {
        if body.must_change {
            return Err(ApiError::bad_request(
                "--must-change applies to on-premises users (Active Directory enforces it); a cloud-only user's password is simply set.",
            ));
        }
        set_cloud_password(&state, &t, &user, body.password).await?;
        tracing::info!(tenant = %t.name, user = %user.upn, by = %admin.upn, "cloud password reset by an administrator");
        return Ok(Json(api::PasswordSet {
            upn: user.upn,
            password_set: true,
            written_to: Some("cloud".to_string()),
            must_change: None,
        }));
    }
    writeback::allowed(&state, &t, &user.upn, Some(&user), Actor::Admin)
        .await
        .map_err(writeback_api_error)?;
    let must_change = body.must_change;
    writeback::reset(&state, &t, &user, body.password, must_change, corr)
        .await
        .map_err(writeback_api_error)?;
    tracing::info!(tenant = %t.name, user = %user.upn, by = %admin.upn, must_change, "password reset in Active Directory by an administrator");
    Ok(Json(api::PasswordSet {
        upn: user.upn,
        password_set: true,
        written_to: Some("active_directory".to_string()),
        must_change: Some(must_change),
    }))
}

/// A writeback failure as the admin API reports it.
fn writeback_api_error(e: WritebackError) -> ApiError {
    let (status, code) = match &e {
        WritebackError::Disabled => (StatusCode::CONFLICT, "writeback_disabled"),
        WritebackError::NotOnPremises | WritebackError::NotAllowed => {
            (StatusCode::CONFLICT, "not_writable")
        }
        WritebackError::Policy(_) => (StatusCode::BAD_REQUEST, "password_policy"),
        WritebackError::WrongPassword
        | WritebackError::Denied(_)
        | WritebackError::LockedInCloud => (StatusCode::CONFLICT, "refused_by_directory"),
        WritebackError::NoAgent => (StatusCode::SERVICE_UNAVAILABLE, "no_agent"),
        WritebackError::Timeout => (StatusCode::GATEWAY_TIMEOUT, "agent_timeout"),
        WritebackError::Agent(AgentError::WritebackProtectedAccount) => {
            (StatusCode::CONFLICT, "protected_account")
        }
        WritebackError::Agent(AgentError::WritebackOutsideScope) => {
            (StatusCode::CONFLICT, "outside_writeback_scope")
        }
        WritebackError::Agent(_) => (StatusCode::BAD_GATEWAY, "agent_failed"),
        WritebackError::AnswerRefused => (StatusCode::BAD_GATEWAY, "agent_answer_refused"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
    };
    let detail = match &e {
        WritebackError::Policy(r) => crate::writeback::refusal_sentence(*r),
        WritebackError::NoAgent => "No authentication agent is connected: the password was not reset. Start an agent (`passthru-agent run`) and try again.".to_string(),
        WritebackError::Agent(AgentError::WritebackProtectedAccount) => "The user is a protected account (adminCount=1, an administrator now or formerly): the agent refused to write its password, and nothing was changed. Reset it in Active Directory, or allow it with writeback_protected_accounts = true in the forest's [[forest]] table of the agents' configuration.".to_string(),
        WritebackError::Agent(AgentError::WritebackOutsideScope) => "The user is outside the writeback_base_dn the agents' configuration sets for the forest: the agent refused to write its password, and nothing was changed.".to_string(),
        WritebackError::Agent(a) => format!("The agent could not reset the password: {}. Check the agent's log; the forest's service_account needs the \"Reset Password\" right on the users.", a.describe()),
        WritebackError::Server(e) => return ApiError::internal(e),
        other => format!("{other}."),
    };
    ApiError::new(status, code, detail)
}

/// `PUT /{tenant}/admin/users/{upn}/writeback`: allows or forbids self-service writeback.
#[utoipa::path(
    put,
    path = "/users/{upn}/writeback",
    operation_id = ops::SET_USER_WRITEBACK.id,
    summary = ops::SET_USER_WRITEBACK.summary,
    request_body = api::SetWriteback,
    responses((status = 200, description = "Done.", body = api::WritebackSet))
)]
pub async fn set_writeback(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetWriteback>,
) -> Result<Json<api::WritebackSet>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_USER_WRITEBACK).await?;
    let user = find(&state, &t, &upn).await?;
    state
        .store
        .set_writeback_allowed(t.id, user.id, body.allowed, unix_now())
        .await?;
    tracing::info!(tenant = %t.name, user = %user.upn, by = %admin.upn, allowed = body.allowed, "self-service password writeback set");
    Ok(Json(api::WritebackSet {
        upn: user.upn,
        writeback_allowed: body.allowed,
    }))
}

/// Checks and hashes a cloud-only user's new password, stores it and ends their sessions.
async fn set_cloud_password(
    state: &Shared,
    t: &Tenant,
    user: &User,
    password: Zeroizing<String>,
) -> Result<(), ApiError> {
    check_password(&password)?;
    let hash = crate::passwords::hash(password)
        .await
        .map_err(ApiError::internal)?;
    state
        .store
        .set_password_hash(t.id, user.id, &hash, unix_now())
        .await?;
    Ok(())
}
