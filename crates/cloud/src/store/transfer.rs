//! Copying a SQLite store into an empty PostgreSQL one (`passthru-cloud migrate`): every
//! table of the SQLite store that PostgreSQL has too, row by row, in one PostgreSQL
//! transaction, in the order SQLite created the tables (parents before the tables that
//! refer to them). Values are taken by their SQLite type and bound as the PostgreSQL
//! column's type; identity columns keep their values and their sequences move past them.

use std::path::Path;
use std::str::FromStr as _;

use sqlx::sqlite::{SqliteConnectOptions, SqliteRow};
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

use super::{Result, StoreError};

/// Tables never copied: the migrators' own bookkeeping (each store has its own), and the
/// deployment settings (the copy gets its own id; the SQLite store's marker stays there).
const SKIPPED: &[&str] = &[
    "_sqlx_migrations",
    "sqlite_sequence",
    "schema_migrations",
    "meta",
];

/// Copies every row of the SQLite store at `sqlite` into the PostgreSQL store at `pg_url`,
/// whose schema must exist and hold no rows. Returns each table copied with its row count.
pub(crate) async fn copy_sqlite_to_postgres(
    sqlite: &Path,
    pg_url: &str,
) -> Result<Vec<(String, u64)>> {
    let src = sqlx::SqlitePool::connect_with(
        SqliteConnectOptions::from_str(&format!("sqlite://{}", sqlite.display()))?.read_only(true),
    )
    .await?;
    let dst = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect(pg_url)
        .await?;
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
    )
    .fetch_all(&src)
    .await?;
    let mut tx = dst.begin().await?;
    let mut moved = Vec::new();
    for (table,) in tables {
        if SKIPPED.contains(&table.as_str()) {
            continue;
        }
        let pg_cols: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, udt_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
        )
        .bind(&table)
        .fetch_all(&mut *tx)
        .await?;
        if pg_cols.is_empty() {
            return Err(StoreError::Unavailable(format!(
                "table {table} of the SQLite store has no counterpart in the PostgreSQL store: run the same release of passthru-cloud on both"
            )));
        }
        let rows: Vec<SqliteRow> = sqlx::query(&format!("SELECT * FROM \"{table}\""))
            .fetch_all(&src)
            .await?;
        let Some(first) = rows.first() else {
            moved.push((table, 0));
            continue;
        };
        // The columns both have, with the PostgreSQL type to bind as.
        let cols: Vec<(usize, String, String)> = first
            .columns()
            .iter()
            .filter_map(|c| {
                pg_cols
                    .iter()
                    .find(|(name, _, _)| name == c.name())
                    .map(|(name, _, udt)| (c.ordinal(), name.clone(), udt.clone()))
            })
            .collect();
        let names = cols
            .iter()
            .map(|(_, n, _)| format!("\"{n}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let params = cols
            .iter()
            .enumerate()
            .map(|(i, (_, _, udt))| format!("${}::{udt}", i + 1))
            .collect::<Vec<_>>()
            .join(", ");
        let sql =
            format!("INSERT INTO \"{table}\" ({names}) OVERRIDING SYSTEM VALUE VALUES ({params})");
        for row in &rows {
            let mut q = sqlx::query(&sql);
            for (i, _, udt) in &cols {
                q = bind_value(q, row, *i, udt)?;
            }
            q.execute(&mut *tx).await?;
        }
        // Identity columns continue after the copied values.
        for (name, _, _) in &pg_cols {
            let seq: Option<(Option<String>,)> =
                sqlx::query_as("SELECT pg_get_serial_sequence($1, $2)")
                    .bind(format!("\"{table}\""))
                    .bind(name)
                    .fetch_optional(&mut *tx)
                    .await?;
            if let Some((Some(seq),)) = seq {
                sqlx::query(&format!(
                    "SELECT setval($1, (SELECT COALESCE(MAX(\"{name}\"), 0) + 1 FROM \"{table}\"), false)"
                ))
                .bind(seq)
                .execute(&mut *tx)
                .await?;
            }
        }
        moved.push((table, rows.len() as u64));
    }
    tx.commit().await?;
    src.close().await;
    dst.close().await;
    Ok(moved)
}

/// Binds column `i` of a SQLite row as PostgreSQL type `udt`.
fn bind_value<'q>(
    q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    row: &SqliteRow,
    i: usize,
    udt: &str,
) -> Result<sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>> {
    let raw = row.try_get_raw(i)?;
    if raw.is_null() {
        return Ok(match udt {
            "int2" | "int4" | "int8" => q.bind(None::<i64>),
            "bool" => q.bind(None::<bool>),
            "bytea" => q.bind(None::<Vec<u8>>),
            "float4" | "float8" => q.bind(None::<f64>),
            _ => q.bind(None::<String>),
        });
    }
    let sqlite_type = raw.type_info().name().to_ascii_uppercase();
    Ok(match udt {
        "int2" | "int4" | "int8" => q.bind(row.try_get::<i64, _>(i)?),
        "bool" => q.bind(row.try_get::<i64, _>(i)? != 0),
        "float4" | "float8" => q.bind(row.try_get::<f64, _>(i)?),
        "bytea" => q.bind(row.try_get::<Vec<u8>, _>(i)?),
        _ if sqlite_type == "BLOB" => {
            // Text in PostgreSQL, a blob in SQLite: only if it is UTF-8.
            let bytes: Vec<u8> = row.try_get(i)?;
            q.bind(
                String::from_utf8(bytes)
                    .map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))?,
            )
        }
        _ if sqlite_type == "INTEGER" => q.bind(row.try_get::<i64, _>(i)?.to_string()),
        _ => q.bind(row.try_get::<String, _>(i)?),
    })
}
