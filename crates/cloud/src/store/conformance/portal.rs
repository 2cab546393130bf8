//! Rules of the store's portal area, run on every backend.

use crate::store::SignIn;
use crate::store::*;
use uuid::Uuid;

super::on_every_backend! {
    #[tokio::test]
    async fn sign_in_aggregates(backend: TestBackend) -> anyhow::Result<()> {
        let (s, dir) = empty_test_store(backend, "portal").await?;
        let tid = Uuid::new_v4();
        let line = |t: i64, ok: bool, code: Option<u32>, agent: bool| SignIn {
            id: 0,
            time_ms: t,
            username: "u@x".into(),
            client_id: None,
            result: if ok { "success" } else { "failure" }.into(),
            aadsts: code,
            win32: None,
            agent_id: agent.then(Uuid::new_v4),
            other_agents: Vec::new(),
            latency_ms: Some(t / 1000),
            correlation_id: "c".into(),
            client_ip: None,
        };
        for l in [
            line(60_000, true, None, true),
            line(61_000, false, Some(50126), false),
            line(62_000, false, Some(50126), true),
            line(120_000, false, Some(50053), false),
        ] {
            s.log_sign_in(tid, &l).await?;
        }
        let per = s.sign_ins_per_minute(tid, 0).await?;
        assert_eq!(per.len(), 3, "{per:?}");
        assert_eq!(per[0].minute, 1);
        assert_eq!((per[0].result.as_str(), per[0].count), ("failure", 2));
        let f = s.failures_by_reason(tid, 0, 10).await?;
        assert_eq!((f[0].aadsts, f[0].count), (Some(50126), 2));
        assert_eq!(f.len(), 2);
        assert_eq!(s.sign_in_latencies(tid, 0, true, 10).await?.len(), 2);
        assert_eq!(s.sign_in_latencies(tid, 0, false, 10).await?.len(), 4);
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
