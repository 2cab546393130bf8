//! PostgreSQL: opening the store, the write transaction and its locks, and the row readers
//! the areas share.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Row;
use uuid::Uuid;

use super::{uuid_col, PgStore};
#[allow(unused_imports)]
use crate::store::HousekeepingStore;
use crate::store::{
    json_list, App, Domain, DomainKind, PrincipalKind, Result, RoleAssignment, SignIn, StoreError,
    Tenant, User, DEFAULT_PENDING_ROWS_PER_TENANT,
};

/// Connections in the pool.
const MAX_CONNECTIONS: u32 = 16;
/// How long opening a connection, or waiting for a free one, may take. While PostgreSQL is
/// unreachable each store call fails after this long (sqlx retries the connection until
/// then), so it bounds how long a sign-in takes to fail in an outage: short next to a
/// sign-in's 10 s deadline; a healthy pool hands out a connection in microseconds.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one statement may run before the server cancels it.
const STATEMENT_TIMEOUT: &str = "10s";
/// How long a transaction may wait for a lock (a row, or another writer's advisory lock).
const LOCK_TIMEOUT: &str = "10s";

/// What a write transaction locks before it reads: the read-then-write transactions of one
/// tenant (or of the whole store) run one after another, as SQLite's writers do.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Lock {
    /// Transactions of this tenant.
    Tenant(Uuid),
    /// Transactions of one agent (its statistics).
    Agent(Uuid),
    /// Transactions of the store that no tenant scopes (store-wide upkeep).
    Global,
}

impl Lock {
    /// The advisory lock key (the single-key space; migrations use the two-key space).
    fn key(self) -> i64 {
        match self {
            // The tenant id's first 64 bits.
            Lock::Tenant(id) => first_64_bits(id),
            // Apart from the tenants' keys (the same id is not both).
            Lock::Agent(id) => first_64_bits(id) ^ 0x5555_5555_5555_5555,
            // "passthru".
            Lock::Global => 0x7061_7373_7468_7275,
        }
    }
}

/// A UUID's first 64 bits.
fn first_64_bits(id: Uuid) -> i64 {
    let b = id.as_bytes();
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

impl PgStore {
    /// Connects to the PostgreSQL store at `url` and brings its schema up to date. The
    /// database must exist (its administrator creates it); `create` creates the tables in
    /// it, else a database without them is refused (as SQLite refuses a missing file).
    pub(crate) async fn open(url: &str, create: bool) -> Result<PgStore> {
        let opts = connect_options(url)?;
        PgStore::connect(url, opts, create).await
    }

    /// A store in a fresh schema `schema` of the database at `url` (each test its own
    /// tables): the schema is created, and each connection's `search_path` is `schema,
    /// public` (`citext` lives in `public`, created there first).
    #[cfg(test)]
    pub(crate) async fn open_in_schema(url: &str, schema: &str) -> Result<PgStore> {
        PgStore::create_schema(url, schema).await?;
        let mut store = PgStore::open_schema(url, schema).await?;
        store.drop_schema_on_close = Some(schema.to_string());
        Ok(store)
    }

    /// Creates the empty schema `schema` (and `citext` in `public` if missing).
    #[cfg(test)]
    pub(crate) async fn create_schema(url: &str, schema: &str) -> Result<()> {
        if !schema
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(StoreError::Unavailable(format!("bad schema name {schema}")));
        }
        let opts = connect_options(url)?;
        let mut conn = tokio::time::timeout(ACQUIRE_TIMEOUT, sqlx::ConnectOptions::connect(&opts))
            .await
            .map_err(|_| unreachable(url, "connecting timed out"))?
            .map_err(|e| unreachable(url, &e.to_string()))?;
        let mut tx = sqlx::Connection::begin(&mut conn).await?;
        // Several tests at once: CREATE EXTENSION IF NOT EXISTS is not safe in parallel.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('passthru.migrate'), 0)")
            .execute(&mut *tx)
            .await?;
        sqlx::raw_sql(&format!(
            "CREATE EXTENSION IF NOT EXISTS citext SCHEMA public; CREATE SCHEMA {schema}"
        ))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        sqlx::Connection::close(conn).await?;
        Ok(())
    }

    /// A store in the existing schema `schema` (`search_path` `schema, public`).
    #[cfg(test)]
    pub(crate) async fn open_schema(url: &str, schema: &str) -> Result<PgStore> {
        let opts = connect_options(url)?.options([("search_path", format!("{schema},public"))]);
        PgStore::connect(url, opts, true).await
    }

    pub(super) async fn connect(
        url: &str,
        opts: PgConnectOptions,
        create: bool,
    ) -> Result<PgStore> {
        let opts = opts.options([
            ("statement_timeout", STATEMENT_TIMEOUT),
            ("lock_timeout", LOCK_TIMEOUT),
            // The server's notices ("relation ... already exists, skipping" at each start)
            // stay out of the log.
            ("client_min_messages", "warning"),
        ]);
        // No test round trip before each use: sqlx already checks a connection when it comes
        // back to the pool (and closes a broken one), so a restarted server costs at most
        // one failed statement per idle connection, not a round trip on every statement.
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(opts)
            .await
            .map_err(|e| unreachable(url, &e.to_string()))?;
        if let Err(e) = super::migrate::run(&pool, create).await {
            pool.close().await;
            return Err(match e {
                super::migrate::MigrateError::TooNew(found) => StoreError::SchemaTooNew {
                    found,
                    known: super::migrate::newest_known(),
                },
                e => StoreError::Unavailable(format!(
                    "the PostgreSQL store at {} could not be brought up to date: {e}",
                    crate::store::redact_url(url)
                )),
            });
        }
        Ok(PgStore {
            pool,
            pending_cap: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
                DEFAULT_PENDING_ROWS_PER_TENANT,
            )),
            drop_schema_on_close: None,
            url_redacted: crate::store::redact_url(url),
            serve_conn: Default::default(),
        })
    }

    /// A write transaction that first takes `lock`, a transaction-scoped advisory lock
    /// (`pg_advisory_xact_lock`, released at commit or rollback). PostgreSQL at READ
    /// COMMITTED runs writers side by side, and a read-then-write transaction (a count
    /// before an insert under a cap, a check that a Global Administrator stays) could act on
    /// what another changes meanwhile; holding the lock, the transactions of one tenant run
    /// one after another and each statement sees what the previous holder committed.
    /// Single statements that decide and write at once (`UPDATE ... RETURNING`,
    /// `INSERT ... ON CONFLICT`, `DELETE ... RETURNING`) and reads with `FOR UPDATE` need no
    /// advisory lock: they take the row's own lock.
    pub(crate) async fn write_tx(&self, lock: Lock) -> Result<Tx> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(lock.key())
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    /// The pending-row cap of [`HousekeepingStore::set_pending_rows_per_tenant`]
    /// ([`DEFAULT_PENDING_ROWS_PER_TENANT`] until set).
    pub(crate) fn pending_cap(&self) -> i64 {
        self.pending_cap.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub(super) fn tenant_row(row: &sqlx::postgres::PgRow) -> Result<Tenant> {
        Ok(Tenant {
            id: uuid_col(row, "id")?,
            name: row.try_get("name")?,
            pta_enabled: row.try_get::<i64, _>("pta_enabled")? != 0,
            settings: crate::model::settings::Settings::default(),
        })
    }

    pub(super) async fn load_settings(&self, t: &mut Tenant) -> Result<()> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT key, value FROM tenant_settings WHERE tenant_id = $1")
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

    pub(crate) fn domain_row(row: &sqlx::postgres::PgRow) -> Result<Domain> {
        Ok(Domain {
            name: row.try_get("name")?,
            tenant_id: uuid_col(row, "tenant_id")?,
            kind: DomainKind::parse(&row.try_get::<String, _>("kind")?),
            verified: row.try_get::<i64, _>("verified")? != 0,
            verification_code: row.try_get("verification_code")?,
        })
    }

    // ---- users

    pub(crate) fn user_row(row: &sqlx::postgres::PgRow) -> Result<User> {
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

    pub(crate) fn role_assignment_row(row: &sqlx::postgres::PgRow) -> Result<RoleAssignment> {
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

    pub(crate) fn app_row(&self, row: Option<sqlx::postgres::PgRow>) -> Result<Option<App>> {
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

    pub(crate) fn sign_in_row(row: &sqlx::postgres::PgRow) -> Result<SignIn> {
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

/// A transaction on the store's pool.
pub(crate) type Tx = sqlx::Transaction<'static, sqlx::Postgres>;

/// The connection options of `url` (a `postgres://` URL, or key=value pairs).
pub(super) fn connect_options(url: &str) -> Result<PgConnectOptions> {
    PgConnectOptions::from_str(url).map_err(|e| {
        StoreError::Unavailable(format!(
            "the PostgreSQL URL {} is not valid: {}",
            crate::store::redact_url(url),
            e.to_string().replace(url, &crate::store::redact_url(url))
        ))
    })
}

/// The error of a store that does not answer.
fn unreachable(url: &str, why: &str) -> StoreError {
    StoreError::Unavailable(format!(
        "the PostgreSQL store at {} is unreachable: {}; check that it runs and the URL",
        host_of(url),
        why.replace(url, &crate::store::redact_url(url))
    ))
}

/// Where `url` points (host, port and database), for messages: never its user or password.
fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("localhost");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            format!("{host}{port}{}", u.path())
        }
        Err(_) => "(the URL given)".into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn urls_in_messages_hide_passwords() {
        let url =
            "postgres://app:hunter2@db.example:5433/passthru?password=hunter2&sslmode=require";
        let r = crate::store::redact_url(url);
        assert!(!r.contains("hunter2"), "{r}");
        assert!(r.contains("db.example:5433"), "{r}");
        assert_eq!(super::host_of(url), "db.example:5433/passthru");
        assert_eq!(crate::store::redact_url("not a url"), "(the URL given)");
    }
}
