//! Smart lockout counters: wrong passwords per tenant and user name, and the lock they lead
//! to. A lock lasts the tenant's `lockout_duration_seconds`, doubled for each lockout since
//! the last successful sign-in (at most 64 times as long); failures older than
//! [`FAILURE_WINDOW_SECS`] are forgotten.

use uuid::Uuid;

use super::{Result, Store};

/// Wrong passwords older than this no longer count toward a lock, seconds.
pub const FAILURE_WINDOW_SECS: i64 = 3600;
/// A lock grows at most to this many times the tenant's duration.
const MAX_GROWTH: i64 = 64;

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

impl Store {
    /// `username`'s smart lockout state at `now`: one read, so that a sign-in of a name with
    /// nothing counted (the common case) writes nothing after it succeeds.
    pub async fn lockout(&self, tenant_id: Uuid, username: &str, now: i64) -> Result<Lockout> {
        let row: Option<(Option<i64>, i64)> = sqlx::query_as(
            "SELECT locked_until, CASE WHEN last_failure_at >= ? THEN failures ELSE 0 END
             FROM sign_in_lockouts WHERE tenant_id = ? AND username = ?",
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
    pub async fn lockout_key(
        &self,
        tenant_id: Uuid,
        typed: &str,
        user: Option<Uuid>,
    ) -> Result<String> {
        if user.is_some() {
            return Ok(account_key(user, typed));
        }
        let known: Option<String> = sqlx::query_scalar(
            "SELECT user_id FROM sign_in_names WHERE tenant_id = ? AND name = ?",
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
    pub async fn learn_sign_in_names(
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
    pub async fn record_wrong_password(
        &self,
        tenant_id: Uuid,
        username: &str,
        threshold: u32,
        duration_secs: u64,
        now: i64,
    ) -> Result<Option<Locked>> {
        let mut tx = self.write_tx().await?;
        let (failures, lockouts): (i64, i64) = sqlx::query_as(
            "INSERT INTO sign_in_lockouts (tenant_id, username, failures, last_failure_at)
             VALUES (?, ?, 1, ?)
             ON CONFLICT (tenant_id, username) DO UPDATE SET
                 failures = CASE WHEN last_failure_at < ? THEN 1 ELSE failures + 1 END,
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
                "UPDATE sign_in_lockouts SET failures = 0, locked_until = ?, lockouts = lockouts + 1
                 WHERE tenant_id = ? AND username = ?",
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
    pub async fn clear_lockout(&self, tenant_id: Uuid, username: &str) -> Result<bool> {
        let r = sqlx::query("DELETE FROM sign_in_lockouts WHERE tenant_id = ? AND username = ?")
            .bind(tenant_id.to_string())
            .bind(username)
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    /// Removes counters with no recent failure and no lock in force.
    pub async fn purge_lockouts(&self, now: i64) -> Result<u64> {
        let r = sqlx::query(
            "DELETE FROM sign_in_lockouts WHERE last_failure_at < ?
               AND (locked_until IS NULL OR locked_until < ?)",
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
    E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
{
    let folded = fold_name(name);
    if folded.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO sign_in_names (tenant_id, name, user_id) VALUES (?1, ?2, ?3)
         ON CONFLICT (tenant_id, name) DO UPDATE SET user_id = excluded.user_id
         WHERE user_id <> excluded.user_id",
    )
    .bind(tenant_id.to_string())
    .bind(folded)
    .bind(user_id.to_string())
    .execute(db)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::store::{test_store, DomainKind};

    #[tokio::test]
    async fn failures_lock_and_locks_grow_until_a_success() -> anyhow::Result<()> {
        let (s, dir, t) = test_store("lockout", "corp.test", DomainKind::Managed).await?;
        let u = "a@corp.test";
        assert_eq!(s.record_wrong_password(t, u, 3, 60, 100).await?, None);
        assert_eq!(
            s.record_wrong_password(t, "A@CORP.TEST", 3, 60, 101)
                .await?,
            None
        );
        let first = s.record_wrong_password(t, u, 3, 60, 102).await?;
        assert_eq!(first.map(|l| (l.until, l.lockouts)), Some((162, 1)));
        assert_eq!(s.lockout(t, u, 150).await?.locked_until, Some(162));
        let over = s.lockout(t, u, 162).await?;
        assert_eq!(over.locked_until, None, "over at its end");
        assert!(over.counted);
        assert!(!s.lockout(t, "nobody@corp.test", 150).await?.counted);
        // The next lock is twice as long.
        for now in 200..202 {
            s.record_wrong_password(t, u, 3, 60, now).await?;
        }
        let second = s.record_wrong_password(t, u, 3, 60, 202).await?;
        assert_eq!(second.map(|l| (l.until, l.lockouts)), Some((322, 2)));
        // Old failures are forgotten.
        s.clear_lockout(t, u).await?;
        s.record_wrong_password(t, u, 3, 60, 1000).await?;
        s.record_wrong_password(t, u, 3, 60, 1001).await?;
        let late = 1001 + super::FAILURE_WINDOW_SECS + 1;
        assert_eq!(s.record_wrong_password(t, u, 3, 60, late).await?, None);
        // A success (or an unlock) forgets everything; the purge drops stale rows.
        assert!(s.clear_lockout(t, u).await?);
        assert!(!s.clear_lockout(t, u).await?);
        s.record_wrong_password(t, "b@corp.test", 3, 60, 10).await?;
        assert_eq!(
            s.purge_lockouts(10 + super::FAILURE_WINDOW_SECS + 1)
                .await?,
            1
        );
        let _ = std::fs::remove_dir_all(dir);
        Ok(())
    }
}
