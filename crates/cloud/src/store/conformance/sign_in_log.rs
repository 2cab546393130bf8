//! Rules of the store's sign in log area, run on every backend.

use uuid::Uuid;

use crate::store::{test_store_on, DomainKind, SignIn};

fn line(i: i64, other: Vec<Uuid>) -> SignIn {
    SignIn {
        id: 0,
        time_ms: i,
        username: format!("u{i}@corp.test"),
        client_id: (i % 2 == 0).then(|| "app".to_string()),
        result: "failure".into(),
        aadsts: Some(50126),
        win32: Some(1326),
        agent_id: Some(Uuid::nil()),
        other_agents: other,
        latency_ms: Some(i),
        correlation_id: format!("c{i}"),
        client_ip: None,
    }
}

super::on_every_backend! {
    /// Lines queued in bursts of every size (one, under one statement's rows, over it, over a
    /// batch) are all written, in order, each with its values, once a flush returns.
    #[tokio::test]
    async fn every_queued_line_is_written_once(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir, t) = test_store_on(backend, "signinlog", "corp.test", DomainKind::Managed).await?;
        let passed_over = vec![Uuid::new_v4(), Uuid::new_v4()];
        let mut n = 0;
        for burst in [1, 63, 64, 65, 700] {
            for _ in 0..burst {
                n += 1;
                let other = if n == 100 {
                    passed_over.clone()
                } else {
                    Vec::new()
                };
                s.log_sign_in(t, &line(n, other)).await?;
            }
            s.flush_sign_ins().await;
            let all = s.sign_ins(t, 10_000).await?;
            let max = all.iter().map(|l| l.time_ms).max();
            assert_eq!(
                (all.len() as i64, max),
                (n, Some(n)),
                "after a burst of {burst}"
            );
        }
        let all = s.sign_ins(t, 10_000).await?;
        let mut times: Vec<i64> = all.iter().map(|l| l.time_ms).collect();
        times.sort_unstable();
        times.dedup();
        assert_eq!(times.len() as i64, n, "each line once");
        let l100 = all
            .iter()
            .find(|l| l.time_ms == 100)
            .ok_or_else(|| anyhow::anyhow!("line 100 missing"))?;
        assert_eq!(l100.username, "u100@corp.test");
        assert_eq!(l100.client_id.as_deref(), Some("app"));
        assert_eq!(l100.other_agents, passed_over);
        assert_eq!(l100.latency_ms, Some(100));
        s.close().await;
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }
}
