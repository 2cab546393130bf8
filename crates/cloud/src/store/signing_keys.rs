//! Token signing keys, one set per tenant and algorithm (`tenant_signing_keys`; ES256 and
//! RS256): the current key of an algorithm signs the tenant's tokens of that algorithm,
//! retired ones stay published for a grace period so the tokens they signed still verify.
//! The store treats the algorithm as a name (`alg`): each (tenant, algorithm) has its own
//! current key, rotation and bounds, and rows from before algorithms are ES256 ones. Private keys are stored sealed ([`crate::secret_box::SecretBox`]); this
//! module never sees them in the clear except when sealing rows of a store from before
//! sealing ([`SigningKeyStore::seal_plaintext_secrets`]).

use async_trait::async_trait;

use uuid::Uuid;
use zeroize::Zeroizing;

use super::Result;

/// A stored signing key.
pub struct StoredKey {
    pub kid: String,
    /// The JWS algorithm the key signs with ("ES256" or "RS256").
    pub alg: String,
    /// The private key: sealed, or (a row copied from a release before sealing, until the
    /// next start seals it) the PEM.
    pub private_key: PrivateKey,
    /// The public key: the uncompressed P-256 point (65 bytes) of an ES256 key, the PKCS#1
    /// `RSAPublicKey` DER of an RS256 one.
    pub public_raw: Vec<u8>,
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// A stored private key.
pub enum PrivateKey {
    /// Nonce || ciphertext under the data dir's key ([`Purpose::SigningKey`]).
    Sealed(Vec<u8>),
    /// The PEM of a row not sealed yet.
    Plain(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PrivateKey::Sealed(_) => "PrivateKey::Sealed(..)",
            PrivateKey::Plain(_) => "PrivateKey::Plain(..)",
        })
    }
}

/// A new key to store, its private half already sealed.
#[derive(Debug, Clone, Copy)]
pub struct NewKey<'a> {
    pub kid: &'a str,
    /// The JWS algorithm ("ES256" or "RS256").
    pub alg: &'a str,
    pub sealed_private: &'a [u8],
    pub public_raw: &'a [u8],
}

/// Tenants' token signing keys in a store: one current key per tenant and algorithm, the
/// retired ones it still publishes, bounded by count and age per algorithm. Every backend
/// implements it and passes `store::conformance::signing_keys` (one first key among many at
/// once, a JWKS that stays bounded, tenants and algorithms apart).
#[async_trait]
pub trait SigningKeyStore: Send + Sync {
    /// Seals what a store from before sealing holds in the clear: signing private keys and
    /// federated domains' client secrets, in one transaction, leaving no plaintext in the
    /// backend's files. Returns how many values were sealed. Run at every start; a no-op
    /// once done.
    async fn seal_plaintext_secrets(&self, secrets: &crate::secret_box::SecretBox)
        -> Result<usize>;

    /// Signing key rows of a tenant, retired ones and every algorithm included (for tests of
    /// the bounds).
    #[cfg(test)]
    async fn signing_key_rows(&self, tenant_id: Uuid) -> Result<i64>;

    /// Stores `key` as the tenant's signing key of `key.alg` when it has no current key of
    /// that algorithm (a new tenant, or a tenant from before RS256). Returns whether it was
    /// stored (two processes creating a tenant's first key: one wins).
    async fn add_first_signing_key(
        &self,
        tenant_id: Uuid,
        key: NewKey<'_>,
        now: i64,
    ) -> Result<bool>;

    /// Makes each of `keys` (one per algorithm) the tenant's signing key of its algorithm,
    /// all in one transaction: the current key of that algorithm is retired, and its retired
    /// keys past `keep_secs` or beyond the newest `max_retired` are deleted, so the tenant's
    /// JWKS never lists more than `1 + max_retired` keys of an algorithm. Keys of the other
    /// algorithms stay as they are.
    async fn rotate_signing_keys(
        &self,
        tenant_id: Uuid,
        keys: &[NewKey<'_>],
        now: i64,
        keep_secs: i64,
        max_retired: i64,
    ) -> Result<()>;

    /// The tenant's published keys: the current ones (one per algorithm) first, then the
    /// retired ones, newest retirement first; of each algorithm at most `max_retired` retired
    /// less than `keep_secs` ago.
    async fn signing_keys(
        &self,
        tenant_id: Uuid,
        now: i64,
        keep_secs: i64,
        max_retired: i64,
    ) -> Result<Vec<StoredKey>>;

    /// Deletes every tenant's retired keys past the grace period or the count (per
    /// algorithm). Returns how many went.
    async fn prune_signing_keys(&self, now: i64, keep_secs: i64, max_retired: i64) -> Result<u64>;
}

#[cfg(test)]
mod tests {
    use zeroize::Zeroizing;

    use super::{PrivateKey, StoredKey};

    /// A key's debug form (logs, panics) names the key and never carries its private half,
    /// sealed or not.
    #[test]
    fn debug_never_shows_a_private_key() {
        let secret = b"-----BEGIN PRIVATE KEY-----SECRETBYTES".to_vec();
        for private_key in [
            PrivateKey::Plain(Zeroizing::new(secret.clone())),
            PrivateKey::Sealed(secret.clone()),
        ] {
            let k = StoredKey {
                kid: "kid-1".into(),
                alg: "RS256".into(),
                private_key,
                public_raw: vec![4; 65],
                retired_at: None,
            };
            let shown = format!("{k:?} {:?}", k.private_key);
            assert!(shown.contains("kid-1"), "{shown}");
            assert!(
                !shown.contains("SECRETBYTES") && !shown.contains("83, 69, 67"),
                "{shown}"
            );
        }
    }
}
