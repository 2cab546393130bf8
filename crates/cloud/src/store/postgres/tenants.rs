//! PostgreSQL: tenants.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::store::tenants::*;
use crate::store::*;

#[async_trait]
impl TenantStore for PgStore {
    async fn create_tenant(&self, id: Uuid, name: &str, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(id.to_string())
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, format!("tenant {name}")))?;
        Ok(())
    }

    async fn save_settings(
        &self,
        tenant_id: Uuid,
        settings: &crate::model::settings::Settings,
    ) -> Result<()> {
        let defaults = crate::model::settings::Settings::default().pairs();
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        sqlx::query("DELETE FROM tenant_settings WHERE tenant_id = $1")
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        for ((k, v), (_, d)) in settings.pairs().into_iter().zip(defaults) {
            if v != d {
                sqlx::query(
                    "INSERT INTO tenant_settings (tenant_id, key, value) VALUES ($1, $2, $3)",
                )
                .bind(tenant_id.to_string())
                .bind(k)
                .bind(v)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn tenant(&self, name_or_id: &str) -> Result<Option<Tenant>> {
        let key = name_or_id.to_ascii_lowercase();
        let row = sqlx::query("SELECT * FROM tenants WHERE name = $1::citext OR id = $2")
            .bind(name_or_id)
            .bind(&key)
            .fetch_optional(&self.pool)
            .await?;
        let mut t = row.as_ref().map(Self::tenant_row).transpose()?;
        if let Some(t) = &mut t {
            self.load_settings(t).await?;
        }
        Ok(t)
    }

    async fn set_pta(&self, tenant_id: Uuid, enabled: bool) -> Result<()> {
        sqlx::query("UPDATE tenants SET pta_enabled = $1 WHERE id = $2")
            .bind(enabled as i64)
            .bind(tenant_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
