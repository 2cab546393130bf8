//! PostgreSQL: app credentials.

use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;

use super::*;
use crate::store::app_credentials::*;

/// A row of `app_credentials`.
fn credential_row(row: &sqlx::postgres::PgRow) -> Result<AppCredential> {
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
    tx: &mut sqlx::PgConnection,
    c: &AppCredential,
) -> Result<()> {
    let (secret_hash, cert) = match &c.key {
        CredentialKey::Secret { hash } => (Some(hash.as_str()), None),
        CredentialKey::Certificate(k) => (None, Some(k)),
    };
    sqlx::query(
        "INSERT INTO app_credentials (id, tenant_id, client_id, kind, secret_hash, x5t, x5t_s256,
             public_key, subject, hint, created_at, starts_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
async fn has_app(tx: &mut sqlx::PgConnection, tenant_id: Uuid, client_id: &str) -> Result<bool> {
    let n: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM apps WHERE tenant_id = $1 AND client_id = $2")
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .fetch_one(&mut *tx)
            .await?;
    Ok(n > 0)
}

#[async_trait]
impl AppCredentialStore for PgStore {
    async fn add_app_credential(&self, c: &AppCredential) -> Result<()> {
        // Under the tenant's lock: the count and the insert are one writer's, parallel adds
        // wait.
        let mut tx = self.write_tx(Lock::Tenant(c.tenant_id)).await?;
        if !has_app(&mut tx, c.tenant_id, &c.client_id).await? {
            return Err(StoreError::NotFound(format!("app {}", c.client_id)));
        }
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM app_credentials WHERE client_id = $1")
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
            "SELECT * FROM app_credentials WHERE tenant_id = $1 AND client_id = $2
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
            "DELETE FROM app_credentials WHERE tenant_id = $1 AND client_id = $2 AND id = $3",
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
        let mut tx = self.write_tx(Lock::Tenant(c.tenant_id)).await?;
        if !has_app(&mut tx, c.tenant_id, &c.client_id).await? {
            return Err(StoreError::NotFound(format!("app {}", c.client_id)));
        }
        sqlx::query(
            "DELETE FROM app_credentials WHERE tenant_id = $1 AND client_id = $2 AND kind = 'secret'",
        )
        .bind(c.tenant_id.to_string())
        .bind(c.client_id.to_ascii_lowercase())
        .execute(&mut *tx)
        .await?;
        // Certificates stay and count: the new secret must fit beside them.
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM app_credentials WHERE client_id = $1")
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
    use sha2::{Digest as _, Sha256};

    use crate::store::app_credentials::CredentialKey;
    use crate::store::{AppCredentialStore as _, AppStore as _};

    /// A store of the release before app credentials (migrations before 6) with a
    /// confidential app's secret in `apps.secret_hash`: opening it makes that secret the app's
    /// first credential, without an expiry, and clears the column.
    #[tokio::test]
    async fn the_migration_moves_each_apps_secret_into_its_credentials() -> anyhow::Result<()> {
        if crate::store::postgres_skipped() {
            return Ok(());
        }
        let url = std::env::var("PASSTHRU_TEST_POSTGRES")
            .unwrap_or_else(|_| crate::store::DEFAULT_TEST_POSTGRES.to_string());
        let schema = format!("pt_{}", uuid::Uuid::new_v4().simple());
        super::PgStore::create_schema(&url, &schema).await?;
        let t = uuid::Uuid::new_v4();
        {
            let opts = super::super::base::connect_options(&url)?
                .options([("search_path", format!("{schema},public"))]);
            let mut conn: sqlx::PgConnection = sqlx::ConnectOptions::connect(&opts).await?;
            sqlx::raw_sql(
                "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL,
                     checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut conn)
            .await?;
            for (version, description, sql) in super::super::migrate::MIGRATIONS {
                if *version >= 6 {
                    continue;
                }
                sqlx::raw_sql(sql).execute(&mut conn).await?;
                sqlx::query("INSERT INTO schema_migrations VALUES ($1, $2, $3, 1)")
                    .bind(version)
                    .bind(description)
                    .bind(hex::encode(Sha256::digest(sql.as_bytes())))
                    .execute(&mut conn)
                    .await?;
            }
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES ($1, 'contoso', 1)")
                .bind(t.to_string())
                .execute(&mut conn)
                .await?;
            for (id, public, hash) in [
                ("daemon", 0i64, Some("h-daemon")),
                ("web", 0, Some("h-web")),
                ("cli", 1, None),
            ] {
                sqlx::query(
                    "INSERT INTO apps (client_id, tenant_id, name, public, secret_hash, created_at)
                     VALUES ($1, $2, $3, $4, $5, 7)",
                )
                .bind(id)
                .bind(t.to_string())
                .bind(id)
                .bind(public)
                .bind(hash)
                .execute(&mut conn)
                .await?;
            }
            sqlx::Connection::close(conn).await?;
        }
        let mut store = super::PgStore::open_schema(&url, &schema).await?;
        store.drop_schema_on_close = Some(schema.clone());
        let checked = async {
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
            Ok(())
        }
        .await;
        crate::store::HousekeepingStore::close(&store).await;
        checked
    }
}
