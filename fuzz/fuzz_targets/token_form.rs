//! The token endpoint's request parsing: the form body (mode byte 0), an `Authorization`
//! header value (mode 1), and a Basic credential built from fuzzed id and secret (mode 2),
//! which must read back as it was.
#![no_main]

use axum::http::HeaderValue;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use passthru_cloud::fuzz_entry;
use passthru_fuzz::{fields, text};

fuzz_target!(|data: &[u8]| {
    let (mode, f) = fields(data);
    match mode % 3 {
        0 => {
            let body = data.get(1..).unwrap_or_default();
            let _ = fuzz_entry::token_form(body);
        }
        1 => {
            let Ok(value) = HeaderValue::from_bytes(data.get(1..).unwrap_or_default()) else {
                return;
            };
            if let Some((id, _)) = fuzz_entry::basic_auth(value) {
                assert!(!id.contains(':'), "the client id holds a colon");
            }
        }
        _ => {
            let (id, secret) = (text(&f, 0), text(&f, 1));
            let value = format!("Basic {}", B64.encode(format!("{id}:{secret}")));
            let value = HeaderValue::from_str(&value).expect("base64 is a header value");
            match fuzz_entry::basic_auth(value) {
                Some((got, len)) if !id.contains(':') => {
                    assert_eq!(got, id);
                    assert_eq!(len, secret.len());
                }
                Some((got, _)) => assert!(id.starts_with(&format!("{got}:"))),
                None => panic!("a well-formed Basic credential was refused"),
            }
        }
    }
});
