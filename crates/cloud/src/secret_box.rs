//! Secrets at rest: sealed with ChaCha20-Poly1305 under a 32-byte key kept in the data dir
//! (`mfa.key`, mode 0600, made at `init`, or by `serve` for a data dir from before MFA).
//! The one place the cloud encrypts what it stores: users' TOTP secrets (the user id bound as
//! associated data), token signing private keys (tenant and key id bound) and federated
//! domains' upstream client secrets (tenant and domain bound), so a sealed value copied to
//! another row does not open. Stored as the 12-byte random nonce followed by the ciphertext.

use std::io::{Read as _, Write as _};

use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, Payload};
use chacha20poly1305::{ChaCha20Poly1305, KeyInit, Nonce};
use uuid::Uuid;
use zeroize::Zeroizing;

/// The key file's name in the data dir.
pub const KEY_FILE: &str = "mfa.key";
const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 12;
/// Bound with the user id, so these ciphertexts mean nothing anywhere else.
const AD_LABEL: &[u8] = b"passthru mfa secret v1\0";
/// What the bus key is derived with (a label no sealed secret's associated data starts with).
const BUS_LABEL: &[u8] = b"passthru bus key v1\0";

/// What a sealed value is, bound as associated data with the row it belongs to: a value
/// sealed for one purpose (or row) never opens as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A tenant's token signing private key (PKCS#8 PEM); context: tenant id, key id.
    SigningKey,
    /// A federated domain's client secret at its identity provider; context: tenant id,
    /// lower-case domain name.
    FederationSecret,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::SigningKey => b"passthru signing key v1\0",
            Purpose::FederationSecret => b"passthru federation client secret v1\0",
        }
    }
}

/// Associated data of a [`Purpose`]: its label, the tenant id, then `name`.
fn purpose_ad(purpose: Purpose, tenant_id: Uuid, name: &str) -> Vec<u8> {
    [
        purpose.label(),
        tenant_id.as_bytes().as_slice(),
        name.as_bytes(),
    ]
    .concat()
}

/// Why the key file could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read, created or written.
    #[error("{path}: {source}. The MFA key file must be readable by the cloud (and only by it).")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not 32 bytes long.
    #[error("{0}: not an MFA key (it must hold exactly 32 bytes). Restore it from your backup: without it, enrolled authenticators cannot be checked.")]
    Malformed(PathBuf),
}

/// Why a sealed secret did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// The ciphertext is damaged, belongs to another user, or was sealed under another key.
    #[error("the sealed secret does not open with this key and row (another mfa.key file, or a row moved between users or tenants)")]
    Open,
    /// The cipher refused to seal (not expected for inputs this small).
    #[error("the secret could not be sealed")]
    Seal,
}

/// The sealing key. Its `Debug` shows nothing of it; the cipher wipes it when dropped.
pub struct SecretBox {
    cipher: ChaCha20Poly1305,
    /// The key that authenticates what instances of the deployment say to each other on the
    /// bus (HMAC-SHA256, derived from the sealing key: every instance has the same data dir
    /// key, nobody else does).
    bus: ring::hmac::Key,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

fn ad(user_id: Uuid) -> Vec<u8> {
    [AD_LABEL, user_id.as_bytes().as_slice()].concat()
}

impl SecretBox {
    /// A box with this key.
    pub fn from_key(key: &[u8; KEY_LEN]) -> SecretBox {
        let derive = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        let bus = ring::hmac::sign(&derive, BUS_LABEL);
        SecretBox {
            cipher: ChaCha20Poly1305::new(key.into()),
            bus: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bus.as_ref()),
        }
    }

    /// A value that tells this key from another, and nothing of it (hex of an HMAC of a
    /// fixed label): kept in the store, so that an instance with another key is refused.
    pub(crate) fn key_check(&self) -> String {
        hex::encode(ring::hmac::sign(&self.bus, b"passthru key check v1").as_ref())
    }

    /// The key of the deployment's bus messages (see the field).
    pub(crate) fn bus_key(&self) -> ring::hmac::Key {
        self.bus.clone()
    }

    /// Reads `DIR/mfa.key`, creating it (0600, 32 random bytes) when there is none.
    pub fn load_or_create(data_dir: &Path) -> Result<SecretBox, KeyFileError> {
        let path = data_dir.join(KEY_FILE);
        let io = |source| KeyFileError::Io {
            path: path.clone(),
            source,
        };
        let mut key = Zeroizing::new([0u8; KEY_LEN]);
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut f) => {
                    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, key.as_mut());
                    f.write_all(key.as_ref()).map_err(io)?;
                    f.sync_all().map_err(io)?;
                    tracing::info!(path = %path.display(), "created the MFA key file: back it up with the store");
                    return Ok(SecretBox::from_key(&key));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io(e)),
            }
        }
        let mut f = std::fs::File::open(&path).map_err(io)?;
        let mut raw = Zeroizing::new(Vec::with_capacity(KEY_LEN + 1));
        std::io::Read::take(&mut f, KEY_LEN as u64 + 1)
            .read_to_end(&mut raw)
            .map_err(io)?;
        if raw.len() != KEY_LEN {
            return Err(KeyFileError::Malformed(path));
        }
        key.copy_from_slice(&raw);
        Ok(SecretBox::from_key(&key))
    }

    /// Seals `secret` for `user_id`: nonce || ciphertext.
    pub fn seal(&self, user_id: Uuid, secret: &[u8]) -> Result<Vec<u8>, SealError> {
        self.seal_ad(&ad(user_id), secret)
    }

    /// Opens what [`seal`](Self::seal) made for `user_id`.
    pub fn open(&self, user_id: Uuid, sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.open_ad(&ad(user_id), sealed)
    }

    /// Seals `secret` as `purpose` of the row (`tenant_id`, `name`).
    pub(crate) fn seal_for(
        &self,
        purpose: Purpose,
        tenant_id: Uuid,
        name: &str,
        secret: &[u8],
    ) -> Result<Vec<u8>, SealError> {
        self.seal_ad(&purpose_ad(purpose, tenant_id, name), secret)
    }

    /// Opens what [`seal_for`](Self::seal_for) made for the same purpose and row.
    pub(crate) fn open_for(
        &self,
        purpose: Purpose,
        tenant_id: Uuid,
        name: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SealError> {
        self.open_ad(&purpose_ad(purpose, tenant_id, name), sealed)
    }

    fn seal_ad(&self, aad: &[u8], secret: &[u8]) -> Result<Vec<u8>, SealError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut nonce);
        let ct = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), Payload { msg: secret, aad })
            .map_err(|_| SealError::Seal)?;
        Ok([nonce.as_slice(), &ct].concat())
    }

    fn open_ad(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ct) = sealed.split_at(NONCE_LEN);
        self.cipher
            .decrypt(Nonce::from_slice(nonce), Payload { msg: ct, aad })
            .map(Zeroizing::new)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() -> anyhow::Result<()> {
        let b = SecretBox::from_key(&[7u8; 32]);
        let user = Uuid::new_v4();
        let sealed = b.seal(user, b"a secret of twenty b")?;
        assert!(!sealed.windows(b"a secret".len()).any(|w| w == b"a secret"));
        assert_eq!(b.open(user, &sealed)?.as_slice(), b"a secret of twenty b");
        // Another user (associated data), another key, a flipped bit: refused.
        assert_eq!(b.open(Uuid::new_v4(), &sealed), Err(SealError::Open));
        let other = SecretBox::from_key(&[8u8; 32]);
        assert_eq!(other.open(user, &sealed), Err(SealError::Open));
        let mut bent = sealed.clone();
        if let Some(last) = bent.last_mut() {
            *last ^= 1;
        }
        assert_eq!(b.open(user, &bent), Err(SealError::Open));
        assert_eq!(b.open(user, &sealed[..5]), Err(SealError::Open));
        // Two seals of one secret differ (random nonce).
        assert_ne!(b.seal(user, b"x")?, b.seal(user, b"x")?);
        Ok(())
    }

    #[test]
    fn purposes_and_rows_are_bound() -> anyhow::Result<()> {
        let b = SecretBox::from_key(&[7u8; 32]);
        let t = Uuid::new_v4();
        let sealed = b.seal_for(Purpose::SigningKey, t, "kid1", b"pem")?;
        assert_eq!(
            b.open_for(Purpose::SigningKey, t, "kid1", &sealed)?
                .as_slice(),
            b"pem"
        );
        for (p, tenant, name) in [
            (Purpose::FederationSecret, t, "kid1"),
            (Purpose::SigningKey, Uuid::new_v4(), "kid1"),
            (Purpose::SigningKey, t, "kid2"),
        ] {
            assert_eq!(b.open_for(p, tenant, name, &sealed), Err(SealError::Open));
        }
        // Not an MFA secret of a user either.
        assert_eq!(b.open(t, &sealed), Err(SealError::Open));
        Ok(())
    }

    #[test]
    fn key_file_is_created_private_and_read_back() -> anyhow::Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = std::env::temp_dir().join(format!("passthru-mfakey-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        let first = SecretBox::load_or_create(&dir)?;
        let mode = std::fs::metadata(dir.join(KEY_FILE))?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(std::fs::metadata(dir.join(KEY_FILE))?.len(), 32);
        let user = Uuid::new_v4();
        let sealed = first.seal(user, b"s")?;
        let again = SecretBox::load_or_create(&dir)?;
        assert_eq!(again.open(user, &sealed)?.as_slice(), b"s");
        std::fs::write(dir.join(KEY_FILE), b"short")?;
        assert!(matches!(
            SecretBox::load_or_create(&dir),
            Err(KeyFileError::Malformed(_))
        ));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
