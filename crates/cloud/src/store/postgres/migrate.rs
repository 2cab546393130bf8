//! Schema migrations of the PostgreSQL store: a numbered list, applied in order in one
//! transaction and recorded in `schema_migrations` (with each one's SHA-256, so an edited
//! migration is refused rather than half-applied). A transaction-scoped advisory lock keyed
//! by the schema makes instances that start at once apply each migration once: the others
//! wait, then find it recorded. Migration 1 is the schema as first released for PostgreSQL.
//! Add a migration; never edit one that has shipped.

use sha2::{Digest, Sha256};
use sqlx::PgPool;

/// The migrations: version, description, SQL.
pub(super) const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "baseline", super::schema::BASELINE),
    (
        2,
        "several instances: sync leases with an expiry, shared smart lockout places",
        include_str!("../../../migrations/postgres/0002_instances.sql"),
    ),
    (
        3,
        "agent certificate renewal",
        include_str!("../../../migrations/postgres/0003_agent_renewal.sql"),
    ),
    (
        4,
        "signed agent releases",
        include_str!("../../../migrations/postgres/0004_agent_releases.sql"),
    ),
    (
        5,
        "token signing keys per algorithm (RS256 beside ES256)",
        include_str!("../../../migrations/postgres/0005_rs256_keys.sql"),
    ),
    (
        6,
        "app credentials: several secrets and certificates per app",
        include_str!("../../../migrations/postgres/0006_app_credentials.sql"),
    ),
    (
        7,
        "application platforms and APIs: single-page apps, ID-token algorithm, exposed scopes and app roles",
        include_str!("../../../migrations/postgres/0007_app_apis.sql"),
    ),
    (
        8,
        "the audit log; sign-in log paging; tenant logos",
        include_str!("../../../migrations/postgres/0008_audit_log.sql"),
    ),
];

/// The newest schema version this binary knows.
pub(crate) fn newest_known() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Brings the store's schema (the first schema of the connection's `search_path`) up to date;
/// one never migrated is set up only when `create`.
pub(crate) async fn run(pool: &PgPool, create: bool) -> Result<(), MigrateError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('passthru.migrate'), hashtext(current_schema()))",
    )
    .execute(&mut *tx)
    .await?;
    let fresh: bool = sqlx::query_scalar("SELECT to_regclass('schema_migrations') IS NULL")
        .fetch_one(&mut *tx)
        .await?;
    if fresh && !create {
        return Err(MigrateError::NotCreated);
    }
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
             version BIGINT PRIMARY KEY,
             description TEXT NOT NULL,
             checksum TEXT NOT NULL,
             applied_at BIGINT NOT NULL
         )",
    )
    .execute(&mut *tx)
    .await?;
    let applied: Vec<(i64, String)> =
        sqlx::query_as("SELECT version, checksum FROM schema_migrations ORDER BY version")
            .fetch_all(&mut *tx)
            .await?;
    let newest = applied.iter().map(|(v, _)| *v).max().unwrap_or(0);
    if newest > newest_known() {
        return Err(MigrateError::TooNew(newest));
    }
    for (version, description, sql) in MIGRATIONS {
        let checksum = hex::encode(Sha256::digest(sql.as_bytes()));
        match applied.iter().find(|(v, _)| v == version) {
            Some((_, sum)) if *sum == checksum => continue,
            Some(_) => return Err(MigrateError::Edited(*version)),
            None => {}
        }
        sqlx::raw_sql(sql).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, description, checksum, applied_at)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(version)
        .bind(description)
        .bind(&checksum)
        .bind(crate::clock::unix_now())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MigrateError {
    #[error(transparent)]
    Db(#[from] sqlx::Error),
    /// The store was migrated by a newer release (its newest migration).
    #[error("this store was upgraded by a newer passthru-cloud (schema {0}, this binary knows up to {known}): install that version or newer", known = newest_known())]
    TooNew(i64),
    /// The database has no store yet, and none was to be created.
    #[error("the database holds no Passthru store yet; create one first (init)")]
    NotCreated,
    /// A recorded migration differs from this release's.
    #[error("migration {0} of the PostgreSQL store differs from the one this release applied; the store was changed by another build")]
    Edited(i64),
}

#[cfg(test)]
mod tests {
    use super::super::PgStore;
    use super::MIGRATIONS;
    use crate::store::{HousekeepingStore, TenantStore};

    /// Instances starting at once on one schema: each migration is applied once, the data
    /// stays, and every instance opens.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn parallel_starts_apply_each_migration_once() -> anyhow::Result<()> {
        if crate::store::postgres_skipped() {
            return Ok(());
        }
        let url = std::env::var("PASSTHRU_TEST_POSTGRES")
            .unwrap_or_else(|_| crate::store::DEFAULT_TEST_POSTGRES.to_string());
        let schema = format!("pt_{}", uuid::Uuid::new_v4().simple());
        // Before the store is created (its schema is not there yet): refused.
        let opts = super::super::base::connect_options(&url)?
            .options([("search_path", format!("{schema},public"))]);
        let refused = PgStore::connect(&url, opts, false).await;
        assert!(
            matches!(&refused, Err(e) if e.to_string().contains("no Passthru store")),
            "{refused:?}"
        );
        // Six instances start at once on the empty schema.
        PgStore::create_schema(&url, &schema).await?;
        let opens = (0..6).map(|_| PgStore::open_schema(&url, &schema));
        let mut stores = futures_util::future::try_join_all(opens).await?;
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations")
            .fetch_one(&stores[0].pool)
            .await?;
        assert_eq!(n, i64::try_from(MIGRATIONS.len())?);
        stores[0]
            .create_tenant(uuid::Uuid::new_v4(), "contoso", 1)
            .await?;
        // Opening again applies nothing and keeps the data.
        stores.push(PgStore::open_schema(&url, &schema).await?);
        for s in &mut stores {
            assert!(s.tenant("CONTOSO").await?.is_some());
        }
        if let Some(last) = stores.last_mut() {
            last.drop_schema_on_close = Some(schema.clone());
        }
        for s in stores {
            s.close().await;
        }
        Ok(())
    }

    /// A store migrated by a newer release (a migration past this binary's newest) is
    /// refused with the versions named, and left as it was.
    #[tokio::test]
    async fn a_store_from_a_newer_release_is_refused() -> anyhow::Result<()> {
        if crate::store::postgres_skipped() {
            return Ok(());
        }
        let url = std::env::var("PASSTHRU_TEST_POSTGRES")
            .unwrap_or_else(|_| crate::store::DEFAULT_TEST_POSTGRES.to_string());
        let schema = format!("pt_{}", uuid::Uuid::new_v4().simple());
        PgStore::create_schema(&url, &schema).await?;
        let store = PgStore::open_schema(&url, &schema).await?;
        store
            .create_tenant(uuid::Uuid::new_v4(), "contoso", 1)
            .await?;
        let newer = super::newest_known() + 1;
        sqlx::query(
            "INSERT INTO schema_migrations (version, description, checksum, applied_at)
             VALUES ($1, 'from the future', 'x', 1)",
        )
        .bind(newer)
        .execute(&store.pool)
        .await?;
        let refused = PgStore::open_schema(&url, &schema).await;
        let expected = format!(
            "this store was upgraded by a newer passthru-cloud (schema {newer}, this binary knows up to {}): install that version or newer",
            super::newest_known()
        );
        match &refused {
            Err(e @ crate::store::StoreError::SchemaTooNew { .. }) => {
                assert_eq!(e.to_string(), expected)
            }
            other => anyhow::bail!("expected a refusal, got {other:?}"),
        }
        // Nothing was changed: the newer migration and the data are still there.
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM schema_migrations WHERE version = $1")
                .bind(newer)
                .fetch_one(&store.pool)
                .await?;
        assert_eq!(n, 1);
        assert!(store.tenant("contoso").await?.is_some());
        let mut store = store;
        store.drop_schema_on_close = Some(schema);
        store.close().await;
        Ok(())
    }

    /// Migration 5 on a store holding keys from before it: every existing key is an ES256
    /// one, and a tenant holding one can get its first RS256 key beside it.
    #[tokio::test]
    async fn keys_from_before_algorithms_are_es256_keys() -> anyhow::Result<()> {
        use crate::store::signing_keys::NewKey;
        use crate::store::SigningKeyStore as _;
        if crate::store::postgres_skipped() {
            return Ok(());
        }
        let url = std::env::var("PASSTHRU_TEST_POSTGRES")
            .unwrap_or_else(|_| crate::store::DEFAULT_TEST_POSTGRES.to_string());
        let schema = format!("pt_{}", uuid::Uuid::new_v4().simple());
        PgStore::create_schema(&url, &schema).await?;
        let store = PgStore::open_schema(&url, &schema).await?;
        let t = uuid::Uuid::new_v4();
        store.create_tenant(t, "contoso", 1).await?;
        // The store as the release before migration 5 left it, with a key.
        sqlx::raw_sql(
            "ALTER TABLE tenant_signing_keys DROP COLUMN alg;
             DELETE FROM schema_migrations WHERE version = 5;",
        )
        .execute(&store.pool)
        .await?;
        sqlx::query(
            "INSERT INTO tenant_signing_keys (tenant_id, kid, private_key, sealed, public_raw, created_at)
             VALUES ($1, 'old', 'sealed', 1, 'public', 1)",
        )
        .bind(t.to_string())
        .execute(&store.pool)
        .await?;
        store.close().await;
        let mut store = PgStore::open_schema(&url, &schema).await?;
        let keys = store.signing_keys(t, 10, 100, 2).await?;
        assert_eq!(
            keys.iter()
                .map(|k| (k.kid.as_str(), k.alg.as_str()))
                .collect::<Vec<_>>(),
            [("old", "ES256")]
        );
        let rsa = NewKey {
            kid: "rsa",
            alg: "RS256",
            sealed_private: b"sealed",
            public_raw: b"public",
        };
        assert!(store.add_first_signing_key(t, rsa, 10).await?);
        assert_eq!(store.signing_keys(t, 10, 100, 2).await?.len(), 2);
        store.drop_schema_on_close = Some(schema);
        store.close().await;
        Ok(())
    }
}
