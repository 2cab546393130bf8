//! PostgreSQL: agent releases.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::{conflict, PgStore};
use crate::store::releases::{ReleaseInfo, ReleaseStore};
use crate::store::Result;

const COLUMNS: &str =
    "version, target, sha256, size, min_cloud_version, signed_manifest, added_at, added_by";

fn info(row: &sqlx::postgres::PgRow) -> Result<ReleaseInfo> {
    Ok(ReleaseInfo {
        version: row.try_get("version")?,
        target: row.try_get("target")?,
        sha256: row.try_get("sha256")?,
        size: row.try_get("size")?,
        min_cloud_version: row.try_get("min_cloud_version")?,
        signed_manifest: row.try_get("signed_manifest")?,
        added_at: row.try_get("added_at")?,
        added_by: row.try_get("added_by")?,
    })
}

#[async_trait]
impl ReleaseStore for PgStore {
    async fn add_release(&self, tenant_id: Uuid, r: &ReleaseInfo, package: &[u8]) -> Result<()> {
        sqlx::query(&format!(
            "INSERT INTO agent_releases (tenant_id, {COLUMNS}, package)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        ))
        .bind(tenant_id.to_string())
        .bind(&r.version)
        .bind(&r.target)
        .bind(&r.sha256)
        .bind(r.size)
        .bind(&r.min_cloud_version)
        .bind(&r.signed_manifest)
        .bind(r.added_at)
        .bind(&r.added_by)
        .bind(package)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("release {}", r.version)))?;
        Ok(())
    }

    async fn releases(&self, tenant_id: Uuid) -> Result<Vec<ReleaseInfo>> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agent_releases WHERE tenant_id = $1 ORDER BY added_at, version"
        ))
        .bind(tenant_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(info).collect()
    }

    async fn release_package(&self, tenant_id: Uuid, version: &str) -> Result<Option<Vec<u8>>> {
        let row =
            sqlx::query("SELECT package FROM agent_releases WHERE tenant_id = $1 AND version = $2")
                .bind(tenant_id.to_string())
                .bind(version)
                .fetch_optional(&self.pool)
                .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("package")?),
            None => None,
        })
    }

    async fn remove_release(&self, tenant_id: Uuid, version: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM agent_releases WHERE tenant_id = $1 AND version = $2")
            .bind(tenant_id.to_string())
            .bind(version)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }
}
