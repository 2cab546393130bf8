//! PostgreSQL: sign in state.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::lockout::{account_key, fold_name};
use crate::store::lockout::{Lockout, FAILURE_WINDOW_SECS};
use crate::store::mfa::MfaRecord;
use crate::store::sign_in_state::*;

#[async_trait]
impl SignInStateStore for PgStore {
    async fn sign_in_state(&self, tenant_id: Uuid, name: &str, now: i64) -> Result<SignInState> {
        // The lockout row is the account's: the user's found by UPN (citext), else
        // the user a known name designates (`sign_in_names`, Unicode case-folded), else the
        // folded name itself.
        let folded = fold_name(name);
        let row = sqlx::query(
            "SELECT u.*,
                    COALESCE(u.id, n.user_id) AS account_id,
                    (l.username IS NOT NULL)::int::bigint AS lockout_counted,
                    l.locked_until AS lockout_until,
                    CASE WHEN l.last_failure_at >= $4 THEN l.failures ELSE 0 END AS lockout_failures,
                    (m.user_id IS NOT NULL)::int::bigint AS mfa_present,
                    m.policy, m.secret, m.enrolled_at, m.last_step, m.locked_until
             FROM (SELECT $1::text AS key_tenant, $2::citext AS key_name, $3::text AS key_fold) k
             LEFT JOIN users u ON u.tenant_id = k.key_tenant AND u.upn = k.key_name
             LEFT JOIN sign_in_names n ON n.tenant_id = k.key_tenant AND n.name = k.key_fold
             LEFT JOIN sign_in_lockouts l ON l.tenant_id = k.key_tenant
                  AND l.username = COALESCE('user:' || u.id, 'user:' || n.user_id, k.key_fold)::citext
             LEFT JOIN user_mfa m ON m.tenant_id = k.key_tenant AND m.user_id = u.id",
        )
        .bind(tenant_id.to_string())
        .bind(name)
        .bind(&folded)
        .bind(now - FAILURE_WINDOW_SECS)
        .fetch_one(&self.pool)
        .await?;
        let lockout = Lockout {
            counted: row.try_get::<i64, _>("lockout_counted")? != 0,
            locked_until: row
                .try_get::<Option<i64>, _>("lockout_until")?
                .filter(|t| *t > now),
            failures: row
                .try_get::<Option<i64>, _>("lockout_failures")?
                .unwrap_or(0),
        };
        let account = row
            .try_get::<Option<String>, _>("account_id")?
            .and_then(|a| Uuid::parse_str(&a).ok());
        let lockout_key = account_key(account, name);
        if row.try_get::<Option<String>, _>("id")?.is_none() {
            return Ok(SignInState {
                user: None,
                lockout,
                lockout_key,
                mfa: None,
            });
        }
        let user = Self::user_row(&row)?;
        // `user_mfa`'s columns keep their names (no column of `users` shares them).
        let mfa = if row.try_get::<i64, _>("mfa_present")? != 0 {
            Self::mfa_row(&row)?
        } else {
            MfaRecord::default()
        };
        Ok(SignInState {
            user: Some(user),
            lockout,
            lockout_key,
            mfa: Some(mfa),
        })
    }
}
