//! Verification of a federated identity provider's ID token (signature, algorithm, key
//! choice, issuer, audience, expiry, nonce, azp).
//!
//! Mode byte even: fields `token`, `jwks` (JSON), `issuer`, `client_id`, `nonce`, all fuzzed,
//! as a hostile or broken provider would send them. Mode byte odd: fields `claims` and
//! `header` (JSON; the default header is ES256 with kid `k1`) are signed with the provider's
//! real key, so the fuzzer reaches the claim checks behind the signature.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use libfuzzer_sys::fuzz_target;
use passthru_cloud::federation::verify_id_token;
use passthru_fuzz::{fields, text};
use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use serde_json::{json, Value};

const ISSUER: &str = "https://idp.example/tid/v2.0";
const CLIENT_ID: &str = "our-client";
const NONCE: &str = "n1";

struct Provider {
    key: EncodingKey,
    jwks: Value,
}

fn provider() -> &'static Provider {
    static PROVIDER: OnceLock<Provider> = OnceLock::new();
    PROVIDER.get_or_init(|| {
        let kp = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        let raw = kp.public_key_raw().to_vec();
        Provider {
            key: EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).expect("its PEM"),
            jwks: json!({ "keys": [
                {"kty": "OKP", "crv": "X25519", "x": "AAAA", "kid": "junk"},
                {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "k1", "use": "enc"},
                {"kty": "EC", "crv": "P-256", "use": "sig", "alg": "ES256", "kid": "k1",
                 "x": B64URL.encode(&raw[1..33]), "y": B64URL.encode(&raw[33..65])},
            ] }),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    let (mode, f) = fields(data);
    if mode % 2 == 0 {
        let jwks =
            serde_json::from_slice(f.get(1).copied().unwrap_or_default()).unwrap_or(Value::Null);
        let _ = verify_id_token(
            &text(&f, 0),
            &jwks,
            &text(&f, 2),
            &text(&f, 3),
            &text(&f, 4),
        );
        return;
    }
    let p = provider();
    let claims = f.first().copied().unwrap_or_default();
    let header = match f.get(1) {
        Some(h) if !h.is_empty() => h.to_vec(),
        _ => br#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#.to_vec(),
    };
    let message = format!("{}.{}", B64URL.encode(&header), B64URL.encode(claims));
    let Ok(signature) = jsonwebtoken::crypto::sign(message.as_bytes(), &p.key, Algorithm::ES256)
    else {
        return;
    };
    let token = format!("{message}.{signature}");
    if let Ok(c) = verify_id_token(&token, &p.jwks, ISSUER, CLIENT_ID, NONCE) {
        // What passed is what the provider signed, for us, with our nonce.
        // (serde_json skips the values of unknown members without checking their UTF-8,
        // so read the signed text lossily.)
        let signed: Value = serde_json::from_str(&String::from_utf8_lossy(claims))
            .expect("accepted claims are JSON");
        assert_eq!(signed["iss"], ISSUER);
        assert_eq!(c.nonce.as_deref(), Some(NONCE));
        assert!(!c.sub.is_empty() && c.sub.len() <= 255);
        assert!(c.azp.as_deref().is_none_or(|a| a == CLIENT_ID));
        let aud = &signed["aud"];
        assert!(
            aud == CLIENT_ID
                || aud
                    .as_array()
                    .is_some_and(|a| a.iter().any(|x| x == CLIENT_ID)),
            "accepted for audience {aud}"
        );
    }
});
