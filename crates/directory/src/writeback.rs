//! Password writeback: a user's change (old password known) and an administrator's or
//! self-service reset, over LDAPS.
//!
//! - Change: the user binds with the old password and, on the same connection, sends one
//!   modify that deletes the old `unicodePwd` value and adds the new one; AD checks the old
//!   value again and applies the policy (age, length, complexity, history). A user whose
//!   bind is refused with 1907 (must change) or 1330 (expired) cannot bind: the forest's
//!   service account sends the same modify, and AD still checks the old value.
//! - Reset: the service account replaces `unicodePwd` (it needs the "Reset Password" right
//!   on the user), sets `pwdLastSet` to 0 (must change at next sign-in) or -1 (now), and
//!   clears a lockout.
//! - A refusal by the password policy is named ([`crate::password_rules`]); a wrong old
//!   password is 1326, like a sign-in.
//!
//! A modify that was sent is never sent again to another DC: a lost answer is an error, not
//! a retry that could apply the change twice.

use std::collections::HashSet;
use std::hash::{Hash, Hasher};

use ldap3::{Ldap, LdapError, Mod, Scope, SearchOptions};
use passthru_proto::{PasswordRefusal, Win32};
use zeroize::Zeroizing;

use crate::dc::{DcFailure, DomainController};
use crate::entry::{dns_name_of, equality_filter, Entry, USER_ATTRS};
use crate::password_rules::{diagnose, pwd_last_set, PasswordPolicy, Refused};
use crate::{Directory, DirectoryError, Forest, SyncCredentials, Timeouts};

const RC_SUCCESS: u32 = 0;
const RC_CONSTRAINT_VIOLATION: u32 = 19;
const RC_INVALID_CREDENTIALS: u32 = 49;
const RC_BUSY: u32 = 51;
const RC_UNAVAILABLE: u32 = 52;
const RC_INSUFFICIENT_ACCESS: u32 = 50;
const RC_UNWILLING: u32 = 53;

/// What to write.
#[derive(Clone, Copy)]
pub enum PasswordWrite<'a> {
    /// The user changes their password (the old one is checked by AD).
    Change { old: &'a str, new: &'a str },
    /// The password is reset; with `must_change`, the user must change it at next sign-in.
    Reset { new: &'a str, must_change: bool },
}

impl std::fmt::Debug for PasswordWrite<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PasswordWrite::Change { .. } => f.write_str("Change"),
            PasswordWrite::Reset { must_change, .. } => f
                .debug_struct("Reset")
                .field("must_change", must_change)
                .finish_non_exhaustive(),
        }
    }
}

/// What the directory did with a password write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteVerdict {
    /// The new password is set; the user's on-premises identity.
    Written(passthru_proto::wire::DirectoryUser),
    /// The old password (or the account) was refused, with the Win32 reason.
    Denied(Win32),
    /// The password policy refused the new password.
    Refused(PasswordRefusal),
}

/// Which accounts the agent writes passwords of, in one forest (the forest's
/// `writeback_protected_accounts` and `writeback_base_dn` settings). By default: every user
/// of the forest except protected accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritebackScope {
    /// Whether protected accounts (`adminCount=1`: members, now or formerly, of Domain
    /// Admins, Administrators and the other groups AdminSDHolder protects) may have their
    /// password changed or reset.
    pub protected_accounts: bool,
    /// When set, only users under this DN (the entry itself or its subtree).
    pub base_dn: Option<String>,
}

/// A `unicodePwd` value (the password in double quotes, UTF-16LE), wiped when dropped.
/// ldap3 copies it into the encoded request, which lives only until it is written.
#[derive(PartialEq, Eq)]
struct Value(Zeroizing<Vec<u8>>);

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.as_slice().hash(state)
    }
}

impl AsRef<[u8]> for Value {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl Value {
    fn text(s: &str) -> Value {
        Value(Zeroizing::new(s.as_bytes().to_vec()))
    }

    fn password(p: &str) -> Value {
        let mut bytes = Zeroizing::new(Vec::with_capacity((p.len() + 2) * 2));
        for unit in std::iter::once(u16::from(b'"'))
            .chain(p.encode_utf16())
            .chain(std::iter::once(u16::from(b'"')))
        {
            bytes.extend_from_slice(&unit.to_le_bytes());
        }
        Value(bytes)
    }
}

fn set(v: Value) -> HashSet<Value> {
    HashSet::from([v])
}

/// Why a write on one DC gave no verdict.
enum Failure {
    /// Nothing was written and the DC is unusable: the next DC may be tried.
    Transport { timed_out: bool, detail: String },
    /// The DC is busy: the next DC may be tried.
    Busy(String),
    /// Final: no other DC is asked.
    Final(DirectoryError),
}

fn unexpected(m: String) -> Failure {
    Failure::Final(DirectoryError::Unexpected(m))
}

fn transport(what: &str, e: LdapError) -> Failure {
    let timed_out = matches!(e, LdapError::Timeout { .. });
    Failure::Transport {
        timed_out,
        detail: format!(
            "{what}: {}",
            if timed_out {
                "timed out".into()
            } else {
                e.to_string()
            }
        ),
    }
}

impl Directory {
    /// Writes a new password for `upn` in its forest. `service` is the forest's service
    /// account: required for a reset and for a change by a user who cannot bind (1907,
    /// 1330). `scope` says which accounts may be written: a protected account or a user
    /// outside the base DN is refused before anything is written. `now` (Unix seconds) is
    /// used to name a minimum-age refusal.
    pub async fn write_password(
        &self,
        upn: &str,
        write: PasswordWrite<'_>,
        service: Option<&SyncCredentials>,
        scope: &WritebackScope,
        now: i64,
    ) -> Result<WriteVerdict, DirectoryError> {
        let (forest, named) = self.route_upn(upn)?;
        if !named {
            return Ok(WriteVerdict::Denied(Win32::LogonFailure));
        }
        match write {
            // An empty old password would be an anonymous bind: never ask.
            PasswordWrite::Change { old: "", .. } => {
                return Ok(WriteVerdict::Denied(Win32::LogonFailure))
            }
            PasswordWrite::Change { new, .. } | PasswordWrite::Reset { new, .. }
                if new.is_empty() =>
            {
                return Ok(WriteVerdict::Refused(PasswordRefusal::TooShort {
                    min_length: 1,
                }))
            }
            _ => {}
        }
        let mut failures = Vec::new();
        let mut all_timed_out = true;
        for dc in forest.candidates() {
            let to = Target { upn, write, scope };
            match write_on(forest, dc, &to, service, now, &self.timeouts).await {
                Ok(verdict) => {
                    dc.mark_up();
                    return Ok(verdict);
                }
                Err(Failure::Final(e)) => {
                    dc.mark_up();
                    return Err(e);
                }
                Err(Failure::Busy(detail)) => {
                    all_timed_out = false;
                    failures.push(format!("{}: {detail}", dc.url()));
                }
                Err(Failure::Transport { timed_out, detail }) => {
                    dc.mark_down(&detail);
                    all_timed_out &= timed_out;
                    failures.push(format!("{}: {detail}", dc.url()));
                }
            }
        }
        let detail = failures.join("; ");
        Err(if all_timed_out && !failures.is_empty() {
            DirectoryError::Timeout {
                forest: forest.name().to_string(),
                detail,
            }
        } else {
            DirectoryError::Unreachable {
                forest: forest.name().to_string(),
                detail,
            }
        })
    }
}

/// Who is bound on the connection.
enum Bound {
    User,
    Service,
}

/// What to write for whom, and within which limits.
struct Target<'a> {
    upn: &'a str,
    write: PasswordWrite<'a>,
    scope: &'a WritebackScope,
}

async fn write_on(
    forest: &Forest,
    dc: &DomainController,
    to: &Target<'_>,
    service: Option<&SyncCredentials>,
    now: i64,
    timeouts: &Timeouts,
) -> Result<WriteVerdict, Failure> {
    let mut ldap = match dc.connect(&forest.tls, timeouts).await {
        Ok(l) => l,
        Err(DcFailure::Down { timed_out, detail }) => {
            return Err(Failure::Transport { timed_out, detail })
        }
        Err(DcFailure::Busy { detail }) => return Err(Failure::Busy(detail)),
        Err(DcFailure::Final(e)) => return Err(Failure::Final(e)),
    };
    let result = write_with(&mut ldap, forest, to, service, now, timeouts).await;
    let _ = tokio::time::timeout(timeouts.operation, ldap.unbind()).await;
    result
}

async fn write_with(
    ldap: &mut Ldap,
    forest: &Forest,
    to: &Target<'_>,
    service: Option<&SyncCredentials>,
    now: i64,
    timeouts: &Timeouts,
) -> Result<WriteVerdict, Failure> {
    let (upn, write) = (to.upn, to.write);
    let bound = match write {
        PasswordWrite::Change { old, .. } => match bind(ldap, upn, old, timeouts).await? {
            None => Bound::User,
            Some(Win32::PasswordMustChange | Win32::PasswordExpired) => Bound::Service,
            Some(w) => return Ok(WriteVerdict::Denied(w)),
        },
        PasswordWrite::Reset { .. } => Bound::Service,
    };
    if matches!(bound, Bound::Service) {
        let creds = service.ok_or_else(|| {
            Failure::Final(DirectoryError::WritebackNotPermitted {
                forest: forest.name().to_string(),
                detail: "no service account is configured for this forest on this agent \
                         (service_account and service_password_file in its [[forest]] table)"
                    .to_string(),
            })
        })?;
        if creds.password.is_empty() {
            return Err(Failure::Final(DirectoryError::WritebackNotPermitted {
                forest: forest.name().to_string(),
                detail: "the service account's password is empty".to_string(),
            }));
        }
        if let Some(w) = bind(ldap, &creds.account, &creds.password, timeouts).await? {
            return Err(Failure::Final(DirectoryError::ServiceAccount {
                forest: forest.name().to_string(),
                account: creds.account.clone(),
                win32: Some(w),
                detail: "the bind for password writeback was refused".to_string(),
            }));
        }
    }
    let base = naming_context(ldap, timeouts).await?;
    let user = find_user(ldap, &base, upn, timeouts).await?;
    in_scope(ldap, forest, &user, to.scope, timeouts).await?;
    let mods = match write {
        PasswordWrite::Change { old, new } => vec![
            Mod::Delete(Value::text("unicodePwd"), set(Value::password(old))),
            Mod::Add(Value::text("unicodePwd"), set(Value::password(new))),
        ],
        PasswordWrite::Reset { new, must_change } => vec![
            Mod::Replace(Value::text("unicodePwd"), set(Value::password(new))),
            Mod::Replace(
                Value::text("pwdLastSet"),
                set(Value::text(if must_change { "0" } else { "-1" })),
            ),
        ],
    };
    // From here on the write may have happened: no other DC is tried.
    let res = ldap
        .with_timeout(timeouts.operation)
        .modify(&user.dn, mods)
        .await
        .map_err(|e| {
            Failure::Final(DirectoryError::Unexpected(format!(
                "the password modify of {} got no answer ({e}); it may or may not have been applied",
                user.dn
            )))
        })?;
    match res.rc {
        RC_SUCCESS => {}
        RC_CONSTRAINT_VIOLATION | RC_UNWILLING => {
            let reader = match bound {
                Bound::User => service,
                Bound::Service => None,
            };
            return refusal(ldap, &base, &user, write, now, &res.text, reader, timeouts).await;
        }
        RC_INSUFFICIENT_ACCESS => {
            return Err(Failure::Final(DirectoryError::WritebackNotPermitted {
                forest: forest.name().to_string(),
                detail: format!(
                    "the account lacks the right to {} the password of {} (grant it \"Reset Password\" \
                     and \"Change Password\" on the users' OU): {}",
                    match write {
                        PasswordWrite::Change { .. } => "change",
                        PasswordWrite::Reset { .. } => "reset",
                    },
                    user.dn,
                    res.text
                ),
            }))
        }
        rc => {
            return Err(unexpected(format!(
                "the password modify of {} failed with LDAP result {rc}: {}",
                user.dn, res.text
            )))
        }
    }
    if matches!(write, PasswordWrite::Reset { .. }) {
        unlock(ldap, &user, timeouts).await;
    }
    user.user(upn)
        .map(WriteVerdict::Written)
        .ok_or_else(|| unexpected(format!("{} has no valid objectGUID", user.dn)))
}

/// Refuses (finally: no other DC is asked, nothing is written) a protected account unless
/// the forest allows them, and a user outside the forest's writeback base DN.
async fn in_scope(
    ldap: &mut Ldap,
    forest: &Forest,
    user: &Entry,
    scope: &WritebackScope,
    timeouts: &Timeouts,
) -> Result<(), Failure> {
    let protected = user
        .text("adminCount")
        .and_then(|v| v.trim().parse::<i64>().ok())
        .is_some_and(|n| n != 0);
    if protected && !scope.protected_accounts {
        return Err(Failure::Final(DirectoryError::WritebackProtectedAccount {
            forest: forest.name().to_string(),
            dn: user.dn.clone(),
        }));
    }
    let Some(base_dn) = scope.base_dn.as_deref() else {
        return Ok(());
    };
    // The directory decides whether the user is in the subtree (DN spelling, case and
    // spacing differ between the configuration and AD's own form).
    let outside = || {
        Failure::Final(DirectoryError::WritebackOutsideBaseDn {
            forest: forest.name().to_string(),
            dn: user.dn.clone(),
            base_dn: base_dn.to_string(),
        })
    };
    let found = ldap
        .with_timeout(timeouts.operation)
        .with_search_options(SearchOptions::new().sizelimit(1))
        .search(
            base_dn,
            Scope::Subtree,
            &equality_filter("distinguishedName", &user.dn),
            vec!["1.1"],
        )
        .await
        .map_err(|e| transport("search", e))?;
    match found.1.rc {
        // noSuchObject: the base DN does not exist, so nobody is under it.
        32 => Err(outside()),
        RC_SUCCESS | 4 if !found.0.is_empty() => Ok(()),
        RC_SUCCESS | 4 => Err(outside()),
        rc => Err(unexpected(format!(
            "searching writeback_base_dn {base_dn:?} for {} failed with LDAP result {rc}: {}",
            user.dn, found.1.text
        ))),
    }
}

/// A simple bind: `None` when accepted, the Win32 reason when refused.
async fn bind(
    ldap: &mut Ldap,
    name: &str,
    password: &str,
    timeouts: &Timeouts,
) -> Result<Option<Win32>, Failure> {
    let res = ldap
        .with_timeout(timeouts.operation)
        .simple_bind(name, password)
        .await
        .map_err(|e| transport("bind", e))?;
    match res.rc {
        RC_SUCCESS => Ok(None),
        RC_INVALID_CREDENTIALS => Win32::from_ad_diagnostic(&res.text)
            .map(Some)
            .ok_or_else(|| {
                unexpected(format!("bind refused with an unknown reason: {}", res.text))
            }),
        RC_BUSY | RC_UNAVAILABLE => Err(Failure::Busy(format!(
            "the DC is busy or unavailable ({}): {}",
            res.rc, res.text
        ))),
        rc => Err(unexpected(format!(
            "bind failed with LDAP result {rc}: {}",
            res.text
        ))),
    }
}

async fn search(
    ldap: &mut Ldap,
    base: &str,
    scope: Scope,
    filter: &str,
    attrs: &[&str],
    timeouts: &Timeouts,
) -> Result<Vec<Entry>, Failure> {
    let found = ldap
        .with_timeout(timeouts.operation)
        .with_search_options(SearchOptions::new().sizelimit(2))
        .search(base, scope, filter, attrs.to_vec())
        .await
        .map_err(|e| transport("search", e))?;
    let (entries, res) = (found.0, found.1);
    if res.rc != RC_SUCCESS && res.rc != 4 {
        return Err(unexpected(format!(
            "search {filter} under {base:?} failed with LDAP result {}: {}",
            res.rc, res.text
        )));
    }
    entries
        .into_iter()
        .map(|e| Entry::parse(e).ok_or_else(|| unexpected("malformed search result entry".into())))
        .collect()
}

async fn naming_context(ldap: &mut Ldap, timeouts: &Timeouts) -> Result<String, Failure> {
    let root = search(
        ldap,
        "",
        Scope::Base,
        "(objectClass=*)",
        &["defaultNamingContext"],
        timeouts,
    )
    .await?;
    root.first()
        .and_then(|e| e.text("defaultNamingContext"))
        .ok_or_else(|| unexpected("the rootDSE has no defaultNamingContext".into()))
}

/// The user's entry, by userPrincipalName or (implicit UPN) sAMAccountName.
async fn find_user(
    ldap: &mut Ldap,
    base: &str,
    upn: &str,
    timeouts: &Timeouts,
) -> Result<Entry, Failure> {
    let mut attrs: Vec<&str> = USER_ATTRS.to_vec();
    attrs.extend([
        "pwdLastSet",
        "msDS-ResultantPSO",
        "lockoutTime",
        "adminCount",
    ]);
    let filter = format!(
        "(&(objectCategory=person)(objectClass=user){})",
        equality_filter("userPrincipalName", upn)
    );
    let mut entries = search(ldap, base, Scope::Subtree, &filter, &attrs, timeouts).await?;
    if entries.is_empty() {
        if let Some((sam, suffix)) = upn.rsplit_once('@') {
            if suffix.eq_ignore_ascii_case(&dns_name_of(base)) {
                let by_sam = format!(
                    "(&(objectCategory=person)(objectClass=user){})",
                    equality_filter("sAMAccountName", sam)
                );
                entries = search(ldap, base, Scope::Subtree, &by_sam, &attrs, timeouts).await?;
            }
        }
    }
    match entries.len() {
        1 => entries
            .pop()
            .ok_or_else(|| unexpected("no user entry".into())),
        0 => Err(Failure::Final(DirectoryError::Unexpected(format!(
            "no user named {upn} is visible under {base} to the account writing the password"
        )))),
        _ => Err(unexpected(format!("more than one user is named {upn}"))),
    }
}

/// Names the rule behind a refusal (or maps a wrong old password to 1326). `reader` is the
/// service account to re-bind with when the user is bound: users may not read fine-grained
/// password policies (in AD only administrators may by default).
#[allow(clippy::too_many_arguments)]
async fn refusal(
    ldap: &mut Ldap,
    base: &str,
    user: &Entry,
    write: PasswordWrite<'_>,
    now: i64,
    text: &str,
    reader: Option<&SyncCredentials>,
    timeouts: &Timeouts,
) -> Result<WriteVerdict, Failure> {
    // AD's extended error: 00000056 (ERROR_INVALID_PASSWORD) for a wrong old password,
    // 0000052D (ERROR_PASSWORD_RESTRICTION) for the policy.
    let code = text.get(..8).unwrap_or_default().to_ascii_uppercase();
    if code == "00000056" || code == "0000052E" {
        return Ok(WriteVerdict::Denied(Win32::LogonFailure));
    }
    if code != "0000052D" {
        return Err(unexpected(format!(
            "the password modify of {} was refused: {text}",
            user.dn
        )));
    }
    let mut pso = user.text("msDS-ResultantPSO");
    if let Some(creds) = reader.filter(|c| !c.password.is_empty()) {
        if matches!(
            bind(ldap, &creds.account, &creds.password, timeouts).await,
            Ok(None)
        ) {
            let again = search(
                ldap,
                &user.dn,
                Scope::Base,
                "(objectClass=*)",
                &["msDS-ResultantPSO"],
                timeouts,
            )
            .await;
            if let Ok(entries) = again {
                pso = entries.first().and_then(|e| e.text("msDS-ResultantPSO"));
            }
        }
    }
    let policy = policy_for(ldap, base, pso.as_deref(), timeouts).await;
    let (new, is_change) = match write {
        PasswordWrite::Change { new, .. } => (new, true),
        PasswordWrite::Reset { new, .. } => (new, false),
    };
    let sam = user.text("sAMAccountName");
    let display = user.text("displayName");
    let refused = Refused {
        new_password: new,
        sam_account_name: sam.as_deref(),
        display_name: display.as_deref(),
        last_set: user.text("pwdLastSet").as_deref().and_then(pwd_last_set),
        now,
        is_change,
        dc_text: text,
    };
    Ok(WriteVerdict::Refused(diagnose(&policy, &refused)))
}

/// The policy in force for the user: its fine-grained policy when one applies and is
/// readable, else the domain's. Unreadable values count as "no rule".
async fn policy_for(
    ldap: &mut Ldap,
    base: &str,
    pso: Option<&str>,
    timeouts: &Timeouts,
) -> PasswordPolicy {
    if let Some(pso) = pso {
        let attrs = [
            "msDS-MinimumPasswordLength",
            "msDS-PasswordComplexityEnabled",
            "msDS-MinimumPasswordAge",
            "msDS-PasswordHistoryLength",
        ];
        if let Ok(entries) =
            search(ldap, pso, Scope::Base, "(objectClass=*)", &attrs, timeouts).await
        {
            if let Some(e) = entries.first() {
                return PasswordPolicy::from_pso(|name| e.text(name));
            }
        }
    }
    let attrs = [
        "minPwdLength",
        "pwdProperties",
        "minPwdAge",
        "pwdHistoryLength",
    ];
    match search(ldap, base, Scope::Base, "(objectClass=*)", &attrs, timeouts).await {
        Ok(entries) => entries
            .first()
            .map(|e| PasswordPolicy::from_domain(|name| e.text(name)))
            .unwrap_or_default(),
        Err(_) => PasswordPolicy::default(),
    }
}

/// Clears a lockout after a reset (the user proved who they are, or an administrator
/// acted); a failure is only logged: the password is set.
async fn unlock(ldap: &mut Ldap, user: &Entry, timeouts: &Timeouts) {
    let locked = user
        .text("lockoutTime")
        .and_then(|t| t.trim().parse::<i64>().ok())
        .is_some_and(|t| t > 0);
    if !locked {
        return;
    }
    let mods = vec![Mod::Replace(
        Value::text("lockoutTime"),
        set(Value::text("0")),
    )];
    match ldap
        .with_timeout(timeouts.operation)
        .modify(&user.dn, mods)
        .await
    {
        Ok(r) if r.rc == RC_SUCCESS => {}
        Ok(r) => {
            tracing::warn!(user = %user.dn, rc = r.rc, "the password was reset but the lockout could not be cleared: {}", r.text)
        }
        Err(e) => {
            tracing::warn!(user = %user.dn, "the password was reset but the lockout could not be cleared: {e}")
        }
    }
}
