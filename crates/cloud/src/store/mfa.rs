//! Multi-factor authentication rows: each user's policy override, sealed TOTP secret, last
//! accepted time step and wrong-code lock (`user_mfa`); recovery codes as hashes
//! (`mfa_recovery_codes`); sign-ins waiting for their second factor (`mfa_challenges`).
//! Every "accepted once" rule is a conditional UPDATE, so two cloud instances cannot both
//! accept the same code.

use async_trait::async_trait;

use uuid::Uuid;

use super::Result;
use crate::model::mfa_policy::UserPolicy;

/// Wrong codes that lock the second factor.
pub const FAILURES_PER_LOCK: i64 = 5;
/// The first lock, seconds; each further lock (until a success) lasts twice as long.
pub const FIRST_LOCK_SECS: i64 = 15 * 60;
/// The longest lock, seconds.
pub const MAX_LOCK_SECS: i64 = 24 * 3600;

/// What [`Store::reserve_mfa_attempt`] gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// One check may be made; if it is the last before a lock, the lock (already in force
    /// for every other request) ends then, Unix seconds.
    Granted { locks_until: Option<i64> },
    /// Locked after wrong codes until then, Unix seconds: nothing may be checked.
    Locked(i64),
    /// The user has no MFA row.
    NoRecord,
}

/// A user's MFA row (all defaults when they have none).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MfaRecord {
    /// The user's own policy (`None`: the tenant's).
    pub policy: UserPolicy,
    /// Nonce and sealed TOTP secret, if an enrolment was started or confirmed.
    pub sealed_secret: Option<Vec<u8>>,
    /// Whether the enrolment was confirmed with a code.
    pub enrolled: bool,
    /// The last accepted time step.
    pub last_step: Option<i64>,
    /// Until when wrong codes lock the second factor, if they do.
    pub locked_until: Option<i64>,
}

impl std::fmt::Debug for MfaRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaRecord")
            .field("policy", &self.policy)
            .field("enrolled", &self.enrolled)
            .field("last_step", &self.last_step)
            .field("locked_until", &self.locked_until)
            .finish_non_exhaustive()
    }
}

/// Where a second-factor challenge stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The password was right; a code is asked for.
    Code,
    /// The password was right; an authenticator is being enrolled.
    Enrol,
    /// Enrolment confirmed; the recovery codes were shown and the sign-in may finish.
    Done,
    /// A signed-in user enrols from `/mfa/setup`.
    Setup,
}

impl Stage {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Stage::Code => "code",
            Stage::Enrol => "enrol",
            Stage::Done => "done",
            Stage::Setup => "setup",
        }
    }
    pub(crate) fn parse(s: &str) -> Option<Stage> {
        Some(match s {
            "code" => Stage::Code,
            "enrol" => Stage::Enrol,
            "done" => Stage::Done,
            "setup" => Stage::Setup,
            _ => return None,
        })
    }
}

/// A live challenge: whose password was checked, and what is awaited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Challenge {
    pub user_id: Uuid,
    pub stage: Stage,
}

/// Second factors in a store: per user the policy, the sealed TOTP secret and its last
/// accepted step, recovery codes (hashes), wrong-code counting with locks, and the challenges
/// of sign-ins in progress. Every backend implements it and passes `store::conformance::mfa`
/// (a step, a recovery code and each reserved attempt granted once among many at once).
#[async_trait]
pub trait MfaStore: Send + Sync {
    /// The user's MFA row.
    async fn mfa(&self, tenant_id: Uuid, user_id: Uuid) -> Result<MfaRecord>;

    /// Sets the user's own policy (`None`: follow the tenant's).
    async fn set_mfa_policy(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        policy: UserPolicy,
    ) -> Result<()>;

    /// Starts an enrolment with a new sealed secret, replacing one that was not confirmed.
    /// Returns false (and changes nothing) when the user is already enrolled.
    async fn start_mfa_enrolment(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        sealed: &[u8],
    ) -> Result<bool>;

    /// Confirms a started enrolment with the step of the code the user typed, and replaces
    /// the recovery codes with `code_hashes`. Returns false when there was no enrolment to
    /// confirm (already confirmed, or reset meanwhile).
    async fn confirm_mfa_enrolment(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        step: i64,
        code_hashes: &[String],
        now: i64,
    ) -> Result<bool>;

    /// Accepts a TOTP code of time step `step` if no later or equal step was accepted
    /// before; a success forgets wrong codes. Returns whether it was accepted.
    async fn accept_totp_step(&self, tenant_id: Uuid, user_id: Uuid, step: i64) -> Result<bool>;

    /// Uses up an unused recovery code of an enrolled user; a success forgets wrong codes.
    /// Returns whether it was accepted.
    async fn use_recovery_code(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        code_hash: &str,
        now: i64,
    ) -> Result<bool>;

    /// Recovery codes not used yet.
    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<i64>;

    /// Reserves one code check before the code is compared: counts it as wrong up front, in
    /// one conditional statement, so parallel posts cannot all be checked while a lock is
    /// still being recorded. The check that makes [`FAILURES_PER_LOCK`] sets the lock at
    /// once ([`FIRST_LOCK_SECS`], doubling with each lock until a success, at most
    /// [`MAX_LOCK_SECS`]); a success gives the attempt back (it forgets wrong codes and
    /// locks). A locked second factor reserves nothing.
    async fn reserve_mfa_attempt(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        now: i64,
    ) -> Result<Reservation>;

    /// Ends a second-factor lock and forgets wrong codes (an administrator's unlock).
    async fn clear_mfa_failures(&self, tenant_id: Uuid, user_id: Uuid) -> Result<bool>;

    /// Removes the user's authenticator, recovery codes and pending challenges, and ends
    /// their sessions and refresh tokens. The policy override stays. Returns whether there
    /// was an enrolment (started or confirmed).
    async fn reset_mfa(&self, tenant_id: Uuid, user_id: Uuid) -> Result<bool>;

    /// Records that `user_id` passed the password step of request `id` (or, for
    /// [`Stage::Setup`], is enrolling from a session), until `expires_at`.
    async fn put_mfa_challenge(
        &self,
        id: &str,
        tenant_id: Uuid,
        user_id: Uuid,
        stage: Stage,
        expires_at: i64,
    ) -> Result<()>;

    /// A live challenge of the tenant.
    async fn mfa_challenge(&self, tenant_id: Uuid, id: &str, now: i64)
        -> Result<Option<Challenge>>;

    /// Moves a challenge from one stage to the next; false when it was not at `from`.
    async fn advance_mfa_challenge(&self, id: &str, from: Stage, to: Stage) -> Result<bool>;

    /// Removes a challenge; returns whether it was there (so it is used once).
    async fn take_mfa_challenge(&self, id: &str) -> Result<bool>;
}
