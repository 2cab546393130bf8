//! Every admin API operation in one table: its id, method, path, summary and roles. The role
//! check of every handler (and of the router's guard) and the roles in the OpenAPI document are
//! read from here; the route, its parameters and bodies are in the handler's
//! `#[utoipa::path]` (see [`super::openapi`]), and a test holds the two to each other.

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
}

macro_rules! op {
    ($name:ident, $id:literal, $method:literal, $path:literal, $roles:expr, $summary:literal) => {
        #[doc = $summary]
        pub const $name: &Operation = &Operation {
            id: $id,
            method: $method,
            path: $path,
            summary: $summary,
            roles: $roles,
        };
    };
}

op!(
    LIST_USERS,
    "listUsers",
    "GET",
    "/users",
    GA,
    "Lists users, a page at a time, optionally those whose UPN, name or mail contains `search`."
);
op!(
    ADD_USER,
    "addUser",
    "POST",
    "/users",
    GA,
    "Adds a cloud-only user in a domain of the tenant."
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
    "Sets a cloud-only user's password (on-premises users change theirs in AD)."
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
    "Resets a user's password: an on-premises user's in Active Directory through an agent (password writeback must be on), a cloud-only user's in the cloud. Sessions and refresh tokens end."
);
op!(
    SET_USER_WRITEBACK,
    "setUserWriteback",
    "PUT",
    "/users/{upn}/writeback",
    GA,
    "Allows or forbids a user's self-service password writeback (change and reset on the cloud's pages)."
);
op!(
    SET_USER_MFA,
    "setUserMfa",
    "PUT",
    "/users/{upn}/mfa",
    GA,
    "Sets a user's own multi-factor policy: default (the tenant's `mfa` setting), off, optional or required."
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
    "Gives a user an administrator role, or none."
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
    "Lists groups synced from Active Directory, optionally those whose name contains `search`."
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
    "Runs a forest's sync now (after the run in progress, if any); `full` reads everything again."
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
    "Adds a managed domain, or a federated one; it must then be verified."
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
    "Converts a federated domain to managed (pass-through)."
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
    "Registers an application; a confidential one gets a secret, shown once."
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
    "Replaces an application's redirect URIs."
);
op!(
    SET_APP_GROUPS_CLAIM,
    "setAppGroupsClaim",
    "PUT",
    "/apps/{client_id}/groups-claim",
    GA,
    "Puts the user's synced groups (object ids, nested ones included) in the app's tokens, or stops."
);
op!(
    SET_APP_ID_TOKEN_ALG,
    "setAppIdTokenAlg",
    "PUT",
    "/apps/{client_id}/id-token-alg",
    GA,
    "Chooses how the app's ID tokens are signed: RS256 or ES256."
);
op!(
    EXPOSE_APP_API,
    "exposeAppApi",
    "PUT",
    "/apps/{client_id}/api",
    GA,
    "Replaces the API the app exposes: its identifier URI, delegated scopes and app roles."
);
op!(
    LIST_APP_ROLE_ASSIGNMENTS,
    "listAppRoleAssignments",
    "GET",
    "/apps/{client_id}/role-assignments",
    GA,
    "Lists who holds the app's roles (users, groups, apps)."
);
op!(
    ASSIGN_APP_ROLE,
    "assignAppRole",
    "POST",
    "/apps/{client_id}/role-assignments",
    GA,
    "Assigns one of the app's roles to a user, a synced group or an app."
);
op!(
    UNASSIGN_APP_ROLE,
    "unassignAppRole",
    "DELETE",
    "/apps/{client_id}/role-assignments/{role}/{kind}/{principal_id}",
    GA,
    "Removes an app role assignment."
);
op!(
    ROTATE_APP_SECRET,
    "rotateAppSecret",
    "POST",
    "/apps/{client_id}/secret",
    GA,
    "Gives a confidential application a new secret (shown once, no expiry); its other secrets stop working at once, its certificates stay."
);
op!(
    LIST_APP_CREDENTIALS,
    "listAppCredentials",
    "GET",
    "/apps/{client_id}/credentials",
    GA,
    "Lists an application's credentials: secrets (by hint) and certificates (by thumbprint), with their expiry; never a secret."
);
op!(
    ADD_APP_SECRET,
    "addAppSecret",
    "POST",
    "/apps/{client_id}/credentials/secrets",
    GA,
    "Adds a client secret (shown once) beside the application's others; it expires after `expires_in_days` (default 180, at most 730)."
);
op!(
    REMOVE_APP_SECRET,
    "removeAppSecret",
    "DELETE",
    "/apps/{client_id}/credentials/secrets/{id}",
    GA,
    "Removes one client secret of an application; it stops working at once."
);
op!(
    ADD_APP_CERTIFICATE,
    "addAppCertificate",
    "POST",
    "/apps/{client_id}/credentials/certificates",
    GA,
    "Adds a certificate (PEM) whose private key the application signs client assertions with (private_key_jwt); it expires with the certificate."
);
op!(
    REMOVE_APP_CREDENTIAL,
    "removeAppCredential",
    "DELETE",
    "/apps/{client_id}/credentials/{id}",
    GA,
    "Removes one credential (secret or certificate) of an application; it stops working at once."
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
    "Turns pass-through authentication on (needs an active agent) or off."
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
    "Sets one setting; the value is validated and refused with the reason."
);

op!(
    REGISTER_AGENT,
    "registerAgent",
    "POST",
    "/agents/register",
    HYBRID,
    "Registers an authentication agent: signs its CSR and records its HPKE key."
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
    "Revokes an agent: its certificate is refused at once and its connection closed."
);

op!(
    LIST_RELEASES,
    "listAgentReleases",
    "GET",
    "/agents/releases",
    HYBRID,
    "Lists the agent releases offered to the tenant's agents (signed auto-update), the `agent_updates` policy and the release offered now."
);
op!(
    ADD_RELEASE,
    "addAgentRelease",
    "POST",
    "/agents/releases",
    GA,
    "Adds an agent release: the package as the body, its signed manifest (base64) in the Passthru-Signed-Manifest header; refused when the package's SHA-256 or size is not the manifest's."
);
op!(
    REMOVE_RELEASE,
    "removeAgentRelease",
    "DELETE",
    "/agents/releases/{version}",
    GA,
    "Removes an agent release: it is offered no more."
);

op!(
    LIST_SIGNINS,
    "listSignIns",
    "GET",
    "/signins",
    HYBRID,
    "The sign-in log, newest first, a page at a time (`skiptoken`), with filters; `format=csv` exports it."
);
op!(
    SHOW_SIGNIN,
    "showSignIn",
    "GET",
    "/signins/{id}",
    HYBRID,
    "One sign-in of the log with what its codes mean and what to do."
);
op!(
    SET_LOGO,
    "setLogo",
    "POST",
    "/branding/logo",
    GA,
    "Sets the sign-in pages' logo (PNG, JPEG, GIF or WebP, at most 48 KiB); the name, colour and text are the `branding_*` settings."
);
op!(
    REMOVE_LOGO,
    "removeLogo",
    "DELETE",
    "/branding/logo",
    GA,
    "Removes the sign-in pages' logo."
);
op!(
    LIST_AUDIT,
    "listAudit",
    "GET",
    "/audit",
    GA,
    "The audit log: every administrative change (API, CLI, portal), newest first, a page at a time; `format=csv` exports it."
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
    SET_APP_ID_TOKEN_ALG,
    EXPOSE_APP_API,
    LIST_APP_ROLE_ASSIGNMENTS,
    ASSIGN_APP_ROLE,
    UNASSIGN_APP_ROLE,
    ROTATE_APP_SECRET,
    LIST_APP_CREDENTIALS,
    ADD_APP_SECRET,
    REMOVE_APP_SECRET,
    ADD_APP_CERTIFICATE,
    REMOVE_APP_CREDENTIAL,
    DELETE_APP,
    GET_PTA,
    SET_PTA,
    GET_SETTINGS,
    SET_SETTING,
    REGISTER_AGENT,
    LIST_AGENTS,
    REVOKE_AGENT,
    LIST_RELEASES,
    ADD_RELEASE,
    REMOVE_RELEASE,
    LIST_SIGNINS,
    SHOW_SIGNIN,
    SET_LOGO,
    REMOVE_LOGO,
    LIST_AUDIT,
    LIST_KEYS,
    ROTATE_KEYS,
];
