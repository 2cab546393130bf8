//! Client assertions (`private_key_jwt`) and the certificates they are verified with.
//!
//! Mode 0: a fuzzed assertion against the app's real certificate: never accepted (no one
//! but the key holder can sign one). Mode 1: fuzzed claims and header (JSON; the default
//! header is ES256 naming the certificate by x5t#S256) signed with the certificate's real
//! key: accepted only for the client id, an accepted audience and a lifetime inside the
//! rules. Mode 2: a fuzzed PEM registered as a certificate: when accepted, its thumbprints
//! are SHA-1 and SHA-256 hex.
#![no_main]

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use jsonwebtoken::{EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use passthru_cloud::fuzz_entry;
use passthru_fuzz::{fields, text};
use serde_json::Value;

const NOW: i64 = 1_800_000_000;
const CLIENT: &str = "6f9619ff-8b86-d011-b42d-00cf4fc964ff";
const AUD: &str = "https://login.example/contoso/oauth2/v2.0/token";

struct App {
    pem: String,
    key: EncodingKey,
    x5t_s256: String,
}

fn app() -> &'static App {
    static APP: OnceLock<App> = OnceLock::new();
    APP.get_or_init(|| {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.not_before = time::OffsetDateTime::from_unix_timestamp(NOW - 86_400).expect("time");
        params.not_after = time::OffsetDateTime::from_unix_timestamp(NOW + 86_400).expect("time");
        let cert = params.self_signed(&kp).expect("a certificate");
        let (_, sha256, _) =
            fuzz_entry::registered_certificate(&cert.pem(), NOW).expect("registered");
        App {
            pem: cert.pem(),
            key: EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).expect("its PEM"),
            x5t_s256: B64URL.encode(hex_bytes(&sha256)),
        }
    })
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let (mode, f) = fields(data);
    let app = app();
    let audiences = vec![AUD.to_string()];
    match mode % 3 {
        0 => {
            let assertion = text(&f, 0);
            let _ = fuzz_entry::assertion_subject(&assertion);
            let r = fuzz_entry::client_assertion(&assertion, &app.pem, CLIENT, &audiences, NOW);
            assert!(r.is_err(), "a forged assertion was accepted");
        }
        1 => {
            let Ok(claims) =
                serde_json::from_slice::<Value>(f.first().copied().unwrap_or_default())
            else {
                return;
            };
            let mut header: Header = serde_json::from_slice(f.get(1).copied().unwrap_or_default())
                .unwrap_or_else(|_| {
                    let mut h = Header::new(jsonwebtoken::Algorithm::ES256);
                    h.x5t_s256 = Some(app.x5t_s256.clone());
                    h
                });
            header.alg = jsonwebtoken::Algorithm::ES256;
            let Ok(jwt) = jsonwebtoken::encode(&header, &claims, &app.key) else {
                return;
            };
            if let Ok(exp) = fuzz_entry::client_assertion(&jwt, &app.pem, CLIENT, &audiences, NOW) {
                let same = |k: &str| {
                    claims[k]
                        .as_str()
                        .is_some_and(|v| v.eq_ignore_ascii_case(CLIENT))
                };
                assert!(
                    same("iss") && same("sub"),
                    "accepted for another client: {claims}"
                );
                let aud_ok = match &claims["aud"] {
                    Value::String(a) => a.trim_end_matches('/').eq_ignore_ascii_case(AUD),
                    Value::Array(v) => v.iter().any(|a| {
                        a.as_str()
                            .is_some_and(|a| a.trim_end_matches('/').eq_ignore_ascii_case(AUD))
                    }),
                    _ => false,
                };
                assert!(aud_ok, "accepted for another audience: {claims}");
                assert!(exp > NOW - 300 && exp <= NOW + 3600 + 300, "exp {exp}");
            }
        }
        _ => {
            let pem = text(&f, 0);
            if let Ok((sha1, sha256, spki)) = fuzz_entry::registered_certificate(&pem, NOW) {
                assert_eq!(sha1.len(), 40);
                assert_eq!(sha256.len(), 64);
                assert!(!spki.is_empty());
            }
        }
    }
});
