//! The cloud store (SQLite in the data dir). It holds tenants, domains, users, apps, agents,
//! signing keys, refresh tokens and the sign-in log, and never a password: cloud-only users
//! have an argon2id hash, everyone else has none.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};
use uuid::Uuid;

pub mod admin;
pub mod agents;
pub mod attempts;
mod cache;
#[cfg(test)]
pub(crate) mod conformance;
pub mod device;
pub mod federation;
mod groups;
pub mod lockout;
pub mod mfa;
mod migrate;
pub mod oidc;
pub mod portal;
mod schema;
pub mod sign_in_state;
mod signin_log;
pub mod signing_keys;
pub mod sync;
pub mod writeback;

pub use crate::model::records::{
    AgentRecord, App, Domain, DomainKind, OnpremUser, RefreshRecord, SignIn, Tenant, User,
};
pub use agents::AgentTally;
pub use attempts::AttemptStore;
pub use device::DeviceStore;
pub use federation::FederationStore;
pub use lockout::LockoutStore;
pub use mfa::MfaStore;
pub use oidc::{
    AuthCode, AuthzRequest, ChangeSecondFactor, OidcStore, PasswordChangeGrant, SessionRecord,
};
pub use portal::PortalStore;
use schema::SCHEMA;
pub use signing_keys::SigningKeyStore;
pub use writeback::WritebackStore;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or answered with an error (disk full, corrupt, locked).
    #[error("the store failed: {0}. Check the data dir's disk space and permissions.")]
    Db(#[from] sqlx::Error),
    /// A name that must be unique is taken.
    #[error("{0} already exists")]
    Conflict(String),
    /// A row the caller named does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// The tenant already has as many pending rows of this kind as it may (a flood of
    /// unauthenticated starts); the oldest expire within minutes.
    #[error("this organization has {cap} {what} in progress, the most it may have; try again in a few minutes")]
    TooManyPending { what: &'static str, cap: i64 },
    /// The tenant already has this many agents not revoked, the most it may have; nothing
    /// was added.
    #[error("this organization already has {max} authentication agents, the most it may have")]
    TooManyAgents { max: usize },
    /// The change would leave the tenant without an enabled Global Administrator; nothing
    /// was changed.
    #[error("the change would leave the tenant without an enabled Global Administrator")]
    LastGlobalAdmin,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Pending rows (sign-ins in progress) a tenant may have in each table unless `serve` sets
/// another cap (`--max-pending-per-tenant`).
pub const DEFAULT_PENDING_ROWS_PER_TENANT: i64 = 100_000;

/// The store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    tenants: std::sync::Arc<cache::TtlCache<Tenant>>,
    apps: std::sync::Arc<cache::TtlCache<App>>,
    pub(crate) domains_cache: std::sync::Arc<cache::TtlCache<Domain>>,
    /// The sign-in log's writer task (`None` in the task's own copy).
    sign_in_writer: Option<signin_log::Writer>,
    /// Pending rows (sign-ins in progress) a tenant may have in each table
    /// (`serve --max-pending-per-tenant`).
    pending_cap: std::sync::Arc<std::sync::atomic::AtomicI64>,
}

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

impl Store {
    /// Opens (creating if asked) the SQLite store at `path` and applies the schema.
    pub async fn open(path: &Path, create: bool) -> Result<Store> {
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
            .create_if_missing(create)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            // Deleted and overwritten content (a key's plaintext before it was sealed, expired
            // secrets' hashes) is zeroed in the file, not left in free space.
            .pragma("secure_delete", "on");
        // An embedded database has no connection to go stale: testing one before each use
        // would cost a round trip to its worker thread per statement.
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(opts)
            .await?;
        migrate::run(&pool)
            .await
            .map_err(|e| StoreError::Db(e.into()))?;
        let mut store = Store {
            pool,
            tenants: std::sync::Arc::new(cache::TtlCache::new()),
            apps: std::sync::Arc::new(cache::TtlCache::new()),
            domains_cache: std::sync::Arc::new(cache::TtlCache::new()),
            sign_in_writer: None,
            pending_cap: std::sync::Arc::new(std::sync::atomic::AtomicI64::new(
                DEFAULT_PENDING_ROWS_PER_TENANT,
            )),
        };
        store.sign_in_writer = Some(signin_log::start(store.clone()));
        Ok(store)
    }

    /// A write transaction that takes SQLite's write lock at once (`BEGIN IMMEDIATE`), so
    /// concurrent read-then-write transactions wait (busy timeout) instead of failing with a
    /// stale snapshot.
    pub(crate) async fn write_tx(&self) -> Result<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// Sets how many pending rows (sign-ins in progress) a tenant may have in each table.
    pub fn set_pending_rows_per_tenant(&self, cap: i64) {
        self.pending_cap
            .store(cap.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The cap of [`Store::set_pending_rows_per_tenant`] ([`DEFAULT_PENDING_ROWS_PER_TENANT`]
    /// until set).
    pub(crate) fn pending_cap(&self) -> i64 {
        self.pending_cap.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Writes the sign-in log lines still queued, then closes the pool (flushes the WAL).
    pub async fn close(&self) {
        self.flush_sign_ins().await;
        self.pool.close().await;
    }

    // ---- tenants

    pub async fn create_tenant(&self, id: Uuid, name: &str, now: i64) -> Result<()> {
        sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, ?)")
            .bind(id.to_string())
            .bind(name)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, format!("tenant {name}")))?;
        Ok(())
    }

    fn tenant_row(row: &sqlx::sqlite::SqliteRow) -> Result<Tenant> {
        Ok(Tenant {
            id: uuid_col(row, "id")?,
            name: row.try_get("name")?,
            pta_enabled: row.try_get::<i64, _>("pta_enabled")? != 0,
            settings: crate::model::settings::Settings::default(),
        })
    }

    async fn load_settings(&self, t: &mut Tenant) -> Result<()> {
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

    /// Stores a tenant's settings (only those that differ from the defaults are kept).
    pub async fn save_settings(
        &self,
        tenant_id: Uuid,
        settings: &crate::model::settings::Settings,
    ) -> Result<()> {
        let defaults = crate::model::settings::Settings::default().pairs();
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM tenant_settings WHERE tenant_id = ?")
            .bind(tenant_id.to_string())
            .execute(&mut *tx)
            .await?;
        for ((k, v), (_, d)) in settings.pairs().into_iter().zip(defaults) {
            if v != d {
                sqlx::query("INSERT INTO tenant_settings (tenant_id, key, value) VALUES (?, ?, ?)")
                    .bind(tenant_id.to_string())
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        self.tenants.clear();
        Ok(())
    }

    /// Finds a tenant by its name or its id.
    pub async fn tenant(&self, name_or_id: &str) -> Result<Option<Tenant>> {
        let key = name_or_id.to_ascii_lowercase();
        if let Some(t) = self.tenants.get(&key) {
            return Ok(Some(t));
        }
        let row = sqlx::query("SELECT * FROM tenants WHERE name = ? OR id = ?")
            .bind(name_or_id)
            .bind(&key)
            .fetch_optional(&self.pool)
            .await?;
        let mut t = row.as_ref().map(Self::tenant_row).transpose()?;
        if let Some(t) = &mut t {
            self.load_settings(t).await?;
            self.tenants.put(key, t.clone());
        }
        Ok(t)
    }

    pub async fn set_pta(&self, tenant_id: Uuid, enabled: bool) -> Result<()> {
        sqlx::query("UPDATE tenants SET pta_enabled = ? WHERE id = ?")
            .bind(enabled as i64)
            .bind(tenant_id.to_string())
            .execute(&self.pool)
            .await?;
        self.tenants.clear();
        Ok(())
    }

    // ---- domains

    /// Adds a domain: verified (the tenant's initial domain, or one the operator vouches for
    /// with data-dir access) or waiting for the proof `verification_code`.
    pub async fn add_domain(
        &self,
        tenant_id: Uuid,
        name: &str,
        kind: DomainKind,
        verification_code: Option<&str>,
        now: i64,
    ) -> Result<()> {
        sqlx::query("INSERT INTO domains (name, tenant_id, kind, created_at, verified, verification_code) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(name.to_ascii_lowercase())
            .bind(tenant_id.to_string())
            .bind(kind.as_str())
            .bind(now)
            .bind(verification_code.is_none() as i64)
            .bind(verification_code)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, format!("domain {name}")))?;
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

    /// A verified domain by name, in any tenant (domain names are unique across the
    /// service). Sign-in looks domains up here, so an unverified one does not exist for it.
    pub async fn domain(&self, name: &str) -> Result<Option<Domain>> {
        let key = name.to_ascii_lowercase();
        if let Some(d) = self.domains_cache.get(&key) {
            return Ok(Some(d));
        }
        let row = sqlx::query("SELECT * FROM domains WHERE name = ? AND verified = 1")
            .bind(&key)
            .fetch_optional(&self.pool)
            .await?;
        let d = row.as_ref().map(Self::domain_row).transpose()?;
        if let Some(d) = &d {
            self.domains_cache.put(key, d.clone());
        }
        Ok(d)
    }

    pub async fn domains(&self, tenant_id: Uuid) -> Result<Vec<Domain>> {
        let rows = sqlx::query("SELECT * FROM domains WHERE tenant_id = ? ORDER BY name")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::domain_row).collect()
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

    /// Adds a cloud-only user with an argon2id hash.
    pub async fn add_cloud_user(
        &self,
        tenant_id: Uuid,
        upn: &str,
        password_hash: &str,
        role: &str,
        now: i64,
    ) -> Result<Uuid> {
        let id = Uuid::new_v4();
        sqlx::query(
            "INSERT INTO users (id, tenant_id, upn, display_name, password_hash, source, role, created_at)
             VALUES (?, ?, ?, ?, ?, 'cloud', ?, ?)",
        )
        .bind(id.to_string())
        .bind(tenant_id.to_string())
        .bind(upn)
        .bind(upn.split('@').next().unwrap_or(upn))
        .bind(password_hash)
        .bind(role)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| conflict(e, format!("user {upn}")))?;
        Ok(id)
    }

    pub async fn user_by_upn(&self, tenant_id: Uuid, upn: &str) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant_id = ? AND upn = ?")
            .bind(tenant_id.to_string())
            .bind(upn)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_row).transpose()
    }

    pub async fn user_by_id(&self, tenant_id: Uuid, id: Uuid) -> Result<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE tenant_id = ? AND id = ?")
            .bind(tenant_id.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(Self::user_row).transpose()
    }

    /// Creates or refreshes the record of an on-premises user after a successful pass-through
    /// sign-in. The record is keyed by the source anchor, so the `oid` is stable.
    pub async fn upsert_onprem_user(&self, u: &OnpremUser<'_>, now: i64) -> Result<User> {
        let OnpremUser {
            tenant_id,
            id,
            immutable_id,
            upn,
            display_name,
            mail,
        } = *u;
        const UPSERT: &str = "INSERT INTO users (id, tenant_id, upn, display_name, mail, source, immutable_id, created_at, last_sign_in)
             VALUES (?, ?, ?, ?, ?, 'onprem', ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET upn = excluded.upn, display_name = excluded.display_name,
                 mail = excluded.mail, last_sign_in = excluded.last_sign_in
             RETURNING *";
        let bind = |q: sqlx::query::Query<
            'static,
            sqlx::Sqlite,
            sqlx::sqlite::SqliteArguments<'static>,
        >| {
            q.bind(id.to_string())
                .bind(tenant_id.to_string())
                .bind(upn.to_string())
                .bind(display_name.map(str::to_string))
                .bind(mail.map(str::to_string))
                .bind(immutable_id.to_string())
                .bind(now)
                .bind(now)
        };
        // The common case, one statement: the user signs in again under the same name.
        match bind(sqlx::query(UPSERT)).fetch_one(&self.pool).await {
            Ok(row) => return Self::user_row(&row),
            Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
        // Another object holds this UPN (renamed or recreated in AD, or a user of the domain
        // when it was federated): release it, then record this one.
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE users SET upn = upn || '#released-' || id
             WHERE tenant_id = ? AND upn = ?
               AND ((source = 'onprem' AND immutable_id <> ?) OR source = 'federated')",
        )
        .bind(tenant_id.to_string())
        .bind(upn)
        .bind(immutable_id)
        .execute(&mut *tx)
        .await?;
        let row = bind(sqlx::query(UPSERT))
            .fetch_one(&mut *tx)
            .await
            .map_err(|e| conflict(e, format!("user {upn}")))?;
        tx.commit().await?;
        Self::user_row(&row)
    }

    pub async fn touch_sign_in(&self, user_id: Uuid, now: i64) -> Result<()> {
        sqlx::query("UPDATE users SET last_sign_in = ? WHERE id = ?")
            .bind(now)
            .bind(user_id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn users(&self, tenant_id: Uuid) -> Result<Vec<User>> {
        let rows = sqlx::query("SELECT * FROM users WHERE tenant_id = ? ORDER BY upn")
            .bind(tenant_id.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(Self::user_row).collect()
    }

    // ---- apps

    pub async fn add_app(&self, app: &App, now: i64) -> Result<()> {
        let name = &app.name;
        let uris = serde_json::to_string(&app.redirect_uris).unwrap_or_else(|_| "[]".into());
        sqlx::query(
            "INSERT INTO apps (client_id, tenant_id, name, public, redirect_uris, secret_hash, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
            .bind(&app.client_id)
            .bind(app.tenant_id.to_string())
            .bind(name)
            .bind(app.public as i64)
            .bind(uris)
            .bind(&app.secret_hash)
            .bind(now)
            .execute(&self.pool)
            .await
            .map_err(|e| conflict(e, format!("app {name}")))?;
        Ok(())
    }

    pub async fn app(&self, tenant_id: Uuid, client_id: &str) -> Result<Option<App>> {
        let key = format!("{tenant_id}/{}", client_id.to_ascii_lowercase());
        if let Some(a) = self.apps.get(&key) {
            return Ok(Some(a));
        }
        let row = sqlx::query("SELECT * FROM apps WHERE tenant_id = ? AND client_id = ?")
            .bind(tenant_id.to_string())
            .bind(client_id.to_ascii_lowercase())
            .fetch_optional(&self.pool)
            .await?;
        let app = self.app_row(row)?;
        if let Some(a) = &app {
            self.apps.put(key, a.clone());
        }
        Ok(app)
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
            })
        })
        .transpose()
    }

    // ---- sign-in log

    pub async fn sign_ins(&self, tenant_id: Uuid, limit: i64) -> Result<Vec<SignIn>> {
        self.flush_sign_ins().await;
        let rows =
            sqlx::query("SELECT * FROM signins WHERE tenant_id = ? ORDER BY id DESC LIMIT ?")
                .bind(tenant_id.to_string())
                .bind(limit)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(Self::sign_in_row).collect()
    }

    pub(crate) fn sign_in_row(row: &sqlx::sqlite::SqliteRow) -> Result<SignIn> {
        {
            {
                let agent: Option<String> = row.try_get("agent_id")?;
                Ok(SignIn {
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

/// A new store in a temporary directory with the tenant `contoso` and one domain, for unit
/// tests: the store, its directory (remove it at the end) and the tenant id.
#[cfg(test)]
pub(crate) async fn test_store(
    label: &str,
    domain: &str,
    kind: DomainKind,
) -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
    let dir = std::env::temp_dir().join(format!("passthru-{label}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let s = Store::open(&dir.join("t.db"), true).await?;
    let tid = Uuid::new_v4();
    s.create_tenant(tid, "contoso", 1).await?;
    s.add_domain(tid, domain, kind, None, 1).await?;
    Ok((s, dir, tid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tenant_domain_user_round_trip() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-store-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let store = Store::open(&dir.join("t.db"), true).await?;
        let tid = Uuid::new_v4();
        store.create_tenant(tid, "contoso", 1).await?;
        assert!(matches!(
            store.create_tenant(Uuid::new_v4(), "CONTOSO", 1).await,
            Err(StoreError::Conflict(_))
        ));
        let t = store
            .tenant("Contoso")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no tenant"))?;
        assert_eq!(t.id, tid);
        assert!(store.tenant(&tid.to_string()).await?.is_some());
        store
            .add_domain(tid, "Corp.Example.Test", DomainKind::Managed, None, 1)
            .await?;
        let d = store
            .domain("corp.example.test")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no domain"))?;
        assert_eq!(d.kind, DomainKind::Managed);
        let oid = Uuid::new_v4();
        let mut rec = OnpremUser {
            tenant_id: tid,
            id: oid,
            immutable_id: "guid-1",
            upn: "a@corp.example.test",
            display_name: Some("A"),
            mail: None,
        };
        let u = store.upsert_onprem_user(&rec, 5).await?;
        assert_eq!(u.id, oid);
        rec.display_name = Some("A2");
        let again = store.upsert_onprem_user(&rec, 6).await?;
        assert_eq!(again.display_name.as_deref(), Some("A2"));
        store.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
