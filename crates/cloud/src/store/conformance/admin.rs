//! Rules of the store's admin area, run on every backend.

use crate::store::admin::*;
use crate::store::DomainKind;
use crate::store::*;
use uuid::Uuid;

async fn store(backend: TestBackend) -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
    crate::store::test_store_on(backend, "admin", "contoso.example", DomainKind::Cloud).await
}

super::on_every_backend! {
    /// The last enabled Global Administrator cannot be demoted, blocked or deleted; with a
    /// second one, each works, and nothing of a refused change is written.
    #[tokio::test]
    async fn the_last_global_administrator_stays(backend: TestBackend) -> anyhow::Result<()> {
        use crate::model::records::GLOBAL_ADMIN;
        let (s, dir, tid) = store(backend).await?;
        let a = s
            .add_cloud_user(tid, "a@contoso.example", "h", GLOBAL_ADMIN, 1)
            .await?;
        let last = |r: Result<()>| matches!(r, Err(StoreError::LastGlobalAdmin));
        assert!(last(s.set_user_role(tid, a, "none", 2).await));
        assert!(last(s.set_user_enabled(tid, a, false, 2).await));
        assert!(last(s.delete_user(tid, a).await));
        assert_eq!(s.count_role(tid, GLOBAL_ADMIN).await?, 1);
        let user = s.user_by_id(tid, a).await?;
        assert!(user.is_some_and(|u| u.enabled && u.role == GLOBAL_ADMIN));

        let b = s
            .add_cloud_user(tid, "b@contoso.example", "h", GLOBAL_ADMIN, 1)
            .await?;
        s.set_user_enabled(tid, b, false, 3).await?;
        // A blocked holder does not count: a is still the last.
        assert!(last(s.set_user_role(tid, a, "none", 3).await));
        s.set_user_enabled(tid, b, true, 4).await?;
        s.set_user_role(tid, a, "none", 5).await?;
        assert!(last(s.delete_user(tid, b).await));
        s.set_user_role(tid, a, GLOBAL_ADMIN, 6).await?;
        s.delete_user(tid, b).await?;
        assert_eq!(s.count_role(tid, GLOBAL_ADMIN).await?, 1);
        // A tenant with no Global Administrator to lose (a store made for tests, an
        // import) is not blocked by the rule.
        let other = Uuid::new_v4();
        s.create_tenant(other, "fabrikam", 1).await?;
        let u = s
            .add_cloud_user(other, "u@fabrikam.example", "h", "none", 1)
            .await?;
        s.set_user_enabled(other, u, false, 2).await?;
        s.delete_user(other, u).await?;
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn users_page_and_search(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) = store(backend).await?;
        for i in 0..7 {
            s.add_cloud_user(tid, &format!("u{i}@contoso.example"), "h", "none", 1)
                .await?;
        }
        s.add_cloud_user(tid, "50%_off@contoso.example", "h", "none", 1)
            .await?;
        let p1 = s.users_page(tid, None, None, 3).await?;
        assert_eq!(p1.users.len(), 3);
        let p2 = s.users_page(tid, None, p1.next.as_deref(), 3).await?;
        let p3 = s.users_page(tid, None, p2.next.as_deref(), 3).await?;
        assert_eq!(p3.users.len(), 2);
        assert!(p3.next.is_none());
        let mut all: Vec<String> = [p1, p2, p3]
            .into_iter()
            .flat_map(|p| p.users.into_iter().map(|u| u.upn))
            .collect();
        all.dedup();
        assert_eq!(all.len(), 8, "every user once");
        // LIKE wildcards in the search are literal.
        let hits = s.users_page(tid, Some("%_"), None, 50).await?;
        assert_eq!(hits.users.len(), 1);
        assert_eq!(hits.users[0].upn, "50%_off@contoso.example");
        assert_eq!(s.domain_user_count(tid, "contoso.example").await?, 8);
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn sign_in_log_filters_and_retention(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) = store(backend).await?;
        let day = 86_400_000;
        let now = 100 * day;
        for (age_days, user, result, code) in [
            (40, "old@contoso.example", "failure", Some(50126)),
            (2, "a@contoso.example", "success", None),
            (1, "a@contoso.example", "failure", Some(50053)),
        ] {
            s.log_sign_in(
                tid,
                &SignIn {
                    id: 0,
                    time_ms: now - age_days * day,
                    username: user.into(),
                    client_id: None,
                    result: result.into(),
                    aadsts: code,
                    win32: None,
                    agent_id: None,
                    other_agents: Vec::new(),
                    latency_ms: None,
                    correlation_id: "c".into(),
                    client_ip: None,
                },
            )
            .await?;
        }
        let f = |user: Option<&str>, result: Option<&str>, since: Option<i64>| SignInFilter {
            user: user.map(str::to_string),
            result: result.map(str::to_string),
            since_ms: since,
            until_ms: None,
            limit: 100,
            ..Default::default()
        };
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, None, None)).await?.len(),
            3
        );
        assert_eq!(
            s.sign_ins_filtered(tid, &f(Some("A@contoso.example"), None, None))
                .await?
                .len(),
            2
        );
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, Some("failure"), None))
                .await?
                .len(),
            2
        );
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, Some("50053"), None))
                .await?
                .len(),
            1
        );
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, None, Some(now - 3 * day)))
                .await?
                .len(),
            2
        );
        // Default retention is 30 days: the 40-day-old line goes.
        assert_eq!(s.purge_sign_ins(now).await?, 1);
        let settings = crate::model::settings::Settings {
            signin_retention_days: 1,
            ..Default::default()
        };
        s.save_settings(tid, &settings).await?;
        assert_eq!(s.purge_sign_ins(now).await?, 1);
        assert_eq!(
            s.sign_ins_filtered(tid, &f(None, None, None)).await?.len(),
            1
        );
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[tokio::test]
    async fn unverified_domains_do_not_sign_in_and_expire(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) = store(backend).await?;
        s.add_domain(tid, "corp.example", DomainKind::Managed, Some("code"), 100)
            .await?;
        assert!(s.domain("corp.example").await?.is_none());
        assert!(s.domain_any("corp.example").await?.is_some());
        assert_eq!(s.purge_unverified_domains(150, 100).await?, 0);
        s.set_domain_verified(tid, "corp.example").await?;
        assert!(s.domain("corp.example").await?.is_some());
        s.add_domain(tid, "stale.example", DomainKind::Managed, Some("c"), 100)
            .await?;
        assert_eq!(s.purge_unverified_domains(1000, 100).await?, 1);
        assert!(s.domain_any("stale.example").await?.is_none());
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
