//! Smart lockout counters: wrong passwords per tenant and user name, and the lock they lead
//! to. A lock lasts the tenant's `lockout_duration_seconds`, doubled for each lockout since
//! the last successful sign-in (at most 64 times as long); failures older than
//! [`FAILURE_WINDOW_SECS`] are forgotten.

use async_trait::async_trait;

use uuid::Uuid;

use super::Result;

/// Wrong passwords older than this no longer count toward a lock, seconds.
pub const FAILURE_WINDOW_SECS: i64 = 3600;
/// A lock grows at most to this many times the tenant's duration.
pub(crate) const MAX_GROWTH: i64 = 64;

/// The lock a failure led to, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    /// Unix seconds.
    pub until: i64,
    /// Lockouts since the last successful sign-in, this one included.
    pub lockouts: i64,
}

/// An account's smart lockout state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lockout {
    /// Wrong passwords or a lock are on record (a success should forget them).
    pub counted: bool,
    /// Until when the account is locked, Unix seconds, if it is now.
    pub locked_until: Option<i64>,
    /// Wrong passwords counted in the window and not yet turned into a lock.
    pub failures: i64,
}

impl Lockout {
    /// How many password checks of the account may be in flight at once: each could be
    /// wrong, and together they must not pass the threshold.
    pub fn places(&self, threshold: u32) -> u32 {
        let left = i64::from(threshold.max(1)).saturating_sub(self.failures);
        u32::try_from(left.max(1)).unwrap_or(1)
    }
}

/// A name as smart lockout compares it: trimmed and Unicode case-folded (so `ÄLICE@x`,
/// `älice@x` and `Älice@X` are one name).
pub fn fold_name(name: &str) -> String {
    caseless::default_case_fold_str(name.trim())
}

/// The key smart lockout counts an account under: the user's id when the cloud knows which
/// user the typed name designates (by UPN, implicit UPN, mail or a name an agent resolved),
/// else the folded name.
pub fn account_key(user_id: Option<Uuid>, typed: &str) -> String {
    match user_id {
        Some(id) => format!("user:{id}"),
        None => fold_name(typed),
    }
}

/// Smart lockout's counters in a store: per tenant and account key, the wrong passwords of
/// the window, the lock in force and how often the key was locked, and the names that
/// designate a user. Every backend implements it and passes `store::conformance::lockout`
/// (no failure lost among hundreds counted at once).
#[async_trait]
pub trait LockoutStore: Send + Sync {
    /// `username`'s smart lockout state at `now`: one read, so that a sign-in of a name with
    /// nothing counted (the common case) writes nothing after it succeeds.
    async fn lockout(&self, tenant_id: Uuid, username: &str, now: i64) -> Result<Lockout>;

    /// The key `typed` counts under for the tenant (see [`account_key`]): `user`'s, when the
    /// caller found the user, else that of the user a known name designates, else the folded
    /// name.
    async fn lockout_key(&self, tenant_id: Uuid, typed: &str, user: Option<Uuid>)
        -> Result<String>;

    /// Records that each of `names` designates `user_id` (a name another user had moves).
    async fn learn_sign_in_names(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        names: &[&str],
    ) -> Result<()>;

    /// Counts a wrong password; at `threshold` failures the name is locked.
    async fn record_wrong_password(
        &self,
        tenant_id: Uuid,
        username: &str,
        threshold: u32,
        duration_secs: u64,
        now: i64,
    ) -> Result<Option<Locked>>;

    /// Forgets `username`'s failures and locks (a successful sign-in, or an administrator's
    /// unlock). Returns whether there was anything to forget.
    async fn clear_lockout(&self, tenant_id: Uuid, username: &str) -> Result<bool>;

    /// Removes counters with no recent failure and no lock in force.
    async fn purge_lockouts(&self, now: i64) -> Result<u64>;
}
