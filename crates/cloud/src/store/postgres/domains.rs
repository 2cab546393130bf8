//! PostgreSQL: domains.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::store::domains::*;
use crate::store::*;

#[async_trait]
impl DomainStore for PgStore {
    async fn add_domain(
        &self,
        tenant_id: Uuid,
        name: &str,
        kind: DomainKind,
        verification_code: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO domains (name, tenant_id, kind, created_at, verified, verification_code) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(name.to_ascii_lowercase())
            .bind(tenant_id.to_string())
            .bind(kind.as_str())
            .bind(now)
            .bind(verification_code.is_none() as i64)
            .bind(verification_code)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, format!("domain {name}")))?;
        Ok(())
    }

    async fn domain(&self, name: &str) -> Result<Option<Domain>> {
        let key = name.to_ascii_lowercase();
        let row = sqlx::query("SELECT * FROM domains WHERE name = $1::citext AND verified = 1")
            .bind(&key)
            .fetch_optional(&self.pool)
            .await?;
        let d = row.as_ref().map(Self::domain_row).transpose()?;
        Ok(d)
    }

    async fn domains(&self, tenant_id: Uuid) -> Result<Vec<Domain>> {
        let rows = sqlx::query("SELECT * FROM domains WHERE tenant_id = $1 ORDER BY name")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::domain_row).collect()
    }

    async fn domain_any(&self, name: &str) -> Result<Option<Domain>> {
        let row = sqlx::query("SELECT * FROM domains WHERE name = $1::citext")
            .bind(name.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(PgStore::domain_row).transpose()
    }

    async fn set_domain_verified(&self, tenant_id: Uuid, name: &str) -> Result<()> {
        sqlx::query("UPDATE domains SET verified = 1 WHERE tenant_id = $1 AND name = $2::citext")
            .bind(tenant_id.to_string())
            .bind(name.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn domain_user_count(&self, tenant_id: Uuid, name: &str) -> Result<i64> {
        let pattern = format!("%@{}", name.replace(['%', '_', '\\'], ""));
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM users WHERE tenant_id = $1 AND upn ILIKE $2 AND upn NOT LIKE '%#released-%'",
        )
        .bind(tenant_id.to_string())
        .bind(pattern)
        .fetch_one(&self.pool)
        .await?)
    }

    async fn remove_domain(&self, tenant_id: Uuid, name: &str) -> Result<()> {
        let name = name.to_ascii_lowercase();
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        sqlx::query("DELETE FROM federation WHERE domain = $1::citext AND tenant_id = $2")
            .bind(&name)
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM domains WHERE name = $1::citext AND tenant_id = $2")
            .bind(&name)
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("domain {name}")));
        }
        tx.commit().await?;
        Ok(())
    }

    async fn purge_unverified_domains(&self, now: i64, max_age_secs: i64) -> Result<u64> {
        let mut tx = self.write_tx(Lock::Global).await?;
        sqlx::query(
            "DELETE FROM federation WHERE domain IN (SELECT name FROM domains WHERE verified = 0 AND created_at < $1)",
        )
        .bind(now - max_age_secs)
        .execute(&mut *tx)
        .await?;
        let r = sqlx::query("DELETE FROM domains WHERE verified = 0 AND created_at < $1")
            .bind(now - max_age_secs)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(r.rows_affected())
    }
}
