//! `passthru-cloud init` and `passthru-cloud tenant add`: create a data dir (store, PKI,
//! the key that seals secrets at rest) and tenants with their cloud-only Global Administrator
//! and their first token signing key.

use std::path::Path;
use std::sync::Arc;

use uuid::Uuid;
use zeroize::Zeroizing;

use crate::admin_api::GLOBAL_ADMIN;
use crate::clock::unix_now;
use crate::pki::{self, PkiPaths};
use crate::secret_box::SecretBox;
use crate::store::{DomainKind, Store};

/// The store file's name in the data dir.
pub const STORE_FILE: &str = "passthru.db";
/// The file in the data dir naming a PostgreSQL store (`init --store postgres://...`): the
/// URL, on one line. Without it, the store is [`STORE_FILE`].
pub const STORE_URL_FILE: &str = "store.url";

/// Where a data dir's state is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The SQLite file in the data dir.
    Sqlite(std::path::PathBuf),
    /// A PostgreSQL database (`postgres://USER@HOST[:PORT]/DB`).
    Postgres(String),
}

impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreLocation::Sqlite(p) => write!(f, "{}", p.display()),
            StoreLocation::Postgres(url) => f.write_str(&redact_url(url)),
        }
    }
}

pub use crate::store::redact_url;

/// Checks `--store`: a `postgres://` (or `postgresql://`) URL with a host and a database.
pub fn parse_store_url(raw: &str) -> Result<String, String> {
    let u = url::Url::parse(raw)
        .map_err(|e| format!("--store must be postgres://USER@HOST[:PORT]/DB ({e})"))?;
    if !matches!(u.scheme(), "postgres" | "postgresql")
        || u.host_str().is_none_or(str::is_empty)
        || u.path().trim_start_matches('/').is_empty()
    {
        return Err(format!(
            "--store must be postgres://USER@HOST[:PORT]/DB (got '{}')",
            redact_url(raw)
        ));
    }
    Ok(raw.to_string())
}

/// Where `data_dir` keeps its state: the PostgreSQL store its `store.url` names, else its
/// SQLite file. Fails when it has neither.
pub fn store_location(data_dir: &Path) -> anyhow::Result<StoreLocation> {
    let url_file = data_dir.join(STORE_URL_FILE);
    if url_file.exists() {
        let raw = std::fs::read_to_string(&url_file)?;
        let url = parse_store_url(raw.trim())
            .map_err(|e| anyhow::anyhow!("{}: {e}", url_file.display()))?;
        return Ok(StoreLocation::Postgres(url));
    }
    let db = data_dir.join(STORE_FILE);
    if !db.exists() {
        anyhow::bail!(
            "{} has no store: run `passthru-cloud init --data-dir {} --tenant NAME --admin UPN` first",
            data_dir.display(),
            data_dir.display()
        );
    }
    Ok(StoreLocation::Sqlite(db))
}

/// Opens the store at `location` (creating a SQLite file's tables, or a PostgreSQL
/// database's schema, with `create`).
pub async fn open_location(location: &StoreLocation, create: bool) -> anyhow::Result<Store> {
    Ok(match location {
        StoreLocation::Sqlite(path) => Store::open(path, create).await?,
        StoreLocation::Postgres(url) => Store::open_postgres(url, create).await?,
    })
}

/// Opens the data dir's store with the key that seals its secrets (`mfa.key`, created when
/// missing), and seals what an older release stored in the clear (signing private keys,
/// federation client secrets). Every command that opens a data dir goes through here.
pub async fn open_store(data_dir: &Path, create: bool) -> anyhow::Result<(Store, Arc<SecretBox>)> {
    open_store_at(data_dir, &store_location(data_dir)?, create).await
}

/// [`open_store`] with the store at `location` instead of the data dir's own (`serve
/// --store`).
pub async fn open_store_at(
    data_dir: &Path,
    location: &StoreLocation,
    create: bool,
) -> anyhow::Result<(Store, Arc<SecretBox>)> {
    let secrets = Arc::new(SecretBox::load_or_create(data_dir)?);
    let store = open_location(location, create).await?;
    let sealed = store.seal_plaintext_secrets(&secrets).await?;
    if sealed > 0 {
        tracing::info!(
            sealed,
            "signing keys and federation client secrets stored in the clear by an earlier release are now sealed"
        );
    }
    Ok((store, secrets))
}

/// Makes the data dir 0700 and its store files 0600, whatever they were (a pre-existing
/// directory made with the default umask is 0755).
pub fn restrict_modes(data_dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    for name in [
        STORE_FILE.to_string(),
        format!("{STORE_FILE}-wal"),
        format!("{STORE_FILE}-shm"),
    ] {
        let path = data_dir.join(name);
        if path.exists() {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
        }
    }
    Ok(())
}

/// Creates a tenant, its initial cloud-only domain (the admin UPN's domain), its Global
/// Administrator and its first token signing key. Returns the tenant id.
pub async fn create_tenant(
    store: &Store,
    secrets: &SecretBox,
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
    crate::tokens::create_first_key(store, secrets, id, now).await?;
    Ok(id)
}

/// Creates a new data dir. Refuses to touch an existing, non-empty one.
pub async fn init(
    data_dir: &Path,
    tenant: &str,
    admin_upn: &str,
    admin_password: Zeroizing<String>,
    hostnames: &[String],
    store_url: Option<&str>,
) -> anyhow::Result<Uuid> {
    if let Some(url) = store_url {
        parse_store_url(url).map_err(|e| anyhow::anyhow!(e))?;
        // Refused before the data dir is made: a database that already holds a deployment
        // is never initialised again.
        let store = Store::open_postgres(url, true).await?;
        let existing = store.meta(crate::store::instances::DEPLOYMENT_ID).await?;
        let tenants = store.count_rows("tenants").await?;
        store.close().await;
        if existing.is_some() || tenants > 0 {
            anyhow::bail!(
                "{} already holds a Passthru deployment: refusing to initialise it again. Choose an empty database, or serve the existing deployment with a copy (cp -a) of the data dir of one of its instances",
                redact_url(url)
            );
        }
    }
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
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)?;
        // An existing (empty) directory keeps its mode through `create`: 0700 now.
        restrict_modes(data_dir)?;
        match store_url {
            Some(url) => {
                use std::io::Write as _;
                // The URL may carry a password: private like the keys.
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(data_dir.join(STORE_URL_FILE))?;
                writeln!(f, "{url}")?;
            }
            None => {
                // The store file exists, private, before SQLite writes a byte to it (SQLite
                // gives its journal files the same mode).
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(data_dir.join(STORE_FILE))?;
            }
        }
    }
    pki::create(
        &PkiPaths::new(data_dir),
        hostnames,
        time::OffsetDateTime::now_utc(),
    )?;
    // The key that seals secrets at rest (0600, next to the other keys).
    let (store, secrets) = open_store(data_dir, true).await?;
    store.deployment_id().await?;
    let id = create_tenant(&store, &secrets, tenant, admin_upn, admin_password).await?;
    store.close().await;
    restrict_modes(data_dir)?;
    Ok(id)
}

/// Adds a tenant to an existing data dir.
pub async fn add_tenant(
    data_dir: &Path,
    tenant: &str,
    admin_upn: &str,
    admin_password: Zeroizing<String>,
) -> anyhow::Result<Uuid> {
    store_location(data_dir)?;
    let (store, secrets) = open_store(data_dir, false).await?;
    let id = create_tenant(&store, &secrets, tenant, admin_upn, admin_password).await;
    store.close().await;
    id
}

#[cfg(test)]
mod redact_tests {
    /// No password survives, wherever the URL carries it.
    #[test]
    fn passwords_are_masked_in_user_info_and_parameters() {
        for (raw, secret) in [
            ("postgres://u:S3cret@h/db", "S3cret"),
            (
                "postgres://u@h/db?password=S3cret&sslmode=require",
                "S3cret",
            ),
            ("postgres://u@h/db?sslpassword=S3cret", "S3cret"),
        ] {
            let shown = super::redact_url(raw);
            assert!(!shown.contains(secret), "{shown}");
            assert!(
                shown.contains("u@h") || shown.contains("u:***@h"),
                "{shown}"
            );
        }
        assert!(super::redact_url("postgres://u@h/db?sslmode=require").contains("sslmode=require"));
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use axum::body::Body;
    use axum::http::Request;

    use super::*;
    use crate::test_state::{TestServer, ADMIN, TENANT};

    fn mode(p: &Path) -> anyhow::Result<u32> {
        Ok(std::fs::metadata(p)?.permissions().mode() & 0o777)
    }

    /// `init` on a directory that already exists (empty, 0755 as `mkdir` makes it) leaves it
    /// 0700 and the store 0600.
    #[tokio::test]
    async fn init_makes_a_pre_existing_dir_private() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-initmode-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))?;
        init(
            &dir,
            "contoso",
            "admin@contoso.example",
            Zeroizing::new("Adm1n-password".into()),
            &[],
            None,
        )
        .await?;
        assert_eq!(mode(&dir)?, 0o700);
        assert_eq!(mode(&dir.join(STORE_FILE))?, 0o600);
        assert_eq!(mode(&dir.join(crate::secret_box::KEY_FILE))?, 0o600);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    /// After signing keys are made (init, a second tenant, a rotation) and a federated domain
    /// is added with its client secret, the store's files hold no PEM private key and no
    /// client secret: both are sealed.
    #[tokio::test]
    async fn the_store_holds_no_private_key_or_client_secret() -> anyhow::Result<()> {
        const SECRET: &str = "upstream-client-secret-4711-xyzzy";
        let s = TestServer::start(None).await?;
        let b = s.add_tenant("beta", "admin@beta.example").await?;
        s.state.signer.rotate(b, crate::clock::unix_now()).await?;
        let token = s.admin_token(s.tenant_id, ADMIN).await?;
        let body = serde_json::json!({
            "name": "fab.example",
            "federated": {
                "issuer": "https://20.190.128.1/fab/v2.0",
                "client_id": "our-client",
                "client_secret": SECRET,
            },
        });
        let (status, v) = s
            .json(
                Request::post(format!("/{TENANT}/admin/domains"))
                    .header("authorization", format!("Bearer {token}"))
                    .header("content-type", "application/json")
                    .body(Body::from(body.to_string()))?,
            )
            .await?;
        assert_eq!(status, 201, "{v}");
        // What the store holds still opens: the secret and the keys are usable.
        s.state
            .store
            .set_domain_verified(s.tenant_id, "fab.example")
            .await?;
        let cfg = s
            .state
            .store
            .federation("fab.example", &s.state.mfa_box)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no federation"))?;
        assert_eq!(cfg.client_secret.as_str(), SECRET);
        let mut files = Vec::new();
        for name in [
            STORE_FILE.to_string(),
            format!("{STORE_FILE}-wal"),
            format!("{STORE_FILE}-shm"),
        ] {
            files.push((
                name.clone(),
                std::fs::read(s.dir.join(&name)).unwrap_or_default(),
            ));
        }
        s.state.store.close().await;
        files.push(("closed".into(), std::fs::read(s.dir.join(STORE_FILE))?));
        for (name, bytes) in &files {
            assert!(
                !contains(bytes, b"PRIVATE KEY"),
                "{name} holds a PEM private key"
            );
            assert!(
                !contains(bytes, SECRET.as_bytes()),
                "{name} holds the client secret"
            );
        }
        assert!(
            files.iter().any(|(_, b)| contains(b, b"our-client")),
            "the scan reads the store"
        );
        std::fs::remove_dir_all(&s.dir)?;
        Ok(())
    }
}
