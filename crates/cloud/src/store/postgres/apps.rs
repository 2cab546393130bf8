//! PostgreSQL: apps.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::store::app_credentials::first_secret;
use crate::store::apps::*;
use crate::store::*;

#[async_trait]
impl AppStore for PgStore {
    async fn add_app(&self, app: &App, now: i64) -> Result<()> {
        let name = &app.name;
        let uris = serde_json::to_string(&app.redirect_uris).unwrap_or_else(|_| "[]".into());
        let mut tx = self.write_tx(Lock::Tenant(app.tenant_id)).await?;
        sqlx::query(
            "INSERT INTO apps (client_id, tenant_id, name, public, redirect_uris, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&app.client_id)
        .bind(app.tenant_id.to_string())
        .bind(name)
        .bind(app.public as i64)
        .bind(uris)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, format!("app {name}")))?;
        if let Some(first) = first_secret(app, now) {
            super::app_credentials::insert_credential(&mut tx, &first).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn app(&self, tenant_id: Uuid, client_id: &str) -> Result<Option<App>> {
        let row = sqlx::query("SELECT * FROM apps WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        let app = self.app_row(row)?;
        Ok(app)
    }

    async fn apps(&self, tenant_id: Uuid) -> Result<Vec<App>> {
        let rows = sqlx::query(
            "SELECT * FROM apps WHERE tenant_id = $1 ORDER BY name COLLATE \"C\", client_id",
        )
        .bind(tenant_id.to_string())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .filter_map(|r| self.app_row(Some(r)).transpose())
            .collect()
    }

    async fn set_app_redirect_uris(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        uris: &[String],
    ) -> Result<()> {
        let json = serde_json::to_string(uris)
            .map_err(|e| StoreError::Db(sqlx::Error::Encode(Box::new(e))))?;
        sqlx::query("UPDATE apps SET redirect_uris = $1 WHERE tenant_id = $2 AND client_id = $3")
            .bind(json)
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_app_groups_claim(&self, tenant_id: Uuid, client_id: &str, on: bool) -> Result<()> {
        sqlx::query("UPDATE apps SET groups_claim = $1 WHERE tenant_id = $2 AND client_id = $3")
            .bind(i64::from(on))
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn delete_app(&self, tenant_id: Uuid, client_id: &str) -> Result<()> {
        let client_id = client_id.to_ascii_lowercase();
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        for table in [
            "refresh_tokens",
            "auth_codes",
            "device_codes",
            "app_credentials",
        ] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = $1 AND client_id = $2"
            ))
            .bind(tenant_id.to_string())
            .bind(&client_id)
            .execute(&mut *tx)
            .await?;
        }
        let r = sqlx::query("DELETE FROM apps WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant_id.to_string())
            .bind(&client_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, format!("app {client_id}")))?;
        if r.rows_affected() != 1 {
            return Err(StoreError::NotFound(format!("app {client_id}")));
        }
        tx.commit().await?;
        Ok(())
    }
}
