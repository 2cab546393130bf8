//! Store rows of federated domains: each federated domain's OpenID Connect identity provider
//! (issuer, our client id there and the client secret we authenticate with), the pending
//! round trips to it, and the users it signs in.
//!
//! The client secret is the tenant's credential at its identity provider (not a user's
//! password); it is stored because the token endpoint call needs it, sealed with the data
//! dir's key ([`SecretBox`], tenant and domain bound), and it never leaves this module except
//! to that call: [`FederationConfig`]'s `Debug` hides it and nothing serializes it.

use std::future::Future;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::Row;
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{conflict, uuid_col, DomainKind, Result, Store, StoreError, User};
use crate::secret_box::{Purpose, SecretBox};

/// Tables of this module, created at [`Store::open`].
pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS federation (
    domain TEXT PRIMARY KEY COLLATE NOCASE,
    tenant_id TEXT NOT NULL REFERENCES tenants(id),
    issuer TEXT NOT NULL,
    client_id TEXT NOT NULL,
    client_secret TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS federation_states (
    state_hash TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    domain TEXT NOT NULL COLLATE NOCASE,
    data TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#;

/// How a federated domain's users sign in: at `issuer`, where we are the client `client_id`.
#[derive(Clone)]
pub struct FederationConfig {
    pub domain: String,
    pub tenant_id: Uuid,
    /// The identity provider's issuer URL (`iss` of its ID tokens, exactly).
    pub issuer: String,
    pub client_id: String,
    /// Our client secret at the identity provider.
    pub client_secret: Zeroizing<String>,
}

impl std::fmt::Debug for FederationConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationConfig")
            .field("domain", &self.domain)
            .field("tenant_id", &self.tenant_id)
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// One round trip to a federated domain's identity provider, between our redirect and its
/// callback. Stored under the SHA-256 of its `state`; taken (deleted) once.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FederationState {
    /// Our pending authorization request (the app's sign-in).
    pub authz_id: String,
    pub domain: String,
    /// The issuer the round trip was started for (must still be the domain's at the callback).
    pub issuer: String,
    pub nonce: String,
    /// PKCE verifier for the identity provider's token endpoint.
    pub code_verifier: String,
    /// SHA-256 of the browser-binding cookie set with the redirect.
    pub browser_hash: String,
    pub redirect_uri: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// The name the user typed.
    pub username: String,
}

impl std::fmt::Debug for FederationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FederationState")
            .field("authz_id", &self.authz_id)
            .field("domain", &self.domain)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// What an identity provider's ID token says about a user we sign in.
#[derive(Debug, Clone, Copy)]
pub struct FederatedUser<'a> {
    pub tenant_id: Uuid,
    pub issuer: &'a str,
    pub subject: &'a str,
    pub upn: &'a str,
    pub display_name: Option<&'a str>,
    pub mail: Option<&'a str>,
}

/// What converting a domain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conversion {
    /// It was federated and is now managed; its federation settings are gone.
    Converted,
    /// It was already managed: nothing changed.
    AlreadyManaged,
    /// It is the tenant's initial (cloud-only) domain, which cannot be converted.
    CloudDomain,
}

/// The stable object id of a federated user: derived from the tenant, the issuer and `sub`,
/// so the same person at the same identity provider is always the same user.
pub fn federated_object_id(tenant_id: Uuid, issuer: &str, subject: &str) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"passthru/federated-oid");
    h.update(tenant_id.as_bytes());
    h.update((issuer.len() as u64).to_be_bytes());
    h.update(issuer.as_bytes());
    h.update(subject.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 16];
    b.copy_from_slice(&d[..16]);
    Uuid::new_v8(b)
}

/// Federated domains in a store: their identity provider settings (the client secret sealed),
/// browser round trips in progress, and users keyed by issuer and subject. Every backend
/// implements it and passes `store::conformance::federation` (a round trip taken once among
/// many at once, tenants apart, conversion to managed).
pub trait FederationStore: Send + Sync {
    /// Adds a federated domain with its identity provider settings (one transaction).
    /// The domain waits for its proof of control (`verification_code`).
    fn add_federated_domain(
        &self,
        cfg: &FederationConfig,
        verification_code: &str,
        now: i64,
        secrets: &SecretBox,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The identity provider settings of a federated domain (its client secret opened).
    fn federation(
        &self,
        domain: &str,
        secrets: &SecretBox,
    ) -> impl Future<Output = Result<Option<FederationConfig>>> + Send;

    /// Makes a federated domain of `tenant_id` managed: its federation settings and pending
    /// round trips are deleted, and its users sign in by pass-through authentication from
    /// their next sign-in on.
    fn convert_to_managed(
        &self,
        tenant_id: Uuid,
        name: &str,
    ) -> impl Future<Output = Result<Conversion>> + Send;

    /// Records a round trip to an identity provider (and drops expired ones).
    fn put_federation_state(
        &self,
        state_hash: &str,
        tenant_id: Uuid,
        s: &FederationState,
        expires_at: i64,
        now: i64,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Removes and returns a live round trip of `tenant_id`: a state works once, whatever
    /// happens next.
    fn take_federation_state(
        &self,
        state_hash: &str,
        tenant_id: Uuid,
        now: i64,
    ) -> impl Future<Output = Result<Option<FederationState>>> + Send;

    /// Creates or refreshes the record of a user signed in by a federated domain's identity
    /// provider. The record is keyed by (issuer, `sub`) through its object id, so the `oid`
    /// is stable; a stale federated record holding the same UPN is released.
    fn upsert_federated_user(
        &self,
        u: &FederatedUser<'_>,
        now: i64,
    ) -> impl Future<Output = Result<User>> + Send;
}

impl FederationStore for Store {
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
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO domains (name, tenant_id, kind, created_at, verified, verification_code) VALUES (?, ?, ?, ?, 0, ?)")
            .bind(&name)
            .bind(cfg.tenant_id.to_string())
            .bind(DomainKind::Federated.as_str())
            .bind(now)
            .bind(verification_code)
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, format!("domain {name}")))?;
        sqlx::query(
            "INSERT OR REPLACE INTO federation (domain, tenant_id, issuer, client_id, client_secret, client_secret_sealed, created_at)
             VALUES (?, ?, ?, ?, '', ?, ?)",
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
             WHERE f.domain = ? AND d.kind = 'federated' AND d.tenant_id = f.tenant_id",
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
        let mut tx = self.write_tx().await?;
        let kind: Option<String> =
            sqlx::query("SELECT kind FROM domains WHERE name = ? AND tenant_id = ?")
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
                sqlx::query("UPDATE domains SET kind = ? WHERE name = ? AND tenant_id = ?")
                    .bind(DomainKind::Managed.as_str())
                    .bind(&name)
                    .bind(tenant_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                self.domains_cache.clear();
                Conversion::Converted
            }
        };
        if outcome != Conversion::CloudDomain {
            for table in ["federation", "federation_states"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE domain = ? AND tenant_id = ?"
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
        sqlx::query("DELETE FROM federation_states WHERE expires_at <= ?")
            .bind(now)
            .execute(&self.pool)
            .await?;
        let data = serde_json::to_string(s).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        let cap = self.pending_cap();
        let done = sqlx::query(
            "INSERT INTO federation_states (state_hash, tenant_id, domain, data, expires_at)
             SELECT ?1, ?2, ?3, ?4, ?5
             WHERE (SELECT COUNT(*) FROM federation_states WHERE tenant_id = ?2) < ?6",
        )
        .bind(state_hash)
        .bind(tenant_id.to_string())
        .bind(s.domain.to_ascii_lowercase())
        .bind(data)
        .bind(expires_at)
        .bind(cap)
        .execute(&self.pool)
        .await?;
        super::inserted_under_cap(&done, "federated sign-ins", cap)
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
            "DELETE FROM federation_states WHERE state_hash = ? AND tenant_id = ? RETURNING data, expires_at",
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
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "UPDATE users SET upn = upn || '#released-' || id
             WHERE tenant_id = ? AND upn = ? AND source = 'federated' AND id <> ?",
        )
        .bind(u.tenant_id.to_string())
        .bind(u.upn)
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO users (id, tenant_id, upn, display_name, mail, source, created_at, last_sign_in)
             VALUES (?, ?, ?, ?, ?, 'federated', ?, ?)
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn store() -> anyhow::Result<(Store, std::path::PathBuf, Uuid)> {
        let dir = std::env::temp_dir().join(format!("passthru-fed-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let s = Store::open(&dir.join("t.db"), true).await?;
        let tid = Uuid::new_v4();
        s.create_tenant(tid, "contoso", 1).await?;
        Ok((s, dir, tid))
    }

    fn sb() -> SecretBox {
        SecretBox::from_key(&[3u8; 32])
    }

    fn cfg(tid: Uuid) -> FederationConfig {
        FederationConfig {
            domain: "Fab.Example".into(),
            tenant_id: tid,
            issuer: "https://idp.example/t/v2.0".into(),
            client_id: "client-1".into(),
            client_secret: Zeroizing::new("s3cret-value".into()),
        }
    }

    #[tokio::test]
    async fn federated_domains_and_their_users() -> anyhow::Result<()> {
        let (s, dir, tid) = store().await?;
        s.add_federated_domain(&cfg(tid), "code", 1, &sb()).await?;
        assert!(s.domain("fab.example").await?.is_none(), "unverified");
        s.set_domain_verified(tid, "fab.example").await?;
        let d = s
            .domain("fab.example")
            .await?
            .ok_or_else(|| anyhow::anyhow!("no domain"))?;
        assert_eq!(d.kind, DomainKind::Federated);
        let f = s
            .federation("FAB.example", &sb())
            .await?
            .ok_or_else(|| anyhow::anyhow!("no federation"))?;
        assert_eq!(f.client_secret.as_str(), "s3cret-value");
        assert!(
            !format!("{f:?}").contains("s3cret"),
            "Debug hides the secret"
        );

        // Users keyed by (issuer, sub): stable id, UPN follows the identity provider.
        let mut u = FederatedUser {
            tenant_id: tid,
            issuer: &f.issuer,
            subject: "sub-1",
            upn: "a@fab.example",
            display_name: Some("A"),
            mail: None,
        };
        let first = s.upsert_federated_user(&u, 5).await?;
        assert_eq!(first.source, "federated");
        u.display_name = Some("A2");
        let again = s.upsert_federated_user(&u, 6).await?;
        assert_eq!(
            (again.id, again.display_name.as_deref()),
            (first.id, Some("A2"))
        );
        // Another subject takes the UPN over: the stale record is released.
        u.subject = "sub-2";
        let other = s.upsert_federated_user(&u, 7).await?;
        assert_ne!(other.id, first.id);
        assert_eq!(
            s.user_by_upn(tid, "a@fab.example").await?.map(|x| x.id),
            Some(other.id)
        );

        // Conversion (its own rules are in `store::conformance::federation`): the domain is
        // managed from then on.
        assert_eq!(
            s.convert_to_managed(tid, "fab.example").await?,
            Conversion::Converted
        );
        assert_eq!(
            s.domain("fab.example").await?.map(|d| d.kind),
            Some(DomainKind::Managed)
        );
        // At the user's first pass-through sign-in, the on-premises record takes the UPN
        // over from the federated one.
        let onprem_id = Uuid::new_v4();
        let onprem = s
            .upsert_onprem_user(
                &super::super::OnpremUser {
                    tenant_id: tid,
                    id: onprem_id,
                    immutable_id: "guid-a",
                    upn: "a@fab.example",
                    display_name: None,
                    mail: None,
                },
                8,
            )
            .await?;
        assert_eq!(onprem.source, "onprem");
        assert_eq!(
            s.user_by_upn(tid, "a@fab.example").await?.map(|x| x.id),
            Some(onprem_id)
        );
        assert!(s
            .user_by_id(tid, other.id)
            .await?
            .is_some_and(|x| x.upn.contains("#released-")));
        s.close().await;
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
