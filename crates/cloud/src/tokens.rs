//! Token signing (ES256 by default: a P-256 signature costs a fraction of RS256's), the JWKS,
//! and verification of the access tokens the admin API accepts.
//!
//! Every tenant has its own keys: its tokens are signed with its current key, its JWKS lists
//! only its keys, and rotating (`POST /{tenant}/admin/keys/rotate`) changes only its keys.
//! At most the current key and [`MAX_RETIRED_KEYS`] retired ones are published; a retired
//! key goes [`KEY_KEEP_SECS`] after its retirement (when every token it signed has expired),
//! or at once when more rotations push it out. Private keys are stored sealed with the data
//! dir's key ([`SecretBox`]) and opened only here, into memory.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::PrivatePkcs8KeyDer;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::secret_box::{Purpose, SecretBox};
use crate::store::signing_keys::{NewKey, PrivateKey, StoredKey};
use crate::store::{Store, StoreError};

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The tenant has no signing key and none could be made.
    #[error("no token signing key: run `passthru-cloud init` first")]
    NoKey,
    /// A key could not be generated or loaded.
    #[error("signing key: {0}")]
    Key(String),
    /// Signing or verifying failed.
    #[error("token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Lifetime of access and ID tokens, seconds.
pub const TOKEN_LIFETIME_SECS: i64 = 3600;

/// How long a retired signing key stays in the JWKS: until every token it signed has
/// expired, plus clock leeway.
pub const KEY_KEEP_SECS: i64 = TOKEN_LIFETIME_SECS + 300;

/// Retired keys a tenant's JWKS lists at most (besides the current key). A third rotation
/// within [`KEY_KEEP_SECS`] drops the oldest retired key early: the tokens it signed stop
/// verifying (what an emergency rotation after a leak wants anyway).
pub const MAX_RETIRED_KEYS: i64 = 2;

/// How often a serving process re-reads the keys (rotations by another process, retired
/// keys past their grace period).
pub const REFRESH_EVERY: Duration = Duration::from_secs(60);

/// A freshly generated signing key (the private half in the clear, wiped when dropped).
pub struct GeneratedKey {
    pub kid: String,
    pub private_pem: Zeroizing<String>,
    pub public_raw: Vec<u8>,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// Makes a new P-256 signing key.
pub fn generate_signing_key() -> Result<GeneratedKey, TokenError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TokenError::Key(e.to_string()))?;
    let public_raw = key.public_key_raw().to_vec();
    let kid = B64URL.encode(&Sha256::digest(&public_raw)[..16]);
    Ok(GeneratedKey {
        kid,
        private_pem: Zeroizing::new(key.serialize_pem()),
        public_raw,
    })
}

impl GeneratedKey {
    /// The private key sealed for `tenant_id`'s row of this key.
    pub fn seal(&self, secrets: &SecretBox, tenant_id: Uuid) -> Result<Vec<u8>, TokenError> {
        secrets
            .seal_for(
                Purpose::SigningKey,
                tenant_id,
                &self.kid,
                self.private_pem.as_bytes(),
            )
            .map_err(|e| TokenError::Key(e.to_string()))
    }
}

/// Gives a new tenant its first signing key (nothing when it has one).
pub async fn create_first_key(
    store: &Store,
    secrets: &SecretBox,
    tenant_id: Uuid,
    now: i64,
) -> Result<(), TokenError> {
    let key = generate_signing_key()?;
    let sealed = key.seal(secrets, tenant_id)?;
    store
        .add_first_signing_key(
            tenant_id,
            NewKey {
                kid: &key.kid,
                sealed_private: &sealed,
                public_raw: &key.public_raw,
            },
            now,
        )
        .await?;
    Ok(())
}

struct LoadedKey {
    kid: String,
    /// The private key, parsed and checked once when loaded. (jsonwebtoken 9 parses and
    /// checks a PKCS#8 key again for every signature, a P-256 point multiplication each:
    /// a tenth of the cloud's CPU per password grant.)
    signing: EcdsaKeyPair,
    /// The base64url JWS header of this key's tokens (ES256, JWT, kid).
    header_b64: String,
    decoding: DecodingKey,
    x: String,
    y: String,
}

/// One tenant's published keys, newest (the signing one) first; never empty.
pub struct TenantKeys {
    keys: Vec<LoadedKey>,
}

impl std::fmt::Debug for TenantKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("TenantKeys").field("kids", &kids).finish()
    }
}

/// The signing keys of every tenant, loaded from the store when first needed and kept in
/// memory (each tenant's set swapped whole on rotation, so readers never see half of one).
pub struct Signer {
    store: Store,
    secrets: Arc<SecretBox>,
    tenants: RwLock<HashMap<Uuid, Arc<TenantKeys>>>,
    /// Held while the store's keys are changed and re-read, so a slower re-read never
    /// replaces a newer set in memory.
    loading: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.snapshot().len();
        f.debug_struct("Signer").field("tenants", &n).finish()
    }
}

/// One key of a JWKS document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Jwk {
    pub kty: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    pub alg: String,
    pub crv: String,
    pub x: String,
    pub y: String,
}

/// Claims of an access token for the admin API (what the server checks).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: String,
    pub oid: Uuid,
    pub tid: Uuid,
    pub exp: i64,
    pub iat: i64,
    pub nbf: i64,
    #[serde(default)]
    pub scp: String,
    #[serde(default)]
    pub azp: String,
    #[serde(default)]
    pub preferred_username: String,
    pub ver: String,
}

impl Signer {
    /// A signer over `store`'s keys, opened with `secrets`.
    pub fn new(store: Store, secrets: Arc<SecretBox>) -> Signer {
        Signer {
            store,
            secrets,
            tenants: RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
        }
    }

    fn snapshot(&self) -> HashMap<Uuid, Arc<TenantKeys>> {
        match self.tenants.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn cached(&self, tenant_id: Uuid) -> Option<Arc<TenantKeys>> {
        match self.tenants.read() {
            Ok(g) => g.get(&tenant_id).cloned(),
            Err(p) => p.into_inner().get(&tenant_id).cloned(),
        }
    }

    fn put(&self, tenant_id: Uuid, keys: Arc<TenantKeys>) {
        match self.tenants.write() {
            Ok(mut g) => g.insert(tenant_id, keys),
            Err(p) => p.into_inner().insert(tenant_id, keys),
        };
    }

    /// The tenant's keys (from memory, else from the store; a tenant without a key gets
    /// its first one).
    pub async fn keys(&self, tenant_id: Uuid) -> Result<Arc<TenantKeys>, TokenError> {
        if let Some(k) = self.cached(tenant_id) {
            return Ok(k);
        }
        let _one = self.loading.lock().await;
        if let Some(k) = self.cached(tenant_id) {
            return Ok(k);
        }
        self.load(tenant_id, crate::clock::unix_now()).await
    }

    /// Reads the tenant's keys from the store again.
    pub async fn reload(&self, tenant_id: Uuid, now: i64) -> Result<Arc<TenantKeys>, TokenError> {
        let _one = self.loading.lock().await;
        self.load(tenant_id, now).await
    }

    /// Reads the tenant's keys (the caller holds `loading`).
    async fn load(&self, tenant_id: Uuid, now: i64) -> Result<Arc<TenantKeys>, TokenError> {
        let mut rows = self
            .store
            .signing_keys(tenant_id, now, KEY_KEEP_SECS, MAX_RETIRED_KEYS)
            .await?;
        if !rows.iter().any(|r| r.retired_at.is_none()) {
            create_first_key(&self.store, &self.secrets, tenant_id, now).await?;
            rows = self
                .store
                .signing_keys(tenant_id, now, KEY_KEEP_SECS, MAX_RETIRED_KEYS)
                .await?;
        }
        let keys = Arc::new(TenantKeys::open(&rows, &self.secrets, tenant_id)?);
        self.put(tenant_id, keys.clone());
        Ok(keys)
    }

    /// Makes a new signing key for `tenant_id` (and for it only); returns its keys after.
    pub async fn rotate(&self, tenant_id: Uuid, now: i64) -> Result<Arc<TenantKeys>, TokenError> {
        let key = generate_signing_key()?;
        let sealed = key.seal(&self.secrets, tenant_id)?;
        let _one = self.loading.lock().await;
        self.store
            .rotate_signing_key(
                tenant_id,
                NewKey {
                    kid: &key.kid,
                    sealed_private: &sealed,
                    public_raw: &key.public_raw,
                },
                now,
                KEY_KEEP_SECS,
                MAX_RETIRED_KEYS,
            )
            .await?;
        self.load(tenant_id, now).await
    }

    /// Deletes retired keys past their grace period and re-reads every loaded tenant's keys
    /// (a rotation by another process shows up here).
    pub async fn refresh(&self, now: i64) -> Result<(), TokenError> {
        let _one = self.loading.lock().await;
        self.store
            .prune_signing_keys(now, KEY_KEEP_SECS, MAX_RETIRED_KEYS)
            .await?;
        for tenant_id in self.snapshot().into_keys() {
            self.load(tenant_id, now).await?;
        }
        Ok(())
    }
}

/// The ES256 signing key of a PEM (PKCS#8) private key, checked against the stored public
/// key (65 bytes, uncompressed), so that the JWKS publishes the key that signs.
fn signing_key(pem: &[u8], public_raw: &[u8]) -> Result<EcdsaKeyPair, String> {
    let der = PrivatePkcs8KeyDer::from_pem_slice(pem)
        .map_err(|e| format!("the private key is not a PKCS#8 PEM: {e}"))?;
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        der.secret_pkcs8_der(),
        &SystemRandom::new(),
    )
    .map_err(|e| format!("the private key is not a P-256 key: {e}"))?;
    if pair.public_key().as_ref() != public_raw {
        return Err("the stored public key is not the private key's".into());
    }
    Ok(pair)
}

/// The base64url JWS protected header of the tokens `kid` signs, as `jsonwebtoken` writes
/// it (`{"typ":"JWT","alg":"ES256","kid":...}`).
fn header_b64(kid: &str) -> Result<String, TokenError> {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some(kid.to_string());
    let json = serde_json::to_vec(&header)
        .map_err(|e| TokenError::Key(format!("the JWS header cannot be serialized: {e}")))?;
    Ok(B64URL.encode(json))
}

impl TenantKeys {
    /// Opens stored keys (newest first).
    fn open(
        rows: &[StoredKey],
        secrets: &SecretBox,
        tenant_id: Uuid,
    ) -> Result<TenantKeys, TokenError> {
        let mut keys = Vec::new();
        for r in rows {
            if r.public_raw.len() != 65 {
                return Err(TokenError::Key(format!(
                    "key {} has a malformed public key",
                    r.kid
                )));
            }
            let pem = match &r.private_key {
                PrivateKey::Sealed(sealed) => secrets
                    .open_for(Purpose::SigningKey, tenant_id, &r.kid, sealed)
                    .map_err(|e| {
                        TokenError::Key(format!(
                            "key {} of tenant {tenant_id}: {e}. Restore the data dir's mfa.key from the backup made with the store",
                            r.kid
                        ))
                    })?,
                PrivateKey::Plain(pem) => pem.clone(),
            };
            let x = B64URL.encode(&r.public_raw[1..33]);
            let y = B64URL.encode(&r.public_raw[33..65]);
            let signing = signing_key(&pem, &r.public_raw).map_err(|e| {
                TokenError::Key(format!("key {} of tenant {tenant_id}: {e}", r.kid))
            })?;
            keys.push(LoadedKey {
                kid: r.kid.clone(),
                signing,
                header_b64: header_b64(&r.kid)?,
                decoding: DecodingKey::from_ec_components(&x, &y)?,
                x,
                y,
            });
        }
        if keys.is_empty() {
            return Err(TokenError::NoKey);
        }
        Ok(TenantKeys { keys })
    }

    /// The signing key's id.
    pub fn current_kid(&self) -> Option<&str> {
        self.keys.first().map(|k| k.kid.as_str())
    }

    /// Signs claims with the newest key: a JWS compact serialization (RFC 7515, 7.1), the
    /// same bytes `jsonwebtoken::encode` makes, signed with the key parsed at load.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let key = self.keys.first().ok_or(TokenError::NoKey)?;
        let claims = serde_json::to_vec(claims)
            .map_err(|e| TokenError::Key(format!("the claims cannot be serialized: {e}")))?;
        let mut token = String::with_capacity(key.header_b64.len() + claims.len() * 4 / 3 + 100);
        token.push_str(&key.header_b64);
        token.push('.');
        B64URL.encode_string(&claims, &mut token);
        let signature = key
            .signing
            .sign(&SystemRandom::new(), token.as_bytes())
            .map_err(|_| TokenError::Key(format!("key {} could not sign", key.kid)))?;
        token.push('.');
        B64URL.encode_string(signature.as_ref(), &mut token);
        Ok(token)
    }

    /// The public keys, as a JWKS `keys` array.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.keys
            .iter()
            .map(|k| Jwk {
                kty: "EC".into(),
                use_: "sig".into(),
                kid: k.kid.clone(),
                alg: "ES256".into(),
                crv: "P-256".into(),
                x: k.x.clone(),
                y: k.y.clone(),
            })
            .collect()
    }

    fn key_of(&self, token: &str) -> Result<&LoadedKey, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        self.keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref())
            .ok_or_else(|| TokenError::Key("the token was signed by an unknown key".into()))
    }

    /// Verifies an access token's signature, lifetime and audience.
    pub fn verify_access(&self, token: &str, audience: &str) -> Result<AccessClaims, TokenError> {
        let key = self.key_of(token)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[audience]);
        v.leeway = 30;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        Ok(jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &v)?.claims)
    }

    /// Verifies a user token of ours (signature, lifetime, issuer), whatever its audience.
    pub fn verify_user_token(&self, token: &str, issuer: &str) -> Result<AccessClaims, TokenError> {
        let key = self.key_of(token)?;
        let mut v = Validation::new(Algorithm::ES256);
        v.validate_aud = false;
        v.leeway = 30;
        v.validate_nbf = true;
        v.set_issuer(&[issuer]);
        v.set_required_spec_claims(&["exp", "iss"]);
        Ok(jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &v)?.claims)
    }
}

#[cfg(test)]
mod tests;
