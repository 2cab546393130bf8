//! PostgreSQL: signing keys.

use crate::secret_box::{Purpose, SecretBox};
use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::*;
use crate::store::signing_keys::*;
use crate::store::*;

#[async_trait]
impl SigningKeyStore for PgStore {
    /// Seals what a store from before sealing holds in the clear: signing private keys and
    /// federated domains' client secrets (one transaction), then truncates the write-ahead log
    /// under the store-wide lock (two instances starting at once seal each value once).
    /// Returns how many values were sealed. Run at every start; a no-op once done.
    async fn seal_plaintext_secrets(&self, secrets: &SecretBox) -> Result<usize> {
        let seal_err =
            |e: crate::secret_box::SealError| StoreError::Db(sqlx::Error::Encode(Box::new(e)));
        let mut tx = self.write_tx(Lock::Global).await?;
        let mut n = 0;
        let keys = sqlx::query(
            "SELECT tenant_id, kid, private_key FROM tenant_signing_keys WHERE sealed = 0",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in &keys {
            let tid = super::uuid_col(row, "tenant_id")?;
            let kid: String = row.try_get("kid")?;
            let plain = Zeroizing::new(row.try_get::<Vec<u8>, _>("private_key")?);
            let sealed = secrets
                .seal_for(Purpose::SigningKey, tid, &kid, &plain)
                .map_err(seal_err)?;
            sqlx::query(
                "UPDATE tenant_signing_keys SET private_key = $1, sealed = 1 WHERE tenant_id = $2 AND kid = $3",
            )
            .bind(sealed)
            .bind(tid.to_string())
            .bind(&kid)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        let fed = sqlx::query(
            "SELECT domain, tenant_id, client_secret FROM federation WHERE client_secret_sealed IS NULL",
        )
        .fetch_all(&mut *tx)
        .await?;
        for row in &fed {
            let tid = super::uuid_col(row, "tenant_id")?;
            let domain: String = row.try_get("domain")?;
            let plain = Zeroizing::new(row.try_get::<String, _>("client_secret")?);
            let sealed = secrets
                .seal_for(
                    Purpose::FederationSecret,
                    tid,
                    &domain.to_ascii_lowercase(),
                    plain.as_bytes(),
                )
                .map_err(seal_err)?;
            sqlx::query(
                "UPDATE federation SET client_secret = '', client_secret_sealed = $1 WHERE domain = $2::citext",
            )
            .bind(sealed)
            .bind(&domain)
            .execute(&mut *tx)
            .await?;
            n += 1;
        }
        tx.commit().await?;
        Ok(n)
    }

    #[cfg(test)]
    async fn signing_key_rows(&self, tenant_id: Uuid) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT COUNT(*) FROM tenant_signing_keys WHERE tenant_id = $1")
                .bind(tenant_id.to_string())
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Stores `key` as the tenant's signing key of `key.alg` when it has no current key of
    /// that algorithm. Returns whether it was stored.
    async fn add_first_signing_key(
        &self,
        tenant_id: Uuid,
        key: NewKey<'_>,
        now: i64,
    ) -> Result<bool> {
        // The check and the insert under the tenant's lock: of two processes, one wins.
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        let done = sqlx::query(
            "INSERT INTO tenant_signing_keys (tenant_id, kid, alg, private_key, sealed, public_raw, created_at)
             SELECT $1, $2, $3, $4, 1, $5, $6
             WHERE NOT EXISTS (SELECT 1 FROM tenant_signing_keys
                               WHERE tenant_id = $1 AND alg = $3 AND retired_at IS NULL)",
        )
        .bind(tenant_id.to_string())
        .bind(key.kid)
        .bind(key.alg)
        .bind(key.sealed_private)
        .bind(key.public_raw)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes each of `keys` the tenant's signing key of its algorithm (one transaction): the
    /// current one of that algorithm is retired, and its retired keys past `keep_secs` or
    /// beyond the newest `max_retired` are deleted.
    async fn rotate_signing_keys(
        &self,
        tenant_id: Uuid,
        keys: &[NewKey<'_>],
        now: i64,
        keep_secs: i64,
        max_retired: i64,
    ) -> Result<()> {
        let tid = tenant_id.to_string();
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        for key in keys {
            sqlx::query(
                "UPDATE tenant_signing_keys SET retired_at = $1
                 WHERE tenant_id = $2 AND alg = $3 AND retired_at IS NULL",
            )
            .bind(now)
            .bind(&tid)
            .bind(key.alg)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO tenant_signing_keys (tenant_id, kid, alg, private_key, sealed, public_raw, created_at)
                 VALUES ($1, $2, $3, $4, 1, $5, $6)",
            )
            .bind(&tid)
            .bind(key.kid)
            .bind(key.alg)
            .bind(key.sealed_private)
            .bind(key.public_raw)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| super::conflict(e, format!("signing key {}", key.kid)))?;
            sqlx::query(PRUNE)
                .bind(&tid)
                .bind(now - keep_secs)
                .bind(max_retired)
                .bind(key.alg)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The tenant's published keys: the current ones first, then the retired ones, newest
    /// retirement first; of each algorithm at most `max_retired` retired less than
    /// `keep_secs` ago.
    async fn signing_keys(
        &self,
        tenant_id: Uuid,
        now: i64,
        keep_secs: i64,
        max_retired: i64,
    ) -> Result<Vec<StoredKey>> {
        let rows = sqlx::query(
            "SELECT * FROM (
                 SELECT *, ROW_NUMBER() OVER (PARTITION BY alg
                     ORDER BY retired_at IS NOT NULL, retired_at DESC NULLS LAST, created_at DESC, seq DESC) AS n
                 FROM tenant_signing_keys
                 WHERE tenant_id = $1 AND (retired_at IS NULL OR retired_at > $2)) published
             WHERE n <= $3
             ORDER BY retired_at IS NOT NULL, retired_at DESC NULLS LAST, created_at DESC, seq DESC",
        )
        .bind(tenant_id.to_string())
        .bind(now - keep_secs)
        .bind(1 + max_retired)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(key_row).collect()
    }

    /// Deletes every tenant's retired keys past the grace period or the count (per
    /// algorithm). Returns how many went.
    async fn prune_signing_keys(&self, now: i64, keep_secs: i64, max_retired: i64) -> Result<u64> {
        let sets: Vec<(String, String)> = sqlx::query_as(
            "SELECT DISTINCT tenant_id, alg FROM tenant_signing_keys WHERE retired_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut n = 0;
        for (tid, alg) in sets {
            n += sqlx::query(PRUNE)
                .bind(&tid)
                .bind(now - keep_secs)
                .bind(max_retired)
                .bind(&alg)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(n)
    }
}

pub(super) fn key_row(row: &sqlx::postgres::PgRow) -> Result<StoredKey> {
    let raw: Vec<u8> = row.try_get("private_key")?;
    let sealed = row.try_get::<i64, _>("sealed")? != 0;
    Ok(StoredKey {
        kid: row.try_get("kid")?,
        alg: row.try_get("alg")?,
        private_key: if sealed {
            PrivateKey::Sealed(raw)
        } else {
            PrivateKey::Plain(Zeroizing::new(raw))
        },
        public_raw: row.try_get("public_raw")?,
        retired_at: row.try_get("retired_at")?,
    })
}

/// Retired keys of a tenant and algorithm (`$4`) that go: retired at or before
/// `now - keep_secs`, and all but the newest `max_retired`.
pub(super) const PRUNE: &str = "DELETE FROM tenant_signing_keys
     WHERE tenant_id = $1 AND alg = $4 AND retired_at IS NOT NULL AND seq NOT IN (
         SELECT seq FROM tenant_signing_keys
         WHERE tenant_id = $1 AND alg = $4 AND retired_at IS NOT NULL AND retired_at > $2
         ORDER BY retired_at DESC, created_at DESC, seq DESC LIMIT $3)";
