//! A consistent copy of a SQLite store taken while it is served (`passthru-cloud backup`):
//! `VACUUM INTO` reads the store in one read transaction (WAL: writers go on meanwhile) and
//! writes a new, compact database file.

use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};

use crate::store::{Result, StoreError};

/// What [`snapshot`] copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    /// The store's schema version (newest migration).
    pub schema: i64,
    /// `migrate`'s marker: the store was moved to this PostgreSQL store (URL without its
    /// password), so the copy is of a store no longer served.
    pub moved_to: Option<String>,
}

/// Copies the SQLite store at `src` into the new file `dest` (which must not exist). The
/// store is neither created nor migrated; one a newer release migrated is refused.
pub(crate) async fn snapshot(src: &Path, dest: &Path) -> Result<Snapshot> {
    let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", src.display()))?
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await?;
    let copied = copy(&pool, dest).await;
    pool.close().await;
    copied
}

async fn copy(pool: &sqlx::SqlitePool, dest: &Path) -> Result<Snapshot> {
    super::migrate::check_not_newer(pool).await?;
    let schema = super::migrate::recorded_version(pool).await?;
    let has_meta: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
    )
    .fetch_one(pool)
    .await?;
    let moved_to: Option<String> = if has_meta {
        sqlx::query_scalar("SELECT value FROM meta WHERE key = ?")
            .bind(crate::store::instances::MOVED_TO)
            .fetch_optional(pool)
            .await?
    } else {
        None
    };
    let dest = dest.to_str().ok_or_else(|| {
        StoreError::Unavailable(format!(
            "{} is not a UTF-8 path: choose another --out",
            dest.display()
        ))
    })?;
    sqlx::query("VACUUM INTO ?")
        .bind(dest)
        .execute(pool)
        .await?;
    Ok(Snapshot { schema, moved_to })
}
