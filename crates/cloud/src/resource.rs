//! Which API a token request is for: the `scope` parameter split into the OpenID Connect
//! scopes and the scopes of one resource app (`api://NAME/read`, `CLIENT_ID/read`,
//! `.../.default`), checked against what that app exposes, and the app roles a user or an
//! app holds on it. The access token's `aud`, `scp` and `roles` come from here.
//!
//! Consent is implicit: every app of a tenant may ask for any scope that another app of the
//! same tenant exposes (an administrator registered both), as Entra does after tenant-wide
//! admin consent. Apps of other tenants are never found.

use passthru_proto::Aadsts;
use uuid::Uuid;

use crate::oauth_error::OAuthError;
use crate::state::Shared;
use crate::store::{App, PrincipalKind, Tenant, User};

/// Scopes that are about the user's identity rather than a resource.
pub const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "email", "offline_access"];

/// The pseudo-scope that asks for every scope (delegated) or every assigned role (app-only)
/// of a resource.
pub(crate) const DEFAULT_SCOPE: &str = ".default";

/// Most groups of a user whose role assignments count (nested membership included).
const MAX_GROUPS_FOR_ROLES: i64 = 1000;

/// The resource a request named, with the scopes it asked of it.
#[derive(Debug, Clone)]
pub(crate) struct Resource {
    /// The resource app (its client id is the access token's `aud`).
    pub app: App,
    /// How the request named it (`api://orders` or the client id): the prefix of the
    /// scopes the response lists.
    pub named_as: String,
    /// The short scope names granted (`read`), `.default` expanded to all the app exposes.
    pub scopes: Vec<String>,
}

impl Resource {
    /// The granted scopes as the response's `scope` lists them (`api://orders/read`).
    pub fn full_scopes(&self) -> Vec<String> {
        self.scopes
            .iter()
            .map(|s| format!("{}/{s}", self.named_as))
            .collect()
    }
}

/// Splits `RESOURCE/NAME` (the resource part may itself hold `/`, as `api://orders`).
fn split_scope(scope: &str) -> Option<(&str, &str)> {
    let (resource, name) = scope.rsplit_once('/')?;
    if resource.is_empty() || name.is_empty() || resource.ends_with(':') || resource.ends_with("/")
    {
        return None;
    }
    Some((resource, name))
}

/// The tenant's app a scope prefix names: by identifier URI when it has a scheme, else by
/// client id.
async fn find_app(
    state: &Shared,
    tenant: &Tenant,
    named: &str,
    corr: Uuid,
) -> Result<Option<App>, OAuthError> {
    let found = if named.contains("://") {
        state.store.app_by_identifier_uri(tenant.id, named).await
    } else {
        state.store.app(tenant.id, named).await
    };
    found.map_err(|e| OAuthError::fault(corr, e))
}

fn invalid_scope(corr: Uuid, detail: String) -> OAuthError {
    OAuthError::new(Aadsts::InvalidScope, corr).with_detail(detail)
}

/// The resource of a delegated request's scopes, or `None` when it names none (only OpenID
/// Connect scopes, or bare names kept as before in `scp`, for the calling app itself).
/// Every resource scope must name the same app, which must expose each scope asked for.
pub(crate) async fn delegated(
    state: &Shared,
    tenant: &Tenant,
    scope: &str,
    corr: Uuid,
) -> Result<Option<Resource>, OAuthError> {
    let mut found: Option<Resource> = None;
    for s in scope.split_whitespace() {
        if OIDC_SCOPES.contains(&s) {
            continue;
        }
        let Some((named, name)) = split_scope(s) else {
            continue;
        };
        if let Some(r) = &mut found {
            if r.named_as != named {
                return Err(invalid_scope(
                    corr,
                    format!(
                        "The scopes name two resources ('{}' and '{named}'): ask for one resource's scopes per token request.",
                        r.named_as
                    ),
                ));
            }
        } else {
            let Some(app) = find_app(state, tenant, named, corr).await? else {
                return Err(invalid_scope(
                    corr,
                    format!(
                        "'{named}' is not an API of this organization: ask for a scope of an app that exposes one (admin app expose)."
                    ),
                ));
            };
            found = Some(Resource {
                app,
                named_as: named.to_string(),
                scopes: Vec::new(),
            });
        }
        let Some(r) = found.as_mut() else { continue };
        let wanted: Vec<String> = if name == DEFAULT_SCOPE {
            r.app.api_scopes.clone()
        } else if r.app.api_scopes.iter().any(|x| x == name) {
            vec![name.to_string()]
        } else {
            return Err(invalid_scope(
                corr,
                format!(
                    "The API '{named}' has no scope '{name}'. Its scopes: {}.",
                    list_or_none(&r.app.api_scopes)
                ),
            ));
        };
        for w in wanted {
            if !r.scopes.contains(&w) {
                r.scopes.push(w);
            }
        }
    }
    Ok(found)
}

/// The resource of a client credentials request: one scope, `RESOURCE/.default`.
pub(crate) async fn app_only(
    state: &Shared,
    tenant: &Tenant,
    scope: &str,
    corr: Uuid,
) -> Result<Resource, OAuthError> {
    let mut scopes = scope.split_whitespace();
    let named = match (scopes.next().and_then(split_scope), scopes.next()) {
        (Some((named, DEFAULT_SCOPE)), None) => named,
        _ => {
            return Err(invalid_scope(
                corr,
                "The client credentials grant takes one scope of the form RESOURCE/.default (api://NAME/.default or CLIENT_ID/.default).".into(),
            ))
        }
    };
    let Some(app) = find_app(state, tenant, named, corr).await? else {
        return Err(invalid_scope(
            corr,
            format!(
                "'{named}' is not an application of this tenant: ask for CLIENT_ID/.default or api://NAME/.default of a registered app."
            ),
        ));
    };
    Ok(Resource {
        app,
        named_as: named.to_string(),
        scopes: Vec::new(),
    })
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The roles of `resource` a user holds: assigned to the user or to one of the user's
/// synced groups (nested membership included).
pub(crate) async fn user_roles(
    state: &Shared,
    tenant: &Tenant,
    resource: &App,
    user: &User,
    corr: Uuid,
) -> Result<Vec<String>, OAuthError> {
    if resource.app_roles.is_empty() {
        return Ok(Vec::new());
    }
    let mut principals = vec![(PrincipalKind::User, user.id.to_string())];
    if let Some(sync) = &user.sync {
        let groups = state
            .store
            .user_group_ids(
                tenant.id,
                &sync.object_guid.to_string(),
                MAX_GROUPS_FOR_ROLES,
            )
            .await
            .map_err(|e| OAuthError::fault(corr, e))?;
        principals.extend(
            groups
                .into_iter()
                .map(|g| (PrincipalKind::Group, g.to_string())),
        );
    }
    state
        .store
        .roles_of(tenant.id, &resource.client_id, &principals)
        .await
        .map_err(|e| OAuthError::fault(corr, e))
}

/// The roles of `resource` assigned to the app `client_id`.
pub(crate) async fn app_roles(
    state: &Shared,
    tenant: &Tenant,
    resource: &App,
    client_id: &str,
    corr: Uuid,
) -> Result<Vec<String>, OAuthError> {
    state
        .store
        .roles_of(
            tenant.id,
            &resource.client_id,
            &[(PrincipalKind::App, client_id.to_ascii_lowercase())],
        )
        .await
        .map_err(|e| OAuthError::fault(corr, e))
}

#[cfg(test)]
mod tests {
    use super::split_scope;

    #[test]
    fn scopes_split_at_the_last_slash() {
        assert_eq!(
            split_scope("api://orders/read"),
            Some(("api://orders", "read"))
        );
        assert_eq!(
            split_scope("api://orders/.default"),
            Some(("api://orders", ".default"))
        );
        assert_eq!(
            split_scope("https://contoso.example/orders/read"),
            Some(("https://contoso.example/orders", "read"))
        );
        assert_eq!(split_scope("0e1f/read"), Some(("0e1f", "read")));
        for bare in [
            "openid",
            "User.Read",
            "/read",
            "api://",
            "api:///x",
            "x/",
            "api:/read",
        ] {
            assert_eq!(split_scope(bare), None, "{bare}");
        }
    }
}
