//! Every admin API operation in one table: its method, path, roles and schema. The router,
//! the role check of every handler and the OpenAPI document are all read from here, so they
//! cannot disagree.

/// Roles a user can hold.
pub use crate::model::records::{GLOBAL_ADMIN, HYBRID_ADMIN};
/// Every role a user can be given (`none` is no role).
pub const ROLES: &[&str] = &[GLOBAL_ADMIN, HYBRID_ADMIN, "none"];

const GA: &[&str] = &[GLOBAL_ADMIN];
const HYBRID: &[&str] = &[GLOBAL_ADMIN, HYBRID_ADMIN];

/// One operation of the admin API.
#[derive(Debug)]
pub struct Operation {
    /// The OpenAPI operationId.
    pub id: &'static str,
    /// HTTP method, upper case.
    pub method: &'static str,
    /// Path under `/{tenant}/admin`.
    pub path: &'static str,
    /// One line for the document.
    pub summary: &'static str,
    /// Roles allowed to call it.
    pub roles: &'static [&'static str],
    /// The JSON schema of the request body, as JSON text, if it takes one.
    pub body: Option<&'static str>,
    /// Query parameters (all optional strings).
    pub query: &'static [&'static str],
}

macro_rules! op {
    ($name:ident, $id:literal, $method:literal, $path:literal, $roles:expr, $summary:literal $(, body = $body:literal)? $(, query = $query:expr)?) => {
        #[doc = $summary]
        pub const $name: &Operation = &Operation {
            id: $id,
            method: $method,
            path: $path,
            summary: $summary,
            roles: $roles,
            body: op!(@body $($body)?),
            query: op!(@query $($query)?),
        };
    };
    (@body) => { None };
    (@body $b:literal) => { Some($b) };
    (@query) => { &[] };
    (@query $q:expr) => { $q };
}

op!(
    LIST_USERS,
    "listUsers",
    "GET",
    "/users",
    GA,
    "Lists users, a page at a time, optionally those whose UPN, name or mail contains `search`.",
    query = &["search", "top", "skiptoken"]
);
op!(
    ADD_USER,
    "addUser",
    "POST",
    "/users",
    GA,
    "Adds a cloud-only user in a domain of the tenant.",
    body = r#"{"type":"object","required":["upn","password"],"properties":{"upn":{"type":"string"},"password":{"type":"string","format":"password","writeOnly":true},"display_name":{"type":"string"}}}"#
);
op!(
    SHOW_USER,
    "showUser",
    "GET",
    "/users/{upn}",
    GA,
    "Shows one user."
);
op!(
    SET_USER_PASSWORD,
    "setUserPassword",
    "POST",
    "/users/{upn}/password",
    GA,
    "Sets a cloud-only user's password (on-premises users change theirs in AD).",
    body = r#"{"type":"object","required":["password"],"properties":{"password":{"type":"string","format":"password","writeOnly":true}}}"#
);
op!(
    DISABLE_USER,
    "disableUser",
    "POST",
    "/users/{upn}/disable",
    GA,
    "Blocks a user's sign-in in the cloud and ends their sessions and refresh tokens."
);
op!(
    ENABLE_USER,
    "enableUser",
    "POST",
    "/users/{upn}/enable",
    GA,
    "Lets a blocked user sign in again."
);
op!(
    UNLOCK_USER,
    "unlockUser",
    "POST",
    "/users/{upn}/unlock",
    GA,
    "Ends a smart lockout of the user name now and forgets its wrong passwords."
);
op!(
    RESET_USER_PASSWORD,
    "resetUserPassword",
    "POST",
    "/users/{upn}/reset-password",
    GA,
    "Resets a user's password: an on-premises user's in Active Directory through an agent (password writeback must be on), a cloud-only user's in the cloud. Sessions and refresh tokens end.",
    body = r#"{"type":"object","required":["password"],"properties":{"password":{"type":"string","format":"password","writeOnly":true},"must_change":{"type":"boolean"}}}"#
);
op!(
    SET_USER_WRITEBACK,
    "setUserWriteback",
    "PUT",
    "/users/{upn}/writeback",
    GA,
    "Allows or forbids a user's self-service password writeback (change and reset on the cloud's pages).",
    body = r#"{"type":"object","required":["allowed"],"properties":{"allowed":{"type":"boolean"}}}"#
);
op!(
    SET_USER_MFA,
    "setUserMfa",
    "PUT",
    "/users/{upn}/mfa",
    GA,
    "Sets a user's own multi-factor policy: default (the tenant's `mfa` setting), off, optional or required.",
    body = r#"{"type":"object","required":["policy"],"properties":{"policy":{"type":"string","enum":["default","off","optional","required"]}}}"#
);
op!(
    RESET_USER_MFA,
    "resetUserMfa",
    "POST",
    "/users/{upn}/mfa/reset",
    GA,
    "Removes a user's authenticator app and recovery codes (they enrol again) and ends their sessions and refresh tokens."
);
op!(
    SET_USER_ROLE,
    "setUserRole",
    "PUT",
    "/users/{upn}/role",
    GA,
    "Gives a user an administrator role, or none.",
    body = r#"{"type":"object","required":["role"],"properties":{"role":{"type":"string","enum":["GlobalAdministrator","HybridIdentityAdministrator","none"]}}}"#
);
op!(
    DELETE_USER,
    "deleteUser",
    "DELETE",
    "/users/{upn}",
    GA,
    "Deletes a cloud-only user with their sessions and tokens."
);

op!(
    LIST_GROUPS,
    "listGroups",
    "GET",
    "/groups",
    HYBRID,
    "Lists groups synced from Active Directory, optionally those whose name contains `search`.",
    query = &["search", "top", "skiptoken"]
);
op!(
    SHOW_GROUP,
    "showGroup",
    "GET",
    "/groups/{id}",
    HYBRID,
    "Shows a synced group (by object id or name) with its direct members."
);
op!(
    GET_SYNC,
    "getSync",
    "GET",
    "/sync",
    HYBRID,
    "Directory sync: each forest's syncing agent, last runs, object counts, conflicts and progress."
);
op!(
    RUN_SYNC,
    "runSync",
    "POST",
    "/sync/{forest}/run",
    HYBRID,
    "Runs a forest's sync now (after the run in progress, if any); `full` reads everything again.",
    body = r#"{"type":"object","properties":{"full":{"type":"boolean"}}}"#
);

op!(
    LIST_DOMAINS,
    "listDomains",
    "GET",
    "/domains",
    HYBRID,
    "Lists the tenant's domains with their kind and verification state."
);
op!(
    ADD_DOMAIN,
    "addDomain",
    "POST",
    "/domains",
    HYBRID,
    "Adds a managed domain, or a federated one; it must then be verified.",
    body = r#"{"type":"object","required":["name"],"properties":{"name":{"type":"string"},"federated":{"type":"object","properties":{"issuer":{"type":"string"},"client_id":{"type":"string"},"client_secret":{"type":"string","writeOnly":true}}}}}"#
);
op!(
    SHOW_DOMAIN,
    "showDomain",
    "GET",
    "/domains/{name}",
    HYBRID,
    "Shows a domain and the DNS TXT record that proves control of it."
);
op!(
    VERIFY_DOMAIN,
    "verifyDomain",
    "POST",
    "/domains/{name}/verify",
    HYBRID,
    "Looks up the domain's TXT records and marks it verified when the proof is there."
);
op!(
    CONVERT_DOMAIN,
    "convertDomain",
    "POST",
    "/domains/{name}/convert",
    HYBRID,
    "Converts a federated domain to managed (pass-through).",
    body = r#"{"type":"object","required":["to"],"properties":{"to":{"type":"string","enum":["managed"]}}}"#
);
op!(
    REMOVE_DOMAIN,
    "removeDomain",
    "DELETE",
    "/domains/{name}",
    GA,
    "Removes a domain no user or app uses."
);

op!(
    LIST_APPS,
    "listApps",
    "GET",
    "/apps",
    GA,
    "Lists registered applications."
);
op!(
    ADD_APP,
    "addApp",
    "POST",
    "/apps",
    GA,
    "Registers an application; a confidential one gets a secret, shown once.",
    body = r#"{"type":"object","required":["name"],"properties":{"name":{"type":"string"},"public":{"type":"boolean"},"confidential":{"type":"boolean"},"redirect_uris":{"type":"array","items":{"type":"string"}}}}"#
);
op!(
    SHOW_APP,
    "showApp",
    "GET",
    "/apps/{client_id}",
    GA,
    "Shows one application."
);
op!(
    SET_APP_REDIRECT_URIS,
    "setAppRedirectUris",
    "PUT",
    "/apps/{client_id}/redirect-uris",
    GA,
    "Replaces an application's redirect URIs.",
    body = r#"{"type":"object","required":["redirect_uris"],"properties":{"redirect_uris":{"type":"array","items":{"type":"string"}}}}"#
);
op!(
    SET_APP_GROUPS_CLAIM,
    "setAppGroupsClaim",
    "PUT",
    "/apps/{client_id}/groups-claim",
    GA,
    "Puts the user's synced groups (object ids, nested ones included) in the app's tokens, or stops.",
    body =
        r#"{"type":"object","required":["enabled"],"properties":{"enabled":{"type":"boolean"}}}"#
);
op!(
    ROTATE_APP_SECRET,
    "rotateAppSecret",
    "POST",
    "/apps/{client_id}/secret",
    GA,
    "Gives a confidential application a new secret (shown once); the old one stops working."
);
op!(
    DELETE_APP,
    "deleteApp",
    "DELETE",
    "/apps/{client_id}",
    GA,
    "Deletes an application and every token issued to it."
);

op!(
    GET_PTA,
    "getPta",
    "GET",
    "/pta",
    HYBRID,
    "Pass-through authentication: on or off, with agent counts."
);
op!(
    SET_PTA,
    "setPta",
    "POST",
    "/pta",
    HYBRID,
    "Turns pass-through authentication on (needs an active agent) or off.",
    body =
        r#"{"type":"object","required":["enabled"],"properties":{"enabled":{"type":"boolean"}}}"#
);

op!(
    GET_SETTINGS,
    "getSettings",
    "GET",
    "/settings",
    HYBRID,
    "The tenant's settings with their values and what each accepts."
);
op!(
    SET_SETTING,
    "setSetting",
    "PUT",
    "/settings/{key}",
    GA,
    "Sets one setting; the value is validated and refused with the reason.",
    body = r#"{"type":"object","required":["value"],"properties":{"value":{"type":"string"}}}"#
);

op!(
    REGISTER_AGENT,
    "registerAgent",
    "POST",
    "/agents/register",
    HYBRID,
    "Registers an authentication agent: signs its CSR and records its HPKE key.",
    body = r#"{"type":"object","required":["csr_pem","hpke_public_key","host","version"],"properties":{"csr_pem":{"type":"string"},"hpke_public_key":{"type":"string"},"host":{"type":"string"},"version":{"type":"string"}}}"#
);
op!(
    LIST_AGENTS,
    "listAgents",
    "GET",
    "/agents",
    HYBRID,
    "Lists agents with status, version, host, forests, certificate expiry and request statistics."
);
op!(
    REVOKE_AGENT,
    "revokeAgent",
    "POST",
    "/agents/{id}/revoke",
    HYBRID,
    "Revokes an agent: its certificate is refused at once and its connection closed.",
    body = r#"{"type":"object","properties":{"force":{"type":"boolean"}}}"#
);

op!(
    LIST_SIGNINS,
    "listSignIns",
    "GET",
    "/signins",
    HYBRID,
    "The sign-in log, newest first; `format=csv` exports it.",
    query = &["user", "result", "since", "until", "top", "format"]
);

op!(
    LIST_KEYS,
    "listKeys",
    "GET",
    "/keys",
    GA,
    "Lists the token signing keys."
);
op!(
    ROTATE_KEYS,
    "rotateKeys",
    "POST",
    "/keys/rotate",
    GA,
    "Starts signing with a new key; the old one stays published until its tokens expire."
);

/// Every operation, in document order.
pub const ALL: &[&Operation] = &[
    LIST_USERS,
    ADD_USER,
    SHOW_USER,
    SET_USER_PASSWORD,
    DISABLE_USER,
    ENABLE_USER,
    UNLOCK_USER,
    RESET_USER_PASSWORD,
    SET_USER_WRITEBACK,
    SET_USER_MFA,
    RESET_USER_MFA,
    SET_USER_ROLE,
    DELETE_USER,
    LIST_GROUPS,
    SHOW_GROUP,
    GET_SYNC,
    RUN_SYNC,
    LIST_DOMAINS,
    ADD_DOMAIN,
    SHOW_DOMAIN,
    VERIFY_DOMAIN,
    CONVERT_DOMAIN,
    REMOVE_DOMAIN,
    LIST_APPS,
    ADD_APP,
    SHOW_APP,
    SET_APP_REDIRECT_URIS,
    SET_APP_GROUPS_CLAIM,
    ROTATE_APP_SECRET,
    DELETE_APP,
    GET_PTA,
    SET_PTA,
    GET_SETTINGS,
    SET_SETTING,
    REGISTER_AGENT,
    LIST_AGENTS,
    REVOKE_AGENT,
    LIST_SIGNINS,
    LIST_KEYS,
    ROTATE_KEYS,
];
