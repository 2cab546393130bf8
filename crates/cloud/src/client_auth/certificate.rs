//! Registering a certificate credential (`admin app credential add CLIENT_ID --cert FILE`):
//! what the cloud takes from a PEM certificate, and what it refuses, each with what to give
//! instead. Pure: the time is passed in.
//!
//! Kept: the SHA-1 and SHA-256 thumbprints of the certificate's DER (an assertion's `x5t` and
//! `x5t#S256`), its SubjectPublicKeyInfo (what assertions are verified with), its subject,
//! notBefore and notAfter. The certificate's issuer and chain are not checked: as in Entra ID,
//! registering the certificate is what makes it trusted (self-signed ones are the usual case).

use ring::digest;

use crate::clock::rfc3339;
use crate::store::app_credentials::CertificateKey;

/// The smallest RSA key accepted (and that the verifier accepts), bits.
pub(crate) const MIN_RSA_BITS: usize = 2048;
/// The largest RSA key the verifier accepts, bits.
pub(crate) const MAX_RSA_BITS: usize = 8192;

/// The most bytes of PEM text taken.
pub(crate) const MAX_PEM_BYTES: usize = 32 * 1024;

/// A certificate accepted as a credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Registered {
    pub key: CertificateKey,
    pub not_before: i64,
    pub not_after: i64,
}

/// Why a certificate is refused; each says what to give instead. None of them repeats what
/// was given (it may have been a private key).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CertificateError {
    #[error("The certificate is larger than {MAX_PEM_BYTES} bytes: give one PEM certificate (-----BEGIN CERTIFICATE-----).")]
    TooLarge,
    #[error("This is a private key, which must stay with the application: give its certificate instead (the PEM block -----BEGIN CERTIFICATE-----, e.g. from `openssl x509 -in FILE -out cert.pem`). Nothing was stored.")]
    PrivateKey,
    #[error("This is a certificate signing request: give the certificate issued for it (-----BEGIN CERTIFICATE-----).")]
    SigningRequest,
    #[error("This is a bare public key: give the certificate that holds it (-----BEGIN CERTIFICATE-----).")]
    PublicKey,
    #[error("This is not a PEM certificate (no -----BEGIN CERTIFICATE----- block): give the application's certificate in PEM form (`openssl x509 -inform der -in FILE -out cert.pem` converts a DER one).")]
    NotPem,
    #[error("The PEM block is a {0}, not a certificate: give the application's certificate (-----BEGIN CERTIFICATE-----).")]
    OtherPem(String),
    #[error("The file holds {0} certificates: give the application's own certificate only (its chain is not needed).")]
    Several(usize),
    #[error("The certificate cannot be read ({0}): give a valid X.509 certificate in PEM form.")]
    Unreadable(String),
    #[error("The certificate expired on {}: give a current one.", rfc3339(*.0))]
    Expired(i64),
    #[error("The certificate's key is {0}: give a certificate with an RSA key (2048 to 8192 bits) or an ECDSA P-256 key.")]
    UnsupportedKey(String),
}

/// The certificate of `pem` (one PEM `CERTIFICATE` block, text around it ignored), checked at
/// `now`.
pub(crate) fn registered_certificate(pem: &str, now: i64) -> Result<Registered, CertificateError> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(CertificateError::TooLarge);
    }
    // The labels first, from the text: a private key is refused before anything of it is
    // decoded.
    let labels: Vec<&str> = pem
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .map(|l| l.trim_end_matches('-').trim())
        .collect();
    if labels.iter().any(|l| l.contains("PRIVATE KEY")) {
        return Err(CertificateError::PrivateKey);
    }
    let certificates = labels.iter().filter(|l| **l == "CERTIFICATE").count();
    match (certificates, labels.first()) {
        (1, _) => {}
        (0, None) => return Err(CertificateError::NotPem),
        (0, Some(&"CERTIFICATE REQUEST" | &"NEW CERTIFICATE REQUEST")) => {
            return Err(CertificateError::SigningRequest)
        }
        (0, Some(&"PUBLIC KEY" | &"RSA PUBLIC KEY")) => return Err(CertificateError::PublicKey),
        (0, Some(other)) => {
            return Err(CertificateError::OtherPem(other.chars().take(40).collect()))
        }
        (n, _) => return Err(CertificateError::Several(n)),
    }
    let block = x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .filter_map(Result::ok)
        .find(|p| p.label == "CERTIFICATE")
        .ok_or_else(|| CertificateError::Unreadable("its base64 is invalid".into()))?;
    let der = block.contents.as_slice();
    let (rest, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| CertificateError::Unreadable(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CertificateError::Unreadable(
            "bytes follow the certificate".into(),
        ));
    }
    let not_before = cert.validity().not_before.timestamp();
    let not_after = cert.validity().not_after.timestamp();
    if not_after <= now {
        return Err(CertificateError::Expired(not_after));
    }
    let spki = cert.public_key();
    public_key_of(spki.raw).map_err(CertificateError::UnsupportedKey)?;
    Ok(Registered {
        key: CertificateKey {
            sha1: hex::encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der)),
            sha256: hex::encode(digest::digest(&digest::SHA256, der)),
            public_key: spki.raw.to_vec(),
            subject: cert.subject().to_string(),
        },
        not_before,
        not_after,
    })
}

/// The public key of a SubjectPublicKeyInfo (DER), as the verifier takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PublicKey {
    /// An RSA key: its PKCS#1 RSAPublicKey (DER).
    Rsa(Vec<u8>),
    /// An ECDSA P-256 key: its uncompressed point.
    P256(Vec<u8>),
}

/// The key of `spki` (DER) when it is one the cloud verifies with, else what it is.
pub(crate) fn public_key_of(spki: &[u8]) -> Result<PublicKey, String> {
    use x509_parser::oid_registry::{OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY};
    use x509_parser::prelude::FromDer as _;
    use x509_parser::x509::SubjectPublicKeyInfo;

    let (_, info) = SubjectPublicKeyInfo::from_der(spki)
        .map_err(|_| "not a readable public key".to_string())?;
    let bits = info.subject_public_key.data.to_vec();
    match info.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => {
            let modulus = rsa.modulus;
            let first = modulus
                .iter()
                .position(|b| *b != 0)
                .unwrap_or(modulus.len());
            let significant = &modulus[first..];
            let size = significant
                .first()
                .map_or(0, |b| significant.len() * 8 - b.leading_zeros() as usize);
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&size) {
                return Err(format!("a {size}-bit RSA key"));
            }
            Ok(PublicKey::Rsa(bits))
        }
        Ok(x509_parser::public_key::PublicKey::EC(point)) => {
            let curve = info
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok());
            if info.algorithm.algorithm == OID_KEY_TYPE_EC_PUBLIC_KEY
                && curve.as_ref() == Some(&OID_EC_P256)
                && point.data().len() == 65
                && point.data().first() == Some(&4)
            {
                Ok(PublicKey::P256(bits))
            } else {
                Err(format!(
                    "an elliptic-curve key on {}",
                    curve.map_or_else(|| "an unnamed curve".to_string(), |c| c.to_id_string())
                ))
            }
        }
        Ok(_) | Err(_) => Err(format!(
            "of type {}",
            info.algorithm.algorithm.to_id_string()
        )),
    }
}
