//! Store rows of authentication agents: registration, connection and heartbeat times,
//! revocation, request statistics (kept across disconnects and restarts of the cloud), and the
//! removal of agents inactive for [`AGENT_EXPIRY_SECS`].

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sqlx::Row;
use uuid::Uuid;

use super::{conflict, uuid_col, AgentRecord, Result, Store, StoreError};

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

impl Store {
    /// Registers an agent while the tenant has fewer than `max_active` agents not revoked
    /// ([`StoreError::TooManyAgents`] otherwise), in one statement: however many
    /// registrations run at once, the tenant never has more than `max_active`.
    #[allow(clippy::too_many_arguments)]
    pub async fn add_agent(
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
    ) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO agents (id, tenant_id, cert_fingerprint, cert_expires_at, hpke_public_key, host, version, registered_at)
             SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8
             WHERE (SELECT COUNT(*) FROM agents WHERE tenant_id = ?2 AND revoked = 0) < ?9",
        )
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(cert_fingerprint)
        .bind(cert_expires_at)
        .bind(hpke_public_key)
        .bind(host)
        .bind(version)
        .bind(now)
        .bind(i64::try_from(max_active).unwrap_or(i64::MAX))
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("agent {id}")))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::TooManyAgents { max: max_active });
        }
        Ok(())
    }

    fn agent_row(row: &sqlx::sqlite::SqliteRow) -> Result<AgentRecord> {
        let suffixes: Option<String> = row.try_get("upn_suffixes")?;
        Ok(AgentRecord {
            id: uuid_col(row, "id")?,
            tenant_id: uuid_col(row, "tenant_id")?,
            cert_fingerprint: row.try_get("cert_fingerprint")?,
            cert_expires_at: row.try_get("cert_expires_at")?,
            hpke_public_key: row.try_get("hpke_public_key")?,
            host: row.try_get("host")?,
            version: row.try_get("version")?,
            registered_at: row.try_get("registered_at")?,
            last_seen: row.try_get("last_seen")?,
            source_ip: row.try_get("source_ip")?,
            revoked: row.try_get::<i64, _>("revoked")? != 0,
            upn_suffixes: suffixes
                .and_then(|s| serde_json::from_str(&s).ok())
                .unwrap_or_default(),
        })
    }

    pub async fn agent_by_fingerprint(&self, fingerprint: &str) -> Result<Option<AgentRecord>> {
        let row = sqlx::query("SELECT * FROM agents WHERE cert_fingerprint = ?")
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::agent_row).transpose()
    }

    pub async fn agents(&self, tenant_id: Uuid) -> Result<Vec<AgentRecord>> {
        let rows = sqlx::query("SELECT * FROM agents WHERE tenant_id = ? ORDER BY registered_at")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::agent_row).collect()
    }

    /// The tenant's registered agents that are not revoked (the per-tenant limit counts
    /// these), counted by the store: a registration must not read every agent's record.
    pub async fn active_agent_count(&self, tenant_id: Uuid) -> Result<usize> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE tenant_id = ? AND revoked = 0")
                .bind(tenant_id.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Records a connection: when, from where, and what the agent announced.
    #[allow(clippy::too_many_arguments)]
    pub async fn agent_seen(
        &self,
        id: Uuid,
        host: &str,
        version: &str,
        source_ip: &str,
        upn_suffixes: &[String],
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE agents SET last_seen = ?, host = ?, version = ?, source_ip = ?, upn_suffixes = ? WHERE id = ?",
        )
        .bind(now)
        .bind(host)
        .bind(version)
        .bind(source_ip)
        .bind(serde_json::to_string(upn_suffixes).unwrap_or_else(|_| "[]".into()))
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks an agent revoked: its certificate is refused from now on. Returns whether the
    /// agent exists in the tenant.
    pub async fn revoke_agent(&self, tenant_id: Uuid, id: Uuid) -> Result<bool> {
        let r = sqlx::query("UPDATE agents SET revoked = 1 WHERE id = ? AND tenant_id = ?")
            .bind(id.to_string())
            .bind(tenant_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Records that a connected agent was heard from, and reads in the same statement
    /// whether it may stay connected: any cloud process sharing the store may have revoked
    /// it meanwhile.
    pub async fn agent_heartbeat(&self, id: Uuid, now: i64) -> Result<AgentStanding> {
        let row = sqlx::query(
            "UPDATE agents SET last_seen = ? WHERE id = ? RETURNING revoked, cert_expires_at",
        )
        .bind(now)
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(AgentStanding::Removed);
        };
        Ok(if row.try_get::<i64, _>("revoked")? != 0 {
            AgentStanding::Revoked
        } else if row.try_get::<i64, _>("cert_expires_at")? < now {
            AgentStanding::CertificateExpired
        } else {
            AgentStanding::Admitted
        })
    }

    /// Adds `delta` to the agent's stored statistics (one transaction).
    pub async fn add_agent_stats(&self, id: Uuid, delta: &AgentTally, now: i64) -> Result<()> {
        if delta.is_empty() {
            return Ok(());
        }
        let mut tx = self.write_tx().await?;
        let row = sqlx::query("SELECT stats FROM agent_stats WHERE agent_id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let mut total: AgentTally = match row {
            Some(r) => serde_json::from_str(&r.try_get::<String, _>("stats")?).unwrap_or_default(),
            None => AgentTally::default(),
        };
        total.merge(delta);
        sqlx::query(
            "INSERT INTO agent_stats (agent_id, stats, updated_at) VALUES (?, ?, ?)
             ON CONFLICT (agent_id) DO UPDATE SET stats = excluded.stats, updated_at = excluded.updated_at",
        )
        .bind(id.to_string())
        .bind(serde_json::to_string(&total).unwrap_or_else(|_| "{}".into()))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The stored statistics of a tenant's agents.
    pub async fn agent_stats(&self, tenant_id: Uuid) -> Result<HashMap<Uuid, AgentTally>> {
        let rows = sqlx::query(
            "SELECT s.agent_id, s.stats FROM agent_stats s JOIN agents a ON a.id = s.agent_id WHERE a.tenant_id = ?",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        let mut out = HashMap::new();
        for r in rows {
            let stats: String = r.try_get("stats")?;
            out.insert(
                uuid_col(&r, "agent_id")?,
                serde_json::from_str(&stats).unwrap_or_default(),
            );
        }
        Ok(out)
    }

    /// Removes the agents (and their statistics) of every tenant that were last seen (or, never
    /// connected, registered) [`AGENT_EXPIRY_SECS`] or more before `now`, except those in
    /// `connected`. Revoked agents go by the same rule. Returns the removed agents' ids.
    pub async fn remove_inactive_agents(&self, now: i64, connected: &[Uuid]) -> Result<Vec<Uuid>> {
        let cutoff = now - AGENT_EXPIRY_SECS;
        let mut tx = self.write_tx().await?;
        let rows =
            sqlx::query("SELECT id FROM agents WHERE COALESCE(last_seen, registered_at) <= ?")
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
        let mut removed = Vec::new();
        for r in rows {
            let id = uuid_col(&r, "id")?;
            if connected.contains(&id) {
                continue;
            }
            sqlx::query("DELETE FROM agent_stats WHERE agent_id = ?")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM agents WHERE id = ?")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            removed.push(id);
        }
        tx.commit().await?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
