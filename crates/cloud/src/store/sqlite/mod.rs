//! The SQLite backend: every store trait over one `SqlitePool` in the data dir (WAL, one
//! writer at a time, `BEGIN IMMEDIATE` for read-then-write transactions). Nothing above
//! `store` sees this module's types; the facade [`super::Store`] holds it as a
//! `dyn Backend`.

use sqlx::Row;
use uuid::Uuid;

use super::{Result, StoreError};

mod admin;
mod agents;
mod app_credentials;
mod apps;
mod attempts;
mod audit;
mod base;
mod device;
mod domains;
mod federation;
mod groups;
mod housekeeping;
pub(crate) mod inline;
mod instances;
mod lockout;
mod mfa;
pub(super) mod migrate;
mod oidc;
mod portal;
mod releases;
mod schema;
mod sign_in_state;
mod sign_ins;
mod signing_keys;
pub(crate) mod snapshot;
mod sync;
mod tenants;
mod users;
mod writeback;

/// The SQLite backend. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct SqliteStore {
    pool: sqlx::SqlitePool,
    /// Connections of its own for the statements on every sign-in and grant, run on the
    /// request's thread (`inline`).
    inline: inline::Inline,
    /// Pending rows (sign-ins in progress) a tenant may have in each table
    /// (`serve --max-pending-per-tenant`).
    pending_cap: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// The store's file (None: in memory).
    path: Option<std::path::PathBuf>,
    /// The serve lock's file, held while this process serves the store
    /// ([`crate::store::instances::InstanceStore::hold_serve_lock`]).
    serve_lock: std::sync::Arc<std::sync::Mutex<Option<std::fs::File>>>,
    /// The background WAL checkpoints (`base::checkpoints`), stopped when the last clone of
    /// the store is dropped: the task holds a pool handle, which would otherwise keep the
    /// database open for the rest of the process.
    _checkpoints: Option<std::sync::Arc<AbortOnDrop>>,
}

/// Aborts its task when dropped.
#[derive(Debug)]
pub(crate) struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl super::Backend for SqliteStore {}

pub(crate) fn uuid_col(row: &sqlx::sqlite::SqliteRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))
}

/// The outcome of a pending-row insert made conditional on the tenant's count being under
/// `cap` (`INSERT ... SELECT ... WHERE (SELECT COUNT(*) ...) < cap`): no row written means
/// the tenant's table of `what` is full.
pub(crate) fn inserted_under_cap(
    done: &sqlx::sqlite::SqliteQueryResult,
    what: &'static str,
    cap: i64,
) -> Result<()> {
    if done.rows_affected() == 0 {
        return Err(StoreError::TooManyPending { what, cap });
    }
    Ok(())
}

pub(crate) fn conflict(e: sqlx::Error, what: String) -> StoreError {
    match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => StoreError::Conflict(what),
        _ => StoreError::Db(e),
    }
}

pub(crate) fn like_pattern(search: &str) -> String {
    let mut p = String::from("%");
    for c in search.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}
