//! `passthru-cloud init` and `passthru-cloud tenant add`: create a data dir (store, PKI,
//! signing key) and tenants with their cloud-only Global Administrator.

use std::path::Path;

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::admin_api::GLOBAL_ADMIN;
use crate::pki::{self, PkiPaths};
use crate::state::unix_now;
use crate::store::{DomainKind, Store};
use crate::tokens::generate_signing_key;

/// Creates a tenant, its initial cloud-only domain (the admin UPN's domain) and its Global
/// Administrator. Returns the tenant id.
pub async fn create_tenant(
    store: &Store,
    tenant: &str,
    admin_upn: &str,
    admin_password: Zeroizing<String>,
) -> anyhow::Result<Uuid> {
    let tenant = tenant.trim();
    if tenant.is_empty()
        || tenant.len() > 64
        || !tenant
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        || Uuid::parse_str(tenant).is_ok()
        || tenant.eq_ignore_ascii_case("common")
    {
        anyhow::bail!("tenant name '{tenant}' is not valid: use 1-64 letters, digits, '-', '.' or '_' (not a GUID, not 'common')");
    }
    let Some((local, domain)) = admin_upn.rsplit_once('@') else {
        anyhow::bail!("--admin must be a UPN like admin@contoso.example");
    };
    if local.is_empty() || !domain.contains('.') {
        anyhow::bail!("--admin must be a UPN like admin@contoso.example");
    }
    if admin_password.chars().count() < 8 {
        anyhow::bail!("the admin password must have at least 8 characters");
    }
    if store.domain_any(domain).await?.is_some() {
        anyhow::bail!(
            "domain '{domain}' already belongs to a tenant: use another admin UPN domain"
        );
    }
    let hash = crate::passwords::hash(admin_password).await?;
    let id = Uuid::new_v4();
    let now = unix_now();
    store.create_tenant(id, tenant, now).await?;
    store
        .add_domain(id, domain, DomainKind::Cloud, None, now)
        .await?;
    store
        .add_cloud_user(id, admin_upn, &hash, GLOBAL_ADMIN, now)
        .await?;
    Ok(id)
}

/// Creates a new data dir. Refuses to touch an existing, non-empty one.
pub async fn init(
    data_dir: &Path,
    tenant: &str,
    admin_upn: &str,
    admin_password: Zeroizing<String>,
    hostnames: &[String],
) -> anyhow::Result<Uuid> {
    if data_dir.exists()
        && std::fs::read_dir(data_dir)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        anyhow::bail!(
            "{} already exists and is not empty: refusing to overwrite it. Choose a new --data-dir, or remove the old one if you really mean to start over.",
            data_dir.display()
        );
    }
    {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
    }
    pki::create(
        &PkiPaths::new(data_dir),
        hostnames,
        time::OffsetDateTime::now_utc(),
    )?;
    // The key that seals users' TOTP secrets (0600, next to the other keys).
    crate::mfa::SecretBox::load_or_create(data_dir)?;
    let store = Store::open(&data_dir.join("passthru.db"), true).await?;
    store
        .add_signing_key(&generate_signing_key()?, unix_now())
        .await?;
    let id = create_tenant(&store, tenant, admin_upn, admin_password).await?;
    store.close().await;
    Ok(id)
}

/// Adds a tenant to an existing data dir.
pub async fn add_tenant(
    data_dir: &Path,
    tenant: &str,
    admin_upn: &str,
    admin_password: Zeroizing<String>,
) -> anyhow::Result<Uuid> {
    let db = data_dir.join("passthru.db");
    if !db.exists() {
        anyhow::bail!(
            "{} has no store: run `passthru-cloud init` first",
            data_dir.display()
        );
    }
    let store = Store::open(&db, false).await?;
    let id = create_tenant(&store, tenant, admin_upn, admin_password).await;
    store.close().await;
    id
}
