//! The parsers of what a domain controller answers: FILETIMEs (`accountExpires`,
//! `pwdLastSet`), generalized time (`whenChanged`), extended DNs, ranged attribute names,
//! the paged-results control, whole search result entries (BER) read as users and groups,
//! and AD's diagnostic sub-codes. The mode byte picks the parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use passthru_directory::fuzz_entry as dir;
use passthru_proto::Win32;
use time::OffsetDateTime;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    match mode % 8 {
        0 => {
            if let Some(secs) = dir::account_expires(&text) {
                // FILETIME ticks are positive i64: between 1601 and about 30828.
                assert!(
                    (-11_644_473_600..=910_692_730_085).contains(&secs),
                    "{secs}"
                );
            }
        }
        1 => {
            if let Some(secs) = dir::generalized_time(&text) {
                check_generalized_time(&text, secs);
            }
        }
        2 => {
            let plain = dir::plain_dn(&text);
            assert!(
                text.ends_with(plain),
                "the plain DN is not the value's tail"
            );
            let _ = dir::extended_dn_guid(&text);
        }
        3 => {
            if let Some((attr, start, end)) = dir::ranged_attr(&text) {
                assert!(text.starts_with(attr) && !attr.contains(';'));
                assert!(end.is_none_or(|e| e >= start));
            }
        }
        4 => {
            if let Some((_, cookie)) = dir::paged_response(rest) {
                assert!(cookie.len() <= rest.len());
            }
        }
        5 => {
            let _ = dir::search_entry(rest);
        }
        6 => {
            let diagnostic = Win32::from_ad_diagnostic(&text);
            if diagnostic.is_some() {
                assert!(text.contains("data "));
            }
            let _ = Win32::from_ad_data(&text);
        }
        _ => {
            let guid = dir::guid_from_bytes(rest);
            assert_eq!(guid.is_some(), rest.len() == 16);
        }
    }
});

/// A generalized time that parsed names the same instant as the `time` crate's reading of
/// its digits (no leap second: 60 seconds roll over to the next minute).
fn check_generalized_time(text: &str, secs: i64) {
    let digits: String = text.trim().chars().take(14).collect();
    let at = OffsetDateTime::from_unix_timestamp(secs).expect("a year of four digits");
    let want = format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
    if !digits.ends_with("60") {
        assert_eq!(digits, want, "generalized time {text:?} read as {secs}");
    }
}
