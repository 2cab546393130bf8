//! Users: list, show, add, password, block, role, delete. On-premises users (signed in
//! through pass-through, or synced) are read-only here except for cloud-side flags: the
//! role and the cloud sign-in block.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;
use zeroize::Zeroizing;

use super::{authorize, ops};
use crate::clock::unix_now;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::LockoutStore as _;
use crate::store::MfaStore as _;
use crate::store::WritebackStore as _;
use crate::store::{StoreError, Tenant, User};
use crate::writeback::{self, Actor, WritebackError};
use passthru_proto::AgentError;

/// Shortest cloud password accepted.
const MIN_PASSWORD_CHARS: usize = 8;

/// A user as the API shows it (without its multi-factor state).
pub fn user_json(u: &User) -> api::User {
    api::User {
        id: u.id,
        upn: u.upn.clone(),
        display_name: u.display_name.clone(),
        mail: u.mail.clone(),
        source: u.source.clone(),
        immutable_id: u.immutable_id.clone(),
        role: u.role.clone(),
        enabled: u.enabled,
        created_at: u.created_at,
        updated_at: u.updated_at,
        last_sign_in: u.last_sign_in,
        read_only: u.source != "cloud",
        synced: u.sync.as_ref().map(synced_json),
        writeback_allowed: u.writeback_allowed,
        mfa: None,
    }
}

/// What directory sync last read for the user, with the time of its last change.
fn synced_json(s: &crate::store::sync::SyncedAttributes) -> api::SyncedUser {
    let when = |t: Option<i64>| {
        t.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
    };
    api::SyncedUser {
        forest: s.forest.clone(),
        object_guid: s.object_guid,
        distinguished_name: s.dn.clone(),
        sam_account_name: s.sam_account_name.clone(),
        given_name: s.given_name.clone(),
        surname: s.surname.clone(),
        account_enabled: s.enabled,
        account_expires: when(s.account_expires),
        when_changed: when(s.when_changed),
        password_last_set: when(s.password_last_set),
        last_change: when(Some(s.last_change)),
        groups: None,
    }
}

fn check_password(p: &str) -> Result<(), ApiError> {
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

async fn find(state: &Shared, t: &Tenant, upn: &str) -> Result<User, ApiError> {
    state
        .store
        .user_by_upn(t.id, upn.trim())
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "No user '{}' in this tenant: `user list --search` finds users.",
                upn.trim()
            ))
        })
}

fn cloud_only(u: &User, what: &str) -> Result<(), ApiError> {
    if u.source == "cloud" {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::CONFLICT,
        "read_only_user",
        format!(
            "'{}' is an on-premises user ({}): {what} in Active Directory; the cloud keeps only its role and sign-in block.",
            u.upn, u.source
        ),
    ))
}

/// `GET /{tenant}/admin/users?search=&top=&skiptoken=`
#[utoipa::path(
    get,
    path = "/users",
    operation_id = ops::LIST_USERS.id,
    summary = ops::LIST_USERS.summary,
    params(api::ListQuery),
    responses((status = 200, description = "Done.", body = api::UserList))
)]
pub async fn list(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    Query(q): Query<api::ListQuery>,
    headers: HeaderMap,
) -> Result<Json<api::UserList>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::LIST_USERS).await?;
    let top = q.top.unwrap_or(100);
    if !(1..=1000).contains(&top) {
        return Err(ApiError::bad_request("top must be 1 to 1000."));
    }
    let search = q.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
    let page = state
        .store
        .users_page(t.id, search, q.skiptoken.as_deref(), top)
        .await?;
    Ok(Json(api::UserList {
        users: page.users.iter().map(user_json).collect(),
        next_skiptoken: page.next,
    }))
}

/// The user's multi-factor state: their own policy, the one that applies, whether they
/// enrolled an authenticator, recovery codes left, and a lock after wrong codes.
async fn mfa_json(state: &Shared, t: &Tenant, u: &User) -> Result<api::UserMfa, ApiError> {
    use crate::model::mfa_policy::{effective, user_policy_str};
    let rec = state.store.mfa(t.id, u.id).await?;
    let left = if rec.enrolled {
        Some(state.store.recovery_codes_left(u.id).await?)
    } else {
        None
    };
    Ok(api::UserMfa {
        policy: user_policy_str(rec.policy).to_string(),
        effective: effective(t.settings.mfa, rec.policy).as_str().to_string(),
        enrolled: rec.enrolled,
        recovery_codes_left: left,
        locked_until: rec.locked_until.filter(|u| *u > unix_now()),
    })
}

/// `GET /{tenant}/admin/users/{upn}`
#[utoipa::path(
    get,
    path = "/users/{upn}",
    operation_id = ops::SHOW_USER.id,
    summary = ops::SHOW_USER.summary,
    responses((status = 200, description = "Done.", body = api::User))
)]
pub async fn show(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::User>, ApiError> {
    let (t, _) = authorize(&state, &tenant, &headers, ops::SHOW_USER).await?;
    let user = find(&state, &t, &upn).await?;
    let mut v = user_json(&user);
    v.mfa = Some(mfa_json(&state, &t, &user).await?);
    if let (Some(s), Some(synced)) = (&user.sync, v.synced.as_mut()) {
        synced.groups = Some(state.store.user_direct_groups(t.id, s.object_guid).await?);
    }
    Ok(Json(v))
}

/// `POST /{tenant}/admin/users/{upn}/unlock`: ends a smart lockout. The name need not be a
/// user the cloud knows (a lock counts names as typed and resolved).
#[utoipa::path(
    post,
    path = "/users/{upn}/unlock",
    operation_id = ops::UNLOCK_USER.id,
    summary = ops::UNLOCK_USER.summary,
    responses((status = 200, description = "Done.", body = api::Unlocked))
)]
pub async fn unlock(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::Unlocked>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::UNLOCK_USER).await?;
    let upn = upn.trim().to_string();
    let user = state.store.user_by_upn(t.id, &upn).await?;
    // The account's count (under its user, or any name it is known by), and any kept under
    // the name as typed.
    let key = state
        .store
        .lockout_key(t.id, &upn, user.as_ref().map(|u| u.id))
        .await?;
    let mut was = state.store.clear_lockout(t.id, &key).await?;
    was |= state
        .store
        .clear_lockout(t.id, &crate::store::lockout::fold_name(&upn))
        .await?;
    // The second factor's lock after wrong codes ends too.
    if let Some(u) = user {
        was |= state.store.clear_mfa_failures(t.id, u.id).await?;
    }
    tracing::info!(tenant = %t.name, user = %upn, by = %admin.upn, was_counted = was, "smart lockout cleared");
    Ok(Json(api::Unlocked { upn, unlocked: was }))
}

/// `PUT /{tenant}/admin/users/{upn}/mfa`: the user's own multi-factor policy.
#[utoipa::path(
    put,
    path = "/users/{upn}/mfa",
    operation_id = ops::SET_USER_MFA.id,
    summary = ops::SET_USER_MFA.summary,
    request_body = api::SetMfa,
    responses((status = 200, description = "Done.", body = api::MfaSet))
)]
pub async fn set_mfa(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetMfa>,
) -> Result<Json<api::MfaSet>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_USER_MFA).await?;
    let Some(policy) = crate::model::mfa_policy::parse_user_policy(&body.policy) else {
        return Err(ApiError::bad_request(format!(
            "'{}' is not an MFA policy: use default (the tenant's `mfa` setting), off, optional or required.",
            body.policy.chars().take(64).collect::<String>()
        )));
    };
    let user = find(&state, &t, &upn).await?;
    state.store.set_mfa_policy(t.id, user.id, policy).await?;
    tracing::warn!(tenant = %t.name, user = %user.upn, policy = crate::model::mfa_policy::user_policy_str(policy), by = %admin.upn, "user MFA policy changed");
    let mfa = mfa_json(&state, &t, &user).await?;
    Ok(Json(api::MfaSet { upn: user.upn, mfa }))
}

/// `POST /{tenant}/admin/users/{upn}/mfa/reset`: removes the user's authenticator and
/// recovery codes, and ends their sessions and refresh tokens.
#[utoipa::path(
    post,
    path = "/users/{upn}/mfa/reset",
    operation_id = ops::RESET_USER_MFA.id,
    summary = ops::RESET_USER_MFA.summary,
    responses((status = 200, description = "Done.", body = api::MfaReset))
)]
pub async fn reset_mfa(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::MfaReset>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::RESET_USER_MFA).await?;
    let user = find(&state, &t, &upn).await?;
    let had = state.store.reset_mfa(t.id, user.id).await?;
    tracing::warn!(tenant = %t.name, user = %user.upn, had_authenticator = had, by = %admin.upn, "user MFA reset; sessions ended");
    let mfa = mfa_json(&state, &t, &user).await?;
    Ok(Json(api::MfaReset {
        upn: user.upn,
        reset: had,
        mfa,
    }))
}

/// `POST /{tenant}/admin/users`: adds a cloud-only user in a verified domain of the tenant.
#[utoipa::path(
    post,
    path = "/users",
    operation_id = ops::ADD_USER.id,
    summary = ops::ADD_USER.summary,
    request_body = api::NewUser,
    responses((status = 201, description = "Done.", body = api::User))
)]
pub async fn add(
    State(state): State<Shared>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::NewUser>,
) -> Result<(StatusCode, Json<api::User>), ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::ADD_USER).await?;
    let upn = body.upn.trim().to_string();
    let Some((local, domain)) = upn.rsplit_once('@') else {
        return Err(ApiError::bad_request("The UPN must look like name@domain."));
    };
    if local.is_empty()
        || local.len() > 113
        || local
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '@' | '#' | '"'))
    {
        return Err(ApiError::bad_request(
            "The UPN must look like name@domain (no spaces, '#', '\"' or second '@'; at most 113 characters before '@').",
        ));
    }
    match state.store.domain_any(domain).await? {
        Some(d) if d.tenant_id == t.id && d.verified => {}
        Some(d) if d.tenant_id == t.id => {
            return Err(ApiError::bad_request(format!(
                "'{domain}' is not verified yet: publish its TXT record and run `domain verify {domain}` first."
            )))
        }
        _ => {
            return Err(ApiError::bad_request(format!(
                "'{domain}' is not a domain of this tenant: add it with `domain add {domain}` first."
            )))
        }
    }
    check_password(&body.password)?;
    let hash = crate::passwords::hash(body.password)
        .await
        .map_err(ApiError::internal)?;
    let id = state
        .store
        .add_cloud_user(t.id, &upn, &hash, "none", unix_now())
        .await?;
    if let Some(name) = body.display_name.as_deref().map(str::trim) {
        if !name.is_empty() {
            state
                .store
                .set_display_name(t.id, id, &name.chars().take(256).collect::<String>())
                .await?;
        }
    }
    tracing::info!(tenant = %t.name, user = %upn, by = %admin.upn, "cloud user added");
    let user = find(&state, &t, &upn).await?;
    Ok((StatusCode::CREATED, Json(user_json(&user))))
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

async fn set_enabled(
    state: &Shared,
    tenant: &str,
    upn: &str,
    headers: &HeaderMap,
    enabled: bool,
) -> Result<Json<api::User>, ApiError> {
    let op = if enabled {
        ops::ENABLE_USER
    } else {
        ops::DISABLE_USER
    };
    let (t, admin) = authorize(state, tenant, headers, op).await?;
    let user = find(state, &t, upn).await?;
    if !enabled && user.id == admin.id {
        return Err(ApiError::conflict(
            "You cannot block your own sign-in: ask another Global Administrator.",
        ));
    }
    state
        .store
        .set_user_enabled(t.id, user.id, enabled, unix_now())
        .await
        .map_err(|e| last_global_admin(e, &user))?;
    tracing::warn!(tenant = %t.name, user = %user.upn, enabled, by = %admin.upn, "user sign-in block changed");
    let user = find(state, &t, upn).await?;
    Ok(Json(user_json(&user)))
}

/// The store's refusal to take the tenant's last enabled Global Administrator away (checked
/// inside the change's own transaction, so it holds under concurrency), naming `user`.
fn last_global_admin(e: StoreError, user: &User) -> ApiError {
    match e {
        StoreError::LastGlobalAdmin => ApiError::conflict(format!(
            "'{}' is the tenant's last Global Administrator: give the role to someone else first.",
            user.upn
        )),
        other => other.into(),
    }
}

/// `POST /{tenant}/admin/users/{upn}/disable`: blocks sign-in in the cloud (for an
/// on-premises user too: a cloud-side flag) and ends sessions and refresh tokens.
#[utoipa::path(
    post,
    path = "/users/{upn}/disable",
    operation_id = ops::DISABLE_USER.id,
    summary = ops::DISABLE_USER.summary,
    responses((status = 200, description = "Done.", body = api::User))
)]
pub async fn disable(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::User>, ApiError> {
    set_enabled(&state, &tenant, &upn, &headers, false).await
}

/// `POST /{tenant}/admin/users/{upn}/enable`
#[utoipa::path(
    post,
    path = "/users/{upn}/enable",
    operation_id = ops::ENABLE_USER.id,
    summary = ops::ENABLE_USER.summary,
    responses((status = 200, description = "Done.", body = api::User))
)]
pub async fn enable(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::User>, ApiError> {
    set_enabled(&state, &tenant, &upn, &headers, true).await
}

/// `PUT /{tenant}/admin/users/{upn}/role`
#[utoipa::path(
    put,
    path = "/users/{upn}/role",
    operation_id = ops::SET_USER_ROLE.id,
    summary = ops::SET_USER_ROLE.summary,
    request_body = api::SetRole,
    responses((status = 200, description = "Done.", body = api::User))
)]
pub async fn set_role(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
    super::ApiJson(body): super::ApiJson<api::SetRole>,
) -> Result<Json<api::User>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::SET_USER_ROLE).await?;
    let Some(role) = ops::ROLES
        .iter()
        .find(|r| r.eq_ignore_ascii_case(body.role.trim()))
    else {
        return Err(ApiError::bad_request(format!(
            "'{}' is not a role. Roles: {}.",
            body.role.chars().take(64).collect::<String>(),
            ops::ROLES.join(", ")
        )));
    };
    let user = find(&state, &t, &upn).await?;
    state
        .store
        .set_user_role(t.id, user.id, role, unix_now())
        .await
        .map_err(|e| last_global_admin(e, &user))?;
    tracing::warn!(tenant = %t.name, user = %user.upn, role, by = %admin.upn, "role changed");
    Ok(Json(user_json(&find(&state, &t, &upn).await?)))
}

/// `DELETE /{tenant}/admin/users/{upn}`: deletes a cloud-only user.
#[utoipa::path(
    delete,
    path = "/users/{upn}",
    operation_id = ops::DELETE_USER.id,
    summary = ops::DELETE_USER.summary,
    responses((status = 200, description = "Done.", body = api::UserDeleted))
)]
pub async fn remove(
    State(state): State<Shared>,
    Path((tenant, upn)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<api::UserDeleted>, ApiError> {
    let (t, admin) = authorize(&state, &tenant, &headers, ops::DELETE_USER).await?;
    let user = find(&state, &t, &upn).await?;
    cloud_only(&user, "delete the account")?;
    if user.id == admin.id {
        return Err(ApiError::conflict("You cannot delete yourself."));
    }
    state
        .store
        .delete_user(t.id, user.id)
        .await
        .map_err(|e| last_global_admin(e, &user))?;
    tracing::warn!(tenant = %t.name, user = %user.upn, by = %admin.upn, "user deleted");
    Ok(Json(api::UserDeleted {
        upn: user.upn,
        deleted: true,
    }))
}
