//! PostgreSQL: the audit log.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::audit::*;

fn entry(r: &sqlx::postgres::PgRow) -> Result<AuditEntry> {
    let actor_id: String = r.try_get("actor_id")?;
    Ok(AuditEntry {
        id: r.try_get("id")?,
        time_ms: r.try_get("time_ms")?,
        actor_id: Uuid::parse_str(&actor_id).unwrap_or_default(),
        actor: r.try_get("actor")?,
        client_ip: r.try_get("client_ip")?,
        via: r.try_get("via")?,
        operation: r.try_get("operation")?,
        target: r.try_get("target")?,
        status: u16::try_from(r.try_get::<i64, _>("status")?).unwrap_or(0),
        correlation_id: r.try_get("correlation_id")?,
        request: r.try_get("request")?,
        before: r.try_get("before_state")?,
        after: r.try_get("after_state")?,
    })
}

#[async_trait]
impl AuditStore for PgStore {
    async fn add_audit(&self, tenant_id: Uuid, e: &AuditEntry) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO audit_log (tenant_id, time_ms, actor_id, actor, client_ip, via, operation,
                 target, status, correlation_id, request, before_state, after_state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING id",
        )
        .bind(tenant_id.to_string())
        .bind(e.time_ms)
        .bind(e.actor_id.to_string())
        .bind(&e.actor)
        .bind(&e.client_ip)
        .bind(&e.via)
        .bind(&e.operation)
        .bind(&e.target)
        .bind(i64::from(e.status))
        .bind(&e.correlation_id)
        .bind(&e.request)
        .bind(&e.before)
        .bind(&e.after)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    async fn audit_entries(&self, tenant_id: Uuid, f: &AuditFilter) -> Result<Vec<AuditEntry>> {
        let rows = sqlx::query(
            "SELECT * FROM audit_log WHERE tenant_id = $1
               AND ($2::BIGINT IS NULL OR time_ms >= $2)
               AND ($3::BIGINT IS NULL OR time_ms < $3)
               AND ($4::TEXT IS NULL OR lower(actor) = lower($4))
               AND ($5::TEXT IS NULL OR operation = $5)
               AND ($6::TEXT IS NULL OR strpos(lower(target), lower($6)) > 0)
               AND ($7::BIGINT IS NULL OR id < $7)
             ORDER BY id DESC LIMIT $8",
        )
        .bind(tenant_id.to_string())
        .bind(f.since_ms)
        .bind(f.until_ms)
        .bind(&f.actor)
        .bind(&f.operation)
        .bind(&f.target)
        .bind(f.before_id)
        .bind(f.limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(entry).collect()
    }

    async fn purge_audit(&self, now_ms: i64) -> Result<u64> {
        self.purge_past_retention("audit_log", |s| s.audit_retention_days, now_ms)
            .await
    }
}

#[async_trait]
impl BrandingStore for PgStore {
    async fn set_logo(&self, tenant_id: Uuid, logo: &Logo) -> Result<()> {
        sqlx::query(
            "INSERT INTO tenant_logos (tenant_id, content_type, bytes, updated_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant_id) DO UPDATE SET content_type = excluded.content_type,
                 bytes = excluded.bytes, updated_at = excluded.updated_at",
        )
        .bind(tenant_id.to_string())
        .bind(&logo.content_type)
        .bind(&logo.bytes)
        .bind(logo.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn logo(&self, tenant_id: Uuid) -> Result<Option<Logo>> {
        let row = sqlx::query(
            "SELECT content_type, bytes, updated_at FROM tenant_logos WHERE tenant_id = $1",
        )
        .bind(tenant_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r: sqlx::postgres::PgRow| {
            Ok(Logo {
                content_type: r.try_get("content_type")?,
                bytes: r.try_get("bytes")?,
                updated_at: r.try_get("updated_at")?,
            })
        })
        .transpose()
    }

    async fn remove_logo(&self, tenant_id: Uuid) -> Result<bool> {
        let r = sqlx::query("DELETE FROM tenant_logos WHERE tenant_id = $1")
            .bind(tenant_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(r.rows_affected() > 0)
    }

    async fn logo_version(&self, tenant_id: Uuid) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT updated_at FROM tenant_logos WHERE tenant_id = $1")
                .bind(tenant_id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }
}
