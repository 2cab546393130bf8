//! Agent releases: a signed manifest as the cloud reads it (unverified) and as the agent
//! verifies it with its pinned key. Mode 0: the input is a whole signed manifest document,
//! judged by a key that signed none of it (never accepted; what the cloud reads, it writes
//! back the same). Mode 1: the input is a manifest's text, signed here with the pinned key:
//! accepted exactly when the manifest reads, then read back unchanged; one more byte of text
//! under the same signature is refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use passthru_agent::update::publish::{sign_text, KeyPair};
use passthru_agent::update::verify::{verify_signed, PublisherKey, Refusal};
use passthru_proto::release::{Manifest, SignedManifest, MAX_SIGNED_MANIFEST_BYTES};

fn pinned() -> &'static (KeyPair, PublisherKey) {
    static KEY: OnceLock<(KeyPair, PublisherKey)> = OnceLock::new();
    KEY.get_or_init(|| {
        let pair = KeyPair::generate().expect("a key pair");
        let key = PublisherKey::new(pair.public_key(), "fuzz");
        (pair, key)
    })
}

fuzz_target!(|data: &[u8]| {
    let (mode, fields) = passthru_fuzz::fields(data);
    let (pair, key) = pinned();
    if mode % 2 == 0 {
        let whole = fields.join(&0xffu8);
        if let Ok(doc) = SignedManifest::parse(&whole) {
            let again = SignedManifest::parse(doc.to_json().as_bytes()).expect("round trip");
            assert_eq!(again, doc);
        }
        assert!(
            verify_signed(&whole, key).is_err(),
            "nothing here is signed by the pinned key"
        );
        return;
    }
    let text = passthru_fuzz::text(&fields, 0);
    let doc = sign_text(pair, &text);
    let verified = verify_signed(doc.to_json().as_bytes(), key);
    match Manifest::parse(&text) {
        Ok(m) if doc.to_json().len() <= MAX_SIGNED_MANIFEST_BYTES => {
            let (_, read) = verified.expect("a manifest signed by the pinned key");
            assert_eq!(read, m);
            let mut forged = doc.clone();
            forged.manifest.push(' ');
            assert!(matches!(
                verify_signed(forged.to_json().as_bytes(), key),
                Err(Refusal::BadSignature(_)) | Err(Refusal::Malformed(_))
            ));
        }
        _ => assert!(verified.is_err(), "only a readable manifest is accepted"),
    }
});
