//! Directory entries as sync objects: what the sync search asks for and how a user or a
//! group is built from an [`Entry`].

#[cfg(test)]
use passthru_proto::sync::SyncObject;
use passthru_proto::sync::{SyncGroup, SyncUser};
use uuid::Uuid;

use crate::entry::Entry;
use crate::values::{
    account_expires, extended_dn_guid, generalized_time, guid_from_bytes, plain_dn, ranged_attr,
};

/// Users in scope: people, not the critical system accounts (Administrator, krbtgt, ...).
pub(crate) const USERS_FILTER: &str =
    "(&(objectCategory=person)(objectClass=user)(!(isCriticalSystemObject=TRUE)))";
/// Groups in scope, not the critical system ones (Domain Admins, ...).
pub(crate) const GROUPS_FILTER: &str = "(&(objectClass=group)(!(isCriticalSystemObject=TRUE)))";

/// Users and groups in scope.
pub(crate) fn scope_filter() -> String {
    format!("(|{USERS_FILTER}{GROUPS_FILTER})")
}

/// Attributes read for each user and group.
pub(crate) const OBJECT_ATTRS: [&str; 15] = [
    "objectClass",
    "objectGUID",
    "mS-DS-ConsistencyGuid",
    "userPrincipalName",
    "sAMAccountName",
    "mail",
    "displayName",
    "givenName",
    "sn",
    "userAccountControl",
    "accountExpires",
    "pwdLastSet",
    "uSNChanged",
    "whenChanged",
    "member",
];

/// userAccountControl ACCOUNTDISABLE.
const UAC_DISABLED: i64 = 2;

/// What kind of object an entry is, by its objectClass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    User,
    Group,
}

pub(crate) fn kind(entry: &Entry) -> Option<Kind> {
    let classes = entry.attrs.get("objectclass")?;
    let has = |c: &str| {
        classes
            .iter()
            .any(|v| std::str::from_utf8(v).is_ok_and(|s| s.eq_ignore_ascii_case(c)))
    };
    if has("group") {
        Some(Kind::Group)
    } else if has("user") {
        Some(Kind::User)
    } else {
        None
    }
}

/// The members an entry carries: from `member`, or from a ranged `member;range=a-b`
/// (large groups on Windows DCs). Returns the GUIDs, the number of values without a
/// readable GUID, and where the next range starts when the DC held some back.
pub(crate) fn members(entry: &Entry) -> (Vec<Uuid>, usize, Option<u32>) {
    let mut guids = Vec::new();
    let mut unreadable = 0;
    let mut next = None;
    for (name, values) in &entry.attrs {
        let next_range = if name == "member" {
            None
        } else {
            match ranged_attr(name) {
                Some(("member", _, end)) => end.map(|e| e.saturating_add(1)),
                _ => continue,
            }
        };
        if next_range.is_some() {
            next = next_range;
        }
        for v in values {
            match std::str::from_utf8(v).ok().and_then(extended_dn_guid) {
                Some(g) => guids.push(g),
                None => unreadable += 1,
            }
        }
    }
    (guids, unreadable, next)
}

fn int(entry: &Entry, name: &str) -> Option<i64> {
    entry.text(name)?.trim().parse().ok()
}

/// The entry's DN without an extended-DN prefix.
pub(crate) fn dn_of(entry: &Entry) -> String {
    plain_dn(&entry.dn).to_string()
}

/// The user an entry describes; `None` without a 16-byte objectGUID.
pub(crate) fn user(entry: &Entry) -> Option<SyncUser> {
    let uac = int(entry, "userAccountControl").unwrap_or(0);
    Some(SyncUser {
        object_guid: guid_from_bytes(entry.bytes("objectGUID")?)?,
        consistency_guid: entry
            .bytes("mS-DS-ConsistencyGuid")
            .and_then(guid_from_bytes),
        dn: dn_of(entry),
        user_principal_name: entry.text("userPrincipalName"),
        sam_account_name: entry.text("sAMAccountName"),
        mail: entry.text("mail"),
        display_name: entry.text("displayName"),
        given_name: entry.text("givenName"),
        surname: entry.text("sn"),
        enabled: uac & UAC_DISABLED == 0,
        account_expires: entry
            .text("accountExpires")
            .and_then(|t| account_expires(&t)),
        usn_changed: int(entry, "uSNChanged").unwrap_or(0),
        when_changed: entry.text("whenChanged").and_then(|t| generalized_time(&t)),
        // A FILETIME like accountExpires; 0 (must change at next sign-in) reads as None.
        password_last_set: entry.text("pwdLastSet").and_then(|t| account_expires(&t)),
    })
}

/// The group an entry describes, with the members it carries (see [`members`]).
pub(crate) fn group(entry: &Entry, members: Vec<Uuid>) -> Option<SyncGroup> {
    Some(SyncGroup {
        object_guid: guid_from_bytes(entry.bytes("objectGUID")?)?,
        consistency_guid: entry
            .bytes("mS-DS-ConsistencyGuid")
            .and_then(guid_from_bytes),
        dn: dn_of(entry),
        sam_account_name: entry.text("sAMAccountName"),
        display_name: entry.text("displayName"),
        mail: entry.text("mail"),
        members,
        usn_changed: int(entry, "uSNChanged").unwrap_or(0),
        when_changed: entry.text("whenChanged").and_then(|t| generalized_time(&t)),
    })
}

/// A user or group (a group with the members `entry` carries).
#[cfg(test)]
pub(crate) fn object(entry: &Entry) -> Option<SyncObject> {
    match kind(entry)? {
        Kind::User => user(entry).map(SyncObject::User),
        Kind::Group => group(entry, members(entry).0).map(SyncObject::Group),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn entry(dn: &str, attrs: &[(&str, &[&[u8]])]) -> Entry {
        Entry {
            dn: dn.to_string(),
            attrs: attrs
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_ascii_lowercase(),
                        v.iter().map(|b| b.to_vec()).collect(),
                    )
                })
                .collect::<HashMap<_, _>>(),
        }
    }

    const GUID: [u8; 16] = [4, 3, 2, 1, 6, 5, 8, 7, 9, 10, 11, 12, 13, 14, 15, 16];

    #[test]
    fn users_are_read_with_their_flags_and_times() -> anyhow::Result<()> {
        let e = entry(
            "<GUID=01020304-0506-0708-090a-0b0c0d0e0f10>;<SID=S-1-5>;CN=Ann,CN=Users,DC=corp",
            &[
                (
                    "objectClass",
                    &[b"top", b"person", b"organizationalPerson", b"User"],
                ),
                ("objectGUID", &[&GUID]),
                ("mS-DS-ConsistencyGuid", &[&[0u8; 16]]),
                ("userPrincipalName", &[b"ann@corp"]),
                ("givenName", &[b"Ann"]),
                ("sn", &[b"Lee"]),
                ("userAccountControl", &[b"514"]),
                ("accountExpires", &[b"134404137000000000"]),
                ("pwdLastSet", &[b"134404137000000000"]),
                ("uSNChanged", &[b"4711"]),
                ("whenChanged", &[b"20261129081500.0Z"]),
            ],
        );
        assert_eq!(kind(&e), Some(Kind::User));
        let Some(SyncObject::User(u)) = object(&e) else {
            anyhow::bail!("not a user");
        };
        assert_eq!(
            u.object_guid.to_string(),
            "01020304-0506-0708-090a-0b0c0d0e0f10"
        );
        assert_eq!(u.consistency_guid, Some(Uuid::nil()));
        assert_eq!(u.dn, "CN=Ann,CN=Users,DC=corp");
        assert!(!u.enabled);
        assert_eq!(u.account_expires, Some(1_795_940_100));
        assert_eq!(u.password_last_set, Some(1_795_940_100));
        assert_eq!(u.when_changed, Some(1_795_940_100));
        assert_eq!(u.usn_changed, 4711);
        assert_eq!(u.given_name.as_deref(), Some("Ann"));
        assert_eq!(u.surname.as_deref(), Some("Lee"));
        assert_eq!(u.mail, None);
        Ok(())
    }

    #[test]
    fn malformed_values_do_not_fail_the_object() -> anyhow::Result<()> {
        let e = entry(
            "CN=Bob,DC=corp",
            &[
                ("objectClass", &[b"user", &[0xff, 0xfe]]),
                ("objectGUID", &[&GUID]),
                ("mS-DS-ConsistencyGuid", &[b"short"]),
                ("userAccountControl", &[b"lots"]),
                ("accountExpires", &[b"9223372036854775807"]),
                ("uSNChanged", &[b""]),
                ("whenChanged", &[b"yesterday"]),
            ],
        );
        let Some(SyncObject::User(u)) = object(&e) else {
            anyhow::bail!("not a user");
        };
        assert!(u.enabled);
        assert_eq!(u.consistency_guid, None);
        assert_eq!(u.account_expires, None);
        assert_eq!(u.usn_changed, 0);
        assert_eq!(u.when_changed, None);
        // No valid objectGUID: no object.
        let bad = entry(
            "CN=x",
            &[("objectClass", &[b"user"]), ("objectGUID", &[b"x"])],
        );
        assert_eq!(object(&bad), None);
        let neither = entry(
            "CN=x",
            &[("objectClass", &[b"contact"]), ("objectGUID", &[&GUID])],
        );
        assert_eq!(object(&neither), None);
        assert_eq!(object(&entry("CN=x", &[])), None);
        Ok(())
    }

    #[test]
    fn group_members_plain_and_ranged() -> anyhow::Result<()> {
        let m1 = b"<GUID=feeebd29-13f4-46ae-aa0f-fc5b851aa70a>;<SID=S-1-5-21-1>;CN=u1,DC=corp";
        let m2 = b"<GUID=29bdeefef413ae46aa0ffc5b851aa70a>;CN=u1,DC=corp";
        let e = entry(
            "CN=g,DC=corp",
            &[
                ("objectClass", &[b"top", b"group"]),
                ("objectGUID", &[&GUID]),
                ("member", &[m1, m2, b"CN=no-guid,DC=corp"]),
            ],
        );
        let (guids, unreadable, next) = members(&e);
        assert_eq!(guids.len(), 2);
        assert_eq!(guids[0], guids[1]);
        assert_eq!((unreadable, next), (1, None));
        let Some(SyncObject::Group(g)) = object(&e) else {
            anyhow::bail!("not a group");
        };
        assert_eq!(g.members, guids);

        let ranged = entry(
            "CN=g,DC=corp",
            &[
                ("objectClass", &[b"group"]),
                ("objectGUID", &[&GUID]),
                ("member", &[]),
                ("member;range=0-1499", &[m1]),
            ],
        );
        assert_eq!(members(&ranged), (vec![guids[0]], 0, Some(1500)));
        let last = entry("CN=g", &[("member;range=1500-*", &[m2])]);
        assert_eq!(members(&last), (vec![guids[0]], 0, None));
        Ok(())
    }
}
