//! PostgreSQL: agents.

use async_trait::async_trait;
use sqlx::Row;
use std::collections::HashMap;
use uuid::Uuid;

use super::*;
use crate::store::agents::*;
use crate::store::*;

impl PgStore {
    fn agent_row(row: &sqlx::postgres::PgRow) -> Result<AgentRecord> {
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
            next_cert_fingerprint: row.try_get("next_cert_fingerprint")?,
            next_cert_expires_at: row.try_get("next_cert_expires_at")?,
        })
    }
}

#[async_trait]
impl AgentStore for PgStore {
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
    ) -> Result<()> {
        // The count and the insert under the tenant's lock: parallel registrations cannot
        // all pass the count.
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        let done = sqlx::query(
            "INSERT INTO agents (id, tenant_id, cert_fingerprint, cert_expires_at, hpke_public_key, host, version, registered_at)
             SELECT $1, $2, $3, $4, $5, $6, $7, $8
             WHERE (SELECT COUNT(*) FROM agents WHERE tenant_id = $2 AND revoked = 0) < $9",
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
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, format!("agent {id}")))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::TooManyAgents { max: max_active });
        }
        tx.commit().await?;
        Ok(())
    }

    async fn agent_by_fingerprint(&self, fingerprint: &str) -> Result<Option<AgentRecord>> {
        let row = sqlx::query(
            "SELECT * FROM agents WHERE cert_fingerprint = $1 OR next_cert_fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::agent_row).transpose()
    }

    async fn renew_agent_cert(
        &self,
        id: Uuid,
        cert_fingerprint: &str,
        cert_expires_at: i64,
        hpke_public_key: &[u8],
    ) -> Result<bool> {
        let r = sqlx::query(
            "UPDATE agents SET next_cert_fingerprint = $1, next_cert_expires_at = $2,
                 next_hpke_public_key = $3
             WHERE id = $4 AND revoked = 0",
        )
        .bind(cert_fingerprint)
        .bind(cert_expires_at)
        .bind(hpke_public_key)
        .bind(id.to_string())
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("certificate {cert_fingerprint}")))?;
        Ok(r.rows_affected() == 1)
    }

    async fn promote_agent_cert(
        &self,
        id: Uuid,
        cert_fingerprint: &str,
    ) -> Result<Option<AgentRecord>> {
        let row = sqlx::query(
            "UPDATE agents SET cert_fingerprint = next_cert_fingerprint,
                 cert_expires_at = next_cert_expires_at, hpke_public_key = next_hpke_public_key,
                 next_cert_fingerprint = NULL, next_cert_expires_at = NULL,
                 next_hpke_public_key = NULL
             WHERE id = $1 AND next_cert_fingerprint = $2 AND revoked = 0
             RETURNING *",
        )
        .bind(id.to_string())
        .bind(cert_fingerprint)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(Self::agent_row).transpose()
    }

    async fn agents(&self, tenant_id: Uuid) -> Result<Vec<AgentRecord>> {
        let rows = sqlx::query("SELECT * FROM agents WHERE tenant_id = $1 ORDER BY registered_at")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::agent_row).collect()
    }

    async fn active_agent_count(&self, tenant_id: Uuid) -> Result<usize> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM agents WHERE tenant_id = $1 AND revoked = 0")
                .bind(tenant_id.to_string())
                .fetch_one(&self.pool)
                .await?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    async fn agent_seen(
        &self,
        id: Uuid,
        host: &str,
        version: &str,
        source_ip: &str,
        upn_suffixes: &[String],
        now: i64,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE agents SET last_seen = $1, host = $2, version = $3, source_ip = $4, upn_suffixes = $5 WHERE id = $6",
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

    async fn revoke_agent(&self, tenant_id: Uuid, id: Uuid) -> Result<bool> {
        let r = sqlx::query("UPDATE agents SET revoked = 1 WHERE id = $1 AND tenant_id = $2")
            .bind(id.to_string())
            .bind(tenant_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() == 1)
    }

    async fn agent_heartbeat(
        &self,
        id: Uuid,
        fingerprint: Option<&str>,
        now: i64,
    ) -> Result<AgentStanding> {
        let row = sqlx::query(
            "UPDATE agents SET last_seen = $1 WHERE id = $2
             RETURNING revoked, cert_expires_at, cert_fingerprint, next_cert_fingerprint",
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
        } else if fingerprint.is_some_and(|fp| {
            row.try_get::<String, _>("cert_fingerprint").ok().as_deref() != Some(fp)
                && row
                    .try_get::<Option<String>, _>("next_cert_fingerprint")
                    .ok()
                    .flatten()
                    .as_deref()
                    != Some(fp)
        }) {
            AgentStanding::CertificateReplaced
        } else {
            AgentStanding::Admitted
        })
    }

    async fn add_agent_stats(&self, id: Uuid, delta: &AgentTally, now: i64) -> Result<()> {
        if delta.is_empty() {
            return Ok(());
        }
        // Under the agent's lock: two flushes of one agent add up, neither is lost.
        let mut tx = self.write_tx(Lock::Agent(id)).await?;
        let row = sqlx::query("SELECT stats FROM agent_stats WHERE agent_id = $1")
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?;
        let mut total: AgentTally = match row {
            Some(r) => serde_json::from_str(&r.try_get::<String, _>("stats")?).unwrap_or_default(),
            None => AgentTally::default(),
        };
        total.merge(delta);
        sqlx::query(
            "INSERT INTO agent_stats (agent_id, stats, updated_at) VALUES ($1, $2, $3)
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

    async fn agent_stats(&self, tenant_id: Uuid) -> Result<HashMap<Uuid, AgentTally>> {
        let rows = sqlx::query(
            "SELECT s.agent_id, s.stats FROM agent_stats s JOIN agents a ON a.id = s.agent_id WHERE a.tenant_id = $1",
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

    async fn remove_inactive_agents(&self, now: i64, connected: &[Uuid]) -> Result<Vec<Uuid>> {
        let cutoff = now - AGENT_EXPIRY_SECS;
        let mut tx = self.write_tx(Lock::Global).await?;
        let rows =
            sqlx::query("SELECT id FROM agents WHERE COALESCE(last_seen, registered_at) <= $1")
                .bind(cutoff)
                .fetch_all(&mut *tx)
                .await?;
        let mut removed = Vec::new();
        for r in rows {
            let id = uuid_col(&r, "id")?;
            if connected.contains(&id) {
                continue;
            }
            sqlx::query("DELETE FROM agent_stats WHERE agent_id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            sqlx::query("DELETE FROM agents WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            removed.push(id);
        }
        tx.commit().await?;
        Ok(removed)
    }
}
