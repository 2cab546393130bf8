//! The audit log: one entry per administrative change (admin API, CLI, portal), newest first,
//! read a page at a time, kept for each tenant's `audit_retention_days`.

use async_trait::async_trait;
use serde::Serialize;
use uuid::Uuid;

use super::Result;

/// One administrative change. The before and after states and the request are JSON with
/// every secret removed ([`crate::admin_api::audit`] redacts them before they get here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEntry {
    /// Assigned by the store, increasing; 0 on an entry not yet written.
    pub id: i64,
    pub time_ms: i64,
    /// The administrator's user id and UPN (as they were at the time).
    pub actor_id: Uuid,
    pub actor: String,
    /// The client's address as the cloud saw it.
    pub client_ip: Option<String>,
    /// `api`, `cli` or `portal`.
    pub via: String,
    /// The admin API operation (`disableUser`, `addDomain`, ...).
    pub operation: String,
    /// What it acted on: the request path under `/{tenant}/admin`.
    pub target: String,
    /// The HTTP status the change was answered with (2xx: done; anything else: refused, and
    /// nothing changed).
    pub status: u16,
    pub correlation_id: String,
    /// What the request asked for (JSON), secrets removed.
    pub request: Option<String>,
    /// The target before and after the change (JSON), secrets removed, where it has a state.
    pub before: Option<String>,
    pub after: Option<String>,
}

/// Which entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    /// The actor's UPN, exact (case-insensitive).
    pub actor: Option<String>,
    /// The operation id, exact.
    pub operation: Option<String>,
    /// Only entries whose target contains this text.
    pub target: Option<String>,
    /// Only entries older than this id (the continuation of a previous page).
    pub before_id: Option<i64>,
    /// At most this many entries.
    pub limit: i64,
}

/// The audit log. Every backend implements it and passes `store::conformance`.
#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Writes an entry of `tenant_id`'s log; returns its id.
    async fn add_audit(&self, tenant_id: Uuid, entry: &AuditEntry) -> Result<i64>;

    /// Entries matching `f`, newest first (highest id first).
    async fn audit_entries(&self, tenant_id: Uuid, f: &AuditFilter) -> Result<Vec<AuditEntry>>;

    /// Deletes each tenant's entries older than its `audit_retention_days`. Returns how many
    /// went.
    async fn purge_audit(&self, now_ms: i64) -> Result<u64>;
}

/// A tenant's logo as uploaded (its content type recognised from its bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logo {
    pub content_type: String,
    pub bytes: Vec<u8>,
    pub updated_at: i64,
}

/// The sign-in pages' logo of each tenant. Every backend implements it and passes
/// `store::conformance`.
#[async_trait]
pub trait BrandingStore: Send + Sync {
    /// Sets (or replaces) the tenant's logo.
    async fn set_logo(&self, tenant_id: Uuid, logo: &Logo) -> Result<()>;
    /// The tenant's logo, if it has one.
    async fn logo(&self, tenant_id: Uuid) -> Result<Option<Logo>>;
    /// Removes the tenant's logo; whether it had one.
    async fn remove_logo(&self, tenant_id: Uuid) -> Result<bool>;
    /// When the tenant's logo was last set, if it has one (what a page needs to show it,
    /// without reading its bytes).
    async fn logo_version(&self, tenant_id: Uuid) -> Result<Option<i64>>;
}
