//! Property tests (proptest) of what keeps a user's typed name from changing the meaning of
//! an LDAP filter or a bind DN: filter values escaped by [`equality_filter`] parse back to
//! exactly the value, DN values escaped for a bind DN parse back (RFC 4514) to exactly the
//! value in exactly the RDN the template puts them in, and [`bind_dn_from_template`] expands
//! each placeholder once, never a placeholder's text that came with the name.

use ldap3::asn1::{OctetString, Sequence, Tag};
use proptest::prelude::*;

use crate::bind_dn_from_template;
use crate::entry::equality_filter;

/// Characters that mean something in a filter or a DN, or to the template, plus a few
/// ordinary and non-ASCII ones.
const SPECIALS: &str = "[\\\\*()\\x00,+\"<>;=# {}@a-zé😀]{0,24}";

/// Names: mostly built from special characters, some arbitrary Unicode, some carrying a
/// placeholder's text.
fn names() -> impl Strategy<Value = String> {
    prop_oneof![
        SPECIALS,
        any::<String>(),
        (
            SPECIALS,
            prop_oneof!["\\{upn\\}", "\\{local\\}", "\\{"],
            SPECIALS
        )
            .prop_map(|(a, p, b)| format!("{a}{p}{b}")),
    ]
}

/// The equality assertions of a filter's top-level AND, as (attribute, value) bytes.
fn and_of_equalities(filter: &str) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    let Tag::Sequence(Sequence { id: 0, inner, .. }) = ldap3::parse_filter(filter).ok()? else {
        return None;
    };
    inner
        .into_iter()
        .map(|item| match item {
            Tag::Sequence(Sequence { id: 3, inner, .. }) => match inner.as_slice() {
                [Tag::OctetString(OctetString { inner: attr, .. }), Tag::OctetString(OctetString { inner: value, .. })] => {
                    Some((attr.clone(), value.clone()))
                }
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// One attribute-value assertion of an RDN: the type and the unescaped value's bytes.
type Ava = (String, Vec<u8>);

/// A strict RFC 4514 reading of a DN string: RDNs (each one or more `type=value` joined by
/// `+`) separated by `,`. `None` when a value holds a character RFC 4514 requires escaped
/// (`"`, `+`, `,`, `;`, `<`, `>`, `\`, NUL; a leading space or `#`; a trailing space) or a
/// malformed escape.
fn parse_dn(dn: &str) -> Option<Vec<Vec<Ava>>> {
    let bytes = dn.as_bytes();
    let mut rdns = Vec::new();
    let mut rdn = Vec::new();
    let mut i = 0;
    loop {
        let eq = i + bytes[i..].iter().position(|&b| b == b'=')?;
        let kind = std::str::from_utf8(&bytes[i..eq]).ok()?;
        if kind.is_empty() || !kind.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
            return None;
        }
        i = eq + 1;
        let start = i;
        let mut value = Vec::new();
        let mut last_escaped = false;
        while i < bytes.len() && !matches!(bytes[i], b',' | b'+') {
            let b = bytes[i];
            last_escaped = b == b'\\';
            if b == b'\\' {
                let pair = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(pair).ok()?;
                match u8::from_str_radix(hex, 16) {
                    Ok(v) if pair.iter().all(u8::is_ascii_hexdigit) => {
                        value.push(v);
                        i += 3;
                    }
                    _ if b"\"+,;<>\\ #=".contains(&pair[0]) => {
                        value.push(pair[0]);
                        i += 2;
                    }
                    _ => return None,
                }
                continue;
            }
            if b"\";<>\0".contains(&b) || (i == start && (b == b' ' || b == b'#')) {
                return None;
            }
            value.push(b);
            i += 1;
        }
        if value.last() == Some(&b' ') && !last_escaped {
            return None;
        }
        rdn.push((kind.to_string(), value));
        match bytes.get(i) {
            Some(b'+') => {}
            Some(b',') => rdns.push(std::mem::take(&mut rdn)),
            _ => {
                rdns.push(rdn);
                return Some(rdns);
            }
        }
        i += 1;
    }
}

fn ava(kind: &str, value: &str) -> Ava {
    (kind.to_string(), value.as_bytes().to_vec())
}

/// The part of a UPN the `{local}` placeholder stands for (before the last '@').
fn local_part(upn: &str) -> &str {
    upn.rsplit_once('@').map_or(upn, |(l, _)| l)
}

/// A template piece: text without braces, or a placeholder.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Local,
    Upn,
}

proptest! {
    #[test]
    fn an_escaped_filter_value_parses_back_to_itself(value in names()) {
        let filter = format!("(&(objectClass=user){})", equality_filter("userPrincipalName", &value));
        let items = and_of_equalities(&filter);
        prop_assert_eq!(
            items,
            Some(vec![
                (b"objectClass".to_vec(), b"user".to_vec()),
                (b"userPrincipalName".to_vec(), value.as_bytes().to_vec()),
            ]),
            "{}", filter
        );
    }

    #[test]
    fn no_filter_special_survives_unescaped(value in names()) {
        let escaped = ldap3::ldap_escape(value.as_str());
        let mut bytes = escaped.bytes();
        while let Some(b) = bytes.next() {
            prop_assert!(!b"()*\0".contains(&b), "{:?} in {:?}", b as char, escaped);
            if b == b'\\' {
                let pair = [bytes.next(), bytes.next()];
                prop_assert!(pair.iter().all(|c| c.is_some_and(|c| c.is_ascii_hexdigit())), "{:?}", escaped);
            }
        }
    }

    #[test]
    fn an_escaped_dn_value_parses_back_to_itself_in_its_own_rdn(value in names()) {
        let escaped = ldap3::dn_escape(value.as_str());
        let dn = format!("cn={escaped}+uid={escaped},ou=people,dc=example,dc=com");
        prop_assert_eq!(
            parse_dn(&dn),
            Some(vec![
                vec![ava("cn", &value), ava("uid", &value)],
                vec![ava("ou", "people")],
                vec![ava("dc", "example")],
                vec![ava("dc", "com")],
            ]),
            "{}", dn
        );
    }

    #[test]
    fn a_bind_dn_holds_the_name_in_the_templates_rdn_only(upn in names()) {
        let dn = bind_dn_from_template("uid={local}+cn={upn},ou=people,dc=example,dc=com", &upn);
        prop_assert_eq!(
            parse_dn(&dn),
            Some(vec![
                vec![ava("uid", local_part(&upn)), ava("cn", &upn)],
                vec![ava("ou", "people")],
                vec![ava("dc", "example")],
                vec![ava("dc", "com")],
            ]),
            "{}", dn
        );
    }

    #[test]
    fn each_placeholder_is_expanded_once_and_never_the_names_text(
        pieces in prop::collection::vec(
            prop_oneof![
                "[a-z=,. ]{0,8}".prop_map(Piece::Text),
                Just(Piece::Local),
                Just(Piece::Upn),
            ],
            0..8,
        ),
        upn in names(),
    ) {
        let mut template = String::new();
        let mut expected = String::new();
        for piece in &pieces {
            match piece {
                Piece::Text(t) => {
                    template.push_str(t);
                    expected.push_str(t);
                }
                Piece::Local => {
                    template.push_str("{local}");
                    expected.push_str(&ldap3::dn_escape(local_part(&upn)));
                }
                Piece::Upn => {
                    template.push_str("{upn}");
                    expected.push_str(&ldap3::dn_escape(upn.as_str()));
                }
            }
        }
        prop_assert_eq!(bind_dn_from_template(&template, &upn), expected);
    }

    #[test]
    fn a_template_without_placeholders_is_kept_as_it_is(template in names(), upn in names()) {
        prop_assume!(!template.contains("{local}") && !template.contains("{upn}"));
        prop_assert_eq!(bind_dn_from_template(&template, &upn), template);
    }
}
