//! A federated provider's discovery document and the issuer an administrator types: fields
//! `document` (JSON) and `issuer`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_cloud::federation::{check_discovery, discovery_url, valid_issuer, Discovery};
use passthru_fuzz::{fields, text};

fn https_with_host(u: &str) -> bool {
    url::Url::parse(u)
        .is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()))
}

fuzz_target!(|data: &[u8]| {
    let (_, f) = fields(data);
    let issuer = text(&f, 1);
    if let Ok(clean) = valid_issuer(&issuer) {
        assert!(https_with_host(&clean), "accepted issuer {clean:?}");
        assert!(https_with_host(&discovery_url(&clean)));
    }
    let Ok(d) = serde_json::from_slice::<Discovery>(f.first().copied().unwrap_or_default()) else {
        return;
    };
    if check_discovery(&d, &issuer).is_ok() {
        assert_eq!(d.issuer, issuer);
        for u in [&d.authorization_endpoint, &d.token_endpoint, &d.jwks_uri] {
            assert!(https_with_host(u), "accepted endpoint {u:?}");
        }
    }
});
