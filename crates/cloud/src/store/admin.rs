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
    /// Only this AADSTS code.
    pub aadsts: Option<i64>,
    /// Only this app (client id).
    pub client_id: Option<String>,
    /// Only lines answered by this agent.
    pub agent_id: Option<uuid::Uuid>,
    /// Only this client address, exact.
    pub client_ip: Option<String>,
    /// Only this correlation id, exact (case-insensitive).
    pub correlation_id: Option<String>,
    /// Only lines after this one in the log's order (newest first): the `(time_ms, id)` of
    /// the previous page's last line.
    pub after: Option<(i64, i64)>,
    /// At most this many lines.
    pub limit: i64,
}
