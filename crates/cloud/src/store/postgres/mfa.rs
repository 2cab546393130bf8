//! PostgreSQL: mfa.

use crate::model::mfa_policy::{parse_user_policy, user_policy_str, UserPolicy};
use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::mfa::*;

#[async_trait]
impl MfaStore for PgStore {
    /// The user's MFA row.
    async fn mfa(&self, tenant_id: Uuid, user_id: Uuid) -> Result<MfaRecord> {
        let row = sqlx::query("SELECT * FROM user_mfa WHERE tenant_id = $1 AND user_id = $2")
            .bind(tenant_id.to_string())
            .bind(user_id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map_or(Ok(MfaRecord::default()), Self::mfa_row)
    }

    /// Sets the user's own policy (`None`: follow the tenant's).
    async fn set_mfa_policy(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        policy: UserPolicy,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO user_mfa (user_id, tenant_id, policy) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET policy = excluded.policy",
        )
        .bind(user_id.to_string())
        .bind(tenant_id.to_string())
        .bind(user_policy_str(policy))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Starts an enrolment with a new sealed secret, replacing one that was not confirmed.
    /// Returns false (and changes nothing) when the user is already enrolled.
    async fn start_mfa_enrolment(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        sealed: &[u8],
    ) -> Result<bool> {
        let r = sqlx::query(
            "INSERT INTO user_mfa (user_id, tenant_id, secret) VALUES ($1, $2, $3)
             ON CONFLICT (user_id) DO UPDATE SET secret = excluded.secret, last_step = NULL
             WHERE user_mfa.enrolled_at IS NULL",
        )
        .bind(user_id.to_string())
        .bind(tenant_id.to_string())
        .bind(sealed)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

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
    ) -> Result<bool> {
        // The conditional update takes the row's lock: a parallel confirmation waits, then
        // finds the enrolment confirmed and changes nothing.
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE user_mfa SET enrolled_at = $1, last_step = $2, failures = 0, locked_until = NULL, lockouts = 0
             WHERE tenant_id = $3 AND user_id = $4 AND enrolled_at IS NULL AND secret IS NOT NULL",
        )
        .bind(now)
        .bind(step)
        .bind(tenant_id.to_string())
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        if r.rows_affected() != 1 {
            return Ok(false);
        }
        sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        for h in code_hashes {
            sqlx::query("INSERT INTO mfa_recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user_id.to_string())
                .bind(h)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Accepts a TOTP code of time step `step` if no later or equal step was accepted
    /// before; a success forgets wrong codes. Returns whether it was accepted.
    async fn accept_totp_step(&self, tenant_id: Uuid, user_id: Uuid, step: i64) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE user_mfa SET last_step = $1, failures = 0, locked_until = NULL, lockouts = 0
             WHERE tenant_id = $2 AND user_id = $3 AND enrolled_at IS NOT NULL
               AND (last_step IS NULL OR last_step < $4)",
        )
        .bind(step)
        .bind(tenant_id.to_string())
        .bind(user_id.to_string())
        .bind(step)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Uses up an unused recovery code of an enrolled user; a success forgets wrong codes.
    /// Returns whether it was accepted.
    async fn use_recovery_code(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        code_hash: &str,
        now: i64,
    ) -> Result<bool> {
        // The conditional update takes the code's row lock: a parallel use waits, then finds
        // it used.
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = $1
             WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL
               AND EXISTS (SELECT 1 FROM user_mfa WHERE user_mfa.user_id = mfa_recovery_codes.user_id
                           AND user_mfa.tenant_id = $4 AND user_mfa.enrolled_at IS NOT NULL)",
        )
        .bind(now)
        .bind(user_id.to_string())
        .bind(code_hash)
        .bind(tenant_id.to_string())
        .execute(&mut *tx)
        .await?;
        let ok = r.rows_affected() == 1;
        if ok {
            sqlx::query(
                "UPDATE user_mfa SET failures = 0, locked_until = NULL, lockouts = 0 WHERE user_id = $1",
            )
            .bind(user_id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ok)
    }

    /// Recovery codes not used yet.
    async fn recovery_codes_left(&self, user_id: Uuid) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user_id.to_string())
        .fetch_one(&self.pool)
        .await?)
    }

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
    ) -> Result<Reservation> {
        let row: Option<Option<i64>> = sqlx::query_scalar(
            "UPDATE user_mfa SET
                 failures = CASE WHEN failures + 1 >= $1 THEN 0 ELSE failures + 1 END,
                 locked_until = CASE WHEN failures + 1 >= $1
                     THEN $2 + LEAST($3 * (1::bigint << LEAST(GREATEST(lockouts, 0), 16)::int), $4)
                     ELSE locked_until END,
                 lockouts = CASE WHEN failures + 1 >= $1 THEN lockouts + 1 ELSE lockouts END
             WHERE tenant_id = $5 AND user_id = $6
               AND (locked_until IS NULL OR locked_until <= $2)
             RETURNING locked_until",
        )
        .bind(FAILURES_PER_LOCK)
        .bind(now)
        .bind(FIRST_LOCK_SECS)
        .bind(MAX_LOCK_SECS)
        .bind(tenant_id.to_string())
        .bind(user_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(until) => Reservation::Granted {
                locks_until: until.filter(|u| *u > now),
            },
            None => {
                let until: Option<Option<i64>> = sqlx::query_scalar(
                    "SELECT locked_until FROM user_mfa WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant_id.to_string())
                .bind(user_id.to_string())
                .fetch_optional(&self.pool)
                .await?;
                match until.flatten().filter(|u| *u > now) {
                    Some(u) => Reservation::Locked(u),
                    // No row (never enrolled): nothing to check against.
                    None => Reservation::NoRecord,
                }
            }
        })
    }

    /// Ends a second-factor lock and forgets wrong codes (an administrator's unlock).
    async fn clear_mfa_failures(&self, tenant_id: Uuid, user_id: Uuid) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE user_mfa SET failures = 0, locked_until = NULL, lockouts = 0
             WHERE tenant_id = $1 AND user_id = $2 AND (failures > 0 OR locked_until IS NOT NULL)",
        )
        .bind(tenant_id.to_string())
        .bind(user_id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes the user's authenticator, recovery codes and pending challenges, and ends
    /// their sessions and refresh tokens. The policy override stays. Returns whether there
    /// was an enrolment (started or confirmed).
    async fn reset_mfa(&self, tenant_id: Uuid, user_id: Uuid) -> Result<bool> {
        // Writes only (no read decides them): no lock beyond the rows'.
        let mut tx = self.pool.begin().await?;
        let r = sqlx::query(
            "UPDATE user_mfa SET secret = NULL, enrolled_at = NULL, last_step = NULL,
                 failures = 0, locked_until = NULL, lockouts = 0
             WHERE tenant_id = $1 AND user_id = $2 AND secret IS NOT NULL",
        )
        .bind(tenant_id.to_string())
        .bind(user_id.to_string())
        .execute(&mut *tx)
        .await?;
        for table in ["mfa_recovery_codes", "mfa_challenges"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE user_id = $1"))
                .bind(user_id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        Self::end_sessions(&mut tx, tenant_id, user_id).await?;
        tx.commit().await?;
        Ok(r.rows_affected() > 0)
    }

    // ---- challenges

    /// Records that `user_id` passed the password step of request `id` (or, for
    /// [`Stage::Setup`], is enrolling from a session), until `expires_at`.
    async fn put_mfa_challenge(
        &self,
        id: &str,
        tenant_id: Uuid,
        user_id: Uuid,
        stage: Stage,
        expires_at: i64,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO mfa_challenges (id, tenant_id, user_id, stage, expires_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET tenant_id = excluded.tenant_id,
                 user_id = excluded.user_id, stage = excluded.stage,
                 expires_at = excluded.expires_at",
        )
        .bind(id)
        .bind(tenant_id.to_string())
        .bind(user_id.to_string())
        .bind(stage.as_str())
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A live challenge of the tenant.
    async fn mfa_challenge(
        &self,
        tenant_id: Uuid,
        id: &str,
        now: i64,
    ) -> Result<Option<Challenge>> {
        let row = sqlx::query(
            "SELECT user_id, stage FROM mfa_challenges WHERE id = $1 AND tenant_id = $2 AND expires_at > $3",
        )
        .bind(id)
        .bind(tenant_id.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let stage: String = row.try_get("stage")?;
        Stage::parse(&stage)
            .map(|stage| {
                super::uuid_col(&row, "user_id").map(|user_id| Challenge { user_id, stage })
            })
            .transpose()
    }

    /// Moves a challenge from one stage to the next; false when it was not at `from`.
    async fn advance_mfa_challenge(&self, id: &str, from: Stage, to: Stage) -> Result<bool> {
        let r = sqlx::query("UPDATE mfa_challenges SET stage = $1 WHERE id = $2 AND stage = $3")
            .bind(to.as_str())
            .bind(id)
            .bind(from.as_str())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Removes a challenge; returns whether it was there (so it is used once).
    async fn take_mfa_challenge(&self, id: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM mfa_challenges WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }
}

impl PgStore {
    /// An MFA record from a row holding `user_mfa`'s columns by their own names.
    pub(super) fn mfa_row(row: &sqlx::postgres::PgRow) -> Result<MfaRecord> {
        let policy: String = row.try_get("policy")?;
        Ok(MfaRecord {
            policy: parse_user_policy(&policy).unwrap_or(None),
            sealed_secret: row.try_get("secret")?,
            enrolled: row.try_get::<Option<i64>, _>("enrolled_at")?.is_some(),
            last_step: row.try_get("last_step")?,
            locked_until: row.try_get("locked_until")?,
        })
    }
}
