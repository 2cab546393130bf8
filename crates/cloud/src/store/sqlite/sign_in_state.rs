//! SQLite: sign in state.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::model::mfa_policy::parse_user_policy;
use crate::store::lockout::{account_key, fold_name};
use crate::store::lockout::{Lockout, FAILURE_WINDOW_SECS};
use crate::store::mfa::MfaRecord;
use crate::store::sign_in_state::*;

#[async_trait]
impl SignInStateStore for SqliteStore {
    async fn sign_in_state(&self, tenant_id: Uuid, name: &str, now: i64) -> Result<SignInState> {
        // The lockout row is the account's: the user's found by UPN (COLLATE NOCASE), else
        // the user a known name designates (`sign_in_names`, Unicode case-folded), else the
        // folded name itself.
        let folded = fold_name(name);
        let (tenant, name_owned) = (tenant_id.to_string(), name.to_string());
        let since = now - FAILURE_WINDOW_SECS;
        let (user, account, lockout, mfa) = self
            .inline
            .read(move |c| {
                c.prepare_cached(
                    "SELECT u.*,
                            COALESCE(u.id, n.user_id) AS account_id,
                            l.username IS NOT NULL AS lockout_counted,
                            l.locked_until AS lockout_until,
                            CASE WHEN l.last_failure_at >= ?4 THEN l.failures ELSE 0 END AS lockout_failures,
                            m.user_id IS NOT NULL AS mfa_present,
                            m.policy, m.secret, m.enrolled_at, m.last_step, m.locked_until
                     FROM (SELECT ?1 AS key_tenant, ?2 AS key_name, ?3 AS key_fold) k
                     LEFT JOIN users u ON u.tenant_id = k.key_tenant AND u.upn = k.key_name
                     LEFT JOIN sign_in_names n ON n.tenant_id = k.key_tenant AND n.name = k.key_fold
                     LEFT JOIN sign_in_lockouts l ON l.tenant_id = k.key_tenant
                          AND l.username = COALESCE('user:' || u.id, 'user:' || n.user_id, k.key_fold)
                     LEFT JOIN user_mfa m ON m.tenant_id = k.key_tenant AND m.user_id = u.id",
                )?
                .query_row(rusqlite::params![tenant, name_owned, folded, since], |row| {
                    let lockout = Lockout {
                        counted: row.get::<_, i64>("lockout_counted")? != 0,
                        locked_until: row
                            .get::<_, Option<i64>>("lockout_until")?
                            .filter(|t| *t > now),
                        failures: row.get::<_, Option<i64>>("lockout_failures")?.unwrap_or(0),
                    };
                    let account = row
                        .get::<_, Option<String>>("account_id")?
                        .and_then(|a| Uuid::parse_str(&a).ok());
                    if row.get::<_, Option<String>>("id")?.is_none() {
                        return Ok((None, account, lockout, None));
                    }
                    let user = inline::user(row)?;
                    // `user_mfa`'s columns keep their names (no column of `users` shares them).
                    let mfa = if row.get::<_, i64>("mfa_present")? != 0 {
                        let policy: String = row.get("policy")?;
                        MfaRecord {
                            policy: parse_user_policy(&policy).unwrap_or(None),
                            sealed_secret: row.get("secret")?,
                            enrolled: row.get::<_, Option<i64>>("enrolled_at")?.is_some(),
                            last_step: row.get("last_step")?,
                            locked_until: row.get("locked_until")?,
                        }
                    } else {
                        MfaRecord::default()
                    };
                    Ok((Some(user), account, lockout, Some(mfa)))
                })
            })
            .await?;
        Ok(SignInState {
            user,
            lockout,
            lockout_key: account_key(account, name),
            mfa,
        })
    }
}
