//! Schema migrations, embedded in the binary and applied by sqlx's migrator (which records
//! each in `_sqlx_migrations` with its checksum, so an edited migration is refused rather
//! than half-applied). Migration 1 is the schema as first released (idempotent, so stores
//! created before migrations existed take it as a no-op); later ones are files under
//! `crates/cloud/migrations/`. Add a migration; never edit one that has shipped.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::SqlitePool;

/// The numbered migrations after the baseline.
const FILES: &[(i64, &str, &str)] = &[
    (
        2,
        "tenant administration",
        include_str!("../../migrations/0002_tenant_admin.sql"),
    ),
    (
        3,
        "agent statistics",
        include_str!("../../migrations/0003_agent_stats.sql"),
    ),
    (
        4,
        "administration portal",
        include_str!("../../migrations/0004_portal.sql"),
    ),
    (
        5,
        "directory sync",
        include_str!("../../migrations/0005_directory_sync.sql"),
    ),
    (
        6,
        "smart lockout",
        include_str!("../../migrations/0006_smart_lockout.sql"),
    ),
    (
        7,
        "password writeback",
        include_str!("../../migrations/0007_writeback.sql"),
    ),
    (
        8,
        "multi-factor authentication",
        include_str!("../../migrations/0008_mfa.sql"),
    ),
    (
        9,
        "agents passed over in the sign-in log",
        include_str!("../../migrations/0009_signin_agents.sql"),
    ),
    (
        10,
        "indexes of pending sign-in rows (caps and purge)",
        include_str!("../../migrations/0010_pending_rows.sql"),
    ),
];

#[derive(Debug)]
struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            let baseline = [
                super::SCHEMA,
                super::federation::SCHEMA,
                super::device::SCHEMA,
            ]
            .concat();
            let mut all = vec![Migration::new(
                1,
                Cow::Borrowed("baseline"),
                MigrationType::Simple,
                Cow::Owned(baseline),
                false,
            )];
            for (version, description, sql) in FILES {
                all.push(Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                ));
            }
            Ok(all)
        })
    }
}

/// Brings the store's schema up to date.
pub(crate) async fn run(pool: &SqlitePool) -> Result<(), sqlx::migrate::MigrateError> {
    Migrator::new(Embedded).await?.run(pool).await
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use sqlx::sqlite::SqliteConnectOptions;

    use crate::store::Store;

    /// A store written by the release before migrations (the baseline tables only, with a
    /// tenant whose deadline was changed) opens, gains the new columns and keeps its data.
    #[tokio::test]
    async fn a_store_from_before_migrations_is_brought_up_to_date() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-migrate-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("old.db");
        {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            sqlx::raw_sql(super::super::SCHEMA).execute(&pool).await?;
            sqlx::raw_sql(
                "INSERT INTO tenants (id, name, request_timeout_ms, created_at)
                 VALUES ('7d7c2f0e-1b7e-4c3a-9a55-0c1f7b9e2a10', 'old', 5000, 1);
                 INSERT INTO domains (name, tenant_id, kind, created_at)
                 VALUES ('old.example', '7d7c2f0e-1b7e-4c3a-9a55-0c1f7b9e2a10', 'managed', 1);",
            )
            .execute(&pool)
            .await?;
            pool.close().await;
        }
        let store = Store::open(&path, false).await?;
        let t = store
            .tenant("old")
            .await?
            .ok_or_else(|| anyhow::anyhow!("tenant lost"))?;
        assert_eq!(t.settings.request_deadline_ms, 5000);
        let d = store
            .domain("old.example")
            .await?
            .ok_or_else(|| anyhow::anyhow!("an existing domain stays verified"))?;
        assert!(d.verified);
        store.close().await;
        // Opening again applies nothing twice.
        let again = Store::open(&path, false).await?;
        assert!(again.tenant("old").await?.is_some());
        again.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
