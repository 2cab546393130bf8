use super::*;
use crate::clock::unix_now;
use jsonwebtoken::{EncodingKey, Header};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::json;

const ISS: &str = "https://idp.example/tid/v2.0";
const AUD: &str = "our-client";

struct Key {
    enc: EncodingKey,
    jwk: Value,
}

fn key(kid: &str) -> anyhow::Result<Key> {
    let kp = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let raw = kp.public_key_raw().to_vec();
    anyhow::ensure!(raw.len() == 65);
    Ok(Key {
        enc: EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes())?,
        jwk: json!({
            "kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": kid,
            "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..65]),
        }),
    })
}

fn token(k: &Key, kid: &str, claims: Value) -> anyhow::Result<String> {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    Ok(jsonwebtoken::encode(&h, &claims, &k.enc)?)
}

fn claims(now: i64) -> Value {
    json!({ "iss": ISS, "aud": AUD, "sub": "s1", "exp": now + 300, "iat": now, "nbf": now,
        "nonce": "n1", "preferred_username": "alice@fab.example", "name": "Alice" })
}

#[test]
fn id_token_checks() -> anyhow::Result<()> {
    let now = unix_now();
    let k1 = key("k1")?;
    let k2 = key("k2")?;
    let jwks = json!({ "keys": [
        {"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "junk"},
        k1.jwk.clone(),
    ] });
    let good = token(&k1, "k1", claims(now))?;
    let c = verify_id_token(&good, &jwks, ISS, AUD, "n1")?;
    assert_eq!(c.sub, "s1");
    assert_eq!(c.principal_name(), Some("alice@fab.example"));

    let reject = |tok: &str, nonce: &str, why: &str| {
        let r = verify_id_token(tok, &jwks, ISS, AUD, nonce);
        assert!(
            matches!(&r, Err(FederationError::IdToken(m)) if m.contains(why)),
            "{why}: {r:?}"
        );
    };
    reject(&good, "n2", "nonce");
    let mut c = claims(now);
    c["iss"] = json!("https://evil.example/v2.0");
    reject(&token(&k1, "k1", c)?, "n1", "issuer");
    let mut c = claims(now);
    c["aud"] = json!("someone-else");
    reject(&token(&k1, "k1", c)?, "n1", "audience");
    let mut c = claims(now);
    c["exp"] = json!(now - 3600);
    reject(&token(&k1, "k1", c)?, "n1", "expired");
    let mut c = claims(now);
    c.as_object_mut().map(|o| o.remove("nonce"));
    reject(&token(&k1, "k1", c)?, "n1", "nonce");
    // Signed by a key that is not in the JWKS, under a kid that is.
    reject(&token(&k2, "k1", claims(now))?, "n1", "signature");
    reject(&token(&k2, "k2", claims(now))?, "n1", "no key");
    // Tampered payload.
    let mut parts: Vec<String> = good.split('.').map(str::to_string).collect();
    let mut c = claims(now);
    c["preferred_username"] = json!("mallory@fab.example");
    parts[1] = B64URL.encode(c.to_string());
    reject(&parts.join("."), "n1", "signature");
    // Another algorithm (HS256 with the public key as secret).
    let hs = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims(now),
        &EncodingKey::from_secret(b"x"),
    )?;
    reject(&hs, "n1", "only ES256 and RS256");
    Ok(())
}

#[test]
fn issuer_and_discovery_rules() {
    assert!(valid_issuer("https://login.example.com/tid/v2.0").is_ok());
    assert!(valid_issuer("http://login.example.com/").is_err());
    assert!(valid_issuer("https://login.example.com/?x=1").is_err());
    assert!(valid_issuer("login.example.com").is_err());
    assert_eq!(
        discovery_url("https://a.example/t/v2.0/"),
        "https://a.example/t/v2.0/.well-known/openid-configuration"
    );
    let d = Discovery {
        issuer: ISS.into(),
        authorization_endpoint: "https://idp.example/authorize".into(),
        token_endpoint: "https://idp.example/token".into(),
        jwks_uri: "https://idp.example/keys".into(),
    };
    assert!(check_discovery(&d, ISS).is_ok());
    assert!(check_discovery(&d, "https://idp.example/other/v2.0").is_err());
    let plain = Discovery {
        token_endpoint: "http://idp.example/token".into(),
        ..d
    };
    assert!(check_discovery(&plain, ISS).is_err());
}

/// The identity provider client resolves names through the filtering resolver: a name
/// of loopback is refused before any connection, unless allowed (then the connection
/// itself is tried, and refused by the closed port).
#[tokio::test]
async fn the_client_connects_to_public_addresses_only() -> anyhow::Result<()> {
    let err = |r: Result<reqwest::Response, reqwest::Error>| match r {
        Ok(resp) => format!("answered {}", resp.status()),
        Err(e) => describe_reqwest(&e),
    };
    let strict = build_http_client(false)?;
    let e = err(strict.get("https://localhost:1/x").send().await);
    assert!(
        e.contains("non-public") && e.contains(crate::public_addr::ALLOW_FLAG),
        "{e}"
    );
    let open = build_http_client(true)?;
    let e = err(open.get("https://localhost:1/x").send().await);
    assert!(
        !e.contains("non-public") && e.contains("cannot connect"),
        "{e}"
    );
    Ok(())
}

/// The upstream `email` becomes the user's mail only when verified and in the domain.
#[test]
fn email_kept_only_when_verified_and_in_the_domain() -> anyhow::Result<()> {
    let with = |email: &str, verified: Value| -> anyhow::Result<IdClaims> {
        Ok(serde_json::from_value(json!({
            "sub": "s", "email": email, "email_verified": verified,
        }))?)
    };
    let ok = with("alice@Fab.Example", json!(true))?;
    assert_eq!(verified_mail(&ok, "fab.example"), Some("alice@Fab.Example"));
    assert_eq!(
        verified_mail(&with("alice@fab.example", json!("true"))?, "fab.example"),
        Some("alice@fab.example")
    );
    for (email, verified) in [
        ("alice@fab.example", json!(false)),
        ("alice@fab.example", json!("false")),
        ("alice@fab.example", Value::Null),
        ("alice@fab.example", json!(1)),
        ("ceo@contoso.example", json!(true)),
        ("alice@sub.fab.example", json!(true)),
        ("alice@evilfab.example", json!(true)),
        ("@fab.example", json!(true)),
        ("a@b@fab.example", json!(true)),
        ("fab.example", json!(true)),
    ] {
        assert_eq!(
            verified_mail(&with(email, verified.clone())?, "fab.example"),
            None,
            "{email} {verified}"
        );
    }
    // No email_verified claim at all: not kept.
    let bare: IdClaims = serde_json::from_value(json!({"sub": "s", "email": "alice@fab.example"}))?;
    assert_eq!(verified_mail(&bare, "fab.example"), None);
    Ok(())
}

#[test]
fn an_issuer_is_refused_when_the_url_parser_would_read_other_text() {
    // Found by the `discovery` fuzz target: the URL parser drops leading and trailing C0
    // controls and tabs or newlines anywhere, so it read "https://idp.example" while the
    // issuer kept (and stored, compared and logged) the control characters.
    for bad in [
        "https://idp.example\u{6}",
        "\u{1}https://idp.example/tid/v2.0",
        "https://idp.exa\tmple/tid/v2.0",
        "https://idp.example/tid\n/v2.0",
        "https://idp.example/t id/v2.0",
        "https://idp.example/tid/v2.0\u{7f}",
    ] {
        assert!(valid_issuer(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        valid_issuer("  https://idp.example/tid/v2.0 \n").as_deref(),
        Ok("https://idp.example/tid/v2.0")
    );
    let d = Discovery {
        issuer: ISS.into(),
        authorization_endpoint: "https://idp.example/authorize".into(),
        token_endpoint: "https://idp.example/to\nken".into(),
        jwks_uri: "https://idp.example/keys".into(),
    };
    assert!(check_discovery(&d, ISS).is_err());
}

#[test]
fn pkce_and_taming() {
    // RFC 7636 appendix B.
    assert_eq!(
        pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    );
    assert_eq!(tame("access_denied<script>"), "access_deniedscript");
}
