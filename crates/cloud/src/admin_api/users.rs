//! Users: list, show, add, unlock, MFA, block, role, delete (passwords: [`super::user_passwords`]).
//! On-premises users (signed in through pass-through, or synced) are read-only here except for
//! cloud-side flags: the role and the cloud sign-in block.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use passthru_admin::api;

use super::user_passwords::check_password;
use super::{authorize, ops};
use crate::clock::unix_now;
use crate::oauth_error::ApiError;
use crate::state::Shared;
use crate::store::{StoreError, Tenant, User};

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

pub(super) async fn find(state: &Shared, t: &Tenant, upn: &str) -> Result<User, ApiError> {
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

pub(super) fn cloud_only(u: &User, what: &str) -> Result<(), ApiError> {
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
