//! Client assertions (RFC 7523 `private_key_jwt`, MSAL's `clientCertificate`): a JWT the
//! app signs with a certificate's private key and sends as `client_assertion` with
//! `client_assertion_type=urn:ietf:params:oauth:client-assertion-type:jwt-bearer`. Pure: the
//! app's certificates, the accepted audiences and the time are passed in.
//!
//! The rules, in the order they are checked (each refusal says what to fix):
//! - the header's `alg` is RS256, PS256 or ES256 (never `none`, never an HMAC: the key is the
//!   certificate's public key, which anyone may hold);
//! - the header names a certificate of the app by `x5t` (base64url SHA-1 of its DER; MSAL
//!   Node sends it with RS256 for a SHA-1 `thumbprint`) or `x5t#S256` (SHA-256; MSAL Node
//!   sends it with PS256 for `thumbprintSha256`); `x5t#S256` wins when both are there, and
//!   then `x5t` must name the same certificate;
//! - that certificate is valid now (its notBefore and notAfter) and its key fits `alg`;
//! - the signature verifies with its public key (jsonwebtoken);
//! - `iss` and `sub` are the client id;
//! - `aud` (a string, or an array holding one) is one of this tenant's token endpoint URLs;
//! - `exp` is in the future, at most [`MAX_LIFETIME_SECS`] ahead, `nbf` and `iat` (when there)
//!   not in the future, each with [`LEEWAY_SECS`] for clocks apart.
//!
//! A `jti` is not held to one use: MSAL (Node and Python) signs one assertion and sends it
//! with every token request until it expires (10 minutes), as Entra ID accepts, so a
//! once-only `jti` would refuse a web app's second sign-in. See docs/architecture.md.

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use passthru_proto::Aadsts;
use serde::Deserialize;
use uuid::Uuid;

use super::certificate::{public_key_of, PublicKey};
use crate::clock::rfc3339;
use crate::store::app_credentials::{AppCredential, CredentialKey};

/// `client_assertion_type` of a JWT client assertion (RFC 7523, section 2.2).
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// How far ahead an assertion's `exp` may be, seconds.
pub(crate) const MAX_LIFETIME_SECS: i64 = 3600;

/// Clock skew allowed on `exp`, `nbf` and `iat`, seconds (five minutes, the clock skew
/// Microsoft's token validation allows).
pub(crate) const LEEWAY_SECS: i64 = 300;

/// The largest assertion read, bytes (a certificate chain in `x5c` included).
pub(crate) const MAX_ASSERTION_BYTES: usize = 16 * 1024;

/// What the assertion must be about.
#[derive(Debug, Clone)]
pub(crate) struct Expected<'a> {
    /// The app's client id (lower case).
    pub client_id: &'a str,
    /// Every `aud` accepted: this tenant's token endpoint URLs.
    pub audiences: &'a [String],
    /// Unix seconds.
    pub now: i64,
}

/// An assertion that proved the app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verified {
    /// The credential (certificate) it was signed with.
    pub credential_id: Uuid,
    /// Its `exp`.
    pub expires_at: i64,
}

/// Why an assertion is refused. The message says what to fix; it never repeats the
/// assertion (values it quotes are cut short).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AssertionError {
    #[error("The client assertion is larger than {MAX_ASSERTION_BYTES} bytes.")]
    TooLarge,
    #[error("The client assertion is not a signed JWT ({0}): send a JWT signed with the certificate's private key (RFC 7523).")]
    Malformed(String),
    #[error("The client assertion's alg '{0}' is not accepted: sign it with the certificate's private key (RS256, PS256 or ES256).")]
    AlgNotAllowed(String),
    #[error("The client assertion's header names no certificate: give its thumbprint as x5t (base64url SHA-1) or x5t#S256 (base64url SHA-256).")]
    NoThumbprint,
    #[error("The client assertion's {0} is not a base64url {1} thumbprint.")]
    BadThumbprint(&'static str, &'static str),
    #[error("No certificate with {0} '{1}' is registered for application '{2}': register it (passthru-cloud admin app credential add CLIENT_ID --cert FILE) or sign with one that is.")]
    UnknownCertificate(&'static str, String, String),
    #[error(
        "The client assertion's x5t and x5t#S256 name different certificates: send one of them."
    )]
    ThumbprintsDisagree,
    #[error("The certificate {0} of this application expired on {at}: sign with a current one.", at = rfc3339(*.1))]
    CertificateExpired(String, i64),
    #[error("The certificate {0} of this application is valid only from {at}: sign with a current one.", at = rfc3339(*.1))]
    CertificateNotYetValid(String, i64),
    #[error("The client assertion is signed with {0} but the certificate's key is {1}: use {2}.")]
    AlgDoesNotFitKey(&'static str, &'static str, &'static str),
    #[error("The client assertion's signature does not verify with the certificate {0}: sign it with that certificate's private key.")]
    BadSignature(String),
    #[error("The client assertion's iss and sub must both be the client id '{0}' (iss '{1}', sub '{2}').")]
    WrongSubject(String, String, String),
    #[error(
        "The client assertion's audience '{0}' is not this tenant's token endpoint: use '{1}'."
    )]
    WrongAudience(String, String),
    #[error("The client assertion expired at {at} (now {now}): make a new one for this request.", at = rfc3339(*.0), now = rfc3339(*.1))]
    Expired(i64, i64),
    #[error("The client assertion expires at {at}, more than {max} minutes from now ({now}): make it expire sooner (MSAL uses 10 minutes).", at = rfc3339(*.0), max = MAX_LIFETIME_SECS / 60, now = rfc3339(*.1))]
    TooLong(i64, i64),
    #[error("The client assertion is not valid before {at} (now {now}): check the clock of the app's machine.", at = rfc3339(*.0), now = rfc3339(*.1))]
    NotYetValid(i64, i64),
}

impl AssertionError {
    /// The AADSTS code Entra ID answers with for this refusal.
    pub(crate) fn aadsts(&self) -> Aadsts {
        match self {
            AssertionError::WrongSubject(..) => Aadsts::ClientAssertionSubject,
            AssertionError::WrongAudience(..) => Aadsts::ClientAssertionAudience,
            AssertionError::Expired(..)
            | AssertionError::TooLong(..)
            | AssertionError::NotYetValid(..) => Aadsts::ClientAssertionTime,
            _ => Aadsts::ClientAssertionInvalid,
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    x5t: Option<String>,
    #[serde(rename = "x5t#S256")]
    x5t_s256: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    exp: Option<serde_json::Number>,
    nbf: Option<serde_json::Number>,
    iat: Option<serde_json::Number>,
}

/// At most 64 characters of a value the client sent, for a message.
fn quoted(v: &str) -> String {
    v.chars().take(64).collect()
}

fn seconds(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| {
        n.as_f64()
            .filter(|f| f.is_finite())
            .map(|f| f.floor() as i64)
    })
}

/// The part `index` (0: header, 1: payload) of a compact JWT, decoded.
fn part(assertion: &str, index: usize) -> Result<Vec<u8>, AssertionError> {
    let parts: Vec<&str> = assertion.split('.').collect();
    if parts.len() != 3 {
        return Err(AssertionError::Malformed(format!(
            "{} parts, a JWT has 3",
            parts.len()
        )));
    }
    let raw = parts.get(index).copied().unwrap_or_default();
    B64URL
        .decode(raw.trim_end_matches('='))
        .map_err(|_| AssertionError::Malformed("a part is not base64url".into()))
}

/// The `sub` of an assertion, unverified: the client id a request names only there.
pub(crate) fn unverified_subject(assertion: &str) -> Option<String> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return None;
    }
    let payload = part(assertion, 1).ok()?;
    serde_json::from_slice::<Claims>(&payload).ok()?.sub
}

/// A thumbprint of the header, decoded: `len` bytes.
fn thumbprint(
    value: &str,
    name: &'static str,
    hash: &'static str,
    len: usize,
) -> Result<Vec<u8>, AssertionError> {
    B64URL
        .decode(value.trim_end_matches('='))
        .ok()
        .filter(|b| b.len() == len)
        .ok_or(AssertionError::BadThumbprint(name, hash))
}

/// The certificate of `certificates` the header names.
fn named_certificate<'c>(
    header: &Header,
    client_id: &str,
    certificates: &'c [AppCredential],
) -> Result<&'c AppCredential, AssertionError> {
    let sha1 = header
        .x5t
        .as_deref()
        .map(|v| thumbprint(v, "x5t", "SHA-1", 20).map(hex::encode))
        .transpose()?;
    let sha256 = header
        .x5t_s256
        .as_deref()
        .map(|v| thumbprint(v, "x5t#S256", "SHA-256", 32).map(hex::encode))
        .transpose()?;
    let find = |f: &dyn Fn(&crate::store::app_credentials::CertificateKey) -> bool| {
        certificates.iter().find(|c| match &c.key {
            CredentialKey::Certificate(k) => f(k),
            CredentialKey::Secret { .. } => false,
        })
    };
    match (sha256, sha1) {
        (Some(s256), sha1) => {
            let found = find(&|k| k.sha256 == s256).ok_or_else(|| {
                AssertionError::UnknownCertificate(
                    "x5t#S256",
                    s256.to_ascii_uppercase(),
                    client_id.into(),
                )
            })?;
            match (&found.key, sha1) {
                (CredentialKey::Certificate(k), Some(s1)) if k.sha1 != s1 => {
                    Err(AssertionError::ThumbprintsDisagree)
                }
                _ => Ok(found),
            }
        }
        (None, Some(s1)) => find(&|k| k.sha1 == s1).ok_or_else(|| {
            AssertionError::UnknownCertificate("x5t", s1.to_ascii_uppercase(), client_id.into())
        }),
        (None, None) => Err(AssertionError::NoThumbprint),
    }
}

/// The thumbprint people know a certificate by (SHA-1, upper-case hex, as Entra shows it).
fn shown(c: &AppCredential) -> String {
    match &c.key {
        CredentialKey::Certificate(k) => k.sha1.to_ascii_uppercase(),
        CredentialKey::Secret { .. } => c.id.to_string(),
    }
}

/// Verifies `assertion` against the app's `credentials` (its certificates are used; secrets
/// are skipped).
pub(crate) fn verify(
    assertion: &str,
    expected: &Expected<'_>,
    credentials: &[AppCredential],
) -> Result<Verified, AssertionError> {
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(AssertionError::TooLarge);
    }
    let header: Header = serde_json::from_slice(&part(assertion, 0)?).map_err(|_| {
        AssertionError::Malformed("its header is not a JSON object with alg".into())
    })?;
    let alg = match header.alg.as_str() {
        "RS256" => Algorithm::RS256,
        "PS256" => Algorithm::PS256,
        "ES256" => Algorithm::ES256,
        other => return Err(AssertionError::AlgNotAllowed(quoted(other))),
    };
    let cert = named_certificate(&header, expected.client_id, credentials)?;
    if let Some(until) = cert.expires_at.filter(|e| *e <= expected.now) {
        return Err(AssertionError::CertificateExpired(shown(cert), until));
    }
    if let Some(from) = cert.starts_at.filter(|s| *s > expected.now) {
        return Err(AssertionError::CertificateNotYetValid(shown(cert), from));
    }
    let CredentialKey::Certificate(k) = &cert.key else {
        return Err(AssertionError::NoThumbprint);
    };
    let key =
        public_key_of(&k.public_key).map_err(|_| AssertionError::BadSignature(shown(cert)))?;
    let key = match (alg, key) {
        (Algorithm::RS256 | Algorithm::PS256, PublicKey::Rsa(der)) => {
            DecodingKey::from_rsa_der(&der)
        }
        (Algorithm::ES256, PublicKey::P256(point)) => DecodingKey::from_ec_der(&point),
        (Algorithm::ES256, PublicKey::Rsa(_)) => {
            return Err(AssertionError::AlgDoesNotFitKey(
                "ES256",
                "RSA",
                "RS256 or PS256",
            ))
        }
        (_, _) => {
            return Err(AssertionError::AlgDoesNotFitKey(
                if alg == Algorithm::PS256 {
                    "PS256"
                } else {
                    "RS256"
                },
                "ECDSA P-256",
                "ES256",
            ))
        }
    };
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let claims = match jsonwebtoken::decode::<Claims>(assertion, &key, &validation) {
        Ok(data) => data.claims,
        Err(e) => {
            return Err(match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature
                | jsonwebtoken::errors::ErrorKind::InvalidAlgorithm
                | jsonwebtoken::errors::ErrorKind::InvalidEcdsaKey
                | jsonwebtoken::errors::ErrorKind::InvalidRsaKey(_) => {
                    AssertionError::BadSignature(shown(cert))
                }
                _ => AssertionError::Malformed(
                    "its claims are not a JSON object of the registered claims' types".into(),
                ),
            })
        }
    };

    let (iss, sub) = (
        claims.iss.unwrap_or_default(),
        claims.sub.unwrap_or_default(),
    );
    if !iss.eq_ignore_ascii_case(expected.client_id)
        || !sub.eq_ignore_ascii_case(expected.client_id)
    {
        return Err(AssertionError::WrongSubject(
            expected.client_id.into(),
            quoted(&iss),
            quoted(&sub),
        ));
    }
    let accepted = |aud: &str| {
        expected.audiences.iter().any(|a| {
            a.trim_end_matches('/')
                .eq_ignore_ascii_case(aud.trim_end_matches('/'))
        })
    };
    let audiences = match &claims.aud {
        Some(Audience::One(a)) => vec![a.as_str()],
        Some(Audience::Many(v)) => v.iter().map(String::as_str).collect(),
        None => Vec::new(),
    };
    if !audiences.iter().any(|a| accepted(a)) {
        return Err(AssertionError::WrongAudience(
            quoted(&audiences.join(" ")),
            expected.audiences.first().cloned().unwrap_or_default(),
        ));
    }
    let now = expected.now;
    let exp =
        claims.exp.as_ref().and_then(seconds).ok_or_else(|| {
            AssertionError::Malformed("it has no exp (a number of seconds)".into())
        })?;
    if exp.saturating_add(LEEWAY_SECS) <= now {
        return Err(AssertionError::Expired(exp, now));
    }
    if exp > now.saturating_add(MAX_LIFETIME_SECS + LEEWAY_SECS) {
        return Err(AssertionError::TooLong(exp, now));
    }
    for not_before in [&claims.nbf, &claims.iat].into_iter().flatten() {
        let t = seconds(not_before)
            .ok_or_else(|| AssertionError::Malformed("its nbf or iat is not a number".into()))?;
        if t > now.saturating_add(LEEWAY_SECS) {
            return Err(AssertionError::NotYetValid(t, now));
        }
    }
    Ok(Verified {
        credential_id: cert.id,
        expires_at: exp,
    })
}
