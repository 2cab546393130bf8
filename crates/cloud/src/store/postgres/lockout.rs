//! PostgreSQL: lockout.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::store::lockout::*;
use crate::store::lockout::{account_key, fold_name, MAX_GROWTH};
use crate::store::lockout::{Lockout, FAILURE_WINDOW_SECS};

#[async_trait]
impl LockoutStore for PgStore {
    /// `username`'s smart lockout state at `now`: one read, so that a sign-in of a name with
    /// nothing counted (the common case) writes nothing after it succeeds.
    async fn lockout(&self, tenant_id: Uuid, username: &str, now: i64) -> Result<Lockout> {
        let row: Option<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT locked_until, CASE WHEN last_failure_at >= $1 THEN failures ELSE 0 END
             FROM sign_in_lockouts WHERE tenant_id = $2 AND username = $3::citext",
        )
        .bind(now - FAILURE_WINDOW_SECS)
        .bind(tenant_id.to_string())
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(Lockout {
            counted: row.is_some(),
            locked_until: row.and_then(|r| r.0).filter(|t| *t > now),
            failures: row.map_or(0, |r| r.1),
        })
    }

    /// The key `typed` counts under for the tenant (see [`account_key`]): `user`'s, when the
    /// caller found the user, else that of the user a known name designates, else the folded
    /// name.
    async fn lockout_key(
        &self,
        tenant_id: Uuid,
        typed: &str,
        user: Option<Uuid>,
    ) -> Result<String> {
        if user.is_some() {
            return Ok(account_key(user, typed));
        }
        let known: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM sign_in_names WHERE tenant_id = $1 AND name = $2",
        )
        .bind(tenant_id.to_string())
        .bind(fold_name(typed))
        .fetch_optional(&self.pool)
        .await?;
        Ok(account_key(
            known.and_then(|k| Uuid::parse_str(&k).ok()),
            typed,
        ))
    }

    /// Records that each of `names` designates `user_id` (a name another user had moves).
    async fn learn_sign_in_names(
        &self,
        tenant_id: Uuid,
        user_id: Uuid,
        names: &[&str],
    ) -> Result<()> {
        for name in names {
            remember_name(&self.pool, tenant_id, user_id, name).await?;
        }
        Ok(())
    }

    /// Counts a wrong password; at `threshold` failures the name is locked.
    async fn record_wrong_password(
        &self,
        tenant_id: Uuid,
        username: &str,
        threshold: u32,
        duration_secs: u64,
        now: i64,
    ) -> Result<Option<Locked>> {
        // The upsert takes the counter row's lock until commit: parallel failures of one
        // name count one after another, and the lock below acts on the count just returned.
        let mut tx = self.pool.begin().await?;
        let (failures, lockouts): (i64, i64) = sqlx::query_as(
            "INSERT INTO sign_in_lockouts AS l (tenant_id, username, failures, last_failure_at)
             VALUES ($1, $2, 1, $3)
             ON CONFLICT (tenant_id, username) DO UPDATE SET
                 failures = CASE WHEN l.last_failure_at < $4 THEN 1 ELSE l.failures + 1 END,
                 last_failure_at = excluded.last_failure_at
             RETURNING failures, lockouts",
        )
        .bind(tenant_id.to_string())
        .bind(username)
        .bind(now)
        .bind(now - FAILURE_WINDOW_SECS)
        .fetch_one(&mut *tx)
        .await?;
        let mut locked = None;
        if failures >= i64::from(threshold.max(1)) {
            let growth = 1i64 << lockouts.clamp(0, 6);
            let secs = i64::try_from(duration_secs).unwrap_or(i64::MAX / MAX_GROWTH);
            let until = now.saturating_add(secs.saturating_mul(growth.min(MAX_GROWTH)));
            sqlx::query(
                "UPDATE sign_in_lockouts SET failures = 0, locked_until = $1, lockouts = lockouts + 1
                 WHERE tenant_id = $2 AND username = $3::citext",
            )
            .bind(until)
            .bind(tenant_id.to_string())
            .bind(username)
            .execute(&mut *tx)
            .await?;
            locked = Some(Locked {
                until,
                lockouts: lockouts + 1,
            });
        }
        tx.commit().await?;
        Ok(locked)
    }

    /// Forgets `username`'s failures and locks (a successful sign-in, or an administrator's
    /// unlock). Returns whether there was anything to forget.
    async fn clear_lockout(&self, tenant_id: Uuid, username: &str) -> Result<bool> {
        let r = sqlx::query(
            "DELETE FROM sign_in_lockouts WHERE tenant_id = $1 AND username = $2::citext",
        )
        .bind(tenant_id.to_string())
        .bind(username)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes counters with no recent failure and no lock in force.
    async fn purge_lockouts(&self, now: i64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM sign_in_lockouts WHERE last_failure_at < $1
               AND (locked_until IS NULL OR locked_until < $2)",
        )
        .bind(now - FAILURE_WINDOW_SECS)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(r.rows_affected())
    }
}

/// Records that `name` designates `user_id` (on any executor: the pool or a transaction).
pub(super) async fn remember_name<'e, E>(
    db: E,
    tenant_id: Uuid,
    user_id: Uuid,
    name: &str,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    let folded = fold_name(name);
    if folded.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sign_in_names AS n (tenant_id, name, user_id) VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, name) DO UPDATE SET user_id = excluded.user_id
         WHERE n.user_id <> excluded.user_id",
    )
    .bind(tenant_id.to_string())
    .bind(folded)
    .bind(user_id.to_string())
    .execute(db)
    .await?;
    Ok(())
}
