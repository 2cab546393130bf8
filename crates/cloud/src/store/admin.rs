//! Store rows the tenant administrator manages: users (paging, flags, roles, deletion),
//! domains (proof of control, removal), apps (redirect URIs, secrets, deletion) and the
//! sign-in log (filters, retention).

use super::User;

/// A page of users and the token of the next page, if any.
#[derive(Debug)]
pub struct UserPage {
    pub users: Vec<User>,
    /// Pass back as `after` for the next page (the last UPN of this one).
    pub next: Option<String>,
}

/// Filters of the sign-in log.
#[derive(Debug, Default, Clone)]
pub struct SignInFilter {
    /// Sign-in name, exact (case-insensitive).
    pub user: Option<String>,
    /// `success` or `failure`, or an AADSTS code.
    pub result: Option<String>,
    /// Only lines at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    /// Only lines before this time (Unix ms).
    pub until_ms: Option<i64>,
    /// At most this many lines.
    pub limit: i64,
}
