//! The two code catalogs: Win32 codes (what a domain controller said, as the agent reports
//! it) and AADSTS codes (what the cloud tells a client). The mapping between them lives here,
//! in one place, so the agent, the cloud and the docs can never disagree.

use serde::{Deserialize, Serialize};

/// Why a domain controller refused a password, as a Windows (Win32) error code.
///
/// AD reports the reason of a failed bind in the `data` field of its diagnostic message
/// (`... AcceptSecurityContext error, data 773, v1db1`); [`Win32::from_ad_data`] reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
#[non_exhaustive]
pub enum Win32 {
    /// 1325: a new password does not meet the domain's length, complexity, age or history
    /// rules (password writeback).
    PasswordRestriction,
    /// 1326: the user name or password is incorrect (also: the user does not exist).
    LogonFailure,
    /// 1328: the account may not sign in at this time (logon hours).
    InvalidLogonHours,
    /// 1329: the account may not sign in from this computer ("Log On To" list).
    InvalidWorkstation,
    /// 1330: the password has expired.
    PasswordExpired,
    /// 1331: the account is disabled.
    AccountDisabled,
    /// 1793: the account has expired.
    AccountExpired,
    /// 1907: the password must be changed before the first sign-in.
    PasswordMustChange,
    /// 1909: the account is locked out.
    AccountLockedOut,
}

impl Win32 {
    /// Every code, in numeric order (for docs and `helpmsg`).
    pub const ALL: [Win32; 9] = [
        Win32::PasswordRestriction,
        Win32::LogonFailure,
        Win32::InvalidLogonHours,
        Win32::InvalidWorkstation,
        Win32::PasswordExpired,
        Win32::AccountDisabled,
        Win32::AccountExpired,
        Win32::PasswordMustChange,
        Win32::AccountLockedOut,
    ];

    /// The numeric Win32 code.
    pub fn code(self) -> u32 {
        match self {
            Win32::PasswordRestriction => 1325,
            Win32::LogonFailure => 1326,
            Win32::InvalidLogonHours => 1328,
            Win32::InvalidWorkstation => 1329,
            Win32::PasswordExpired => 1330,
            Win32::AccountDisabled => 1331,
            Win32::AccountExpired => 1793,
            Win32::PasswordMustChange => 1907,
            Win32::AccountLockedOut => 1909,
        }
    }

    /// The code for a number, if it is one Passthru knows.
    pub fn from_code(code: u32) -> Option<Win32> {
        Win32::ALL.into_iter().find(|w| w.code() == code)
    }

    /// Reads the `data XXX` sub-code of an AD bind failure (hexadecimal, as AD prints it).
    pub fn from_ad_data(hex: &str) -> Option<Win32> {
        match hex.trim().to_ascii_lowercase().as_str() {
            "52d" => Some(Win32::PasswordRestriction),
            "52e" => Some(Win32::LogonFailure),
            "525" => Some(Win32::LogonFailure), // user not found: not distinguished on purpose
            "530" => Some(Win32::InvalidLogonHours),
            "531" => Some(Win32::InvalidWorkstation),
            "532" => Some(Win32::PasswordExpired),
            "533" => Some(Win32::AccountDisabled),
            "701" => Some(Win32::AccountExpired),
            "773" => Some(Win32::PasswordMustChange),
            "775" => Some(Win32::AccountLockedOut),
            _ => None,
        }
    }

    /// Finds the sub-code in a whole AD diagnostic message
    /// (`80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 52e, v1db1`).
    pub fn from_ad_diagnostic(message: &str) -> Option<Win32> {
        let at = message.find("data ")?;
        let rest = &message[at + 5..];
        let end = rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(rest.len());
        Win32::from_ad_data(&rest[..end])
    }

    /// The system message, as `net helpmsg` prints it.
    pub fn message(self) -> &'static str {
        match self {
            Win32::PasswordRestriction => "Unable to update the password. The value provided for the new password does not meet the length, complexity, or history requirements of the domain.",
            Win32::LogonFailure => "The user name or password is incorrect.",
            Win32::InvalidLogonHours => {
                "Your account has time restrictions that keep you from signing in right now."
            }
            Win32::InvalidWorkstation => "This user isn't allowed to sign in to this computer.",
            Win32::PasswordExpired => "The password for this account has expired.",
            Win32::AccountDisabled => {
                "This user can't sign in because this account is currently disabled."
            }
            Win32::AccountExpired => "The user's account has expired.",
            Win32::PasswordMustChange => "The user's password must be changed before signing in.",
            Win32::AccountLockedOut => {
                "The referenced account is currently locked out and may not be logged on to."
            }
        }
    }

    /// What an administrator should do about it.
    pub fn admin_action(self) -> &'static str {
        match self {
            Win32::PasswordRestriction => "Password writeback: Active Directory refused the new password under the domain's password policy (or the user's fine-grained policy). The user was told which rule; nothing to fix unless the policy itself is wrong.",
            Win32::LogonFailure => "The user typed a wrong password or a name that does not exist in Active Directory. Nothing to fix on the agent; if it repeats for one user, check for an attack or a stale saved password.",
            Win32::InvalidLogonHours => "The user's 'Logon Hours' in Active Directory exclude this time. Widen them in Active Directory Users and Computers if the user should sign in now.",
            Win32::InvalidWorkstation => "The user's 'Log On To' list in Active Directory does not include the computer running the authentication agent. Add the agent's host name to the user's 'Log On To' list (userWorkstations), or clear the restriction.",
            Win32::PasswordExpired => "The password has passed the domain's maximum password age. The user must change it (on premises, or in the cloud when password writeback is on).",
            Win32::AccountDisabled => "The account is disabled in Active Directory. Enable it there if the user should sign in.",
            Win32::AccountExpired => "The account's expiry date has passed. Extend it in Active Directory (Account tab, 'Account expires').",
            Win32::PasswordMustChange => "'User must change password at next logon' is set. The user must set a new password (on premises, or in the cloud when password writeback is on).",
            Win32::AccountLockedOut => "Active Directory locked the account after too many wrong passwords. Unlock it in Active Directory, or wait for the lockout duration; consider smart lockout in the cloud.",
        }
    }

    /// The AADSTS code a client is given for this denial.
    pub fn aadsts(self) -> Aadsts {
        match self {
            Win32::LogonFailure => Aadsts::InvalidCredentials,
            Win32::AccountDisabled | Win32::AccountExpired => Aadsts::AccountDisabled,
            Win32::AccountLockedOut => Aadsts::AccountLocked,
            Win32::PasswordExpired | Win32::PasswordMustChange => Aadsts::PasswordChangeRequired,
            Win32::InvalidLogonHours => Aadsts::LogonHours,
            Win32::InvalidWorkstation | Win32::PasswordRestriction => {
                Aadsts::DirectoryCommunication
            }
        }
    }
}

impl From<Win32> for u32 {
    fn from(w: Win32) -> u32 {
        w.code()
    }
}

impl TryFrom<u32> for Win32 {
    type Error = String;
    fn try_from(code: u32) -> Result<Self, String> {
        Win32::from_code(code).ok_or_else(|| format!("unknown Win32 code {code}"))
    }
}

impl std::fmt::Display for Win32 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code())
    }
}

/// An error a client receives, in the Microsoft identity platform's numbering.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Aadsts {
    /// 50034: the user does not exist in this tenant.
    UserNotFound,
    /// 50053: the account is locked.
    AccountLocked,
    /// 50056: the user has no password in the cloud (managed domain while PTA is off).
    NoPasswordInCloud,
    /// 50057: the account is disabled (or expired).
    AccountDisabled,
    /// 50126: wrong user name or password.
    InvalidCredentials,
    /// 50144: the password has expired or must be changed.
    PasswordChangeRequired,
    /// 50076: the user must prove a second factor, which this grant (password) cannot ask for.
    MfaRequired,
    /// 500121: the second factor was wrong, already used, or is locked after wrong codes.
    StrongAuthFailed,
    /// 700016: no application with this client id in the tenant.
    UnknownClient,
    /// 90002: no tenant with this name or id.
    TenantNotFound,
    /// 900144: a required request parameter is missing.
    MissingParameter,
    /// 70003: the grant type is not supported.
    UnsupportedGrantType,
    /// 9002313: the request is malformed.
    InvalidRequest,
    /// 80001: no authentication agent could reach Active Directory (or none is connected).
    AgentUnavailable,
    /// 80002: the authentication agent did not answer in time.
    AgentTimeout,
    /// 80004: the user name could not be routed to any forest the agents serve.
    InvalidUsernameForAgent,
    /// 80005: the cloud refused the agent's answer: not authenticated with the request's key
    /// (an impostor holding an agent's certificate without its HPKE key), or a success naming
    /// another user than the one the request was for.
    AgentAnswerRefused,
    /// 80007: Active Directory refused for a reason other than the password
    /// (workstation restriction, unexpected directory error).
    DirectoryCommunication,
    /// 80010: the agent could not decrypt the password.
    AgentDecryptFailed,
    /// 80011: the agent has no key for the request.
    AgentNoKey,
    /// 80012: the user may not sign in at this time (logon hours).
    LogonHours,
    /// 80013: the agent's clock differs too much from the cloud's.
    ClockSkew,
    /// 80014: the agent answered after the cloud stopped waiting (the client was already
    /// given [`Aadsts::AgentTimeout`]); written to the cloud's log, never sent to a client.
    AgentLateAnswer,
    /// 50000: the server failed unexpectedly.
    ServerError,
    /// 70011: an invalid scope was requested.
    InvalidScope,
    /// 7000112: the application is disabled or not allowed this grant.
    UnauthorizedClient,
    /// 70008: the authorization code or refresh token expired, was used, or was revoked.
    ExpiredOrUsedGrant,
    /// 70000: the grant does not belong to this client or request.
    InvalidGrant,
    /// 501481: the PKCE code verifier does not match the challenge.
    PkceMismatch,
    /// 9002325: PKCE (S256) is required for this client.
    PkceRequired,
    /// 7000215: the client secret is wrong.
    InvalidClientSecret,
    /// 7000218: a confidential client did not authenticate.
    ClientAuthMissing,
    /// 50011: the redirect URI is not registered for the application.
    RedirectUriMismatch,
    /// 50058: prompt=none, but no one is signed in.
    LoginRequired,
    /// 70016: the user has not yet approved the device code (keep polling).
    AuthorizationPending,
    /// 70016 with `slow_down`: the device polls faster than the interval.
    SlowDown,
    /// 70019: the device code expired before the user approved it.
    DeviceCodeExpired,
    /// 90055: too many requests (from one client address, for one tenant, or sign-ins in
    /// progress): HTTP 429 with `Retry-After`, as Microsoft's `TenantThrottlingError`.
    Throttled,
    /// 9002327: a single-page app's authorization code was redeemed without a cross-origin
    /// request (no `Origin`): its tokens belong in a browser.
    SpaCrossOriginOnly,
    /// 9002326: a cross-origin token request from an app that is not a single-page app.
    CrossOriginNotSpa,
}

impl Aadsts {
    /// Every code the cloud emits, each once.
    pub const ALL: [Aadsts; 40] = [
        Aadsts::UserNotFound,
        Aadsts::AccountLocked,
        Aadsts::NoPasswordInCloud,
        Aadsts::AccountDisabled,
        Aadsts::InvalidCredentials,
        Aadsts::PasswordChangeRequired,
        Aadsts::MfaRequired,
        Aadsts::StrongAuthFailed,
        Aadsts::UnknownClient,
        Aadsts::TenantNotFound,
        Aadsts::MissingParameter,
        Aadsts::UnsupportedGrantType,
        Aadsts::InvalidRequest,
        Aadsts::AgentUnavailable,
        Aadsts::AgentTimeout,
        Aadsts::InvalidUsernameForAgent,
        Aadsts::AgentAnswerRefused,
        Aadsts::DirectoryCommunication,
        Aadsts::AgentDecryptFailed,
        Aadsts::AgentNoKey,
        Aadsts::LogonHours,
        Aadsts::ClockSkew,
        Aadsts::AgentLateAnswer,
        Aadsts::ServerError,
        Aadsts::InvalidScope,
        Aadsts::UnauthorizedClient,
        Aadsts::ExpiredOrUsedGrant,
        Aadsts::InvalidGrant,
        Aadsts::PkceMismatch,
        Aadsts::PkceRequired,
        Aadsts::InvalidClientSecret,
        Aadsts::ClientAuthMissing,
        Aadsts::RedirectUriMismatch,
        Aadsts::LoginRequired,
        Aadsts::AuthorizationPending,
        Aadsts::SlowDown,
        Aadsts::DeviceCodeExpired,
        Aadsts::Throttled,
        Aadsts::SpaCrossOriginOnly,
        Aadsts::CrossOriginNotSpa,
    ];

    /// The entry of a numeric code, as the sign-in log stores it. 70016 is both
    /// `authorization_pending` and `slow_down`; it reads as [`Aadsts::AuthorizationPending`].
    pub fn from_code(code: u32) -> Option<Aadsts> {
        Aadsts::ALL.into_iter().find(|a| a.code() == code)
    }

    /// The numeric code.
    pub fn code(self) -> u32 {
        match self {
            Aadsts::UserNotFound => 50034,
            Aadsts::AccountLocked => 50053,
            Aadsts::NoPasswordInCloud => 50056,
            Aadsts::AccountDisabled => 50057,
            Aadsts::InvalidCredentials => 50126,
            Aadsts::PasswordChangeRequired => 50144,
            Aadsts::MfaRequired => 50076,
            Aadsts::StrongAuthFailed => 500121,
            Aadsts::UnknownClient => 700016,
            Aadsts::TenantNotFound => 90002,
            Aadsts::MissingParameter => 900144,
            Aadsts::UnsupportedGrantType => 70003,
            Aadsts::InvalidRequest => 9002313,
            Aadsts::AgentUnavailable => 80001,
            Aadsts::AgentTimeout => 80002,
            Aadsts::InvalidUsernameForAgent => 80004,
            Aadsts::AgentAnswerRefused => 80005,
            Aadsts::DirectoryCommunication => 80007,
            Aadsts::AgentDecryptFailed => 80010,
            Aadsts::AgentNoKey => 80011,
            Aadsts::LogonHours => 80012,
            Aadsts::ClockSkew => 80013,
            Aadsts::AgentLateAnswer => 80014,
            Aadsts::ServerError => 50000,
            Aadsts::InvalidScope => 70011,
            Aadsts::UnauthorizedClient => 7000112,
            Aadsts::ExpiredOrUsedGrant => 70008,
            Aadsts::InvalidGrant => 70000,
            Aadsts::PkceMismatch => 501481,
            Aadsts::PkceRequired => 9002325,
            Aadsts::InvalidClientSecret => 7000215,
            Aadsts::ClientAuthMissing => 7000218,
            Aadsts::RedirectUriMismatch => 50011,
            Aadsts::LoginRequired => 50058,
            Aadsts::AuthorizationPending | Aadsts::SlowDown => 70016,
            Aadsts::DeviceCodeExpired => 70019,
            Aadsts::Throttled => 90055,
            Aadsts::SpaCrossOriginOnly => 9002327,
            Aadsts::CrossOriginNotSpa => 9002326,
        }
    }

    /// The OAuth 2.0 `error` value that goes with the code.
    pub fn oauth_error(self) -> &'static str {
        match self {
            Aadsts::UnknownClient => "unauthorized_client",
            Aadsts::InvalidClientSecret | Aadsts::ClientAuthMissing => "invalid_client",
            Aadsts::LoginRequired => "login_required",
            Aadsts::AuthorizationPending => "authorization_pending",
            Aadsts::SlowDown => "slow_down",
            Aadsts::DeviceCodeExpired => "expired_token",
            Aadsts::PkceRequired | Aadsts::RedirectUriMismatch => "invalid_request",
            Aadsts::UnauthorizedClient => "unauthorized_client",
            Aadsts::UnsupportedGrantType => "unsupported_grant_type",
            Aadsts::InvalidScope => "invalid_scope",
            Aadsts::MissingParameter | Aadsts::InvalidRequest | Aadsts::TenantNotFound => {
                "invalid_request"
            }
            Aadsts::ServerError => "server_error",
            Aadsts::Throttled => "temporarily_unavailable",
            Aadsts::SpaCrossOriginOnly | Aadsts::CrossOriginNotSpa => "invalid_request",
            Aadsts::AgentUnavailable
            | Aadsts::AgentTimeout
            | Aadsts::DirectoryCommunication
            | Aadsts::AgentDecryptFailed
            | Aadsts::AgentNoKey
            | Aadsts::AgentAnswerRefused
            | Aadsts::ClockSkew
            | Aadsts::AgentLateAnswer => "temporarily_unavailable",
            _ => "invalid_grant",
        }
    }

    /// The description that follows `AADSTS<code>: ` in `error_description`.
    pub fn description(self) -> &'static str {
        match self {
            Aadsts::UserNotFound => "User account does not exist in the directory. To sign into this application, the account must be added to the directory.",
            Aadsts::AccountLocked => "The account is locked because of too many sign-in attempts with a wrong password, or because Active Directory locked it.",
            Aadsts::NoPasswordInCloud => "Invalid or null password: password does not exist in the directory for this user. Pass-through authentication is not enabled for this tenant.",
            Aadsts::AccountDisabled => "The user account is disabled or has expired.",
            Aadsts::InvalidCredentials => "Error validating credentials due to invalid username or password.",
            Aadsts::PasswordChangeRequired => "The password has expired or must be changed before the user can sign in.",
            Aadsts::MfaRequired => "Due to a configuration change made by your administrator, or because you moved to a new location, you must use multi-factor authentication to access this application.",
            Aadsts::StrongAuthFailed => "Authentication failed during strong authentication request.",
            Aadsts::UnknownClient => "Application with the given client id was not found in the tenant.",
            Aadsts::TenantNotFound => "Tenant not found. Check the tenant name or id in the authority URL.",
            Aadsts::MissingParameter => "The request body must contain the required parameter.",
            Aadsts::UnsupportedGrantType => "The provided grant type is not supported.",
            Aadsts::InvalidRequest => "The request is malformed.",
            Aadsts::AgentUnavailable => "Unable to connect to Active Directory. Ensure that agent servers are members of the same AD forest as the users whose passwords need to be validated and that they are able to connect to Active Directory.",
            Aadsts::AgentTimeout => "A time-out occurred while connecting to Active Directory. Ensure that Active Directory is available and is responding to requests from the agents.",
            Aadsts::InvalidUsernameForAgent => "The username that was passed to the agent was not valid. Ensure that the user is attempting to sign in with the right username.",
            Aadsts::AgentAnswerRefused => "An error occurred while processing the response from the authentication agent: the answer was refused. Retry the request; if it continues to fail, contact your administrator.",
            Aadsts::DirectoryCommunication => "An error occurred while communicating with Active Directory. Check the agent logs for more information and verify that Active Directory is operating as expected.",
            Aadsts::AgentDecryptFailed => "The authentication agent could not decrypt the password.",
            Aadsts::AgentNoKey => "The authentication agent has no key for this request. Re-register the agent.",
            Aadsts::LogonHours => "The user tried to sign in outside the allowed hours set in Active Directory.",
            Aadsts::ClockSkew => "The authentication agent's clock differs too much from the cloud's. Synchronise the agent server's time.",
            Aadsts::AgentLateAnswer => "The authentication agent answered after the maximum time allowed for a validation; the answer was dropped. Check the agent's load and its latency to Active Directory.",
            Aadsts::ServerError => "The server encountered an unexpected error. Retry the request.",
            Aadsts::InvalidScope => "The provided value for the input parameter 'scope' is not valid.",
            Aadsts::UnauthorizedClient => "The application is not allowed to use this grant.",
            Aadsts::ExpiredOrUsedGrant => "The provided authorization code or refresh token has expired, has already been used, or was revoked. Sign in again.",
            Aadsts::InvalidGrant => "The provided grant was issued to another client or for another redirect URI.",
            Aadsts::PkceMismatch => "The code_verifier does not match the code_challenge supplied in the authorization request.",
            Aadsts::PkceRequired => "Proof Key for Code Exchange (S256) is required for this application.",
            Aadsts::InvalidClientSecret => "Invalid client secret provided.",
            Aadsts::ClientAuthMissing => "The request body must contain client_secret (or use HTTP Basic authentication) for a confidential client.",
            Aadsts::RedirectUriMismatch => "The redirect URI specified in the request does not match the redirect URIs configured for the application.",
            Aadsts::LoginRequired => "The user is not signed in and prompt=none forbids a sign-in page.",
            Aadsts::AuthorizationPending => "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
            Aadsts::SlowDown => "The device is polling too fast. Wait the interval between polls.",
            Aadsts::DeviceCodeExpired => "The device code has expired. Start the sign-in again.",
            Aadsts::Throttled => "There are too many incoming requests. Wait the number of seconds in the Retry-After header, then try again.",
            Aadsts::SpaCrossOriginOnly => "Tokens issued for the 'Single-Page Application' client-type may only be redeemed via cross-origin requests.",
            Aadsts::CrossOriginNotSpa => "Cross-origin token redemption is permitted only for the 'Single-Page Application' client-type.",
        }
    }

    /// The HTTP status a token endpoint answers with.
    pub fn http_status(self) -> u16 {
        match self {
            Aadsts::ServerError => 500,
            Aadsts::Throttled => 429,
            Aadsts::InvalidClientSecret | Aadsts::ClientAuthMissing => 401,
            _ => 400,
        }
    }
}

impl std::fmt::Display for Aadsts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AADSTS{}", self.code())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sub_code_from_diagnostic() {
        let m = "80090308: LdapErr: DSID-0C0903A9, comment: AcceptSecurityContext error, data 773, v1db1";
        assert_eq!(
            Win32::from_ad_diagnostic(m),
            Some(Win32::PasswordMustChange)
        );
        assert_eq!(
            Win32::from_ad_diagnostic("... data 52e, v1db1"),
            Some(Win32::LogonFailure)
        );
        assert_eq!(Win32::from_ad_diagnostic("no sub code here"), None);
        assert_eq!(Win32::from_ad_diagnostic("data zz"), None);
    }

    #[test]
    fn the_aadsts_catalog_is_complete_and_reads_back() {
        // Every variant is in ALL (a new variant that is not fails to compile here first).
        for a in Aadsts::ALL {
            match a {
                Aadsts::UserNotFound
                | Aadsts::AccountLocked
                | Aadsts::NoPasswordInCloud
                | Aadsts::AccountDisabled
                | Aadsts::InvalidCredentials
                | Aadsts::PasswordChangeRequired
                | Aadsts::MfaRequired
                | Aadsts::StrongAuthFailed
                | Aadsts::UnknownClient
                | Aadsts::TenantNotFound
                | Aadsts::MissingParameter
                | Aadsts::UnsupportedGrantType
                | Aadsts::InvalidRequest
                | Aadsts::AgentUnavailable
                | Aadsts::AgentTimeout
                | Aadsts::InvalidUsernameForAgent
                | Aadsts::AgentAnswerRefused
                | Aadsts::DirectoryCommunication
                | Aadsts::AgentDecryptFailed
                | Aadsts::AgentNoKey
                | Aadsts::LogonHours
                | Aadsts::ClockSkew
                | Aadsts::AgentLateAnswer
                | Aadsts::ServerError
                | Aadsts::InvalidScope
                | Aadsts::UnauthorizedClient
                | Aadsts::ExpiredOrUsedGrant
                | Aadsts::InvalidGrant
                | Aadsts::PkceMismatch
                | Aadsts::PkceRequired
                | Aadsts::InvalidClientSecret
                | Aadsts::ClientAuthMissing
                | Aadsts::RedirectUriMismatch
                | Aadsts::LoginRequired
                | Aadsts::AuthorizationPending
                | Aadsts::SlowDown
                | Aadsts::DeviceCodeExpired
                | Aadsts::Throttled
                | Aadsts::SpaCrossOriginOnly
                | Aadsts::CrossOriginNotSpa => {}
            }
        }
        let distinct: std::collections::HashSet<Aadsts> = Aadsts::ALL.into_iter().collect();
        assert_eq!(distinct.len(), Aadsts::ALL.len(), "ALL lists a code twice");
        for a in Aadsts::ALL {
            let back = Aadsts::from_code(a.code());
            if a == Aadsts::SlowDown {
                assert_eq!(back, Some(Aadsts::AuthorizationPending));
            } else {
                assert_eq!(back, Some(a), "{a}");
            }
            assert!(!a.description().is_empty());
            assert!(!a.oauth_error().is_empty());
        }
        assert_eq!(Aadsts::from_code(12345), None);
        // Every Win32 denial maps to a code in the catalog.
        for w in Win32::ALL {
            assert!(Aadsts::ALL.contains(&w.aadsts()), "{w:?}");
        }
    }

    #[test]
    fn contract_table() {
        let table = [
            (1326, 50126),
            (1331, 50057),
            (1793, 50057),
            (1909, 50053),
            (1330, 50144),
            (1907, 50144),
            (1328, 80012),
            (1329, 80007),
        ];
        for (w, a) in table {
            let win = Win32::from_code(w).map(|w| w.aadsts().code());
            assert_eq!(win, Some(a), "win32 {w}");
        }
    }

    #[test]
    fn mfa_codes_are_invalid_grant_400() {
        for (c, n) in [
            (Aadsts::MfaRequired, 50076),
            (Aadsts::StrongAuthFailed, 500121),
        ] {
            assert_eq!(c.code(), n);
            assert_eq!(c.oauth_error(), "invalid_grant");
            assert_eq!(c.http_status(), 400);
        }
        assert!(Aadsts::MfaRequired
            .description()
            .contains("you must use multi-factor authentication"));
    }

    #[test]
    fn throttling_is_90055_with_429() {
        assert_eq!(Aadsts::Throttled.code(), 90055);
        assert_eq!(Aadsts::Throttled.http_status(), 429);
        assert_eq!(Aadsts::Throttled.oauth_error(), "temporarily_unavailable");
        assert!(Aadsts::Throttled.description().contains("Retry-After"));
    }

    #[test]
    fn serde_round_trip_and_refusal() {
        let s = serde_json::to_string(&Win32::AccountLockedOut).unwrap_or_default();
        assert_eq!(s, "1909");
        assert!(serde_json::from_str::<Win32>("1234").is_err());
    }
}
