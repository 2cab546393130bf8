//! Schema migrations, embedded in the binary and applied by sqlx's migrator (which records
//! each in `_sqlx_migrations` with its checksum, so an edited migration is refused rather
//! than half-applied). Migration 1 is the schema as first released (idempotent, so stores
//! created before migrations existed take it as a no-op); later ones are files under
//! `crates/cloud/migrations/`. Add a migration; never edit one that has shipped.

use std::borrow::Cow;

use futures_util::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};
use sqlx::SqlitePool;

/// The numbered migrations after the baseline.
pub(super) const FILES: &[(i64, &str, &str)] = &[
    (
        2,
        "tenant administration",
        include_str!("../../../migrations/0002_tenant_admin.sql"),
    ),
    (
        3,
        "agent statistics",
        include_str!("../../../migrations/0003_agent_stats.sql"),
    ),
    (
        4,
        "administration portal",
        include_str!("../../../migrations/0004_portal.sql"),
    ),
    (
        5,
        "directory sync",
        include_str!("../../../migrations/0005_directory_sync.sql"),
    ),
    (
        6,
        "smart lockout",
        include_str!("../../../migrations/0006_smart_lockout.sql"),
    ),
    (
        7,
        "password writeback",
        include_str!("../../../migrations/0007_writeback.sql"),
    ),
    (
        8,
        "multi-factor authentication",
        include_str!("../../../migrations/0008_mfa.sql"),
    ),
    (
        9,
        "agents passed over in the sign-in log",
        include_str!("../../../migrations/0009_signin_agents.sql"),
    ),
    (
        10,
        "attempt limits and sign-in names",
        include_str!("../../../migrations/0010_attempt_limits.sql"),
    ),
    (
        11,
        "token signing keys per tenant, secrets sealed at rest",
        include_str!("../../../migrations/0011_keys_per_tenant.sql"),
    ),
    (
        12,
        "indexes of pending sign-in rows (caps and purge)",
        include_str!("../../../migrations/0012_pending_rows.sql"),
    ),
    (
        13,
        "several instances: deployment settings, sync leases with an expiry",
        include_str!("../../../migrations/0013_instances.sql"),
    ),
    (
        14,
        "agent certificate renewal",
        include_str!("../../../migrations/0014_agent_renewal.sql"),
    ),
    (
        15,
        "signed agent releases",
        include_str!("../../../migrations/0015_agent_releases.sql"),
    ),
    (
        16,
        "token signing keys per algorithm (RS256 beside ES256)",
        include_str!("../../../migrations/0016_rs256_keys.sql"),
    ),
    (
        17,
        "app credentials: several secrets and certificates per app",
        include_str!("../../../migrations/0017_app_credentials.sql"),
    ),
    (
        18,
        "application platforms and APIs: single-page apps, ID-token algorithm, exposed scopes and app roles",
        include_str!("../../../migrations/0018_app_apis.sql"),
    ),
    (
        19,
        "the audit log; sign-in log paging; tenant logos",
        include_str!("../../../migrations/0019_audit_log.sql"),
    ),
];

#[derive(Debug)]
pub(super) struct Embedded;

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move {
            let baseline = [
                super::schema::SCHEMA,
                super::schema::FEDERATION_SCHEMA,
                super::schema::DEVICE_SCHEMA,
            ]
            .concat();
            let mut all = vec![Migration::new(
                1,
                Cow::Borrowed("baseline"),
                MigrationType::Simple,
                Cow::Owned(baseline),
                false,
            )];
            for (version, description, sql) in FILES {
                all.push(Migration::new(
                    *version,
                    Cow::Borrowed(*description),
                    MigrationType::Simple,
                    Cow::Borrowed(*sql),
                    false,
                ));
            }
            Ok(all)
        })
    }
}

/// The newest schema version this binary knows.
pub(crate) fn newest_known() -> i64 {
    FILES.last().map_or(1, |f| f.0)
}

/// The newest migration recorded in the store (0: none yet, a new or pre-migration store).
pub(crate) async fn recorded_version(pool: &SqlitePool) -> Result<i64, sqlx::Error> {
    let has_table: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations')",
    )
    .fetch_one(pool)
    .await?;
    if !has_table {
        return Ok(0);
    }
    let newest: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(pool)
        .await?;
    Ok(newest.unwrap_or(0))
}

/// Refuses a store whose schema a newer release migrated ([`crate::store::StoreError::SchemaTooNew`]).
pub(crate) async fn check_not_newer(pool: &SqlitePool) -> crate::store::Result<()> {
    let found = recorded_version(pool).await?;
    let known = newest_known();
    if found > known {
        return Err(crate::store::StoreError::SchemaTooNew { found, known });
    }
    Ok(())
}

/// Brings the store's schema up to date (a store migrated by a newer release is refused,
/// untouched).
pub(crate) async fn run(pool: &SqlitePool) -> crate::store::Result<()> {
    check_not_newer(pool).await?;
    Migrator::new(Embedded)
        .await
        .map_err(|e| crate::store::StoreError::Db(e.into()))?
        .run(pool)
        .await
        .map_err(|e| crate::store::StoreError::Db(e.into()))
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;
    use std::sync::Arc;

    /// A store of the release before per-tenant keys (migrations before 11): one deployment-wide
    /// signing key (PEM in the clear) for two tenants, a federated domain's client secret in
    /// the clear. Opening it (as `serve` does) gives each tenant that key, so tokens it signed
    /// still verify at either tenant, and seals both secrets: the file holds neither.
    #[tokio::test]
    async fn a_store_with_a_global_key_gets_per_tenant_sealed_keys() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-migrate11-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(crate::init::STORE_FILE);
        let old = crate::tokens::generate_signing_key()?;
        let (t1, t2) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        const SECRET: &str = "legacy-client-secret-0815";
        {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            let mut m = sqlx::migrate::Migrator::new(super::Embedded).await?;
            m.migrations = std::borrow::Cow::Owned(
                m.migrations
                    .iter()
                    .filter(|x| x.version < 11)
                    .cloned()
                    .collect(),
            );
            m.run(&pool).await?;
            for (id, name) in [(t1, "one"), (t2, "two")] {
                sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, ?, 1)")
                    .bind(id.to_string())
                    .bind(name)
                    .execute(&pool)
                    .await?;
            }
            sqlx::query("INSERT INTO signing_keys (kid, private_pem, public_raw, created_at) VALUES (?, ?, ?, 1)")
                .bind(&old.kid)
                .bind(old.private_pem.as_str())
                .bind(&old.public_raw)
                .execute(&pool)
                .await?;
            sqlx::query("INSERT INTO domains (name, tenant_id, kind, created_at) VALUES ('fab.example', ?, 'federated', 1)")
                .bind(t1.to_string())
                .execute(&pool)
                .await?;
            sqlx::query("INSERT INTO federation (domain, tenant_id, issuer, client_id, client_secret, created_at)
                         VALUES ('fab.example', ?, 'https://idp.example/v2.0', 'c', ?, 1)")
                .bind(t1.to_string())
                .bind(SECRET)
                .execute(&pool)
                .await?;
            pool.close().await;
        }
        let bytes = std::fs::read(&path)?;
        let has = |b: &[u8], n: &[u8]| b.windows(n.len()).any(|w| w == n);
        assert!(has(&bytes, b"PRIVATE KEY"), "the old store holds the PEM");

        let (store, secrets) = crate::init::open_store(&dir, false).await?;
        let signer = crate::tokens::Signer::new(store.clone(), secrets.clone());
        let now = crate::clock::unix_now();
        let claims = serde_json::json!({"iss": "i", "aud": "passthru-admin", "sub": "s",
            "oid": uuid::Uuid::new_v4(), "tid": t1, "exp": now + 60, "iat": now, "nbf": now, "ver": "2.0"});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(old.kid.clone());
        let issued_before = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_pem(old.private_pem.as_bytes())?,
        )?;
        for t in [t1, t2] {
            let keys = signer.keys(t).await?;
            assert_eq!(keys.current_kid(), Some(old.kid.as_str()));
            keys.verify_access(&issued_before, "passthru-admin")?;
        }
        // Rotating one tenant leaves the other on the old key.
        signer.rotate(t1, now).await?;
        assert_eq!(signer.keys(t2).await?.current_kid(), Some(old.kid.as_str()));
        assert_ne!(signer.keys(t1).await?.current_kid(), Some(old.kid.as_str()));
        store.set_domain_verified(t1, "fab.example").await?;
        let cfg = store
            .federation("fab.example", &secrets)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no federation"))?;
        assert_eq!(cfg.client_secret.as_str(), SECRET);
        store.close().await;
        // Whatever another connection of the process still held back in the WAL goes into
        // the file first (the last connection to close checkpoints, but which one is last
        // is up to the pools' background closing): the file alone is what is checked.
        {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?;
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&pool)
                .await?;
            pool.close().await;
        }
        let bytes = std::fs::read(&path)?;
        assert!(
            !has(&bytes, b"PRIVATE KEY"),
            "the PEM is gone from the file"
        );
        assert!(
            !has(&bytes, SECRET.as_bytes()),
            "the client secret is gone from the file"
        );
        // A second start seals nothing more and still opens everything.
        let (store, secrets2) = crate::init::open_store(&dir, false).await?;
        assert_eq!(store.seal_plaintext_secrets(&secrets2).await?, 0);
        let again = crate::tokens::Signer::new(store.clone(), Arc::clone(&secrets2));
        again
            .keys(t2)
            .await?
            .verify_access(&issued_before, "passthru-admin")?;
        store.close().await;
        // A connection closing in the background may still remove its -wal/-shm files while
        // the directory is being removed ("Directory not empty"): try again a few times.
        let mut removed = std::fs::remove_dir_all(&dir);
        for _ in 0..20 {
            if removed.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            removed = std::fs::remove_dir_all(&dir);
        }
        removed?;
        Ok(())
    }

    /// A store of the release before RS256 (migrations before 16): a tenant with its ES256
    /// key only. Opening it (as `serve` does) makes that row an ES256 key; the tenant's first
    /// key load gives it an RS256 key beside it, once (a second process finds it), while
    /// the ES256 key stays current and the tokens it signed still verify.
    #[tokio::test]
    async fn a_store_with_es256_keys_only_gets_an_rs256_key_on_load() -> anyhow::Result<()> {
        use crate::tokens::{SigningAlg, KEY_KEEP_SECS, MAX_RETIRED_KEYS};
        let dir = std::env::temp_dir().join(format!("passthru-migrate16-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(crate::init::STORE_FILE);
        let old = crate::tokens::generate_signing_key()?;
        let t = uuid::Uuid::new_v4();
        {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            let mut m = sqlx::migrate::Migrator::new(super::Embedded).await?;
            m.migrations = std::borrow::Cow::Owned(
                m.migrations
                    .iter()
                    .filter(|x| x.version < 16)
                    .cloned()
                    .collect(),
            );
            m.run(&pool).await?;
            sqlx::query("INSERT INTO tenants (id, name, created_at) VALUES (?, 'one', 1)")
                .bind(t.to_string())
                .execute(&pool)
                .await?;
            sqlx::query(
                "INSERT INTO tenant_signing_keys (tenant_id, kid, private_key, sealed, public_raw, created_at)
                 VALUES (?, ?, ?, 0, ?, 1)",
            )
            .bind(t.to_string())
            .bind(&old.kid)
            .bind(old.private_pem.as_bytes())
            .bind(&old.public_raw)
            .execute(&pool)
            .await?;
            pool.close().await;
        }
        let (store, secrets) = crate::init::open_store(&dir, false).await?;
        let now = crate::clock::unix_now();
        let rows = store
            .signing_keys(t, now, KEY_KEEP_SECS, MAX_RETIRED_KEYS)
            .await?;
        assert_eq!(
            rows.iter()
                .map(|r| (r.kid.as_str(), r.alg.as_str()))
                .collect::<Vec<_>>(),
            [(old.kid.as_str(), "ES256")]
        );
        let claims = serde_json::json!({"iss": "i", "aud": "passthru-admin", "sub": "s",
            "oid": uuid::Uuid::new_v4(), "tid": t, "exp": now + 60, "iat": now, "nbf": now, "ver": "2.0"});
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(old.kid.clone());
        let issued_before = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_ec_pem(old.private_pem.as_bytes())?,
        )?;
        let signer = crate::tokens::Signer::new(store.clone(), secrets.clone());
        let keys = signer.keys(t).await?;
        assert_eq!(keys.current_kid(), Some(old.kid.as_str()));
        keys.verify_access(&issued_before, "passthru-admin")?;
        let rsa_kid = keys
            .current_kid_of(SigningAlg::Rs256)
            .ok_or_else(|| anyhow::anyhow!("no RS256 key after the load"))?
            .to_string();
        let jwks = serde_json::to_value(keys.jwks())?;
        assert_eq!(jwks.as_array().map(Vec::len), Some(2), "{jwks}");
        assert!(
            jwks.as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kty"] == "RSA" && k["kid"] == rsa_kid.as_str()),
            "{jwks}"
        );
        let rs = keys.sign_with(SigningAlg::Rs256, &claims)?;
        assert_eq!(
            jsonwebtoken::decode_header(&rs)?.kid.as_deref(),
            Some(rsa_kid.as_str())
        );
        // Another process (or the next start) finds the RS256 key rather than making one.
        let again = crate::tokens::Signer::new(store.clone(), secrets);
        let seen = again.keys(t).await?;
        assert_eq!(
            seen.current_kid_of(SigningAlg::Rs256),
            Some(rsa_kid.as_str())
        );
        seen.verify_access(&rs, "passthru-admin")?;
        assert_eq!(store.signing_key_rows(t).await?, 2);
        store.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    use sqlx::sqlite::SqliteConnectOptions;

    use crate::store::Store;

    /// A store written by the release before migrations (the baseline tables only, with a
    /// tenant whose deadline was changed) opens, gains the new columns and keeps its data.
    #[tokio::test]
    async fn a_store_from_before_migrations_is_brought_up_to_date() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-migrate-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("old.db");
        {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            sqlx::raw_sql(super::super::schema::SCHEMA)
                .execute(&pool)
                .await?;
            sqlx::raw_sql(
                "INSERT INTO tenants (id, name, request_timeout_ms, created_at)
                 VALUES ('7d7c2f0e-1b7e-4c3a-9a55-0c1f7b9e2a10', 'old', 5000, 1);
                 INSERT INTO domains (name, tenant_id, kind, created_at)
                 VALUES ('old.example', '7d7c2f0e-1b7e-4c3a-9a55-0c1f7b9e2a10', 'managed', 1);",
            )
            .execute(&pool)
            .await?;
            pool.close().await;
        }
        let store = Store::open(&path, false).await?;
        let t = store
            .tenant("old")
            .await?
            .ok_or_else(|| anyhow::anyhow!("tenant lost"))?;
        assert_eq!(t.settings.request_deadline_ms, 5000);
        let d = store
            .domain("old.example")
            .await?
            .ok_or_else(|| anyhow::anyhow!("an existing domain stays verified"))?;
        assert!(d.verified);
        store.close().await;
        // Opening again applies nothing twice.
        let again = Store::open(&path, false).await?;
        assert!(again.tenant("old").await?.is_some());
        again.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// A store migrated by a newer release (a migration past this binary's newest) is
    /// refused with the versions named, and left as it was.
    #[tokio::test]
    async fn a_store_from_a_newer_release_is_refused() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-newer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(crate::init::STORE_FILE);
        let store = Store::open(&path, true).await?;
        store
            .create_tenant(uuid::Uuid::new_v4(), "contoso", 1)
            .await?;
        store.close().await;
        let newer = super::newest_known() + 1;
        {
            let opts = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?;
            let pool = sqlx::SqlitePool::connect_with(opts).await?;
            sqlx::query(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES (?, 'from the future', 1, x'00', 0)",
            )
            .bind(newer)
            .execute(&pool)
            .await?;
            pool.close().await;
        }
        let refused = Store::open(&path, false).await;
        let expected = format!(
            "this store was upgraded by a newer passthru-cloud (schema {newer}, this binary knows up to {}): install that version or newer",
            super::newest_known()
        );
        match &refused {
            Err(e @ crate::store::StoreError::SchemaTooNew { .. }) => {
                assert_eq!(e.to_string(), expected)
            }
            Err(e) => anyhow::bail!("expected the schema refusal, got {e}"),
            Ok(_) => anyhow::bail!("a newer store was opened"),
        }
        // `serve`'s way in (the data dir's store and its key) says the same.
        let via_init = crate::init::open_store(&dir, false).await.err();
        let shown = via_init.map(|e| format!("{e:#}")).unwrap_or_default();
        assert!(shown.contains(&expected), "{shown}");
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
