//! `passthru-cloud migrate --data-dir DIR --to postgres://...`: moves a data dir's SQLite
//! store into an empty PostgreSQL database (every table: tenants, domains, users, apps,
//! agents, signing keys, the sign-in log, and the rest), then marks the SQLite store as
//! moved so that `serve` refuses it: one deployment is never served from two stores. The
//! data dir keeps what is not in the store (the CAs, the TLS certificate, the key that seals
//! secrets): serve the moved deployment with `serve --data-dir DIR --store URL`.

use std::path::Path;

use crate::init::{redact_url, store_location, StoreLocation};
use crate::store::instances::{DEPLOYMENT_ID, MOVED_TO};
use crate::store::Store;

/// What `migrate` moved.
#[derive(Debug)]
pub struct Moved {
    pub data_dir: String,
    /// The target, without its password.
    pub to: String,
    /// Each table with its rows.
    pub tables: Vec<(String, u64)>,
}

impl std::fmt::Display for Moved {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: u64 = self.tables.iter().map(|(_, n)| n).sum();
        writeln!(
            f,
            "Moved the store of {} to {}: {total} rows in {} tables.",
            self.data_dir,
            self.to,
            self.tables.len()
        )?;
        for (table, n) in self.tables.iter().filter(|(_, n)| *n > 0) {
            writeln!(f, "  {table}: {n}")?;
        }
        writeln!(
            f,
            "The SQLite store is marked as moved: serving it is refused from now on."
        )?;
        writeln!(
            f,
            "Serve the deployment: passthru-cloud serve --data-dir {} --store {} [--bus nats://HOST:PORT]",
            self.data_dir, self.to
        )
    }
}

/// Moves `data_dir`'s SQLite store into the PostgreSQL database at `to`.
pub async fn migrate(data_dir: &Path, to: &str) -> anyhow::Result<Moved> {
    crate::init::parse_store_url(to).map_err(|e| anyhow::anyhow!(e))?;
    let StoreLocation::Sqlite(path) = store_location(data_dir)? else {
        anyhow::bail!(
            "{} already keeps its state in PostgreSQL: there is nothing to migrate",
            data_dir.display()
        );
    };
    let source = Store::open(&path, false).await?;
    if let Some(moved) = source.meta(MOVED_TO).await? {
        source.close().await;
        anyhow::bail!(
            "the store of {} was already moved to {moved}",
            data_dir.display()
        );
    }
    // Nobody serves it while it is copied (and the lock is held until the marker is set).
    if let Err(e) = source.hold_serve_lock(false).await {
        source.close().await;
        anyhow::bail!("{e}. Stop that instance before migrating its store");
    }
    let deployment = source.deployment_id().await?;
    source.flush_sign_ins().await;
    let target = Store::open_postgres(to, true).await?;
    // The target's serve lock, held for the whole copy: no instance serves it meanwhile
    // (one started now is refused until the copy is done).
    if let Err(e) = target.hold_serve_lock(false).await {
        target.close().await;
        source.close().await;
        anyhow::bail!("{e}. Stop it: migrate into a database nobody serves");
    }
    let held = target.meta(DEPLOYMENT_ID).await?;
    let tenants = target.count_rows("tenants").await?;
    if held.is_some() || tenants > 0 {
        target.close().await;
        source.close().await;
        anyhow::bail!(
            "{} already holds a Passthru deployment: migrate into an empty database",
            redact_url(to)
        );
    }
    let copied = crate::store::transfer::copy_sqlite_to_postgres(&path, to).await;
    let tables = match copied {
        Ok(t) => t,
        Err(e) => {
            target.close().await;
            source.close().await;
            return Err(e.into());
        }
    };
    let id = target.init_meta(DEPLOYMENT_ID, &deployment).await?;
    target.close().await;
    anyhow::ensure!(
        id == deployment,
        "the target database got another deployment id during the copy; check that nothing else writes to it"
    );
    source.set_meta(MOVED_TO, &redact_url(to)).await?;
    source.close().await;
    tracing::info!(to = %redact_url(to), "store moved to PostgreSQL");
    Ok(Moved {
        data_dir: data_dir.display().to_string(),
        to: redact_url(to),
        tables,
    })
}
