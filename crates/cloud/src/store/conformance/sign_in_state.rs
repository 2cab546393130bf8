//! Rules of the store's sign in state area, run on every backend.

use uuid::Uuid;

use crate::model::mfa_policy::Policy;
use crate::store::{test_store_on, DomainKind, Store};

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

super::on_every_backend! {
    #[tokio::test]
    async fn one_statement_reads_what_three_did(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, t) = test_store_on(backend, "signinstate", "corp.test", DomainKind::Managed).await?;
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
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}
