//! Rules of the store's agents area, run on every backend.

use crate::store::agents::*;
use crate::store::*;
use uuid::Uuid;

async fn store(backend: TestBackend) -> anyhow::Result<(Store, Uuid)> {
    let (s, _dir) = empty_test_store(backend, "agents").await?;
    let tid = Uuid::new_v4();
    s.create_tenant(tid, "contoso", 1).await?;
    Ok((s, tid))
}

async fn agent(s: &Store, tid: Uuid, registered: i64) -> anyhow::Result<Uuid> {
    let id = Uuid::new_v4();
    s.add_agent(
        id,
        tid,
        &id.to_string(),
        i64::MAX,
        &[7; 32],
        "h",
        "1",
        registered,
        40,
    )
    .await?;
    Ok(id)
}

#[test]
fn quantiles_from_buckets() {
    let mut t = AgentTally::default();
    assert_eq!(t.rtt_quantile_ms(0.5), None);
    for _ in 0..98 {
        t.record_rtt(2.0);
    }
    t.record_rtt(100.0);
    t.record_rtt(100.0);
    let p50 = t.rtt_quantile_ms(0.5).unwrap_or(0.0);
    let p99 = t.rtt_quantile_ms(0.99).unwrap_or(0.0);
    assert!((2.0..2.4).contains(&p50), "{p50}");
    assert!((100.0..120.0).contains(&p99), "{p99}");
    assert_eq!(t.served, 100);
    t.record_rtt(1e9);
    assert_eq!(t.rtt_buckets[RTT_BUCKETS - 1], 1);
}

super::on_every_backend! {
    /// 64 registrations at once into a tenant that may have 5: exactly 5 are stored, and a
    /// revoked agent frees its place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_registrations_stop_at_the_limit(backend: TestBackend) -> anyhow::Result<()> {
        let (s, tid) = store(backend).await?;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..64 {
            let s = s.clone();
            tasks.spawn(async move {
                let id = Uuid::new_v4();
                s.add_agent(id, tid, &id.to_string(), i64::MAX, &[7; 32], "h", "1", 1, 5)
                    .await
                    .map(|()| id)
            });
        }
        let (mut added, mut refused) = (Vec::new(), 0);
        while let Some(r) = tasks.join_next().await {
            match r? {
                Ok(id) => added.push(id),
                Err(StoreError::TooManyAgents { max: 5 }) => refused += 1,
                Err(e) => return Err(e.into()),
            }
        }
        assert_eq!((added.len(), refused), (5, 59));
        assert_eq!(s.active_agent_count(tid).await?, 5);
        assert!(s.revoke_agent(tid, added[0]).await?);
        let id = Uuid::new_v4();
        s.add_agent(id, tid, "fp-new", i64::MAX, &[7; 32], "h", "1", 2, 5)
            .await?;
        assert!(matches!(
            s.add_agent(
                Uuid::new_v4(),
                tid,
                "fp-more",
                i64::MAX,
                &[7; 32],
                "h",
                "1",
                2,
                5
            )
            .await,
            Err(StoreError::TooManyAgents { .. })
        ));
        s.close().await;
        Ok(())
    }

    #[tokio::test]
    async fn stats_accumulate_across_flushes(backend: TestBackend) -> anyhow::Result<()> {
        let (s, tid) = store(backend).await?;
        let id = agent(&s, tid, 1).await?;
        let mut d = AgentTally::default();
        d.record_rtt(3.0);
        d.failures.insert(1326, 1);
        s.add_agent_stats(id, &d, 10).await?;
        d.failures.insert(1909, 1);
        s.add_agent_stats(id, &d, 20).await?;
        s.add_agent_stats(id, &AgentTally::default(), 30).await?;
        let all = s.agent_stats(tid).await?;
        let t = all.get(&id).ok_or_else(|| anyhow::anyhow!("no stats"))?;
        assert_eq!(t.served, 2);
        assert_eq!(t.failures.get(&1326), Some(&2));
        assert_eq!(t.failures.get(&1909), Some(&1));
        assert!(s.agent_stats(Uuid::new_v4()).await?.is_empty());
        s.close().await;
        Ok(())
    }

    #[tokio::test]
    async fn a_heartbeat_reads_the_agents_standing(backend: TestBackend) -> anyhow::Result<()> {
        let (s, tid) = store(backend).await?;
        let id = agent(&s, tid, 1).await?;
        assert_eq!(s.agent_heartbeat(id, None, 10).await?, AgentStanding::Admitted);
        assert!(s.revoke_agent(tid, id).await?);
        assert_eq!(s.agent_heartbeat(id, None, 11).await?, AgentStanding::Revoked);
        let expiring = Uuid::new_v4();
        s.add_agent(expiring, tid, "fp-expiring", 100, &[7; 32], "h", "1", 1, 40)
            .await?;
        assert_eq!(
            s.agent_heartbeat(expiring, None, 100).await?,
            AgentStanding::Admitted
        );
        assert_eq!(
            s.agent_heartbeat(expiring, None, 101).await?,
            AgentStanding::CertificateExpired
        );
        assert_eq!(
            s.agent_heartbeat(Uuid::new_v4(), None, 10).await?,
            AgentStanding::Removed
        );
        s.close().await;
        Ok(())
    }

    /// A renewal waits beside the current certificate until the agent connects with it; that
    /// makes it current, and the old certificate and HPKE key are then refused.
    #[tokio::test]
    async fn a_renewed_certificate_replaces_the_old_one_once_used(
        backend: TestBackend,
    ) -> anyhow::Result<()> {
        let (s, tid) = store(backend).await?;
        let id = agent(&s, tid, 1).await?;
        let old = id.to_string();
        assert!(s.renew_agent_cert(id, "fp-first-try", 500, &[8; 32]).await?);
        // A second renewal before the first was used replaces it.
        assert!(s.renew_agent_cert(id, "fp-renewed", 1000, &[9; 32]).await?);
        assert!(s.agent_by_fingerprint("fp-first-try").await?.is_none());
        // Both certificates are accepted meanwhile; the old one is still current.
        let by_new = s.agent_by_fingerprint("fp-renewed").await?;
        assert_eq!(by_new.as_ref().map(|a| a.id), Some(id));
        assert_eq!(
            by_new.as_ref().and_then(|a| a.next_cert_expires_at),
            Some(1000)
        );
        let by_old = s.agent_by_fingerprint(&old).await?;
        assert_eq!(by_old.as_ref().map(|a| a.hpke_public_key.clone()), Some(vec![7; 32]));
        assert_eq!(
            s.agent_heartbeat(id, Some(&old), 10).await?,
            AgentStanding::Admitted
        );
        // Promoting anything but the renewed certificate does nothing.
        assert!(s.promote_agent_cert(id, &old).await?.is_none());
        assert!(s.promote_agent_cert(Uuid::new_v4(), "fp-renewed").await?.is_none());
        let now_current = s
            .promote_agent_cert(id, "fp-renewed")
            .await?
            .ok_or_else(|| anyhow::anyhow!("not promoted"))?;
        assert_eq!(now_current.cert_fingerprint, "fp-renewed");
        assert_eq!(now_current.cert_expires_at, 1000);
        assert_eq!(now_current.hpke_public_key, vec![9; 32]);
        assert_eq!(now_current.next_cert_fingerprint, None);
        // The old certificate belongs to no agent any more; its connection is told so.
        assert!(s.agent_by_fingerprint(&old).await?.is_none());
        assert_eq!(
            s.agent_heartbeat(id, Some(&old), 11).await?,
            AgentStanding::CertificateReplaced
        );
        assert_eq!(
            s.agent_heartbeat(id, Some("fp-renewed"), 12).await?,
            AgentStanding::Admitted
        );
        assert!(s.promote_agent_cert(id, "fp-renewed").await?.is_none());
        // A revoked agent cannot renew.
        assert!(s.revoke_agent(tid, id).await?);
        assert!(!s.renew_agent_cert(id, "fp-after-revocation", 2000, &[1; 32]).await?);
        assert!(s.agent_by_fingerprint("fp-after-revocation").await?.is_none());
        assert!(!s.renew_agent_cert(Uuid::new_v4(), "fp-nobody", 2000, &[1; 32]).await?);
        s.close().await;
        Ok(())
    }

    #[tokio::test]
    async fn inactive_agents_expire_after_ten_days(backend: TestBackend) -> anyhow::Result<()> {
        let (s, tid) = store(backend).await?;
        let day = 24 * 3600;
        // The clock the test controls.
        let now = 100 * day;
        let stale = agent(&s, tid, 0).await?;
        s.agent_heartbeat(stale, None, now - (10 * day + 1)).await?;
        s.add_agent_stats(
            stale,
            &AgentTally {
                served: 1,
                ..Default::default()
            },
            1,
        )
        .await?;
        let recent = agent(&s, tid, 0).await?;
        s.agent_heartbeat(recent, None, now - 9 * day).await?;
        let never_connected = agent(&s, tid, now - 11 * day).await?;
        let revoked = agent(&s, tid, 0).await?;
        s.agent_heartbeat(revoked, None, now - 11 * day).await?;
        assert!(s.revoke_agent(tid, revoked).await?);
        let revoked_recent = agent(&s, tid, 0).await?;
        s.agent_heartbeat(revoked_recent, None, now - day).await?;
        assert!(s.revoke_agent(tid, revoked_recent).await?);
        // Connected agents stay whatever their last_seen says.
        let connected = agent(&s, tid, 0).await?;
        s.agent_heartbeat(connected, None, now - 30 * day).await?;
        // Exactly 10 days: goes (the rule is "10 days or more").
        let exactly = agent(&s, tid, 0).await?;
        s.agent_heartbeat(exactly, None, now - 10 * day).await?;

        // Seven registered, two of them revoked.
        assert_eq!(s.active_agent_count(tid).await?, 5);
        assert_eq!(s.active_agent_count(Uuid::new_v4()).await?, 0);
        let mut removed = s.remove_inactive_agents(now, &[connected]).await?;
        removed.sort();
        let mut want = vec![stale, never_connected, revoked, exactly];
        want.sort();
        assert_eq!(removed, want);
        let left: Vec<Uuid> = s.agents(tid).await?.into_iter().map(|a| a.id).collect();
        assert_eq!(left.len(), 3);
        assert!(left.contains(&recent) && left.contains(&revoked_recent) && left.contains(&connected));
        assert!(s.agent_stats(tid).await?.is_empty());
        // The removed agent's certificate now belongs to no agent: refused.
        assert!(s.agent_by_fingerprint(&stale.to_string()).await?.is_none());
        // Once it is no longer connected, the long-silent agent goes too.
        assert!(s
            .remove_inactive_agents(now, &[])
            .await?
            .contains(&connected));
        assert!(s
            .remove_inactive_agents(now + day - 1, &[])
            .await?
            .is_empty());
        assert_eq!(
            s.remove_inactive_agents(now + day, &[]).await?,
            vec![recent]
        );
        s.close().await;
        Ok(())
    }
}
