//! Token signing (ES256 by default: a P-256 signature costs a fraction of RS256's), the JWKS,
//! and verification of the access tokens the admin API accepts.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::store::SigningKeyRecord;

/// Why a token operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The store holds no signing key (the data dir was not initialised).
    #[error("no token signing key: run `passthru-cloud init` first")]
    NoKey,
    /// A key could not be generated or loaded.
    #[error("signing key: {0}")]
    Key(String),
    /// Signing or verifying failed.
    #[error("token: {0}")]
    Jwt(#[from] jsonwebtoken::errors::Error),
}

/// Lifetime of access and ID tokens, seconds.
pub const TOKEN_LIFETIME_SECS: i64 = 3600;

/// How long a retired signing key stays in the JWKS: until every token it signed has
/// expired, plus clock leeway.
pub const KEY_KEEP_SECS: i64 = TOKEN_LIFETIME_SECS + 300;

/// Makes a new P-256 signing key.
pub fn generate_signing_key() -> Result<SigningKeyRecord, TokenError> {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(|e| TokenError::Key(e.to_string()))?;
    let public_raw = key.public_key_raw().to_vec();
    let kid = B64URL.encode(&Sha256::digest(&public_raw)[..16]);
    Ok(SigningKeyRecord {
        kid,
        private_pem: key.serialize_pem(),
        public_raw,
    })
}

struct LoadedKey {
    kid: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    x: String,
    y: String,
}

/// The signing keys in use: the newest signs, all verify and are published.
pub struct Signer {
    /// Newest first. Swapped whole on rotation, so readers never see a half-updated set.
    keys: std::sync::RwLock<std::sync::Arc<Vec<LoadedKey>>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let keys = self.snapshot();
        let kids: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Signer").field("kids", &kids).finish()
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
    /// Loads the keys (newest first, as the store returns them).
    pub fn load(records: &[SigningKeyRecord]) -> Result<Signer, TokenError> {
        Ok(Signer {
            keys: std::sync::RwLock::new(std::sync::Arc::new(Self::parse(records)?)),
        })
    }

    /// Replaces the key set (after a rotation).
    pub fn reload(&self, records: &[SigningKeyRecord]) -> Result<(), TokenError> {
        let fresh = std::sync::Arc::new(Self::parse(records)?);
        match self.keys.write() {
            Ok(mut g) => *g = fresh,
            Err(p) => *p.into_inner() = fresh,
        }
        Ok(())
    }

    fn snapshot(&self) -> std::sync::Arc<Vec<LoadedKey>> {
        match self.keys.read() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn parse(records: &[SigningKeyRecord]) -> Result<Vec<LoadedKey>, TokenError> {
        let mut keys = Vec::new();
        for r in records {
            if r.public_raw.len() != 65 {
                return Err(TokenError::Key(format!(
                    "key {} has a malformed public key",
                    r.kid
                )));
            }
            let x = B64URL.encode(&r.public_raw[1..33]);
            let y = B64URL.encode(&r.public_raw[33..65]);
            keys.push(LoadedKey {
                kid: r.kid.clone(),
                encoding: EncodingKey::from_ec_pem(r.private_pem.as_bytes())?,
                decoding: DecodingKey::from_ec_components(&x, &y)?,
                x,
                y,
            });
        }
        if keys.is_empty() {
            return Err(TokenError::NoKey);
        }
        Ok(keys)
    }

    /// Signs claims with the newest key.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let keys = self.snapshot();
        let key = keys.first().ok_or(TokenError::NoKey)?;
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(key.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &key.encoding)?)
    }

    /// The public keys, as a JWKS `keys` array.
    pub fn jwks(&self) -> Vec<Jwk> {
        self.snapshot()
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

    /// Verifies an access token's signature, lifetime and audience.
    pub fn verify_access(&self, token: &str, audience: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        let keys = self.snapshot();
        let key = keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref())
            .ok_or_else(|| TokenError::Key("the token was signed by an unknown key".into()))?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[audience]);
        v.leeway = 30;
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "nbf", "aud", "iss"]);
        Ok(jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &v)?.claims)
    }
}

impl Signer {
    /// Verifies a user token of ours (signature, lifetime, issuer), whatever its audience.
    pub fn verify_user_token(&self, token: &str, issuer: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token)?;
        let keys = self.snapshot();
        let key = keys
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref())
            .ok_or_else(|| TokenError::Key("the token was signed by an unknown key".into()))?;
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
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_reject() -> anyhow::Result<()> {
        let rec = generate_signing_key()?;
        let signer = Signer::load(&[rec])?;
        let now = 1_000_000_000;
        let claims = AccessClaims {
            iss: "https://x/t/v2.0".into(),
            aud: "passthru-admin".into(),
            sub: "s".into(),
            oid: Uuid::new_v4(),
            tid: Uuid::new_v4(),
            exp: now + 60,
            iat: now,
            nbf: now,
            scp: String::new(),
            azp: String::new(),
            preferred_username: String::new(),
            ver: "2.0".into(),
        };
        // A token from the past is refused; a current one verifies.
        let old = signer.sign(&claims)?;
        assert!(signer.verify_access(&old, "passthru-admin").is_err());
        let t = jsonwebtoken::get_current_timestamp() as i64;
        let fresh = AccessClaims {
            exp: t + 60,
            iat: t,
            nbf: t,
            ..claims
        };
        let tok = signer.sign(&fresh)?;
        assert!(signer.verify_access(&tok, "passthru-admin").is_ok());
        assert!(signer.verify_access(&tok, "someone-else").is_err());
        let other = Signer::load(&[generate_signing_key()?])?;
        assert!(other.verify_access(&tok, "passthru-admin").is_err());
        assert_eq!(signer.jwks().len(), 1);
        Ok(())
    }
}
