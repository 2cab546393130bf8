//! Reading search result entries without panicking on malformed input (ldap3's
//! `SearchEntry::construct` panics), and the user search filter.

use std::collections::HashMap;

use ldap3::asn1::StructureTag;
use ldap3::ResultEntry;
use passthru_proto::wire::DirectoryUser;
use uuid::Uuid;

/// Attributes read for an accepted user.
pub(crate) const USER_ATTRS: [&str; 6] = [
    "objectGUID",
    "mS-DS-ConsistencyGuid",
    "userPrincipalName",
    "sAMAccountName",
    "displayName",
    "mail",
];

/// Attributes read for an accepted user of a plain LDAP directory (a forest with a
/// `bind_dn_template`).
pub(crate) const LDAP_USER_ATTRS: [&str; 5] = ["entryUUID", "uid", "displayName", "cn", "mail"];

/// An entry: its DN and its attributes (names lower-cased), values as raw bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub dn: String,
    pub attrs: HashMap<String, Vec<Vec<u8>>>,
}

impl Entry {
    /// Parses a SearchResultEntry (`[APPLICATION 4] SEQUENCE { objectName, attributes }`).
    pub fn parse(re: ResultEntry) -> Option<Entry> {
        Entry::from_tag(re.0)
    }

    fn from_tag(tag: StructureTag) -> Option<Entry> {
        let mut parts = tag.match_id(4)?.expect_constructed()?.into_iter();
        let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
        let mut attrs = HashMap::new();
        for attr in parts.next()?.expect_constructed()? {
            let mut pa = attr.expect_constructed()?.into_iter();
            let name = String::from_utf8(pa.next()?.expect_primitive()?).ok()?;
            let values = pa
                .next()?
                .expect_constructed()?
                .into_iter()
                .map(StructureTag::expect_primitive)
                .collect::<Option<Vec<_>>>()?;
            attrs.insert(name.to_ascii_lowercase(), values);
        }
        Some(Entry { dn, attrs })
    }

    /// The first value of `name` as bytes.
    pub fn bytes(&self, name: &str) -> Option<&[u8]> {
        self.attrs
            .get(&name.to_ascii_lowercase())?
            .first()
            .map(Vec::as_slice)
    }

    /// The first value of `name` as text.
    pub fn text(&self, name: &str) -> Option<String> {
        self.bytes(name)
            .and_then(|b| std::str::from_utf8(b).ok())
            .map(str::to_string)
    }

    /// The user this entry describes; `None` without a 16-byte objectGUID.
    pub fn user(&self, bound_upn: &str) -> Option<DirectoryUser> {
        let guid: [u8; 16] = self.bytes("objectGUID")?.try_into().ok()?;
        Some(DirectoryUser {
            // AD stores a GUID with its first three fields little-endian.
            object_guid: Uuid::from_bytes_le(guid),
            user_principal_name: self
                .text("userPrincipalName")
                .unwrap_or_else(|| bound_upn.to_string()),
            sam_account_name: self.text("sAMAccountName"),
            display_name: self.text("displayName"),
            mail: self.text("mail"),
            consistency_guid: self
                .bytes("mS-DS-ConsistencyGuid")
                .and_then(crate::values::guid_from_bytes),
        })
    }
}

impl Entry {
    /// The user a plain LDAP directory's entry describes (its `entryUUID` as the object id,
    /// the UPN it was reached by); `None` without a readable entryUUID.
    pub fn ldap_user(&self, bound_upn: &str) -> Option<DirectoryUser> {
        let id = Uuid::parse_str(self.text("entryUUID")?.trim()).ok()?;
        Some(DirectoryUser {
            object_guid: id,
            user_principal_name: bound_upn.to_string(),
            sam_account_name: self.text("uid"),
            display_name: self.text("displayName").or_else(|| self.text("cn")),
            mail: self.text("mail"),
            consistency_guid: None,
        })
    }
}

/// `(attr=value)` with `value` escaped as RFC 4515 requires.
pub(crate) fn equality_filter(attr: &str, value: &str) -> String {
    format!("({attr}={})", ldap3::ldap_escape(value))
}

/// `DC=corp,DC=example,DC=test` -> `corp.example.test` (the domain's DNS name, which is the
/// suffix of its users' implicit UPNs).
pub(crate) fn dns_name_of(naming_context: &str) -> String {
    naming_context
        .split(',')
        .filter_map(|rdn| {
            let (k, v) = rdn.trim().split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("dc")
                .then(|| v.trim().to_lowercase())
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ldap3::asn1::{TagClass, PL};

    fn prim(id: u64, b: &[u8]) -> StructureTag {
        StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::P(b.to_vec()),
        }
    }

    fn cons(class: TagClass, id: u64, inner: Vec<StructureTag>) -> StructureTag {
        StructureTag {
            class,
            id,
            payload: PL::C(inner),
        }
    }

    fn attr(name: &str, vals: &[&[u8]]) -> StructureTag {
        cons(
            TagClass::Universal,
            16,
            vec![
                prim(4, name.as_bytes()),
                cons(
                    TagClass::Universal,
                    17,
                    vals.iter().map(|v| prim(4, v)).collect(),
                ),
            ],
        )
    }

    #[test]
    fn parses_an_entry_and_its_guid() -> anyhow::Result<()> {
        // The GUID of AD's display form 01020304-0506-0708-090a-0b0c0d0e0f10.
        let guid = [4u8, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16];
        let tag = cons(
            TagClass::Application,
            4,
            vec![
                prim(4, b"CN=x,DC=corp"),
                cons(
                    TagClass::Universal,
                    16,
                    vec![
                        attr("objectGUID", &[&guid]),
                        attr("userPrincipalName", &[b"x@corp"]),
                        attr("mail", &["ü@corp".as_bytes()]),
                        attr("ms-ds-consistencyGuid", &[&guid]),
                    ],
                ),
            ],
        );
        let e = Entry::from_tag(tag).ok_or_else(|| anyhow::anyhow!("no entry"))?;
        assert_eq!(e.dn, "CN=x,DC=corp");
        let u = e.user("X@CORP").ok_or_else(|| anyhow::anyhow!("no user"))?;
        assert_eq!(
            u.object_guid.to_string(),
            "01020304-0506-0708-090a-0b0c0d0e0f10"
        );
        assert_eq!(u.user_principal_name, "x@corp");
        assert_eq!(u.mail.as_deref(), Some("ü@corp"));
        assert_eq!(u.sam_account_name, None);
        assert_eq!(u.consistency_guid, Some(u.object_guid));
        Ok(())
    }

    #[test]
    fn malformed_entries_are_none_not_panics() -> anyhow::Result<()> {
        assert!(Entry::from_tag(prim(4, b"x")).is_none());
        let no_attrs = cons(TagClass::Application, 4, vec![prim(4, b"CN=x")]);
        assert!(Entry::from_tag(no_attrs).is_none());
        let bad_guid = cons(
            TagClass::Application,
            4,
            vec![
                prim(4, b"CN=x"),
                cons(
                    TagClass::Universal,
                    16,
                    vec![attr("objectGUID", &[b"short"])],
                ),
            ],
        );
        let e = Entry::from_tag(bad_guid).ok_or_else(|| anyhow::anyhow!("no entry"))?;
        assert!(e.user("x@y").is_none());
        Ok(())
    }

    #[test]
    fn plain_ldap_entries_give_their_entry_uuid() -> anyhow::Result<()> {
        let tag = cons(
            TagClass::Application,
            4,
            vec![
                prim(4, b"uid=ann,ou=people,dc=x"),
                cons(
                    TagClass::Universal,
                    16,
                    vec![
                        attr("entryUUID", &[b"6f1e3c2a-0b4d-4e8f-9a7b-1c2d3e4f5a6b"]),
                        attr("uid", &[b"ann"]),
                        attr("cn", &[b"Ann Example"]),
                    ],
                ),
            ],
        );
        let e = Entry::from_tag(tag).ok_or_else(|| anyhow::anyhow!("no entry"))?;
        let u = e
            .ldap_user("ann@x.example")
            .ok_or_else(|| anyhow::anyhow!("no user"))?;
        assert_eq!(
            u.object_guid.to_string(),
            "6f1e3c2a-0b4d-4e8f-9a7b-1c2d3e4f5a6b"
        );
        assert_eq!(u.user_principal_name, "ann@x.example");
        assert_eq!(u.sam_account_name.as_deref(), Some("ann"));
        assert_eq!(u.display_name.as_deref(), Some("Ann Example"));
        assert_eq!(u.consistency_guid, None);
        let no_uuid = Entry {
            dn: "uid=b".into(),
            attrs: HashMap::new(),
        };
        assert!(no_uuid.ldap_user("b@x").is_none());
        Ok(())
    }

    #[test]
    fn filter_values_are_escaped() {
        assert_eq!(
            equality_filter("userPrincipalName", "a*b(c)\\d\0@corp"),
            "(userPrincipalName=a\\2ab\\28c\\29\\5cd\\00@corp)"
        );
        assert_eq!(
            equality_filter("userPrincipalName", "plain@corp.example.test"),
            "(userPrincipalName=plain@corp.example.test)"
        );
        // Non-ASCII stays as UTF-8, which RFC 4515 allows.
        assert_eq!(equality_filter("cn", "Jürgen"), "(cn=Jürgen)");
    }

    #[test]
    fn dns_name_from_naming_context() {
        assert_eq!(
            dns_name_of("DC=Corp,DC=example,DC=test"),
            "corp.example.test"
        );
        assert_eq!(dns_name_of("OU=x,dc=a,dc=b"), "a.b");
    }
}
