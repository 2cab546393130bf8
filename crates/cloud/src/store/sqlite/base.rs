//! SQLite: opening the store, and the row readers the areas share.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::Row;
use uuid::Uuid;

use super::{uuid_col, AbortOnDrop, SqliteStore};
#[allow(unused_imports)]
use crate::store::HousekeepingStore;
use crate::store::{
    json_list, App, Domain, DomainKind, PrincipalKind, Result, RoleAssignment, SignIn, StoreError,
    Tenant, User, DEFAULT_PENDING_ROWS_PER_TENANT,
};

/// How long a statement waits for the write lock.
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the background task moves the WAL's pages into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);
/// The WAL size (pages of 4 KiB) at which a commit checkpoints on its own: only when the
/// background task has fallen far behind. SQLite's default, 1,000 pages, made a busy cloud
/// checkpoint (and fsync) on a request's path several times a second: 14% of the CPU of a
/// refresh grant (docs/performance.md, issue 20).
pub(super) const AUTOCHECKPOINT_PAGES: &str = "16384";

/// How long the background checkpoint waits for the writer and the readers of the moment.
const CHECKPOINT_WAIT_MS: &str = "100";

/// Checkpoints the WAL every [`CHECKPOINT_EVERY`], off the requests' paths, in RESTART
/// mode: after copying the pages it waits (at most [`CHECKPOINT_WAIT_MS`]) until no reader
/// uses the WAL, so that the next commit writes it from its start again. A PASSIVE
/// checkpoint never waits, but under a steady flood of commits (refresh grants) the WAL then
/// never restarts: it grew past [`AUTOCHECKPOINT_PAGES`], and from then on every commit ran a
/// checkpoint of its own (15% of a refresh grant's CPU, docs/performance.md, issue 20).
/// When the wait runs out, what was copied stays copied and the next tick tries again.
async fn checkpoints(pool: sqlx::SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        if pool.is_closed() {
            return;
        }
        if let Err(e) = checkpoint_once(&pool).await {
            if pool.is_closed() {
                return;
            }
            tracing::warn!(error = %e, "the store's WAL checkpoint failed; it is tried again in a second");
        }
    }
}

/// One RESTART checkpoint on a pooled connection whose busy timeout is short meanwhile.
async fn checkpoint_once(pool: &sqlx::SqlitePool) -> std::result::Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    sqlx::query(&format!("PRAGMA busy_timeout = {CHECKPOINT_WAIT_MS}"))
        .execute(&mut *conn)
        .await?;
    let done = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
        .execute(&mut *conn)
        .await;
    sqlx::query(&format!(
        "PRAGMA busy_timeout = {}",
        BUSY_TIMEOUT.as_millis()
    ))
    .execute(&mut *conn)
    .await?;
    done.map(|_| ())
}

impl SqliteStore {
    /// Opens (creating if asked) the SQLite store at `path` and applies the schema. Inside a
    /// Tokio runtime it also starts the task that checkpoints the WAL every
    /// [`CHECKPOINT_EVERY`] (it ends when the pool is closed or the last clone of the store
    /// is dropped).
    pub(crate) async fn open(path: &Path, create: bool) -> Result<SqliteStore> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true)
            // Deleted and overwritten content (a key's plaintext before it was sealed, expired
            // secrets' hashes) is zeroed in the file, not left in free space.
            .pragma("secure_delete", "on")
            .pragma("wal_autocheckpoint", AUTOCHECKPOINT_PAGES);
        // An embedded database has no connection to go stale: testing one before each use
        // would cost a round trip to its worker thread per statement.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        if let Err(e) = super::migrate::run(&pool).await {
            pool.close().await;
            return Err(e);
        }
        let checkpoints = tokio::runtime::Handle::try_current()
            .ok()
            .map(|runtime| Arc::new(AbortOnDrop(runtime.spawn(checkpoints(pool.clone())))));
        Ok(SqliteStore {
            inline: super::inline::Inline::new(path),
            pool,
            pending_cap: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
                DEFAULT_PENDING_ROWS_PER_TENANT,
            )),
            path: Some(path.to_path_buf()),
            serve_lock: Default::default(),
            _checkpoints: checkpoints,
        })
    }

    /// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`), so
    /// concurrent read-then-write transactions wait (busy timeout) instead of failing with a
    /// stale snapshot.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// The pending-row cap of [`HousekeepingStore::set_pending_rows_per_tenant`]
    /// ([`DEFAULT_PENDING_ROWS_PER_TENANT`] until set).
    pub(crate) fn pending_cap(&self) -> i64 {
        self.pending_cap.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn tenant_row(row: &sqlx::sqlite::SqliteRow) -> Result<Tenant> {
        Ok(Tenant {
            id: uuid_col(row, "id")?,
            name: row.try_get("name")?,
            pta_enabled: row.try_get::<i64, _>("pta_enabled")? != 0,
            settings: crate::model::settings::Settings::default(),
        })
    }

    pub(super) async fn load_settings(&self, t: &mut Tenant) -> Result<()> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM tenant_settings WHERE tenant_id = ?")
                .bind(t.id.to_string())
                .fetch_all(&self.pool)
                .await?;
        let mut skipped = Vec::new();
        t.settings = crate::model::settings::Settings::from_pairs(
            rows.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            &mut skipped,
        );
        for e in skipped {
            tracing::warn!(tenant = %t.name, "stored setting ignored, default used: {e}");
        }
        Ok(())
    }

    pub(crate) fn domain_row(row: &sqlx::sqlite::SqliteRow) -> Result<Domain> {
        Ok(Domain {
            name: row.try_get("name")?,
            tenant_id: uuid_col(row, "tenant_id")?,
            kind: DomainKind::parse(&row.try_get::<String, _>("kind")?),
            verified: row.try_get::<i64, _>("verified")? != 0,
            verification_code: row.try_get("verification_code")?,
        })
    }

    // ---- users

    pub(crate) fn user_row(row: &sqlx::sqlite::SqliteRow) -> Result<User> {
        Ok(User {
            id: uuid_col(row, "id")?,
            tenant_id: uuid_col(row, "tenant_id")?,
            upn: row.try_get("upn")?,
            display_name: row.try_get("display_name")?,
            mail: row.try_get("mail")?,
            password_hash: row.try_get("password_hash")?,
            source: row.try_get("source")?,
            immutable_id: row.try_get("immutable_id")?,
            role: row.try_get("role")?,
            enabled: row.try_get::<i64, _>("enabled")? != 0,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            last_sign_in: row.try_get("last_sign_in")?,
            sync: row
                .try_get::<Option<String>, _>("sync_attrs")?
                .and_then(|j| serde_json::from_str(&j).ok()),
            writeback_allowed: row.try_get::<i64, _>("writeback_allowed")? != 0,
        })
    }

    pub(crate) fn role_assignment_row(row: &sqlx::sqlite::SqliteRow) -> Result<RoleAssignment> {
        let kind: String = row.try_get("principal_kind")?;
        Ok(RoleAssignment {
            resource_client_id: row.try_get("resource_client_id")?,
            role: row.try_get("role")?,
            principal_kind: PrincipalKind::parse(&kind).ok_or_else(|| {
                StoreError::Db(sqlx::Error::Decode(
                    format!("an app role assignment has the principal kind '{kind}'").into(),
                ))
            })?,
            principal_id: row.try_get("principal_id")?,
            created_at: row.try_get("created_at")?,
        })
    }

    pub(crate) fn app_row(&self, row: Option<sqlx::sqlite::SqliteRow>) -> Result<Option<App>> {
        row.map(|row| {
            let uris: String = row.try_get("redirect_uris")?;
            Ok(App {
                client_id: row.try_get("client_id")?,
                tenant_id: uuid_col(&row, "tenant_id")?,
                name: row.try_get("name")?,
                public: row.try_get::<i64, _>("public")? != 0,
                redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
                secret_hash: row.try_get("secret_hash")?,
                groups_claim: row.try_get::<i64, _>("groups_claim")? != 0,
                spa: row.try_get::<i64, _>("spa")? != 0,
                id_token_alg: row.try_get("id_token_alg")?,
                identifier_uri: row.try_get("identifier_uri")?,
                api_scopes: json_list(row.try_get("api_scopes")?),
                app_roles: json_list(row.try_get("app_roles")?),
            })
        })
        .transpose()
    }

    pub(crate) fn sign_in_row(row: &sqlx::sqlite::SqliteRow) -> Result<SignIn> {
        {
            {
                let agent: Option<String> = row.try_get("agent_id")?;
                Ok(SignIn {
                    id: row.try_get("id")?,
                    time_ms: row.try_get("time_ms")?,
                    username: row.try_get("username")?,
                    client_id: row.try_get("client_id")?,
                    result: row.try_get("result")?,
                    aadsts: row.try_get::<Option<i64>, _>("aadsts")?.map(|v| v as u32),
                    win32: row.try_get::<Option<i64>, _>("win32")?.map(|v| v as u32),
                    agent_id: agent.and_then(|a| Uuid::parse_str(&a).ok()),
                    other_agents: row
                        .try_get::<Option<String>, _>("other_agents")?
                        .unwrap_or_default()
                        .split(',')
                        .filter_map(|a| Uuid::parse_str(a.trim()).ok())
                        .collect(),
                    latency_ms: row.try_get("latency_ms")?,
                    correlation_id: row.try_get("correlation_id")?,
                    client_ip: row.try_get("client_ip")?,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use sqlx::sqlite::SqliteConnectOptions;

    /// Commits land in the WAL; within a checkpoint period the background task has copied
    /// them into the database file itself (read here with `immutable=1`, which ignores the
    /// WAL), although far fewer pages than the autocheckpoint size were written.
    #[tokio::test]
    async fn the_wal_is_checkpointed_in_the_background() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-ckpt-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(crate::init::STORE_FILE);
        let store = super::SqliteStore::open(&path, true).await?;
        let id = uuid::Uuid::new_v4();
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, 'ckpt', 1)")
            .bind(id.to_string())
            .execute(&store.pool)
            .await?;
        let in_file = || async {
            let opts = SqliteConnectOptions::from_str(&format!(
                "sqlite://{}?immutable=1",
                path.display()
            ))?
            .read_only(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM tenants WHERE id = ?")
                .bind(id.to_string())
                .fetch_one(&pool)
                .await?;
            pool.close().await;
            anyhow::Ok(n)
        };
        let deadline = std::time::Instant::now() + 3 * super::CHECKPOINT_EVERY;
        loop {
            // Before the first checkpoint the file has not even the schema: an error.
            if in_file().await.is_ok_and(|n| n == 1) {
                break;
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "the row never reached the database file: no checkpoint ran"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        store.pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    }
}
