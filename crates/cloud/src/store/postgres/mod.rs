//! The PostgreSQL backend: every store trait over one `PgPool`, with SQLite's schema and
//! queries translated (case-insensitive names as `citext`, `ON CONFLICT` for SQLite's
//! `INSERT OR ...`). PostgreSQL runs writers side by side, so each read-then-write
//! transaction takes a lock first (`base::PgStore::write_tx`). Nothing above `store` sees
//! this module's types; the facade [`super::Store`] holds it as a `dyn Backend`.

use sqlx::Row;
use uuid::Uuid;

use super::{Result, StoreError};
pub(crate) use base::{Lock, Tx};

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
mod instances;
mod lockout;
mod mfa;
mod migrate;
mod oidc;
mod portal;
mod releases;
mod schema;
mod sign_in_state;
mod sign_ins;
mod signing_keys;
mod sync;
mod tenants;
mod users;
mod writeback;

/// The PostgreSQL backend. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PgStore {
    pool: sqlx::PgPool,
    /// Pending rows (sign-ins in progress) a tenant may have in each table
    /// (`serve --max-pending-per-tenant`).
    pending_cap: std::sync::Arc<std::sync::atomic::AtomicI64>,
    /// A test store's own schema, dropped when the store is closed.
    drop_schema_on_close: Option<String>,
    /// The store's URL without its password (for messages).
    url_redacted: String,
    /// The connection holding this process's serve lock
    /// ([`crate::store::InstanceStore::hold_serve_lock`]).
    serve_conn: std::sync::Arc<tokio::sync::Mutex<Option<sqlx::PgConnection>>>,
}

impl super::Backend for PgStore {}

pub(crate) fn uuid_col(row: &sqlx::postgres::PgRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))
}

/// The outcome of a pending-row insert made conditional on the tenant's count being under
/// `cap` (`INSERT ... SELECT ... WHERE (SELECT COUNT(*) ...) < cap`): no row written means
/// the tenant's table of `what` is full.
pub(crate) fn inserted_under_cap(
    done: &sqlx::postgres::PgQueryResult,
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
