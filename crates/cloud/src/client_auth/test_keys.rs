//! Tests' certificates and client assertions: RSA 2048 (the `rsa` crate makes the key,
//! once per test binary: rcgen over ring cannot) and ECDSA P-256 certificates made with
//! rcgen, and assertions signed as MSAL Node signs them.

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::digest;
use serde_json::Value;

/// The RSA test key: (PKCS#8 DER, PKCS#1 DER).
fn rsa_key() -> &'static (Vec<u8>, Vec<u8>) {
    static KEY: OnceLock<(Vec<u8>, Vec<u8>)> = OnceLock::new();
    KEY.get_or_init(|| {
        use rsa::pkcs1::EncodeRsaPrivateKey as _;
        use rsa::pkcs8::EncodePrivateKey as _;
        let key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048)
            .unwrap_or_else(|e| unreachable!("an RSA test key: {e}"));
        let pkcs8 = key
            .to_pkcs8_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        let pkcs1 = key
            .to_pkcs1_der()
            .map(|d| d.as_bytes().to_vec())
            .unwrap_or_default();
        (pkcs8, pkcs1)
    })
}

/// A test certificate and its private key.
pub(crate) struct TestCert {
    pub pem: String,
    pub der: Vec<u8>,
    /// The private key as PEM (`PRIVATE KEY`), to be refused when given as a certificate.
    pub key_pem: String,
    signing: EncodingKey,
    rsa: bool,
}

impl std::fmt::Debug for TestCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCert")
            .field("rsa", &self.rsa)
            .finish_non_exhaustive()
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    use base64::engine::general_purpose::STANDARD;
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

fn make(
    key: rcgen::KeyPair,
    cn: &str,
    not_before: i64,
    not_after: i64,
) -> anyhow::Result<TestCert> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before)?;
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after)?;
    let cert = params.self_signed(&key)?;
    let rsa = key.algorithm() == &rcgen::PKCS_RSA_SHA256;
    let signing = if rsa {
        EncodingKey::from_rsa_der(&rsa_key().1)
    } else {
        EncodingKey::from_ec_der(&key.serialize_der())
    };
    Ok(TestCert {
        pem: cert.pem(),
        der: cert.der().to_vec(),
        key_pem: pem("PRIVATE KEY", &key.serialize_der()),
        signing,
        rsa,
    })
}

/// An RSA 2048 certificate valid from `not_before` until `not_after`.
pub(crate) fn rsa_cert(cn: &str, not_before: i64, not_after: i64) -> anyhow::Result<TestCert> {
    let key = rcgen::KeyPair::try_from(rsa_key().0.as_slice())?;
    make(key, cn, not_before, not_after)
}

/// An ECDSA P-256 certificate valid from `not_before` until `not_after`.
pub(crate) fn p256_cert(cn: &str, not_before: i64, not_after: i64) -> anyhow::Result<TestCert> {
    make(
        rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?,
        cn,
        not_before,
        not_after,
    )
}

/// Which thumbprint the header names the certificate by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Named {
    Sha1,
    Sha256,
    Both,
    Neither,
}

impl TestCert {
    pub(crate) fn x5t(&self) -> String {
        B64URL.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der))
    }

    pub(crate) fn x5t_s256(&self) -> String {
        B64URL.encode(digest::digest(&digest::SHA256, &self.der))
    }

    /// `claims` signed with the certificate's key with `alg`, the certificate named as
    /// `named`.
    pub(crate) fn sign(
        &self,
        alg: Algorithm,
        named: Named,
        claims: &Value,
    ) -> anyhow::Result<String> {
        let mut header = Header::new(alg);
        if matches!(named, Named::Sha1 | Named::Both) {
            header.x5t = Some(self.x5t());
        }
        if matches!(named, Named::Sha256 | Named::Both) {
            header.x5t_s256 = Some(self.x5t_s256());
        }
        Ok(jsonwebtoken::encode(&header, claims, &self.signing)?)
    }

    /// An assertion as MSAL Node makes it for a certificate: RS256 with x5t (or PS256 with
    /// x5t#S256 when `sha256`; ES256 for an EC key), aud, exp = now + 600, iss = sub =
    /// client id, nbf = now, a jti.
    pub(crate) fn msal_assertion(
        &self,
        client_id: &str,
        aud: &str,
        now: i64,
        sha256: bool,
    ) -> anyhow::Result<String> {
        let claims = serde_json::json!({
            "aud": aud,
            "exp": now + 600,
            "iss": client_id,
            "sub": client_id,
            "nbf": now,
            "jti": uuid::Uuid::new_v4().to_string(),
        });
        let (alg, named) = match (self.rsa, sha256) {
            (true, false) => (Algorithm::RS256, Named::Sha1),
            (true, true) => (Algorithm::PS256, Named::Sha256),
            (false, false) => (Algorithm::ES256, Named::Sha1),
            (false, true) => (Algorithm::ES256, Named::Sha256),
        };
        self.sign(alg, named, &claims)
    }
}

/// A compact JWT of `header` and `claims` with `signature` (for assertions no library
/// would sign: alg none, HS256 with the public key).
pub(crate) fn raw_jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string()),
        B64URL.encode(signature)
    )
}
