//! For the fuzz targets only (the `fuzzing` feature): the parsers of what a domain controller
//! sends, which are crate-private. Nothing here is a supported API.

use ldap3::asn1::parse_tag;
use ldap3::ResultEntry;
use uuid::Uuid;

use crate::entry::Entry;
use crate::objects;
use crate::values;

/// `accountExpires` (a FILETIME as decimal text) as Unix seconds.
pub fn account_expires(text: &str) -> Option<i64> {
    values::account_expires(text)
}

/// Generalized time as Unix seconds.
pub fn generalized_time(text: &str) -> Option<i64> {
    values::generalized_time(text)
}

/// The plain DN of an extended DN.
pub fn plain_dn(value: &str) -> &str {
    values::plain_dn(value)
}

/// The objectGUID of an extended DN.
pub fn extended_dn_guid(value: &str) -> Option<Uuid> {
    values::extended_dn_guid(value)
}

/// A ranged attribute name: the attribute, first and last index.
pub fn ranged_attr(name: &str) -> Option<(&str, u32, Option<u32>)> {
    values::ranged_attr(name)
}

/// The paged-results response control value: size estimate and cookie.
pub fn paged_response(value: &[u8]) -> Option<(u64, Vec<u8>)> {
    values::paged_response(value)
}

/// A 16-byte GUID as AD stores it.
pub fn guid_from_bytes(bytes: &[u8]) -> Option<Uuid> {
    values::guid_from_bytes(bytes)
}

/// Parses BER as a SearchResultEntry and reads it the ways the agent does: as the user of an
/// accepted bind (AD and plain LDAP), and as a sync object with its group members. Answers
/// whether the BER was an entry.
pub fn search_entry(ber: &[u8]) -> bool {
    let Ok((_, tag)) = parse_tag(ber) else {
        return false;
    };
    let Some(entry) = Entry::parse(ResultEntry::new(tag)) else {
        return false;
    };
    let _ = entry.user("user@corp.example.test");
    let _ = entry.ldap_user("user@corp.example.test");
    let _ = objects::dn_of(&entry);
    match objects::kind(&entry) {
        Some(objects::Kind::User) => {
            let _ = objects::user(&entry);
        }
        Some(objects::Kind::Group) => {
            let (members, _, _) = objects::members(&entry);
            let _ = objects::group(&entry, members);
        }
        None => {}
    }
    true
}
