//! Rules of the audit log and of the sign-in log's pages and filters, run on every backend.

use crate::store::*;
use uuid::Uuid;

fn entry(actor: &str, op: &str, target: &str, time_ms: i64) -> AuditEntry {
    AuditEntry {
        id: 0,
        time_ms,
        actor_id: Uuid::new_v4(),
        actor: actor.into(),
        client_ip: Some("192.0.2.7".into()),
        via: "cli".into(),
        operation: op.into(),
        target: target.into(),
        status: 200,
        correlation_id: "c".into(),
        request: Some("{\"value\":\"5\"}".into()),
        before: Some("{\"a\":1}".into()),
        after: None,
    }
}

super::on_every_backend! {
    /// Entries come back newest first with increasing ids, filtered by actor (any case),
    /// operation, target text and time, a page at a time, each tenant only its own; 100
    /// parallel writes get 100 distinct ids; retention removes only old entries.
    #[tokio::test]
    async fn audit_entries_page_filter_and_purge(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) =
            test_store_on(backend, "audit", "contoso.example", DomainKind::Cloud).await?;
        let now = 400 * 86_400_000_i64;
        let ids = futures_util::future::try_join_all((0..100).map(|i| {
            let s = s.clone();
            async move {
                let e = entry(
                    if i % 2 == 0 { "a@contoso.example" } else { "b@contoso.example" },
                    if i % 4 == 0 { "disableUser" } else { "setSetting" },
                    &format!("/users/u{i}@contoso.example/disable"),
                    now - i64::from(i),
                );
                s.add_audit(tid, &e).await
            }
        }))
        .await?;
        let mut distinct = ids.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 100);
        s.add_audit(Uuid::new_v4(), &entry("a@contoso.example", "x", "/y", now)).await?;

        let all = |f: AuditFilter| {
            let s = s.clone();
            async move { s.audit_entries(tid, &f).await }
        };
        let page1 = all(AuditFilter { limit: 30, ..Default::default() }).await?;
        assert_eq!(page1.len(), 30);
        assert!(page1.windows(2).all(|w| w[0].id > w[1].id), "newest first");
        assert_eq!(page1[0].request.as_deref(), Some("{\"value\":\"5\"}"));
        let mut seen = page1.len();
        let mut before = page1.last().map(|e| e.id);
        while let Some(b) = before {
            let page = all(AuditFilter { limit: 30, before_id: Some(b), ..Default::default() }).await?;
            seen += page.len();
            before = (page.len() == 30).then(|| page.last().map(|e| e.id)).flatten();
        }
        assert_eq!(seen, 100, "the pages hold every entry of the tenant once");
        let by_actor = all(AuditFilter { actor: Some("A@CONTOSO.example".into()), limit: 1000, ..Default::default() }).await?;
        assert_eq!(by_actor.len(), 50);
        let by_op = all(AuditFilter { operation: Some("disableUser".into()), limit: 1000, ..Default::default() }).await?;
        assert_eq!(by_op.len(), 25);
        let by_target = all(AuditFilter { target: Some("U7@".into()), limit: 1000, ..Default::default() }).await?;
        assert_eq!(by_target.len(), 1);
        let recent = all(AuditFilter { since_ms: Some(now - 9), limit: 1000, ..Default::default() }).await?;
        assert_eq!(recent.len(), 10);

        // Default retention is 365 days: entries older than that go, others stay.
        s.add_audit(tid, &entry("a@contoso.example", "old", "/z", now - 366 * 86_400_000)).await?;
        assert!(s.purge_audit(now).await? >= 1);
        let left = all(AuditFilter { limit: 1000, ..Default::default() }).await?;
        assert_eq!(left.len(), 100);
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// The sign-in log reads a page after another in `(time, id)` order, with lines at the
    /// same millisecond split across pages without loss, and filters by app, agent, client
    /// address, correlation id and AADSTS code; one line reads by its id.
    #[tokio::test]
    async fn sign_in_log_pages_and_filters(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, tid) =
            test_store_on(backend, "signin-pages", "contoso.example", DomainKind::Cloud).await?;
        let agent = Uuid::new_v4();
        for i in 0..25_i64 {
            s.log_sign_in(
                tid,
                &SignIn {
                    id: 0,
                    // Five lines share each millisecond.
                    time_ms: 1_000 + i / 5,
                    username: format!("u{i}@contoso.example"),
                    client_id: Some(if i % 5 == 0 { "app-a" } else { "app-b" }.into()),
                    result: if i % 3 == 0 { "success" } else { "failure" }.into(),
                    aadsts: (i % 3 != 0).then_some(50126),
                    win32: None,
                    agent_id: (i % 2 == 0).then_some(agent),
                    other_agents: Vec::new(),
                    latency_ms: None,
                    correlation_id: format!("corr-{i}"),
                    client_ip: Some(format!("192.0.2.{i}")),
                },
            )
            .await?;
        }
        let f = |after: Option<(i64, i64)>| SignInFilter { limit: 7, after, ..Default::default() };
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let page = s.sign_ins_filtered(tid, &f(after)).await?;
            seen.extend(page.iter().map(|l| l.username.clone()));
            if page.len() < 7 {
                break;
            }
            after = page.last().map(|l| (l.time_ms, l.id));
        }
        let mut distinct = seen.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!((seen.len(), distinct.len()), (25, 25), "{seen:?}");
        let only = |g: SignInFilter| {
            let s = s.clone();
            async move { s.sign_ins_filtered(tid, &SignInFilter { limit: 100, ..g }).await }
        };
        assert_eq!(only(SignInFilter { client_id: Some("app-a".into()), ..Default::default() }).await?.len(), 5);
        assert_eq!(only(SignInFilter { agent_id: Some(agent), ..Default::default() }).await?.len(), 13);
        assert_eq!(only(SignInFilter { client_ip: Some("192.0.2.7".into()), ..Default::default() }).await?.len(), 1);
        let by_corr = only(SignInFilter { correlation_id: Some("CORR-12".into()), ..Default::default() }).await?;
        assert_eq!(by_corr.len(), 1);
        assert_eq!(only(SignInFilter { aadsts: Some(50126), ..Default::default() }).await?.len(), 16);
        let one = s.sign_in(tid, by_corr[0].id).await?;
        assert_eq!(one.map(|l| l.username), Some("u12@contoso.example".to_string()));
        assert!(s.sign_in(Uuid::new_v4(), by_corr[0].id).await?.is_none(), "another tenant's id reads nothing");
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
