//! Parsers for the attribute values directory sync reads: Windows FILETIMEs, generalized
//! time, extended DNs (`<GUID=...>;<SID=...>;CN=...`), ranged attribute names
//! (`member;range=0-1499`) and the paged-results response control. None of them panics on
//! malformed input: they answer `None`.

use ldap3::asn1::{parse_tag, StructureTag, PL};
use uuid::Uuid;

/// Seconds between 1601-01-01 (the FILETIME epoch) and 1970-01-01.
const FILETIME_UNIX_OFFSET: i64 = 11_644_473_600;
/// FILETIME ticks (100 ns) per second.
const TICKS_PER_SECOND: i64 = 10_000_000;

/// A 16-byte GUID as AD stores it (first three fields little-endian).
pub(crate) fn guid_from_bytes(bytes: &[u8]) -> Option<Uuid> {
    let raw: [u8; 16] = bytes.try_into().ok()?;
    Some(Uuid::from_bytes_le(raw))
}

/// `accountExpires` (a FILETIME: 100-ns ticks since 1601, as decimal text) as Unix seconds.
/// `None` for "never" (0 and 0x7FFFFFFFFFFFFFFF) and for anything that is not a number.
pub(crate) fn account_expires(text: &str) -> Option<i64> {
    let ticks: i64 = text.trim().parse().ok()?;
    if ticks <= 0 || ticks == i64::MAX {
        return None;
    }
    Some(ticks / TICKS_PER_SECOND - FILETIME_UNIX_OFFSET)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Generalized time as AD writes it (`20261129081500.0Z`: UTC, an optional fraction) as
/// Unix seconds (the fraction is dropped). `None` unless it is a valid UTC time.
pub(crate) fn generalized_time(text: &str) -> Option<i64> {
    let t = text.trim();
    let body = t.strip_suffix('Z').or_else(|| t.strip_suffix('z'))?;
    let (digits, fraction) = match body.split_once(['.', ',']) {
        Some((d, f)) => (d, Some(f)),
        None => (body, None),
    };
    if digits.len() != 14 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if fraction.is_some_and(|f| f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { digits.get(r)?.parse().ok() };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(8..10)?, num(10..12)?, num(12..14)?);
    let valid = (1..=12).contains(&month)
        && day >= 1
        && day <= days_in_month(year, month)
        && hour < 24
        && minute < 60
        && second < 61;
    if !valid {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// The leading `<...>;` components of an extended DN, and the plain DN after them.
fn extended_parts(value: &str) -> (Vec<&str>, &str) {
    let mut parts = Vec::new();
    let mut rest = value;
    while let Some(inner) = rest.strip_prefix('<') {
        let Some(end) = inner.find('>') else {
            break;
        };
        parts.push(&inner[..end]);
        let after = &inner[end + 1..];
        match after.strip_prefix(';') {
            Some(tail) => rest = tail,
            None => {
                rest = after;
                break;
            }
        }
    }
    (parts, rest)
}

/// The plain DN of a value that may be in extended form (`<GUID=..>;<SID=..>;CN=x,...`).
pub(crate) fn plain_dn(value: &str) -> &str {
    extended_parts(value).1
}

/// The objectGUID in an extended DN: `<GUID=...>` holds either the dashed string form
/// (extended-DN control value 1) or the 32 hex digits of the raw bytes (no control value).
pub(crate) fn extended_dn_guid(value: &str) -> Option<Uuid> {
    let (parts, _) = extended_parts(value);
    let guid = parts.into_iter().find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("GUID").then_some(v.trim())
    })?;
    match guid.len() {
        36 if guid.bytes().filter(|&b| b == b'-').count() == 4 => Uuid::try_parse(guid).ok(),
        32 if guid.bytes().all(|b| b.is_ascii_hexdigit()) => {
            let mut raw = [0u8; 16];
            for (i, byte) in raw.iter_mut().enumerate() {
                *byte = u8::from_str_radix(guid.get(2 * i..2 * i + 2)?, 16).ok()?;
            }
            Some(Uuid::from_bytes_le(raw))
        }
        _ => None,
    }
}

/// A ranged attribute name (`member;range=1500-2999`, `member;range=3000-*`): the
/// attribute, the first index and the last (`None` for `*`, the last range).
pub(crate) fn ranged_attr(name: &str) -> Option<(&str, u32, Option<u32>)> {
    let (attr, options) = name.split_once(';')?;
    let range = options.split(';').find_map(|o| {
        o.get(..6)
            .filter(|p| p.eq_ignore_ascii_case("range="))
            .and_then(|_| o.get(6..))
    })?;
    let (start, end) = range.split_once('-')?;
    let start: u32 = start.parse().ok()?;
    let end = match end {
        "*" => None,
        e => {
            let e: u32 = e.parse().ok()?;
            if e < start {
                return None;
            }
            Some(e)
        }
    };
    Some((attr, start, end))
}

/// A DER INTEGER's content as i64 (two's complement, at most 8 bytes).
fn integer(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() > 8 {
        return None;
    }
    let negative = bytes[0] & 0x80 != 0;
    let mut v: i64 = if negative { -1 } else { 0 };
    for &b in bytes {
        v = (v << 8) | i64::from(b);
    }
    Some(v)
}

/// The paged-results response control value (`SEQUENCE { size INTEGER, cookie OCTET
/// STRING }`): the size estimate (0 when the DC gives none) and the cookie (empty on the
/// last page).
pub(crate) fn paged_response(value: &[u8]) -> Option<(u64, Vec<u8>)> {
    let (_, tag) = parse_tag(value).ok()?;
    let StructureTag {
        payload: PL::C(inner),
        ..
    } = tag
    else {
        return None;
    };
    let mut it = inner.into_iter();
    let size = integer(&it.next()?.expect_primitive()?)?;
    let cookie = it.next()?.expect_primitive()?;
    Some((u64::try_from(size).unwrap_or(0), cookie))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filetimes() {
        assert_eq!(account_expires("0"), None);
        assert_eq!(account_expires("9223372036854775807"), None);
        // 2026-11-29T08:15:00Z.
        assert_eq!(account_expires("134404137000000000"), Some(1_795_940_100));
        assert_eq!(account_expires("134404137009999999"), Some(1_795_940_100));
        assert_eq!(account_expires("116444736000000000"), Some(0));
        assert_eq!(account_expires(" 1 "), Some(-FILETIME_UNIX_OFFSET));
        for bad in ["", "x", "-5", "1.5", "99999999999999999999999"] {
            assert_eq!(account_expires(bad), None, "{bad}");
        }
    }

    #[test]
    fn generalized_times() {
        assert_eq!(generalized_time("20261129081500.0Z"), Some(1_795_940_100));
        assert_eq!(generalized_time("19700101000000Z"), Some(0));
        assert_eq!(generalized_time("20000229235959.123Z"), Some(951_868_799));
        assert_eq!(
            generalized_time("16010101000000.0Z"),
            Some(-FILETIME_UNIX_OFFSET)
        );
        for bad in [
            "",
            "Z",
            "20261129081500.0",
            "2026112908150.0Z",
            "20261329081500.0Z",
            "20261100081500.0Z",
            "20230229081500.0Z",
            "20261129241500.0Z",
            "20261129086000.0Z",
            "20261129081500.Z",
            "20261129081500.xZ",
            "2026112908150x.0Z",
            "+2026112908150.0Z",
            "２０２６1129081500Z",
        ] {
            assert_eq!(generalized_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn extended_dns() {
        let dashed = "<GUID=feeebd29-13f4-46ae-aa0f-fc5b851aa70a>;<SID=S-1-5-21-1-2-3-1103>;CN=u1,CN=Users,DC=corp";
        let hex = "<GUID=29bdeefef413ae46aa0ffc5b851aa70a>;<SID=0105000000>;CN=u1,CN=Users,DC=corp";
        let want = Uuid::try_parse("feeebd29-13f4-46ae-aa0f-fc5b851aa70a").ok();
        assert!(want.is_some());
        assert_eq!(extended_dn_guid(dashed), want);
        assert_eq!(extended_dn_guid(hex), want);
        assert_eq!(plain_dn(dashed), "CN=u1,CN=Users,DC=corp");
        assert_eq!(plain_dn(hex), "CN=u1,CN=Users,DC=corp");
        assert_eq!(
            plain_dn("<guid=feeebd29-13f4-46ae-aa0f-fc5b851aa70a>;CN=a\\>b,DC=x"),
            "CN=a\\>b,DC=x"
        );
        assert_eq!(plain_dn("CN=plain,DC=x"), "CN=plain,DC=x");
        assert_eq!(
            extended_dn_guid("<SID=S-1-5>;<guid=FEEEBD29-13F4-46AE-AA0F-FC5B851AA70A>;CN=x"),
            want
        );
        for bad in [
            "",
            "CN=no,DC=guid",
            "<GUID=>;CN=x",
            "<GUID=feeebd29-13f4-46ae-aa0f-fc5b851aa70>;CN=x",
            "<GUID=zzeebd29-13f4-46ae-aa0f-fc5b851aa70a>;CN=x",
            "<GUID=29bdeefef413ae46aa0ffc5b851aa70>;CN=x",
            "<GUID=29bdeefef413ae46aa0ffc5b851aa7zz>;CN=x",
            "<GUID=29bdeefef413ae46aa0ffc5b851aa70a",
            "<GUID=feeebd29-13f4-46ae-aa0ffc5b8-51aa70a>",
            "<GUID=ééééééééééééééé é>",
            "<<<>>>;;",
        ] {
            assert_eq!(extended_dn_guid(bad), None, "{bad}");
        }
        assert_eq!(plain_dn("<GUID=x"), "<GUID=x");
    }

    #[test]
    fn ranged_attributes() {
        assert_eq!(
            ranged_attr("member;range=0-1499"),
            Some(("member", 0, Some(1499)))
        );
        assert_eq!(
            ranged_attr("member;Range=1500-*"),
            Some(("member", 1500, None))
        );
        for bad in [
            "member",
            "member;range=",
            "member;range=a-*",
            "member;range=5-4",
            "member;range=1-x",
            "member;binary",
            "member;range=-1-5",
        ] {
            assert_eq!(ranged_attr(bad), None, "{bad}");
        }
    }

    #[test]
    fn paged_response_values() {
        // SEQUENCE { INTEGER 1709, OCTET STRING "1\0" }
        let v = [0x30, 0x08, 0x02, 0x02, 0x06, 0xad, 0x04, 0x02, b'1', 0];
        assert_eq!(paged_response(&v), Some((1709, vec![b'1', 0])));
        // Last page: size 0, empty cookie.
        let last = [0x30, 0x05, 0x02, 0x01, 0x00, 0x04, 0x00];
        assert_eq!(paged_response(&last), Some((0, vec![])));
        // A negative estimate counts as none.
        let neg = [0x30, 0x05, 0x02, 0x01, 0xff, 0x04, 0x00];
        assert_eq!(paged_response(&neg), Some((0, vec![])));
        for bad in [
            &[][..],
            &[0x30][..],
            &[0x30, 0x03, 0x02, 0x01, 0x05][..],
            &[0x04, 0x01, 0x00][..],
            &[0x30, 0x04, 0x02, 0x00, 0x04, 0x00][..],
            &[
                0x30, 0x0c, 0x02, 0x09, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0x04, 0x00,
            ][..],
        ] {
            assert_eq!(paged_response(bad), None, "{bad:?}");
        }
    }
}
