//! PostgreSQL: federation.

use crate::secret_box::{Purpose, SecretBox};
use async_trait::async_trait;
use sqlx::Row;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::*;
use crate::store::federation::*;
use crate::store::*;

#[async_trait]
impl FederationStore for PgStore {
    /// Adds a federated domain with its identity provider settings (one transaction).
    /// The domain waits for its proof of control (`verification_code`).
    async fn add_federated_domain(
        &self,
        cfg: &FederationConfig,
        verification_code: &str,
        now: i64,
        secrets: &SecretBox,
    ) -> Result<()> {
        let name = cfg.domain.to_ascii_lowercase();
        let sealed = secrets
            .seal_for(
                Purpose::FederationSecret,
                cfg.tenant_id,
                &name,
                cfg.client_secret.as_bytes(),
            )
            .map_err(|e| StoreError::Db(sqlx::Error::Encode(Box::new(e))))?;
        let mut tx = self.write_tx(Lock::Tenant(cfg.tenant_id)).await?;
        sqlx::query("INSERT INTO domains (name, tenant_id, kind, created_at, verified, verification_code) VALUES ($1, $2, $3, $4, 0, $5)")
            .bind(&name)
            .bind(cfg.tenant_id.to_string())
            .bind(DomainKind::Federated.as_str())
            .bind(now)
            .bind(verification_code)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, format!("domain {name}")))?;
        sqlx::query(
            "INSERT INTO federation (domain, tenant_id, issuer, client_id, client_secret, client_secret_sealed, created_at)
             VALUES ($1, $2, $3, $4, '', $5, $6)
             ON CONFLICT (domain) DO UPDATE SET tenant_id = excluded.tenant_id,
                 issuer = excluded.issuer, client_id = excluded.client_id,
                 client_secret = excluded.client_secret,
                 client_secret_sealed = excluded.client_secret_sealed,
                 created_at = excluded.created_at",
        )
        .bind(&name)
        .bind(cfg.tenant_id.to_string())
        .bind(&cfg.issuer)
        .bind(&cfg.client_id)
        .bind(sealed)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The identity provider settings of a federated domain (its client secret opened).
    async fn federation(
        &self,
        domain: &str,
        secrets: &SecretBox,
    ) -> Result<Option<FederationConfig>> {
        let row = sqlx::query(
            "SELECT f.* FROM federation f JOIN domains d ON d.name = f.domain
             WHERE f.domain = $1::citext AND d.kind = 'federated' AND d.tenant_id = f.tenant_id",
        )
        .bind(domain.to_ascii_lowercase())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            let domain: String = row.try_get("domain")?;
            let tenant_id = uuid_col(&row, "tenant_id")?;
            let sealed: Option<Vec<u8>> = row.try_get("client_secret_sealed")?;
            let client_secret = match sealed {
                Some(sealed) => {
                    let open = secrets
                        .open_for(
                            Purpose::FederationSecret,
                            tenant_id,
                            &domain.to_ascii_lowercase(),
                            &sealed,
                        )
                        .map_err(|e| StoreError::Db(sqlx::Error::Decode(Box::new(e))))?;
                    Zeroizing::new(String::from_utf8_lossy(&open).into_owned())
                }
                // A row of a store from before sealing (sealed at the next start).
                None => Zeroizing::new(row.try_get("client_secret")?),
            };
            Ok(FederationConfig {
                domain,
                tenant_id,
                issuer: row.try_get("issuer")?,
                client_id: row.try_get("client_id")?,
                client_secret,
            })
        })
        .transpose()
    }

    /// Makes a federated domain of `tenant_id` managed: its federation settings and pending
    /// round trips are deleted, and its users sign in by pass-through authentication from
    /// their next sign-in on.
    async fn convert_to_managed(&self, tenant_id: Uuid, name: &str) -> Result<Conversion> {
        let name = name.to_ascii_lowercase();
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        let kind: Option<String> =
            sqlx::query("SELECT kind FROM domains WHERE name = $1::citext AND tenant_id = $2")
                .bind(&name)
                .bind(tenant_id.to_string())
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("kind"))
                .transpose()?;
        let outcome = match kind.as_deref().map(DomainKind::parse) {
            None => return Err(StoreError::NotFound(format!("domain {name}"))),
            Some(DomainKind::Managed) => Conversion::AlreadyManaged,
            Some(DomainKind::Cloud) => Conversion::CloudDomain,
            Some(DomainKind::Federated) => {
                sqlx::query(
                    "UPDATE domains SET kind = $1 WHERE name = $2::citext AND tenant_id = $3",
                )
                .bind(DomainKind::Managed.as_str())
                .bind(&name)
                .bind(tenant_id.to_string())
                .execute(&mut *tx)
                .await?;
                Conversion::Converted
            }
        };
        if outcome != Conversion::CloudDomain {
            for table in ["federation", "federation_states"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE domain = $1::citext AND tenant_id = $2"
                ))
                .bind(&name)
                .bind(tenant_id.to_string())
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// Records a round trip to an identity provider (and drops expired ones).
    async fn put_federation_state(
        &self,
        state_hash: &str,
        tenant_id: Uuid,
        s: &FederationState,
        expires_at: i64,
        now: i64,
    ) -> Result<()> {
        sqlx::query("DELETE FROM federation_states WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let data = serde_json::to_string(s).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let cap = self.pending_cap();
        // The count and the insert under the tenant's lock: parallel starts cannot all pass
        // the count.
        let mut tx = self.write_tx(Lock::Tenant(tenant_id)).await?;
        let done = sqlx::query(
            "INSERT INTO federation_states (state_hash, tenant_id, domain, data, expires_at)
             SELECT $1, $2, $3, $4, $5
             WHERE (SELECT COUNT(*) FROM federation_states WHERE tenant_id = $2) < $6",
        )
        .bind(state_hash)
        .bind(tenant_id.to_string())
        .bind(s.domain.to_ascii_lowercase())
        .bind(data)
        .bind(expires_at)
        .bind(cap)
        .execute(&mut *tx)
        .await?;
        super::inserted_under_cap(&done, "federated sign-ins", cap)?;
        tx.commit().await?;
        Ok(())
    }

    /// Removes and returns a live round trip of `tenant_id`: a state works once, whatever
    /// happens next.
    async fn take_federation_state(
        &self,
        state_hash: &str,
        tenant_id: Uuid,
        now: i64,
    ) -> Result<Option<FederationState>> {
        let row = sqlx::query(
            "DELETE FROM federation_states WHERE state_hash = $1 AND tenant_id = $2 RETURNING data, expires_at",
        )
        .bind(state_hash)
        .bind(tenant_id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if row.try_get::<i64, _>("expires_at")? <= now {
            return Ok(None);
        }
        let data: String = row.try_get("data")?;
        Ok(serde_json::from_str(&data).ok())
    }

    /// Creates or refreshes the record of a user signed in by a federated domain's identity
    /// provider. The record is keyed by (issuer, `sub`) through its object id, so the `oid`
    /// is stable; a stale federated record holding the same UPN is released.
    async fn upsert_federated_user(&self, u: &FederatedUser<'_>, now: i64) -> Result<User> {
        let id = federated_object_id(u.tenant_id, u.issuer, u.subject);
        let mut tx = self.write_tx(Lock::Tenant(u.tenant_id)).await?;
        sqlx::query(
            "UPDATE users SET upn = upn || '#released-' || id
             WHERE tenant_id = $1 AND upn = $2::citext AND source = 'federated' AND id <> $3",
        )
        .bind(u.tenant_id.to_string())
        .bind(u.upn)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, upn, display_name, mail, source, created_at, last_sign_in)
             VALUES ($1, $2, $3, $4, $5, 'federated', $6, $7)
             ON CONFLICT (id) DO UPDATE SET upn = excluded.upn, display_name = excluded.display_name,
                 mail = excluded.mail, last_sign_in = excluded.last_sign_in",
        )
        .bind(id.to_string())
        .bind(u.tenant_id.to_string())
        .bind(u.upn)
        .bind(u.display_name)
        .bind(u.mail)
        .bind(now)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, format!("user {}", u.upn)))?;
        tx.commit().await?;
        self.user_by_id(u.tenant_id, id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {}", u.upn)))
    }
}
