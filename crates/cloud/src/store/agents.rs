//! Store rows of authentication agents: registration, connection and heartbeat times,
//! revocation, request statistics (kept across disconnects and restarts of the cloud), and the
//! removal of agents inactive for [`AGENT_EXPIRY_SECS`].

use async_trait::async_trait;
use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{AgentRecord, Result};

/// Agents not seen for this long (10 days) are removed by the periodic purge, unless
/// connected. Revoked agents too: their certificate stays refused, since it then belongs to
/// no agent.
pub const AGENT_EXPIRY_SECS: i64 = 10 * 24 * 3600;

/// Round-trip histogram buckets: bucket `i` holds round trips up to `0.1 ms * 1.2^i`; the
/// last one holds everything longer. Percentiles are read as the bucket's upper bound (within
/// 20 %).
pub const RTT_BUCKETS: usize = 80;
const RTT_FIRST_MS: f64 = 0.1;
const RTT_FACTOR: f64 = 1.2;

fn rtt_upper_ms(i: usize) -> f64 {
    RTT_FIRST_MS * RTT_FACTOR.powi(i32::try_from(i).unwrap_or(i32::MAX))
}

/// An agent's request statistics, as measured by the cloud: requests answered, failures by
/// Win32 code, errors by kind, and a histogram of round trips (cloud -> agent -> cloud).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTally {
    pub served: u64,
    /// Denials by Win32 code (e.g. {1326: 3, 1909: 1}).
    pub failures: BTreeMap<u32, u64>,
    /// Errors (the agent could not ask the directory, or refused the request) by kind.
    pub errors: BTreeMap<String, u64>,
    /// Counts per round-trip bucket (see [`RTT_BUCKETS`]); empty when none yet.
    pub rtt_buckets: Vec<u64>,
}

impl AgentTally {
    /// Counts one answered request that took `rtt_ms`.
    pub fn record_rtt(&mut self, rtt_ms: f64) {
        if self.rtt_buckets.len() != RTT_BUCKETS {
            self.rtt_buckets.resize(RTT_BUCKETS, 0);
        }
        let i = (0..RTT_BUCKETS - 1)
            .find(|&i| rtt_ms <= rtt_upper_ms(i))
            .unwrap_or(RTT_BUCKETS - 1);
        self.rtt_buckets[i] += 1;
        self.served += 1;
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: &AgentTally) {
        self.served += other.served;
        for (k, v) in &other.failures {
            *self.failures.entry(*k).or_default() += v;
        }
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        if !other.rtt_buckets.is_empty() {
            if self.rtt_buckets.len() != RTT_BUCKETS {
                self.rtt_buckets.resize(RTT_BUCKETS, 0);
            }
            for (a, b) in self.rtt_buckets.iter_mut().zip(&other.rtt_buckets) {
                *a += b;
            }
        }
    }

    /// Whether nothing was counted.
    pub fn is_empty(&self) -> bool {
        self.served == 0
            && self.failures.is_empty()
            && self.errors.is_empty()
            && self.rtt_buckets.iter().all(|&n| n == 0)
    }

    /// The `q` quantile (0..=1) of the round trips, milliseconds; `None` before any.
    pub fn rtt_quantile_ms(&self, q: f64) -> Option<f64> {
        let total: u64 = self.rtt_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.rtt_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(rtt_upper_ms(i));
            }
        }
        None
    }
}

/// Whether a connected agent may stay connected, as the store says now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStanding {
    /// Registered, not revoked, certificate valid.
    Admitted,
    /// Revoked (by this or another cloud process).
    Revoked,
    /// Its certificate has expired.
    CertificateExpired,
    /// No longer registered.
    Removed,
}

/// Authentication agents of a tenant: registration under the tenant's limit (one
/// conditional insert), presence, revocation and answer counts.
/// Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait AgentStore: Send + Sync {
    /// Registers an agent while the tenant has fewer than `max_active` agents not revoked
    /// ([`StoreError::TooManyAgents`] otherwise), in one statement: however many
    /// registrations run at once, the tenant never has more than `max_active`.
    #[allow(clippy::too_many_arguments)]
    async fn add_agent(
        &self,
        id: Uuid,
        tenant_id: Uuid,
        cert_fingerprint: &str,
        cert_expires_at: i64,
        hpke_public_key: &[u8],
        host: &str,
        version: &str,
        now: i64,
        max_active: usize,
    ) -> Result<()>;

    async fn agent_by_fingerprint(&self, fingerprint: &str) -> Result<Option<AgentRecord>>;

    async fn agents(&self, tenant_id: Uuid) -> Result<Vec<AgentRecord>>;

    /// The tenant's registered agents that are not revoked (the per-tenant limit counts
    /// these), counted by the store: a registration must not read every agent's record.
    async fn active_agent_count(&self, tenant_id: Uuid) -> Result<usize>;

    /// Records a connection: when, from where, and what the agent announced.
    #[allow(clippy::too_many_arguments)]
    async fn agent_seen(
        &self,
        id: Uuid,
        host: &str,
        version: &str,
        source_ip: &str,
        upn_suffixes: &[String],
        now: i64,
    ) -> Result<()>;

    /// Marks an agent revoked: its certificate is refused from now on. Returns whether the
    /// agent exists in the tenant.
    async fn revoke_agent(&self, tenant_id: Uuid, id: Uuid) -> Result<bool>;

    /// Records that a connected agent was heard from, and reads in the same statement
    /// whether it may stay connected: any cloud process sharing the store may have revoked
    /// it meanwhile.
    async fn agent_heartbeat(&self, id: Uuid, now: i64) -> Result<AgentStanding>;

    /// Adds `delta` to the agent's stored statistics (one transaction).
    async fn add_agent_stats(&self, id: Uuid, delta: &AgentTally, now: i64) -> Result<()>;

    /// The stored statistics of a tenant's agents.
    async fn agent_stats(&self, tenant_id: Uuid) -> Result<HashMap<Uuid, AgentTally>>;

    /// Removes the agents (and their statistics) of every tenant that were last seen (or, never
    /// connected, registered) [`AGENT_EXPIRY_SECS`] or more before `now`, except those in
    /// `connected`. Revoked agents go by the same rule. Returns the removed agents' ids.
    async fn remove_inactive_agents(&self, now: i64, connected: &[Uuid]) -> Result<Vec<Uuid>>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::*;
    use uuid::Uuid;

    async fn store() -> anyhow::Result<(Store, Uuid)> {
        let dir = std::env::temp_dir().join(format!("passthru-agents-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let s = Store::open(&dir.join("t.db"), true).await?;
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

    /// 64 registrations at once into a tenant that may have 5: exactly 5 are stored, and a
    /// revoked agent frees its place.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn parallel_registrations_stop_at_the_limit() -> anyhow::Result<()> {
        let (s, tid) = store().await?;
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
        Ok(())
    }

    #[tokio::test]
    async fn stats_accumulate_across_flushes() -> anyhow::Result<()> {
        let (s, tid) = store().await?;
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
        Ok(())
    }

    #[tokio::test]
    async fn a_heartbeat_reads_the_agents_standing() -> anyhow::Result<()> {
        let (s, tid) = store().await?;
        let id = agent(&s, tid, 1).await?;
        assert_eq!(s.agent_heartbeat(id, 10).await?, AgentStanding::Admitted);
        assert!(s.revoke_agent(tid, id).await?);
        assert_eq!(s.agent_heartbeat(id, 11).await?, AgentStanding::Revoked);
        let expiring = Uuid::new_v4();
        s.add_agent(expiring, tid, "fp-expiring", 100, &[7; 32], "h", "1", 1, 40)
            .await?;
        assert_eq!(
            s.agent_heartbeat(expiring, 100).await?,
            AgentStanding::Admitted
        );
        assert_eq!(
            s.agent_heartbeat(expiring, 101).await?,
            AgentStanding::CertificateExpired
        );
        assert_eq!(
            s.agent_heartbeat(Uuid::new_v4(), 10).await?,
            AgentStanding::Removed
        );
        Ok(())
    }

    #[tokio::test]
    async fn inactive_agents_expire_after_ten_days() -> anyhow::Result<()> {
        let (s, tid) = store().await?;
        let day = 24 * 3600;
        // The clock the test controls.
        let now = 100 * day;
        let stale = agent(&s, tid, 0).await?;
        s.agent_heartbeat(stale, now - (10 * day + 1)).await?;
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
        s.agent_heartbeat(recent, now - 9 * day).await?;
        let never_connected = agent(&s, tid, now - 11 * day).await?;
        let revoked = agent(&s, tid, 0).await?;
        s.agent_heartbeat(revoked, now - 11 * day).await?;
        assert!(s.revoke_agent(tid, revoked).await?);
        let revoked_recent = agent(&s, tid, 0).await?;
        s.agent_heartbeat(revoked_recent, now - day).await?;
        assert!(s.revoke_agent(tid, revoked_recent).await?);
        // Connected agents stay whatever their last_seen says.
        let connected = agent(&s, tid, 0).await?;
        s.agent_heartbeat(connected, now - 30 * day).await?;
        // Exactly 10 days: goes (the rule is "10 days or more").
        let exactly = agent(&s, tid, 0).await?;
        s.agent_heartbeat(exactly, now - 10 * day).await?;

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
        assert!(
            left.contains(&recent) && left.contains(&revoked_recent) && left.contains(&connected)
        );
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
        Ok(())
    }
}
