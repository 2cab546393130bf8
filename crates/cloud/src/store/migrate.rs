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
        4,
        "administration portal",
        include_str!("../../migrations/0004_portal.sql"),
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
