//! What the cloud reads from a browser's headers: a cookie among `Cookie` headers (fields:
//! the name, then each header), the correlation id (`client-request-id`) and the base URL
//! (HTTP/1 `Host`), which must never carry text into issued URLs.
#![no_main]

use axum::http::{HeaderMap, HeaderValue, Request};
use libfuzzer_sys::fuzz_target;
use passthru_cloud::fuzz_entry;
use passthru_cloud::http::correlation_id;
use passthru_fuzz::{fields, text};

fuzz_target!(|data: &[u8]| {
    let (_, f) = fields(data);
    let name = text(&f, 0);
    let values: Vec<HeaderValue> = f
        .iter()
        .skip(1)
        .filter_map(|v| HeaderValue::from_bytes(v).ok())
        .collect();
    if let Some(v) = fuzz_entry::cookie_value(values.clone(), &name) {
        assert!(
            values
                .iter()
                .any(|h| h.to_str().is_ok_and(|h| h.contains(&format!("{name}={v}")))),
            "cookie {name:?} read as {v:?}, which no header holds"
        );
    }
    for value in values.iter().take(2) {
        let mut headers = HeaderMap::new();
        headers.insert("client-request-id", value.clone());
        let _ = correlation_id(&headers);
        let Ok(request) = Request::builder().header("host", value.clone()).body(()) else {
            continue;
        };
        let (parts, ()) = request.into_parts();
        let base = fuzz_entry::base_url(&parts);
        {
            let host = base.strip_prefix("https://").expect("an https base URL");
            assert!(
                host.len() <= 255
                    && host
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)),
                "base URL {base:?}"
            );
        }
    }
});
