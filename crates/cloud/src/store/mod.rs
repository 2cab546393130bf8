//! The cloud store: tenants, domains, users, apps, agents, signing keys, refresh tokens and
//! the sign-in log, and never a password (cloud-only users have an argon2id hash, everyone
//! else has none).
//!
//! Three parts:
//! - one trait per area (`TenantStore`, `OidcStore`, `SyncStore`, ...), combined in
//!   [`Backend`]; each documents the rules a backend keeps, and `conformance` checks them;
//! - `sqlite`, the backend over SQLite in the data dir, and `postgres`, the backend over a
//!   PostgreSQL database;
//! - [`Store`], the facade the rest of the cloud holds: a `dyn Backend` plus what no backend
//!   should repeat (the read-through cache of tenants, apps and domains, and the batched
//!   sign-in log writer). It dereferences to the backend, so `store.users(t)` calls the
//!   backend and `store.tenant(name)` the cache in front of it.

use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;

pub mod admin;
pub mod agents;
pub mod app_credentials;
pub mod apps;
pub mod attempts;
pub mod audit;
mod cache;
#[cfg(test)]
pub(crate) mod conformance;
pub mod device;
pub mod domains;
pub mod federation;
pub mod groups;
pub mod housekeeping;
pub mod instances;
pub mod lockout;
pub mod mfa;
pub mod oidc;
pub mod portal;
mod postgres;
pub mod releases;
pub mod sign_in_state;
pub mod sign_ins;
mod signin_log;
pub mod signing_keys;
mod sqlite;
pub(crate) use sqlite::snapshot::snapshot as snapshot_sqlite;
pub mod sync;
pub mod tenants;
pub(crate) mod transfer;
pub mod users;
pub mod writeback;

pub use crate::model::records::{
    AgentRecord, App, Domain, DomainKind, OnpremUser, PrincipalKind, RefreshRecord, RoleAssignment,
    SignIn, Tenant, User,
};
pub use admin::{SignInFilter, UserPage};
pub use agents::{AgentStore, AgentTally};
pub use app_credentials::AppCredentialStore;
pub use apps::AppStore;
pub use attempts::AttemptStore;
pub use audit::{AuditEntry, AuditFilter, AuditStore, BrandingStore, Logo};
pub use device::DeviceStore;
pub use domains::DomainStore;
pub use federation::FederationStore;
pub use groups::GroupStore;
pub use housekeeping::HousekeepingStore;
pub use instances::InstanceStore;
pub use lockout::LockoutStore;
pub use mfa::MfaStore;
pub use oidc::{
    AuthCode, AuthzRequest, ChangeSecondFactor, OidcStore, PasswordChangeGrant, SessionRecord,
};
pub use portal::PortalStore;
pub use releases::ReleaseStore;
pub use sign_in_state::SignInStateStore;
pub use sign_ins::SignInLogStore;
pub use signing_keys::SigningKeyStore;
pub use sync::SyncStore;
pub use tenants::TenantStore;
pub use users::UserStore;
pub use writeback::WritebackStore;

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database could not be opened or answered with an error (disk full, corrupt, locked,
    /// the server gone).
    #[error("the store failed: {0}. Check the data dir's disk space and permissions, or, for a PostgreSQL store, that the server runs and accepts connections.")]
    Db(#[from] sqlx::Error),
    /// As [`StoreError::Db`], from the SQLite store's statements run on the request's
    /// thread (`sqlite::inline`).
    #[error("the store failed: {0}. Check the data dir's disk space and permissions.")]
    Sqlite(#[from] rusqlite::Error),
    /// The PostgreSQL store could not be reached or set up; the message names it by host
    /// (never with the URL's password) and says what to check.
    #[error("{0}")]
    Unavailable(String),
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
    /// The app already has this many credentials (secrets and certificates, expired ones
    /// included), the most it may have; nothing was added.
    #[error("the app already has {max} credentials (secrets and certificates, expired ones included), the most it may have")]
    TooManyCredentials { max: usize },
    /// The change would leave the tenant without an enabled Global Administrator; nothing
    /// was changed.
    #[error("the change would leave the tenant without an enabled Global Administrator")]
    LastGlobalAdmin,
    /// The store is served by another instance in a way that excludes this one (the message
    /// says what to do).
    #[error("{0}")]
    InUse(String),
    /// The store's schema was migrated by a newer release than this binary: serving it (or
    /// migrating, or backing it up) could misread what the newer release wrote.
    #[error("this store was upgraded by a newer passthru-cloud (schema {found}, this binary knows up to {known}): install that version or newer")]
    SchemaTooNew { found: i64, known: i64 },
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// `url` without its password, whether in the user info or in a `password` or `sslpassword`
/// parameter: what messages, logs and the moved-store marker show of a store's URL.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            if u.query().is_some() {
                let pairs: Vec<(String, String)> = u
                    .query_pairs()
                    .map(|(k, v)| {
                        let secret = k.eq_ignore_ascii_case("password")
                            || k.eq_ignore_ascii_case("sslpassword");
                        (
                            k.to_string(),
                            if secret { "***".into() } else { v.to_string() },
                        )
                    })
                    .collect();
                u.query_pairs_mut().clear().extend_pairs(pairs);
            }
            u.to_string()
        }
        Err(_) => "(the URL given)".into(),
    }
}

/// Pending rows (sign-ins in progress) a tenant may have in each table unless `serve` sets
/// another cap (`--max-pending-per-tenant`).
pub const DEFAULT_PENDING_ROWS_PER_TENANT: i64 = 100_000;

/// Every area of the store: what a backend implements (each area's trait) and what
/// [`Store`] holds.
pub trait Backend:
    TenantStore
    + DomainStore
    + UserStore
    + AppStore
    + AppCredentialStore
    + SignInLogStore
    + AgentStore
    + GroupStore
    + SyncStore
    + SignInStateStore
    + HousekeepingStore
    + OidcStore
    + LockoutStore
    + DeviceStore
    + MfaStore
    + AttemptStore
    + WritebackStore
    + SigningKeyStore
    + PortalStore
    + FederationStore
    + InstanceStore
    + ReleaseStore
    + AuditStore
    + BrandingStore
    + std::fmt::Debug
{
}

/// A JSON array of strings stored in a text column (empty when it is not one).
pub(crate) fn json_list(text: String) -> Vec<String> {
    serde_json::from_str(&text).unwrap_or_default()
}

/// The origin of a URL (`scheme://host[:port]`, as browsers send it in `Origin`).
pub fn origin_of(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    match u.origin() {
        url::Origin::Tuple(..) => Some(u.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// The store the cloud holds: a backend, with the read-through cache and the sign-in log
/// writer in front of it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Arc<dyn Backend>,
    tenants: Arc<cache::TtlCache<Tenant>>,
    apps: Arc<cache::TtlCache<App>>,
    spa_origins: Arc<cache::TtlCache<Arc<Vec<String>>>>,
    domains: Arc<cache::TtlCache<Domain>>,
    /// When each tenant's logo was set (`None`: no logo), read by every sign-in page.
    logos: Arc<cache::TtlCache<Option<i64>>>,
    /// The sign-in log's writer task.
    sign_in_writer: signin_log::Writer,
    /// Counts the writes that invalidated the caches: another instance's caches must drop
    /// what they hold too (the bus announces each).
    changes: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::ops::Deref for Store {
    type Target = dyn Backend;

    fn deref(&self) -> &Self::Target {
        &*self.backend
    }
}

impl Store {
    /// Opens (creating if asked) the SQLite store at `path` and applies the schema.
    pub async fn open(path: &Path, create: bool) -> Result<Store> {
        let backend = sqlite::SqliteStore::open(path, create).await?;
        Ok(Store::over(Arc::new(backend)))
    }

    /// Connects to the PostgreSQL store at `url` (`postgres://user@host/db`) and brings its
    /// schema up to date. `create` as for [`Store::open`]: the database must exist, the
    /// tables are created when missing.
    pub async fn open_postgres(url: &str, create: bool) -> Result<Store> {
        let backend = postgres::PgStore::open(url, create).await?;
        Ok(Store::over(Arc::new(backend)))
    }

    /// The facade over `backend` (starts the sign-in log writer: call within a runtime).
    pub(crate) fn over(backend: Arc<dyn Backend>) -> Store {
        Store {
            sign_in_writer: signin_log::start(backend.clone()),
            backend,
            tenants: Arc::new(cache::TtlCache::new()),
            apps: Arc::new(cache::TtlCache::new()),
            spa_origins: Arc::new(cache::TtlCache::new()),
            domains: Arc::new(cache::TtlCache::new()),
            logos: Arc::new(cache::TtlCache::new()),
            changes: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// A write that the caches may hold an older copy of happened here: they drop
    /// everything, and [`Store::changes`] tells whoever listens (the bus, which tells the
    /// other instances).
    fn changed(&self) {
        self.clear_caches();
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Drops everything the caches hold (another instance changed the store).
    pub fn clear_caches(&self) {
        self.tenants.clear();
        self.apps.clear();
        self.spa_origins.clear();
        self.domains.clear();
        self.logos.clear();
    }

    /// Changes on every write through this facade that invalidated its caches.
    pub fn changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// The backend itself, without the cache and the log writer (for the conformance
    /// suite).
    #[cfg(test)]
    pub(crate) fn backend(&self) -> &dyn Backend {
        &*self.backend
    }

    /// Writes the sign-in log lines still queued, then closes the backend.
    pub async fn close(&self) {
        self.flush_sign_ins().await;
        self.backend.close().await;
    }

    // The methods below shadow the backend's of the same name (a method of `Store` is found
    // before one reached through `Deref`): reads through the cache, and writes that
    // invalidate it.

    /// Finds a tenant by its name or its id (cached for a few seconds).
    pub async fn tenant(&self, name_or_id: &str) -> Result<Option<Tenant>> {
        let key = name_or_id.to_ascii_lowercase();
        if let Some(t) = self.tenants.get(&key) {
            return Ok(Some(t));
        }
        let t = self.backend.tenant(name_or_id).await?;
        if let Some(t) = &t {
            self.tenants.put(key, t.clone());
        }
        Ok(t)
    }

    /// When the tenant's logo was set, if it has one (cached for a few seconds, the absence
    /// of a logo too: every sign-in page asks).
    pub async fn logo_version(&self, tenant_id: Uuid) -> Result<Option<i64>> {
        let key = tenant_id.to_string();
        if let Some(v) = self.logos.get(&key) {
            return Ok(v);
        }
        let v = self.backend.logo_version(tenant_id).await?;
        self.logos.put(key, v);
        Ok(v)
    }

    /// Sets the tenant's logo.
    pub async fn set_logo(&self, tenant_id: Uuid, logo: &Logo) -> Result<()> {
        let r = self.backend.set_logo(tenant_id, logo).await;
        self.changed();
        r
    }

    /// Removes the tenant's logo; whether it had one.
    pub async fn remove_logo(&self, tenant_id: Uuid) -> Result<bool> {
        let r = self.backend.remove_logo(tenant_id).await;
        self.changed();
        r
    }

    /// Stores a tenant's settings.
    pub async fn save_settings(
        &self,
        tenant_id: Uuid,
        settings: &crate::model::settings::Settings,
    ) -> Result<()> {
        let r = self.backend.save_settings(tenant_id, settings).await;
        self.changed();
        r
    }

    /// Turns pass-through authentication on or off for a tenant.
    pub async fn set_pta(&self, tenant_id: Uuid, enabled: bool) -> Result<()> {
        let r = self.backend.set_pta(tenant_id, enabled).await;
        self.changed();
        r
    }

    /// A verified domain by name, in any tenant (cached for a few seconds).
    pub async fn domain(&self, name: &str) -> Result<Option<Domain>> {
        let key = name.to_ascii_lowercase();
        if let Some(d) = self.domains.get(&key) {
            return Ok(Some(d));
        }
        let d = self.backend.domain(name).await?;
        if let Some(d) = &d {
            self.domains.put(key, d.clone());
        }
        Ok(d)
    }

    /// Marks a domain verified.
    pub async fn set_domain_verified(&self, tenant_id: Uuid, name: &str) -> Result<()> {
        let r = self.backend.set_domain_verified(tenant_id, name).await;
        self.changed();
        r
    }

    /// Removes a domain (and its federation settings).
    pub async fn remove_domain(&self, tenant_id: Uuid, name: &str) -> Result<()> {
        let r = self.backend.remove_domain(tenant_id, name).await;
        self.changed();
        r
    }

    /// Makes a federated domain managed.
    pub async fn convert_to_managed(
        &self,
        tenant_id: Uuid,
        name: &str,
    ) -> Result<federation::Conversion> {
        let r = self.backend.convert_to_managed(tenant_id, name).await;
        self.changed();
        r
    }

    /// An app by client id (cached for a few seconds).
    pub async fn app(&self, tenant_id: Uuid, client_id: &str) -> Result<Option<App>> {
        let key = format!("{tenant_id}/{}", client_id.to_ascii_lowercase());
        if let Some(a) = self.apps.get(&key) {
            return Ok(Some(a));
        }
        let app = self.backend.app(tenant_id, client_id).await?;
        if let Some(a) = &app {
            self.apps.put(key, a.clone());
        }
        Ok(app)
    }

    /// Replaces an app's redirect URIs.
    pub async fn set_app_redirect_uris(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        uris: &[String],
    ) -> Result<()> {
        let r = self
            .backend
            .set_app_redirect_uris(tenant_id, client_id, uris)
            .await;
        self.changed();
        r
    }

    /// Turns the groups claim of an app's tokens on or off.
    pub async fn set_app_groups_claim(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        on: bool,
    ) -> Result<()> {
        let r = self
            .backend
            .set_app_groups_claim(tenant_id, client_id, on)
            .await;
        self.changed();
        r
    }

    /// Deletes an app with its refresh tokens, codes and pending device codes.
    pub async fn delete_app(&self, tenant_id: Uuid, client_id: &str) -> Result<()> {
        let r = self.backend.delete_app(tenant_id, client_id).await;
        self.changed();
        r
    }

    /// Marks an app as a single-page app (or not).
    pub async fn set_app_spa(&self, tenant_id: Uuid, client_id: &str, spa: bool) -> Result<()> {
        let r = self.backend.set_app_spa(tenant_id, client_id, spa).await;
        self.changed();
        r
    }

    /// Sets the algorithm of an app's ID tokens.
    pub async fn set_app_id_token_alg(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        alg: &str,
    ) -> Result<()> {
        let r = self
            .backend
            .set_app_id_token_alg(tenant_id, client_id, alg)
            .await;
        self.changed();
        r
    }

    /// Replaces the API an app exposes.
    pub async fn set_app_api(
        &self,
        tenant_id: Uuid,
        client_id: &str,
        identifier_uri: Option<&str>,
        scopes: &[String],
        roles: &[String],
    ) -> Result<()> {
        let r = self
            .backend
            .set_app_api(tenant_id, client_id, identifier_uri, scopes, roles)
            .await;
        self.changed();
        r
    }

    /// The app whose API has this identifier URI (cached for a few seconds).
    pub async fn app_by_identifier_uri(&self, tenant_id: Uuid, uri: &str) -> Result<Option<App>> {
        let key = format!("{tenant_id}/uri/{uri}");
        if let Some(a) = self.apps.get(&key) {
            return Ok(Some(a));
        }
        let app = self.backend.app_by_identifier_uri(tenant_id, uri).await?;
        if let Some(a) = &app {
            self.apps.put(key, a.clone());
        }
        Ok(app)
    }

    /// The origins (`scheme://host[:port]`) of single-page apps' redirect URIs: of one
    /// tenant, or of every tenant (`None`); cached for a few seconds (every CORS request
    /// asks).
    pub async fn spa_origins(&self, tenant_id: Option<Uuid>) -> Result<Arc<Vec<String>>> {
        let key = tenant_id.map_or_else(|| "*".to_string(), |t| t.to_string());
        if let Some(o) = self.spa_origins.get(&key) {
            return Ok(o);
        }
        let mut origins: Vec<String> = self
            .backend
            .spa_redirect_uris(tenant_id)
            .await?
            .iter()
            .filter_map(|u| origin_of(u))
            .collect();
        origins.sort();
        origins.dedup();
        let origins = Arc::new(origins);
        self.spa_origins.put(key, origins.clone());
        Ok(origins)
    }

    /// The newest `limit` lines of the sign-in log (after the queued ones are written).
    pub async fn sign_ins(&self, tenant_id: Uuid, limit: i64) -> Result<Vec<SignIn>> {
        self.flush_sign_ins().await;
        self.backend.sign_ins(tenant_id, limit).await
    }

    /// Sign-in log lines matching `f`, newest first.
    pub async fn sign_ins_filtered(
        &self,
        tenant_id: Uuid,
        f: &SignInFilter,
    ) -> Result<Vec<SignIn>> {
        self.flush_sign_ins().await;
        self.backend.sign_ins_filtered(tenant_id, f).await
    }

    /// One line of the sign-in log by its id.
    pub async fn sign_in(&self, tenant_id: Uuid, id: i64) -> Result<Option<SignIn>> {
        self.flush_sign_ins().await;
        self.backend.sign_in(tenant_id, id).await
    }

    /// Deletes each tenant's sign-in log lines older than its retention setting.
    pub async fn purge_sign_ins(&self, now_ms: i64) -> Result<u64> {
        self.flush_sign_ins().await;
        self.backend.purge_sign_ins(now_ms).await
    }

    /// Sign-ins per minute and result since `since_ms`.
    pub async fn sign_ins_per_minute(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
    ) -> Result<Vec<portal::MinuteCount>> {
        self.flush_sign_ins().await;
        self.backend.sign_ins_per_minute(tenant_id, since_ms).await
    }

    /// Failed sign-ins since `since_ms` by AADSTS and Win32 code, most frequent first.
    pub async fn failures_by_reason(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        limit: i64,
    ) -> Result<Vec<portal::FailureCount>> {
        self.flush_sign_ins().await;
        self.backend
            .failures_by_reason(tenant_id, since_ms, limit)
            .await
    }

    /// The latencies (ms) of the newest `limit` sign-ins since `since_ms`.
    pub async fn sign_in_latencies(
        &self,
        tenant_id: Uuid,
        since_ms: i64,
        pass_through: bool,
        limit: i64,
    ) -> Result<Vec<i64>> {
        self.flush_sign_ins().await;
        self.backend
            .sign_in_latencies(tenant_id, since_ms, pass_through, limit)
            .await
    }
}

/// The backends a test can run on.
#[cfg(test)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TestBackend {
    /// A file in a temporary directory.
    Sqlite,
    /// A schema of its own (`pt_<uuid>`, dropped at [`Store::close`]) in the database at
    /// `PASSTHRU_TEST_POSTGRES` (default [`DEFAULT_TEST_POSTGRES`]).
    Postgres,
}

/// The PostgreSQL database the tests use unless `PASSTHRU_TEST_POSTGRES` names another.
#[cfg(test)]
pub(crate) const DEFAULT_TEST_POSTGRES: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Whether the PostgreSQL tests are skipped (`PASSTHRU_SKIP_POSTGRES=1`); otherwise they
/// fail when the database is unreachable.
#[cfg(test)]
pub(crate) fn postgres_skipped() -> bool {
    std::env::var("PASSTHRU_SKIP_POSTGRES").is_ok_and(|v| v == "1")
}

/// A new store on `backend` in a temporary directory with the tenant `contoso` and one
/// domain, for unit tests: the store, its directory (remove it at the end) and the tenant id.
#[cfg(test)]
pub(crate) async fn test_store_on(
    backend: TestBackend,
    label: &str,
    domain: &str,
    kind: DomainKind,
) -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
    let (s, dir) = empty_test_store(backend, label).await?;
    let tid = Uuid::new_v4();
    s.create_tenant(tid, "contoso", 1).await?;
    s.add_domain(tid, domain, kind, None, 1).await?;
    Ok((s, dir, tid))
}

/// An empty store on `backend`, and a temporary directory (remove it at the end; a
/// PostgreSQL store leaves it empty and drops its schema at [`Store::close`]).
#[cfg(test)]
pub(crate) async fn empty_test_store(
    backend: TestBackend,
    label: &str,
) -> anyhow::Result<(Store, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!("passthru-{label}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let s = match backend {
        TestBackend::Sqlite => Store::open(&dir.join("t.db"), true).await?,
        TestBackend::Postgres => {
            let url = std::env::var("PASSTHRU_TEST_POSTGRES")
                .unwrap_or_else(|_| DEFAULT_TEST_POSTGRES.to_string());
            let schema = format!("pt_{}", Uuid::new_v4().simple());
            let backend = postgres::PgStore::open_in_schema(&url, &schema)
                .await
                .map_err(|e| {
                    anyhow::anyhow!(
                        "{e}\n(the PostgreSQL tests use PASSTHRU_TEST_POSTGRES, default \
                         {DEFAULT_TEST_POSTGRES}; set PASSTHRU_SKIP_POSTGRES=1 to skip them)"
                    )
                })?;
            Store::over(Arc::new(backend))
        }
    };
    Ok((s, dir))
}
