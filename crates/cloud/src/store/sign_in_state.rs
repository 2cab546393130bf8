//! What a password sign-in must know of a name before any password check, read in one
//! statement: the user with that UPN, the name's smart-lockout state and the user's MFA row.
//! A password grant used to make one round trip to the store's worker thread for each;
//! handing work between threads cost more CPU than the reads themselves.

use sqlx::Row;
use uuid::Uuid;

use super::lockout::{account_key, fold_name, Lockout, FAILURE_WINDOW_SECS};
use super::mfa::MfaRecord;
use super::{Result, Store, User};

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

impl Store {
    /// `name`'s user, smart-lockout state and MFA row at `now`, in one statement.
    pub async fn sign_in_state(
        &self,
        tenant_id: Uuid,
        name: &str,
        now: i64,
    ) -> Result<SignInState> {
        // The lockout row is the account's: the user's found by UPN (COLLATE NOCASE), else
        // the user a known name designates (`sign_in_names`, Unicode case-folded), else the
        // folded name itself.
        let folded = fold_name(name);
        let row = sqlx::query(
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

#[cfg(test)]
mod tests {
    use crate::store::LockoutStore as _;
    use crate::store::MfaStore as _;
    use uuid::Uuid;

    use crate::model::mfa_policy::Policy;
    use crate::store::{test_store, DomainKind, Store};

    /// The one statement agrees with the three separate reads it replaces.
    async fn agrees(s: &Store, t: Uuid, name: &str, now: i64) -> anyhow::Result<()> {
        let state = s.sign_in_state(t, name, now).await?;
        let user = s.user_by_upn(t, name).await?;
        assert_eq!(
            state.user.as_ref().map(serde_json::to_value).transpose()?,
            user.as_ref().map(serde_json::to_value).transpose()?,
            "{name}: user"
        );
        assert_eq!(
            state.user.as_ref().map(|u| u.password_hash.clone()),
            user.as_ref().map(|u| u.password_hash.clone())
        );
        let key = s.lockout_key(t, name, user.as_ref().map(|u| u.id)).await?;
        assert_eq!(state.lockout_key, key, "{name}: lockout key");
        assert_eq!(
            state.lockout,
            s.lockout(t, &key, now).await?,
            "{name}: lockout"
        );
        let mfa = match &user {
            Some(u) => Some(s.mfa(t, u.id).await?),
            None => None,
        };
        assert!(state.mfa == mfa, "{name}: MFA row");
        Ok(())
    }

    #[tokio::test]
    async fn one_statement_reads_what_three_did() -> anyhow::Result<()> {
        let (s, dir, t) = test_store("signinstate", "corp.test", DomainKind::Managed).await?;
        // Nobody, nothing counted.
        agrees(&s, t, "nobody@corp.test", 100).await?;
        let none = s.sign_in_state(t, "nobody@corp.test", 100).await?;
        assert!(none.user.is_none() && none.mfa.is_none() && !none.lockout.counted);
        // A name with no user but wrong passwords counted, then locked.
        for now in 100..103 {
            s.record_wrong_password(
                t,
                &crate::store::lockout::fold_name("ghost@corp.test"),
                3,
                60,
                now,
            )
            .await?;
        }
        agrees(&s, t, "ghost@corp.test", 110).await?;
        let locked = s.sign_in_state(t, "GHOST@corp.test", 110).await?;
        assert_eq!(locked.lockout.locked_until, Some(162));
        assert!(s
            .sign_in_state(t, "ghost@corp.test", 162)
            .await?
            .lockout
            .locked_until
            .is_none());
        // A user without an MFA row, typed in another case, with one failure counted.
        let id = s
            .add_cloud_user(t, "Alice@corp.test", "hash", "none", 50)
            .await?;
        let key = s
            .sign_in_state(t, "alice@CORP.test", 100)
            .await?
            .lockout_key;
        assert_eq!(key, format!("user:{id}"), "found by UPN in another case");
        s.record_wrong_password(t, &format!("user:{id}"), 3, 60, 100)
            .await?;
        agrees(&s, t, "ALICE@corp.test", 101).await?;
        let alice = s.sign_in_state(t, "alice@corp.test", 101).await?;
        assert_eq!(alice.user.map(|u| u.id), Some(id));
        assert!(alice.lockout.counted && alice.lockout.locked_until.is_none());
        // With an MFA row of their own.
        s.set_mfa_policy(t, id, Some(Policy::Required)).await?;
        agrees(&s, t, "alice@corp.test", 101).await?;
        let mfa = s.sign_in_state(t, "alice@corp.test", 101).await?.mfa;
        assert_eq!(mfa.map(|m| m.policy), Some(Some(Policy::Required)));
        // Names the user is known by (an implicit UPN, a mail address, another case of a
        // non-ASCII UPN) count under the user's key.
        s.learn_sign_in_names(
            t,
            id,
            &["alice@corp.test", "ali@CORP.example", "Ärger.Ä@corp.test"],
        )
        .await?;
        for name in ["ALI@corp.example", "ärger.ä@CORP.TEST", "ÄRGER.Ä@corp.test"] {
            agrees(&s, t, name, 101).await?;
            let st = s.sign_in_state(t, name, 101).await?;
            assert_eq!(st.lockout_key, format!("user:{id}"), "{name}");
            assert!(st.lockout.counted, "{name}: the user's count");
            assert_eq!(st.lockout.failures, 1);
        }
        // Another tenant's name is not this tenant's.
        assert!(s
            .sign_in_state(Uuid::new_v4(), "alice@corp.test", 101)
            .await?
            .user
            .is_none());
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}
