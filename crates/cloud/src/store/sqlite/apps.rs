//! SQLite: apps.

use async_trait::async_trait;
use uuid::Uuid;

use super::*;
use crate::store::apps::*;
use crate::store::*;

#[async_trait]
impl AppStore for SqliteStore {
    async fn add_app(&self, app: &App, now: i64) -> Result<()> {
        let name = &app.name;
        let uris = serde_json::to_string(&app.redirect_uris).unwrap_or_else(|_| "[]".into());
        let scopes = serde_json::to_string(&app.api_scopes).unwrap_or_else(|_| "[]".into());
        let roles = serde_json::to_string(&app.app_roles).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO apps (client_id, tenant_id, name, public, redirect_uris, secret_hash, created_at, groups_claim, spa, id_token_alg, identifier_uri, api_scopes, app_roles)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&app.client_id)
        .bind(app.tenant_id.to_string())
        .bind(name)
        .bind(app.public as i64)
        .bind(uris)
        .bind(&app.secret_hash)
        .bind(now)
        .bind(app.groups_claim as i64)
        .bind(app.spa as i64)
        .bind(app.id_token_alg())
        .bind(&app.identifier_uri)
        .bind(scopes)
        .bind(roles)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("app {name}")))?;
        Ok(())
    }

    async fn app(&self, tenant_id: Uuid, client_id: &str) -> Result<Option<App>> {
        let row = sqlx::query("SELECT * FROM apps WHERE tenant_id = ? AND client_id = ?")
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        let app = self.app_row(row)?;
        Ok(app)
    }

    async fn apps(&self, tenant_id: Uuid) -> Result<Vec<App>> {
        let rows = sqlx::query("SELECT * FROM apps WHERE tenant_id = ? ORDER BY name, client_id")
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
        sqlx::query("UPDATE apps SET redirect_uris = ? WHERE tenant_id = ? AND client_id = ?")
            .bind(json)
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_app_groups_claim(&self, tenant_id: Uuid, client_id: &str, on: bool) -> Result<()> {
        sqlx::query("UPDATE apps SET groups_claim = ? WHERE tenant_id = ? AND client_id = ?")
            .bind(on)
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_app_secret_hash(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        hash: &str,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE apps SET secret_hash = ? WHERE tenant_id = ? AND client_id = ? AND public = 0",
        )
        .bind(hash)
        .bind(tenant_id.to_string())
        .bind(client_id.to_ascii_lowercase())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn delete_app(&self, tenant_id: Uuid, client_id: &str) -> Result<()> {
        let client_id = client_id.to_ascii_lowercase();
        let mut tx = self.write_tx().await?;
        for table in ["refresh_tokens", "auth_codes", "device_codes"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE tenant_id = ? AND client_id = ?"
            ))
            .bind(tenant_id.to_string())
            .bind(&client_id)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("DELETE FROM app_role_assignments WHERE tenant_id = ?1 AND (resource_client_id = ?2 OR (principal_kind = 'app' AND principal_id = ?2))")
            .bind(tenant_id.to_string())
            .bind(&client_id)
            .execute(&mut *tx)
            .await?;
        let r = sqlx::query("DELETE FROM apps WHERE tenant_id = ? AND client_id = ?")
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
    async fn app_anywhere(&self, client_id: &str) -> Result<Option<App>> {
        let row = sqlx::query("SELECT * FROM apps WHERE client_id = ?")
            .bind(client_id.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        self.app_row(row)
    }

    async fn app_by_identifier_uri(&self, tenant_id: Uuid, uri: &str) -> Result<Option<App>> {
        let row = sqlx::query("SELECT * FROM apps WHERE tenant_id = ? AND identifier_uri = ?")
            .bind(tenant_id.to_string())
            .bind(uri)
            .fetch_optional(&self.pool)
            .await?;
        self.app_row(row)
    }

    async fn set_app_spa(&self, tenant_id: Uuid, client_id: &str, spa: bool) -> Result<()> {
        let r = sqlx::query("UPDATE apps SET spa = ? WHERE tenant_id = ? AND client_id = ?")
            .bind(spa as i64)
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .execute(&self.pool)
            .await?;
        found(r.rows_affected(), client_id)
    }

    async fn set_app_id_token_alg(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        alg: &str,
    ) -> Result<()> {
        let r =
            sqlx::query("UPDATE apps SET id_token_alg = ? WHERE tenant_id = ? AND client_id = ?")
                .bind(alg)
                .bind(tenant_id.to_string())
                .bind(client_id.to_ascii_lowercase())
                .execute(&self.pool)
                .await?;
        found(r.rows_affected(), client_id)
    }

    async fn set_app_api(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        identifier_uri: Option<&str>,
        scopes: &[String],
        roles: &[String],
    ) -> Result<()> {
        let client_id = client_id.to_ascii_lowercase();
        let scopes_json = serde_json::to_string(scopes).unwrap_or_else(|_| "[]".into());
        let roles_json = serde_json::to_string(roles).unwrap_or_else(|_| "[]".into());
        let mut tx = self.write_tx().await?;
        let r = sqlx::query(
            "UPDATE apps SET identifier_uri = ?, api_scopes = ?, app_roles = ? WHERE tenant_id = ? AND client_id = ?",
        )
        .bind(identifier_uri)
        .bind(scopes_json)
        .bind(roles_json)
        .bind(tenant_id.to_string())
        .bind(&client_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, format!("identifier URI {}", identifier_uri.unwrap_or(""))))?;
        found(r.rows_affected(), &client_id)?;
        let kept: Vec<String> = roles.to_vec();
        let rows = sqlx::query(
            "SELECT DISTINCT role FROM app_role_assignments WHERE tenant_id = ? AND resource_client_id = ?",
        )
        .bind(tenant_id.to_string())
        .bind(&client_id)
        .fetch_all(&mut *tx)
        .await?;
        for row in rows {
            let role: String = row.try_get("role")?;
            if !kept.contains(&role) {
                sqlx::query(
                    "DELETE FROM app_role_assignments WHERE tenant_id = ? AND resource_client_id = ? AND role = ?",
                )
                .bind(tenant_id.to_string())
                .bind(&client_id)
                .bind(&role)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn spa_redirect_uris(&self, tenant_id: Option<Uuid>) -> Result<Vec<String>> {
        let rows = match tenant_id {
            Some(t) => {
                sqlx::query("SELECT redirect_uris FROM apps WHERE spa = 1 AND tenant_id = ?")
                    .bind(t.to_string())
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT redirect_uris FROM apps WHERE spa = 1")
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut uris = Vec::new();
        for row in rows {
            uris.extend(json_list(row.try_get("redirect_uris")?));
        }
        Ok(uris)
    }

    async fn assign_app_role(&self, tenant_id: Uuid, a: &RoleAssignment) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_role_assignments (tenant_id, resource_client_id, role, principal_kind, principal_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(tenant_id.to_string())
        .bind(a.resource_client_id.to_ascii_lowercase())
        .bind(&a.role)
        .bind(a.principal_kind.as_str())
        .bind(&a.principal_id)
        .bind(a.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn unassign_app_role(&self, tenant_id: Uuid, a: &RoleAssignment) -> Result<()> {
        let r = sqlx::query(
            "DELETE FROM app_role_assignments WHERE tenant_id = ? AND resource_client_id = ? AND role = ? AND principal_kind = ? AND principal_id = ?",
        )
        .bind(tenant_id.to_string())
        .bind(a.resource_client_id.to_ascii_lowercase())
        .bind(&a.role)
        .bind(a.principal_kind.as_str())
        .bind(&a.principal_id)
        .execute(&self.pool)
        .await?;
        if r.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "assignment of role {} to {} {}",
                a.role,
                a.principal_kind.as_str(),
                a.principal_id
            )));
        }
        Ok(())
    }

    async fn app_role_assignments(
        &self,
        tenant_id: Uuid,
        resource_client_id: &str,
    ) -> Result<Vec<RoleAssignment>> {
        let rows = sqlx::query(
            "SELECT * FROM app_role_assignments WHERE tenant_id = ? AND resource_client_id = ?
             ORDER BY role, principal_kind, principal_id",
        )
        .bind(tenant_id.to_string())
        .bind(resource_client_id.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(Self::role_assignment_row).collect()
    }

    async fn roles_of(
        &self,
        tenant_id: Uuid,
        resource_client_id: &str,
        principals: &[(PrincipalKind, String)],
    ) -> Result<Vec<String>> {
        if principals.is_empty() {
            return Ok(Vec::new());
        }
        // One query: the principals as a JSON array of [kind, id] pairs.
        let pairs: Vec<(&str, &str)> = principals
            .iter()
            .map(|(k, id)| (k.as_str(), id.as_str()))
            .collect();
        let json = serde_json::to_string(&pairs).unwrap_or_else(|_| "[]".into());
        let rows = sqlx::query(
            "SELECT DISTINCT role FROM app_role_assignments a
             JOIN json_each(?) p ON a.principal_kind = json_extract(p.value, '$[0]')
                                AND a.principal_id = json_extract(p.value, '$[1]')
             WHERE a.tenant_id = ? AND a.resource_client_id = ? ORDER BY role",
        )
        .bind(json)
        .bind(tenant_id.to_string())
        .bind(resource_client_id.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| r.try_get::<String, _>("role").map_err(StoreError::from))
            .collect()
    }
}

/// `NotFound` when an update touched no app.
fn found(rows: u64, client_id: &str) -> Result<()> {
    if rows == 0 {
        return Err(StoreError::NotFound(format!("app {client_id}")));
    }
    Ok(())
}
