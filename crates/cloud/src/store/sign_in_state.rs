//! What a password sign-in must know of a name before any password check, read in one
//! statement: the user with that UPN, the name's smart-lockout state and the user's MFA row.
//! A password grant used to make one round trip to the store's worker thread for each;
//! handing work between threads cost more CPU than the reads themselves.

use async_trait::async_trait;
use uuid::Uuid;

use super::lockout::Lockout;
use super::mfa::MfaRecord;
use super::{Result, User};

/// The state of a name at the start of a sign-in.
#[derive(Debug, Clone)]
pub struct SignInState {
    /// The user whose UPN the name is (case-insensitively), if any.
    pub user: Option<User>,
    /// The account's smart-lockout state (the same as [`Store::lockout`] gives for
    /// `lockout_key`).
    pub lockout: Lockout,
    /// The key the account's wrong passwords count under ([`Store::lockout_key`]).
    pub lockout_key: String,
    /// The user's MFA row (the same as [`Store::mfa`] gives); `None` when there is no user.
    pub mfa: Option<MfaRecord>,
}

/// What a sign-in needs to decide, read in one go.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait SignInStateStore: Send + Sync {
    /// `name`'s user, smart-lockout state and MFA row at `now`, in one statement.
    async fn sign_in_state(&self, tenant_id: Uuid, name: &str, now: i64) -> Result<SignInState>;
}
