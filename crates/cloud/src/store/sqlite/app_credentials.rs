//! SQLite: app credentials.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::app_credentials::*;

/// A row of `app_credentials`.
fn credential_row(row: &sqlx::sqlite::SqliteRow) -> Result<AppCredential> {
    let kind: String = row.try_get("kind")?;
    let key = match kind.as_str() {
        "secret" => CredentialKey::Secret {
            hash: row.try_get("secret_hash")?,
        },
        _ => CredentialKey::Certificate(CertificateKey {
            sha1: row.try_get("x5t")?,
            sha256: row.try_get("x5t_s256")?,
            public_key: row.try_get("public_key")?,
            subject: row
                .try_get::<Option<String>, _>("subject")?
                .unwrap_or_default(),
        }),
    };
    Ok(AppCredential {
        id: uuid_col(row, "id")?,
        tenant_id: uuid_col(row, "tenant_id")?,
        client_id: row.try_get("client_id")?,
        key,
        hint: row.try_get("hint")?,
        created_at: row.try_get("created_at")?,
        starts_at: row.try_get("starts_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// Inserts `c` in `tx` (the caller checked the app and the cap).
pub(super) async fn insert_credential(
    tx: &mut sqlx::SqliteConnection,
    c: &AppCredential,
) -> Result<()> {
    let (secret_hash, cert) = match &c.key {
        CredentialKey::Secret { hash } => (Some(hash.as_str()), None),
        CredentialKey::Certificate(k) => (None, Some(k)),
    };
    sqlx::query(
        "INSERT INTO app_credentials (id, tenant_id, client_id, kind, secret_hash, x5t, x5t_s256,
             public_key, subject, hint, created_at, starts_at, expires_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(c.id.to_string())
    .bind(c.tenant_id.to_string())
    .bind(&c.client_id)
    .bind(c.kind())
    .bind(secret_hash)
    .bind(cert.map(|k| k.sha1.as_str()))
    .bind(cert.map(|k| k.sha256.as_str()))
    .bind(cert.map(|k| k.public_key.as_slice()))
    .bind(cert.map(|k| k.subject.as_str()))
    .bind(c.hint.as_deref())
    .bind(c.created_at)
    .bind(c.starts_at)
    .bind(c.expires_at)
    .execute(&mut *tx)
    .await
    .map_err(|e| conflict(e, "this certificate on the app".into()))?;
    Ok(())
}

/// Whether the tenant has the app (in `tx`).
async fn has_app(
    tx: &mut sqlx::SqliteConnection,
    tenant_id: Uuid,
    client_id: &str,
) -> Result<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM apps WHERE tenant_id = ? AND client_id = ?")
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .fetch_one(&mut *tx)
            .await?;
    Ok(n > 0)
}

#[async_trait]
impl AppCredentialStore for SqliteStore {
    async fn add_app_credential(&self, c: &AppCredential) -> Result<()> {
        // BEGIN IMMEDIATE: the count and the insert are one writer's, parallel adds wait.
        let mut tx = self.write_tx().await?;
        if !has_app(&mut tx, c.tenant_id, &c.client_id).await? {
            return Err(StoreError::NotFound(format!("app {}", c.client_id)));
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM app_credentials WHERE client_id = ?")
            .bind(c.client_id.to_ascii_lowercase())
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_CREDENTIALS_PER_APP {
            return Err(StoreError::TooManyCredentials {
                max: MAX_CREDENTIALS_PER_APP,
            });
        }
        insert_credential(&mut tx, c).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn app_credentials(
        &self,
        tenant_id: Uuid,
        client_id: &str,
    ) -> Result<Vec<AppCredential>> {
        let rows = sqlx::query(
            "SELECT * FROM app_credentials WHERE tenant_id = ? AND client_id = ?
             ORDER BY created_at, id",
        )
        .bind(tenant_id.to_string())
        .bind(client_id.to_ascii_lowercase())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(credential_row).collect()
    }

    async fn remove_app_credential(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        id: Uuid,
    ) -> Result<()> {
        let done = sqlx::query(
            "DELETE FROM app_credentials WHERE tenant_id = ? AND client_id = ? AND id = ?",
        )
        .bind(tenant_id.to_string())
        .bind(client_id.to_ascii_lowercase())
        .bind(id.to_string())
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!("credential {id} of the app")));
        }
        Ok(())
    }

    async fn replace_app_secrets(&self, c: &AppCredential) -> Result<()> {
        let mut tx = self.write_tx().await?;
        if !has_app(&mut tx, c.tenant_id, &c.client_id).await? {
            return Err(StoreError::NotFound(format!("app {}", c.client_id)));
        }
        sqlx::query(
            "DELETE FROM app_credentials WHERE tenant_id = ? AND client_id = ? AND kind = 'secret'",
        )
        .bind(c.tenant_id.to_string())
        .bind(c.client_id.to_ascii_lowercase())
        .execute(&mut *tx)
        .await?;
        // Certificates stay and count: the new secret must fit beside them.
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM app_credentials WHERE client_id = ?")
            .bind(c.client_id.to_ascii_lowercase())
            .fetch_one(&mut *tx)
            .await?;
        if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_CREDENTIALS_PER_APP {
            return Err(StoreError::TooManyCredentials {
                max: MAX_CREDENTIALS_PER_APP,
            });
        }
        insert_credential(&mut tx, c).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use crate::store::app_credentials::CredentialKey;
    use crate::store::{AppCredentialStore as _, AppStore as _};

    /// A store of the release before app credentials (migrations before 17) with a
    /// confidential app's secret in `apps.secret_hash`: opening it makes that secret the app's
    /// first credential, without an expiry, and clears the column.
    #[tokio::test]
    async fn the_migration_moves_each_apps_secret_into_its_credentials() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-migrate17-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("t.db");
        let t = uuid::Uuid::new_v4();
        {
            let opts = sqlx::sqlite::SqliteConnectOptions::from_str(&format!(
                "sqlite://{}",
                path.display()
            ))?
            .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            let mut m = sqlx::migrate::Migrator::new(super::super::migrate::Embedded).await?;
            m.migrations = std::borrow::Cow::Owned(
                m.migrations
                    .iter()
                    .filter(|x| x.version < 17)
                    .cloned()
                    .collect(),
            );
            m.run(&pool).await?;
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, 'contoso', 1)")
                .bind(t.to_string())
                .execute(&pool)
                .await?;
            for (id, public, hash) in [
                ("daemon", 0, Some("h-daemon")),
                ("web", 0, Some("h-web")),
                ("cli", 1, None),
            ] {
                sqlx::query(
                    "INSERT INTO apps (client_id, tenant_id, name, public, secret_hash, created_at)
                     VALUES (?, ?, ?, ?, ?, 7)",
                )
                .bind(id)
                .bind(t.to_string())
                .bind(id)
                .bind(public)
                .bind(hash)
                .execute(&pool)
                .await?;
            }
            pool.close().await;
        }
        let store = super::SqliteStore::open(&path, false).await?;
        for id in ["daemon", "web"] {
            let creds = store.app_credentials(t, id).await?;
            anyhow::ensure!(creds.len() == 1, "{creds:?}");
            let c = &creds[0];
            anyhow::ensure!(
                c.key
                    == CredentialKey::Secret {
                        hash: format!("h-{id}")
                    }
                    && c.expires_at.is_none()
                    && c.hint.is_none()
                    && c.created_at == 7,
                "{c:?}"
            );
            anyhow::ensure!(store
                .app(t, id)
                .await?
                .is_some_and(|a| a.secret_hash.is_none()));
        }
        anyhow::ensure!(store.app_credentials(t, "cli").await?.is_empty());
        let ids: std::collections::HashSet<uuid::Uuid> = [
            store.app_credentials(t, "daemon").await?[0].id,
            store.app_credentials(t, "web").await?[0].id,
        ]
        .into();
        anyhow::ensure!(ids.len() == 2 && ids.iter().all(|i| i.get_version_num() == 4));
        crate::store::HousekeepingStore::close(&store).await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
