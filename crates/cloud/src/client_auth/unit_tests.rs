//! The pure rules: registering a certificate, verifying a client assertion, matching a
//! secret.

use jsonwebtoken::Algorithm;
use passthru_proto::Aadsts;
use serde_json::json;
use uuid::Uuid;

use super::assertion::{verify, AssertionError, Expected, LEEWAY_SECS, MAX_LIFETIME_SECS};
use super::certificate::{registered_certificate, CertificateError, PublicKey};
use super::test_keys::{p256_cert, raw_jwt, rsa_cert, Named, TestCert};
use super::{secret_check, SecretCheck};
use crate::store::app_credentials::{AppCredential, CredentialKey};

const NOW: i64 = 1_800_000_000;
const DAY: i64 = 86_400;
const CLIENT: &str = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
const AUD: &str = "https://login.example/0b1c2d3e-0000-4000-8000-000000000001/oauth2/v2.0/token";

fn audiences() -> Vec<String> {
    vec![
        AUD.to_string(),
        "https://login.example/contoso/oauth2/v2.0/token".to_string(),
    ]
}

/// `cert` registered (as the admin API does) as a credential of CLIENT.
fn credential(cert: &TestCert) -> anyhow::Result<AppCredential> {
    let r = registered_certificate(&cert.pem, NOW)?;
    Ok(AppCredential {
        id: Uuid::new_v4(),
        tenant_id: Uuid::nil(),
        client_id: CLIENT.into(),
        key: CredentialKey::Certificate(r.key),
        hint: None,
        created_at: NOW - DAY,
        starts_at: Some(r.not_before),
        expires_at: Some(r.not_after),
    })
}

fn secret(hash: &str, expires_at: Option<i64>) -> AppCredential {
    AppCredential {
        id: Uuid::new_v4(),
        tenant_id: Uuid::nil(),
        client_id: CLIENT.into(),
        key: CredentialKey::Secret { hash: hash.into() },
        hint: Some("abc".into()),
        created_at: NOW - DAY,
        starts_at: None,
        expires_at,
    }
}

fn check(jwt: &str, creds: &[AppCredential]) -> Result<Uuid, AssertionError> {
    let aud = audiences();
    let expected = Expected {
        client_id: CLIENT,
        audiences: &aud,
        now: NOW,
    };
    verify(jwt, &expected, creds).map(|v| v.credential_id)
}

fn claims() -> serde_json::Value {
    json!({ "aud": AUD, "exp": NOW + 600, "iss": CLIENT, "sub": CLIENT, "nbf": NOW, "jti": "j-1" })
}

#[test]
fn a_certificate_is_registered_with_its_thumbprints_key_and_validity() -> anyhow::Result<()> {
    for cert in [
        rsa_cert("CN rsa", NOW - DAY, NOW + 365 * DAY)?,
        p256_cert("CN ec", NOW - DAY, NOW + 365 * DAY)?,
    ] {
        // Text around the block (as `openssl x509 -text` writes) is ignored.
        let r = registered_certificate(&format!("Certificate:\n  (details)\n{}", cert.pem), NOW)?;
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        assert_eq!(b64.encode(hex::decode(&r.key.sha1)?), cert.x5t());
        assert_eq!(b64.encode(hex::decode(&r.key.sha256)?), cert.x5t_s256());
        assert_eq!((r.not_before, r.not_after), (NOW - DAY, NOW + 365 * DAY));
        assert!(r.key.subject.contains("CN"), "{}", r.key.subject);
        assert!(super::certificate::public_key_of(&r.key.public_key).is_ok());
    }
    let rsa = registered_certificate(&rsa_cert("r", NOW, NOW + DAY)?.pem, NOW)?;
    assert!(matches!(
        super::certificate::public_key_of(&rsa.key.public_key),
        Ok(PublicKey::Rsa(_))
    ));
    Ok(())
}

#[test]
fn what_is_not_a_current_usable_certificate_is_refused_saying_what_to_give() -> anyhow::Result<()> {
    let cert = rsa_cert("CN app", NOW - 2 * DAY, NOW + 365 * DAY)?;
    let expired = p256_cert("CN old", NOW - 10 * DAY, NOW - DAY)?;
    let ed = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519)?;
    let ed_cert =
        rcgen::CertificateParams::new(vec!["ed.example".to_string()])?.self_signed(&ed)?;
    let p384 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384)?;
    let p384_cert =
        rcgen::CertificateParams::new(vec!["p384.example".to_string()])?.self_signed(&p384)?;
    let csr = "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    type Expect = fn(&CertificateError) -> bool;
    let cases: Vec<(String, Expect)> = vec![
        (cert.key_pem.clone(), |e| *e == CertificateError::PrivateKey),
        // A certificate with its key in one file: refused too (the key must not travel).
        (format!("{}{}", cert.pem, cert.key_pem), |e| {
            *e == CertificateError::PrivateKey
        }),
        (
            cert.key_pem.replace("PRIVATE KEY", "RSA PRIVATE KEY"),
            |e| *e == CertificateError::PrivateKey,
        ),
        (
            expired.pem.clone(),
            |e| matches!(e, CertificateError::Expired(t) if *t == NOW - DAY),
        ),
        (csr.to_string(), |e| *e == CertificateError::SigningRequest),
        (
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
            |e| *e == CertificateError::PublicKey,
        ),
        ("just text".into(), |e| *e == CertificateError::NotPem),
        (format!("{}{}", cert.pem, expired.pem), |e| {
            *e == CertificateError::Several(2)
        }),
        (
            "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n".into(),
            |e| matches!(e, CertificateError::Unreadable(_)),
        ),
        (ed_cert.pem(), |e| {
            matches!(e, CertificateError::UnsupportedKey(_))
        }),
        (p384_cert.pem(), |e| {
            matches!(e, CertificateError::UnsupportedKey(_))
        }),
        ("x".repeat(40_000), |e| *e == CertificateError::TooLarge),
    ];
    for (pem, expected) in cases {
        match registered_certificate(&pem, NOW) {
            Err(e) => {
                assert!(expected(&e), "{e:?} for {}", &pem[..pem.len().min(60)]);
                let text = e.to_string();
                assert!(text.contains("give") || text.contains("Give"), "{text}");
                assert!(
                    !text.contains("MII"),
                    "the message repeats the input: {text}"
                );
            }
            Ok(_) => anyhow::bail!("accepted: {}", &pem[..pem.len().min(60)]),
        }
    }
    Ok(())
}

#[test]
fn assertions_as_msal_makes_them_are_accepted() -> anyhow::Result<()> {
    let rsa = rsa_cert("CN rsa", NOW - DAY, NOW + 365 * DAY)?;
    let ec = p256_cert("CN ec", NOW - DAY, NOW + 365 * DAY)?;
    let creds = vec![secret("ab", None), credential(&rsa)?, credential(&ec)?];
    let (rsa_id, ec_id) = (creds[1].id, creds[2].id);
    for (cert, sha256, id) in [
        (&rsa, false, rsa_id),
        (&rsa, true, rsa_id),
        (&ec, false, ec_id),
        (&ec, true, ec_id),
    ] {
        let jwt = cert.msal_assertion(CLIENT, AUD, NOW, sha256)?;
        assert_eq!(check(&jwt, &creds), Ok(id), "sha256 {sha256}");
    }
    // Both thumbprints, naming the same certificate; aud as an array; the audience by the
    // tenant as the path named it; the client id in upper case.
    let jwt = rsa.sign(
        Algorithm::RS256,
        Named::Both,
        &json!({ "aud": ["https://other.example", "https://login.example/contoso/oauth2/v2.0/token"],
                 "exp": NOW + 60, "iss": CLIENT.to_uppercase(), "sub": CLIENT, "iat": NOW }),
    )?;
    assert_eq!(check(&jwt, &creds), Ok(rsa_id));
    // A little clock skew either way.
    let mut c = claims();
    c["exp"] = json!(NOW - LEEWAY_SECS + 5);
    c["nbf"] = json!(NOW + LEEWAY_SECS - 5);
    assert_eq!(
        check(&rsa.sign(Algorithm::RS256, Named::Sha1, &c)?, &creds),
        Ok(rsa_id)
    );
    let mut c = claims();
    c["exp"] = json!(NOW + MAX_LIFETIME_SECS);
    assert_eq!(
        check(&rsa.sign(Algorithm::PS256, Named::Sha256, &c)?, &creds),
        Ok(rsa_id)
    );
    Ok(())
}

#[test]
fn assertions_are_refused_with_the_code_and_what_to_fix() -> anyhow::Result<()> {
    let rsa = rsa_cert("CN rsa", NOW - DAY, NOW + 365 * DAY)?;
    let ec = p256_cert("CN ec", NOW - DAY, NOW + 365 * DAY)?;
    let stranger = rsa_cert("CN stranger", NOW - DAY, NOW + 365 * DAY)?;
    let other_ec = p256_cert("CN other", NOW - DAY, NOW + 365 * DAY)?;
    let creds = vec![credential(&rsa)?, credential(&ec)?];
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims();
        f(&mut c);
        c
    };
    let header = |alg: &str| json!({ "alg": alg, "typ": "JWT", "x5t": rsa.x5t() });
    // The RSA certificate's public key, which anyone may hold, as an HMAC secret.
    let public_key = match &creds[0].key {
        CredentialKey::Certificate(k) => k.public_key.clone(),
        CredentialKey::Secret { .. } => Vec::new(),
    };
    let hs256 = {
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &public_key);
        let unsigned = raw_jwt(&header("HS256"), &claims(), b"");
        let signing_input = unsigned.trim_end_matches('.');
        let tag = ring::hmac::sign(&key, signing_input.as_bytes());
        raw_jwt(&header("HS256"), &claims(), tag.as_ref())
    };
    // The EC certificate named, signed with another EC key.
    let forged = {
        let jwt = other_ec.sign(Algorithm::ES256, Named::Sha1, &claims())?;
        let good = ec.sign(Algorithm::ES256, Named::Sha1, &claims())?;
        let head = good.split('.').next().unwrap_or_default().to_string();
        let rest: Vec<&str> = jwt.splitn(2, '.').collect();
        format!("{head}.{}", rest.get(1).copied().unwrap_or_default())
    };
    let cases: Vec<(&str, String, Aadsts, &str)> = vec![
        (
            "alg none",
            raw_jwt(&header("none"), &claims(), b""),
            Aadsts::ClientAssertionInvalid,
            "RS256, PS256 or ES256",
        ),
        (
            "HS256 with the public key",
            hs256,
            Aadsts::ClientAssertionInvalid,
            "'HS256' is not accepted",
        ),
        (
            "RS384",
            raw_jwt(&header("RS384"), &claims(), b"x"),
            Aadsts::ClientAssertionInvalid,
            "not accepted",
        ),
        (
            "not a JWT",
            "abc.def".into(),
            Aadsts::ClientAssertionInvalid,
            "not a signed JWT",
        ),
        (
            "no thumbprint",
            rsa.sign(Algorithm::RS256, Named::Neither, &claims())?,
            Aadsts::ClientAssertionInvalid,
            "x5t",
        ),
        (
            "unknown certificate",
            stranger.sign(Algorithm::RS256, Named::Sha1, &claims())?,
            Aadsts::ClientAssertionInvalid,
            "is registered",
        ),
        (
            "unknown certificate by SHA-256",
            stranger.sign(Algorithm::PS256, Named::Sha256, &claims())?,
            Aadsts::ClientAssertionInvalid,
            "x5t#S256",
        ),
        (
            "a bad signature",
            forged,
            Aadsts::ClientAssertionInvalid,
            "does not verify",
        ),
        (
            "ES256 for an RSA key",
            {
                let mut jwt = ec.sign(Algorithm::ES256, Named::Neither, &claims())?;
                let h = json!({"alg": "ES256", "x5t": rsa.x5t()});
                use base64::Engine as _;
                let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.to_string());
                let rest = jwt.split_off(jwt.find('.').unwrap_or(0));
                format!("{enc}{rest}")
            },
            Aadsts::ClientAssertionInvalid,
            "use RS256 or PS256",
        ),
        (
            "another iss",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| c["iss"] = json!("someone-else")),
            )?,
            Aadsts::ClientAssertionSubject,
            "iss and sub",
        ),
        (
            "no sub",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| {
                    c.as_object_mut().map(|o| o.remove("sub"));
                }),
            )?,
            Aadsts::ClientAssertionSubject,
            "iss and sub",
        ),
        (
            "another audience",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| {
                    c["aud"] = json!("https://login.microsoftonline.com/x/oauth2/v2.0/token")
                }),
            )?,
            Aadsts::ClientAssertionAudience,
            AUD,
        ),
        (
            "another tenant's endpoint",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| c["aud"] = json!("https://login.example/fabrikam/oauth2/v2.0/token")),
            )?,
            Aadsts::ClientAssertionAudience,
            "token endpoint",
        ),
        (
            "expired",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| c["exp"] = json!(NOW - LEEWAY_SECS - 1)),
            )?,
            Aadsts::ClientAssertionTime,
            "expired",
        ),
        (
            "valid too long",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| c["exp"] = json!(NOW + MAX_LIFETIME_SECS + LEEWAY_SECS + 1)),
            )?,
            Aadsts::ClientAssertionTime,
            "more than 60 minutes",
        ),
        (
            "not yet valid",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| c["nbf"] = json!(NOW + LEEWAY_SECS + 1)),
            )?,
            Aadsts::ClientAssertionTime,
            "not valid before",
        ),
        (
            "issued in the future",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| c["iat"] = json!(NOW + 3 * LEEWAY_SECS)),
            )?,
            Aadsts::ClientAssertionTime,
            "not valid before",
        ),
        (
            "no exp",
            rsa.sign(
                Algorithm::RS256,
                Named::Sha1,
                &with(&|c| {
                    c.as_object_mut().map(|o| o.remove("exp"));
                }),
            )?,
            Aadsts::ClientAssertionInvalid,
            "no exp",
        ),
        (
            "thumbprints of two certificates",
            {
                let mut h = jsonwebtoken::Header::new(Algorithm::ES256);
                h.x5t = Some(rsa.x5t());
                h.x5t_s256 = Some(ec.x5t_s256());
                let jwt = ec.sign(Algorithm::ES256, Named::Sha256, &claims())?;
                use base64::Engine as _;
                let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .encode(serde_json::to_string(&h)?);
                format!("{enc}{}", &jwt[jwt.find('.').unwrap_or(0)..])
            },
            Aadsts::ClientAssertionInvalid,
            "different certificates",
        ),
        (
            "a thumbprint of the wrong size",
            raw_jwt(&json!({"alg": "RS256", "x5t": "AAAA"}), &claims(), b"x"),
            Aadsts::ClientAssertionInvalid,
            "SHA-1 thumbprint",
        ),
        (
            "too large",
            "a".repeat(20_000),
            Aadsts::ClientAssertionInvalid,
            "larger than",
        ),
    ];
    for (what, jwt, code, says) in cases {
        match check(&jwt, &creds) {
            Err(e) => {
                assert_eq!(e.aadsts(), code, "{what}: {e}");
                assert!(e.to_string().contains(says), "{what}: {e}");
            }
            Ok(_) => anyhow::bail!("{what} was accepted"),
        }
    }
    Ok(())
}

#[test]
fn a_certificate_outside_its_validity_proves_nothing() -> anyhow::Result<()> {
    let rsa = rsa_cert("CN rsa", NOW - DAY, NOW + 365 * DAY)?;
    let jwt = rsa.msal_assertion(CLIENT, AUD, NOW, false)?;
    let mut c = credential(&rsa)?;
    c.expires_at = Some(NOW);
    assert!(matches!(
        check(&jwt, std::slice::from_ref(&c)),
        Err(AssertionError::CertificateExpired(..))
    ));
    c.expires_at = Some(NOW + DAY);
    c.starts_at = Some(NOW + 10);
    assert!(matches!(
        check(&jwt, std::slice::from_ref(&c)),
        Err(AssertionError::CertificateNotYetValid(..))
    ));
    // No certificate at all (a secret only).
    assert!(matches!(
        check(&jwt, &[secret("ab", None)]),
        Err(AssertionError::UnknownCertificate(..))
    ));
    Ok(())
}

#[test]
fn the_client_id_can_come_from_the_assertion() -> anyhow::Result<()> {
    let rsa = rsa_cert("CN rsa", NOW - DAY, NOW + 365 * DAY)?;
    let jwt = rsa.msal_assertion(CLIENT, AUD, NOW, false)?;
    assert_eq!(
        super::assertion::unverified_subject(&jwt).as_deref(),
        Some(CLIENT)
    );
    assert_eq!(super::assertion::unverified_subject("a.b"), None);
    Ok(())
}

#[test]
fn a_secret_matches_any_unexpired_secret_of_the_app() {
    let (a, b) = ("a".repeat(64), "b".repeat(64));
    let creds = vec![
        secret(&a, Some(NOW + DAY)),
        secret(&b, None),
        secret("c", Some(NOW)),
    ];
    assert_eq!(
        secret_check(&a, &creds, NOW),
        SecretCheck::Valid(creds[0].id)
    );
    assert_eq!(
        secret_check(&b, &creds, NOW),
        SecretCheck::Valid(creds[1].id)
    );
    assert_eq!(secret_check("c", &creds, NOW), SecretCheck::Expired);
    assert_eq!(secret_check(&a, &creds, NOW + DAY), SecretCheck::Expired);
    assert_eq!(secret_check("d", &creds, NOW), SecretCheck::Wrong);
    assert_eq!(secret_check(&a, &[], NOW), SecretCheck::Wrong);
}

#[test]
fn basic_auth_parses_and_rejects() {
    let mut h = axum::http::HeaderMap::new();
    h.insert(
        "authorization",
        "Basic YXBwOnNlY3JldA=="
            .parse()
            .unwrap_or_else(|_| unreachable!()),
    );
    let (id, secret) = super::basic_auth(&h).unwrap_or_default();
    assert_eq!((id.as_str(), secret.as_str()), ("app", "secret"));
    h.insert(
        "authorization",
        "Basic !!!".parse().unwrap_or_else(|_| unreachable!()),
    );
    assert!(super::basic_auth(&h).is_none());
    assert!(crate::issue::secrets_equal(b"abc", b"abc"));
    assert!(!crate::issue::secrets_equal(b"abc", b"abd"));
    assert!(!crate::issue::secrets_equal(b"abc", b"ab"));
}
