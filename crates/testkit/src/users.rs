//! Test users in every account state, created over LDAPS as the forest's administrator
//! (one add and at most one modify each: milliseconds, where `samba-tool user create` costs
//! half a second).

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use ldap3::{dn_escape, Ldap, LdapConnAsync, LdapConnSettings, Mod, Scope, SearchEntry};
use passthru_proto::Win32;
use serde::{Deserialize, Serialize};

use crate::bed::secret;

/// Connect (TCP and TLS) timeout of the test bed's LDAP connections.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Timeout of each LDAP operation of the test bed.
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// How far back the password-expired user's `pwdLastSet` is moved: beyond the domain's
/// maximum password age (42 days).
const EXPIRED_DAYS: u32 = 100;
/// LDAP result code used by [`bind`] for a connection that failed (`LDAP_SERVER_DOWN`).
pub const RC_SERVER_DOWN: u32 = 81;
/// LDAP result code used by [`bind`] for a timeout (`LDAP_TIMEOUT`).
pub const RC_TIMEOUT: u32 = 85;

/// The account state a test user is put in: one per row of the bind-failure table of the
/// AD test bed notes (`ad-testbed.md`), plus `Good`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AccountState {
    /// Enabled, the password works.
    Good,
    /// `userAccountControl` 514: data 533, Win32 1331.
    Disabled,
    /// `accountExpires` in the past: data 701, Win32 1793.
    AccountExpired,
    /// `pwdLastSet` 0: data 773, Win32 1907.
    MustChange,
    /// Locked by `lockout threshold` wrong passwords: data 775, Win32 1909.
    LockedOut,
    /// `logonHours` all zero: data 530, Win32 1328.
    LogonHours,
    /// `userWorkstations` NOSUCHPC: data 531, Win32 1329.
    Workstation,
    /// `pwdLastSet` 100 days back, past the domain's 42-day maximum password age: data 532,
    /// Win32 1330.
    PasswordExpired,
}

impl AccountState {
    /// Every state.
    pub const ALL: [AccountState; 8] = [
        AccountState::Good,
        AccountState::Disabled,
        AccountState::AccountExpired,
        AccountState::MustChange,
        AccountState::LockedOut,
        AccountState::LogonHours,
        AccountState::Workstation,
        AccountState::PasswordExpired,
    ];

    /// What a bind with the right password gives.
    pub fn expected(self) -> Option<Win32> {
        match self {
            AccountState::Good => None,
            AccountState::Disabled => Some(Win32::AccountDisabled),
            AccountState::AccountExpired => Some(Win32::AccountExpired),
            AccountState::MustChange => Some(Win32::PasswordMustChange),
            AccountState::LockedOut => Some(Win32::AccountLockedOut),
            AccountState::LogonHours => Some(Win32::InvalidLogonHours),
            AccountState::Workstation => Some(Win32::InvalidWorkstation),
            AccountState::PasswordExpired => Some(Win32::PasswordExpired),
        }
    }

    /// Name in testbed.json.
    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Good => "good",
            AccountState::Disabled => "disabled",
            AccountState::AccountExpired => "account_expired",
            AccountState::MustChange => "must_change",
            AccountState::LockedOut => "locked_out",
            AccountState::LogonHours => "logon_hours",
            AccountState::Workstation => "workstation",
            AccountState::PasswordExpired => "password_expired",
        }
    }
}

impl fmt::Display for AccountState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user of a test forest, with its password (tests need it, and the password scan looks
/// for it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TestUser {
    /// sAMAccountName (also the CN under `CN=Users`).
    pub sam: String,
    /// userPrincipalName.
    pub upn: String,
    /// The user's password.
    pub password: String,
    /// displayName.
    pub display_name: String,
    /// mail.
    pub mail: String,
    /// The state the account is in.
    pub state: AccountState,
    /// The Win32 code a bind with the right password gives; `None` when it succeeds.
    pub expected_win32: Option<u32>,
}

impl TestUser {
    /// A user named `sam` (UPN `sam@suffix`) with a fresh random password.
    pub fn new(sam: &str, upn_suffix: &str, state: AccountState) -> TestUser {
        TestUser::with(sam, sam, upn_suffix, state, secret("Pw"), sam)
    }

    /// A user with every name given.
    pub fn with(
        sam: &str,
        upn_local: &str,
        upn_suffix: &str,
        state: AccountState,
        password: String,
        display_name: &str,
    ) -> TestUser {
        TestUser {
            sam: sam.to_string(),
            upn: format!("{upn_local}@{upn_suffix}"),
            password,
            display_name: display_name.to_string(),
            mail: format!("{}@{upn_suffix}", sam.replace(['(', ')', '*'], "")),
            state,
            expected_win32: state.expected().map(Win32::code),
        }
    }

    /// The DN the user is created under.
    pub fn dn(&self, base_dn: &str) -> String {
        format!("CN={},CN=Users,{base_dn}", dn_escape(self.sam.as_str()))
    }

    /// The given name (first word of the display name).
    pub fn given_name(&self) -> &str {
        self.display_name
            .split_whitespace()
            .next()
            .unwrap_or(&self.sam)
    }

    /// The surname (last word of the display name).
    pub fn surname(&self) -> &str {
        self.display_name
            .split_whitespace()
            .last()
            .unwrap_or(&self.sam)
    }
}

/// The standard set for a forest: one user per account state, users whose passwords hold
/// non-ASCII letters, LDAP filter and JSON special characters, CJK and emoji, a user whose
/// UPN holds LDAP filter characters, and `spare1`..`spare8` (good accounts for tests that
/// send wrong passwords, so that nobody else gets locked out). Passwords are fresh each call.
pub fn standard_users(upn_suffix: &str) -> Vec<TestUser> {
    let tail = || {
        let s = secret("x");
        s[2..10].to_string()
    };
    let mut users = vec![
        TestUser::with(
            "good",
            "good",
            upn_suffix,
            AccountState::Good,
            secret("G00d"),
            "Good User",
        ),
        TestUser::with(
            "unicode",
            "unicode",
            upn_suffix,
            AccountState::Good,
            format!("Pässwörd*()\"'\\{{}}[]<>&;,=+#%-{}", tail()),
            "Jürgen Müller-Åström",
        ),
        TestUser::with(
            "cjk",
            "cjk",
            upn_suffix,
            AccountState::Good,
            format!("密码パスワード비밀번호🔐😀-{}", tail()),
            "山田 太郎",
        ),
        TestUser::with(
            "filter(x)",
            "a*b(c)",
            upn_suffix,
            AccountState::Good,
            secret("F1lt3r"),
            "Filter Characters",
        ),
        TestUser::new("disabled", upn_suffix, AccountState::Disabled),
        TestUser::new("expired", upn_suffix, AccountState::AccountExpired),
        TestUser::new("mustchange", upn_suffix, AccountState::MustChange),
        TestUser::new("locked", upn_suffix, AccountState::LockedOut),
        TestUser::new("hours", upn_suffix, AccountState::LogonHours),
        TestUser::new("workstation", upn_suffix, AccountState::Workstation),
        TestUser::new("pwdexpired", upn_suffix, AccountState::PasswordExpired),
    ];
    for i in 1..=8 {
        users.push(TestUser::new(
            &format!("spare{i}"),
            upn_suffix,
            AccountState::Good,
        ));
    }
    users
}

/// Opens an LDAPS connection that verifies the DC against `ca_file` (connect timeout 10 s,
/// operation timeout 30 s).
pub async fn connect(ldaps_url: &str, ca_file: &Path) -> anyhow::Result<Ldap> {
    let settings = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_config(crate::tls::client_config(ca_file)?);
    let (conn, ldap) = LdapConnAsync::with_settings(settings, ldaps_url)
        .await
        .with_context(|| format!("connecting to {ldaps_url}"))?;
    tokio::spawn(async move {
        let _ = conn.drive().await;
    });
    Ok(ldap)
}

/// A simple bind of `upn` on an open connection: `Err((rc, diagnostic))` when it fails.
pub async fn bind_on(ldap: &mut Ldap, upn: &str, password: &str) -> Result<(), (u32, String)> {
    match ldap
        .with_timeout(OP_TIMEOUT)
        .simple_bind(upn, password)
        .await
    {
        Ok(r) if r.rc == 0 => Ok(()),
        Ok(r) => Err((r.rc, r.text)),
        Err(ldap3::LdapError::Timeout { .. }) => Err((RC_TIMEOUT, "timeout".into())),
        Err(e) => Err((RC_SERVER_DOWN, e.to_string())),
    }
}

/// A simple bind of `upn` on a new LDAPS connection: `Err((rc, diagnostic))` when it fails
/// (`rc` 49 with AD's `data` sub-code in the diagnostic for a refused password;
/// [`RC_SERVER_DOWN`] or [`RC_TIMEOUT`] when no answer came).
pub async fn bind(
    ldaps_url: &str,
    ca_file: &Path,
    upn: &str,
    password: &str,
) -> Result<(), (u32, String)> {
    let mut ldap = connect(ldaps_url, ca_file)
        .await
        .map_err(|e| (RC_SERVER_DOWN, format!("{e:#}")))?;
    let r = bind_on(&mut ldap, upn, password).await;
    let _ = ldap.unbind().await;
    r
}

/// What a bind result means, as the Win32 code AD's sub-code gives (`Ok(None)` for success).
pub fn bind_outcome(r: &Result<(), (u32, String)>) -> anyhow::Result<Option<Win32>> {
    match r {
        Ok(()) => Ok(None),
        Err((49, text)) => Win32::from_ad_diagnostic(text)
            .map(Some)
            .ok_or_else(|| anyhow!("bind refused with an unknown sub-code: {text}")),
        Err((rc, text)) => bail!("bind failed with LDAP result {rc}: {text}"),
    }
}

/// An administrator's LDAPS connection to a forest.
#[derive(Debug)]
pub struct Admin {
    ldap: Ldap,
    base_dn: String,
    ldaps_url: String,
    ca_file: PathBuf,
    local_conf: Option<PathBuf>,
}

type Attrs = Vec<(Vec<u8>, HashSet<Vec<u8>>)>;

fn attr(name: &str, value: impl Into<Vec<u8>>) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (name.as_bytes().to_vec(), HashSet::from([value.into()]))
}

fn replace(name: &str, value: impl Into<Vec<u8>>) -> Mod<Vec<u8>> {
    Mod::Replace(name.as_bytes().to_vec(), HashSet::from([value.into()]))
}

/// `unicodePwd`: the password in double quotes, UTF-16LE.
pub fn unicode_pwd(password: &str) -> Vec<u8> {
    format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect()
}

impl Admin {
    /// Binds as the administrator and reads the domain's DN from the rootDSE.
    pub async fn connect(
        ldaps_url: &str,
        ca_file: &Path,
        admin_upn: &str,
        admin_password: &str,
    ) -> anyhow::Result<Admin> {
        let mut ldap = connect(ldaps_url, ca_file).await?;
        bind_on(&mut ldap, admin_upn, admin_password)
            .await
            .map_err(|(rc, text)| anyhow!("administrator bind failed ({rc}): {text}"))?;
        let (entries, _) = ldap
            .with_timeout(OP_TIMEOUT)
            .search(
                "",
                Scope::Base,
                "(objectClass=*)",
                vec!["defaultNamingContext"],
            )
            .await?
            .success()?;
        let base_dn = entries
            .into_iter()
            .next()
            .map(SearchEntry::construct)
            .and_then(|e| e.attrs.get("defaultNamingContext")?.first().cloned())
            .ok_or_else(|| anyhow!("the rootDSE has no defaultNamingContext"))?;
        // A test-bed forest's CA file is DIR/private/tls/ca.pem; its smb.conf DIR/etc/smb.conf.
        let local_conf = ca_file
            .ancestors()
            .nth(3)
            .map(|dir| dir.join("etc/smb.conf"))
            .filter(|conf| ca_file.ends_with("private/tls/ca.pem") && conf.exists());
        Ok(Admin {
            ldap,
            base_dn,
            ldaps_url: ldaps_url.to_string(),
            ca_file: ca_file.to_path_buf(),
            local_conf,
        })
    }

    /// The smb.conf of the DC when it runs on this machine (found next to the CA file of a
    /// test-bed forest), needed to expire a password.
    pub fn local_conf(&self) -> Option<&Path> {
        self.local_conf.as_deref()
    }

    /// Sets the local DC's smb.conf (see [`Admin::local_conf`]).
    pub fn set_local_conf(&mut self, conf: &Path) {
        self.local_conf = Some(conf.to_path_buf());
    }

    /// The domain's DN.
    pub fn base_dn(&self) -> &str {
        &self.base_dn
    }

    /// The LDAP connection, for anything else a test needs.
    pub fn ldap(&mut self) -> &mut Ldap {
        &mut self.ldap
    }

    /// Adds a fine-grained password policy (a PSO under the domain's Password Settings
    /// Container) applied to the users `applies_to` (DNs): 10 characters minimum,
    /// complexity on, 3 passwords of history, a 42-day maximum age, no minimum age and no
    /// lockout, each overridden by `settings` (`("msDS-LockoutThreshold", "5")`). Returns
    /// its DN.
    pub async fn add_password_policy(
        &mut self,
        name: &str,
        settings: &[(&str, &str)],
        applies_to: &[String],
    ) -> anyhow::Result<String> {
        let dn = format!(
            "CN={name},CN=Password Settings Container,CN=System,{}",
            self.base_dn
        );
        let mut attrs: Vec<(&str, &str)> = vec![
            ("msDS-PasswordSettingsPrecedence", "10"),
            ("msDS-PasswordReversibleEncryptionEnabled", "FALSE"),
            ("msDS-PasswordHistoryLength", "3"),
            ("msDS-PasswordComplexityEnabled", "TRUE"),
            ("msDS-MinimumPasswordLength", "10"),
            ("msDS-MinimumPasswordAge", "0"),
            ("msDS-MaximumPasswordAge", "-36288000000000"),
            ("msDS-LockoutThreshold", "0"),
            ("msDS-LockoutObservationWindow", "-18000000000"),
            ("msDS-LockoutDuration", "-18000000000"),
        ];
        for (k, v) in settings {
            attrs.retain(|(name, _)| !name.eq_ignore_ascii_case(k));
            attrs.push((k, v));
        }
        attrs.push(("objectClass", "msDS-PasswordSettings"));
        for user in applies_to {
            attrs.push(("msDS-PSOAppliesTo", user.as_str()));
        }
        self.add_entry(&dn, &attrs).await?;
        Ok(dn)
    }

    /// Adds an entry with text attributes (`objectClass` included), e.g. a group or an OU.
    pub async fn add_entry(&mut self, dn: &str, attrs: &[(&str, &str)]) -> anyhow::Result<()> {
        let attrs = attrs.iter().map(|(k, v)| attr(k, *v)).collect();
        self.add(dn, attrs).await
    }

    /// Replaces text attributes of an entry.
    /// The user's `badPwdCount` (0 when absent).
    pub async fn bad_pwd_count(&mut self, dn: &str) -> anyhow::Result<u32> {
        let (entries, _) = self
            .ldap
            .with_timeout(OP_TIMEOUT)
            .search(
                dn,
                ldap3::Scope::Base,
                "(objectClass=*)",
                vec!["badPwdCount"],
            )
            .await?
            .success()?;
        Ok(entries
            .into_iter()
            .next()
            .map(ldap3::SearchEntry::construct)
            .and_then(|e| e.attrs.get("badPwdCount")?.first()?.parse().ok())
            .unwrap_or(0))
    }

    /// Resets a user's password as the administrator (as a help desk would, on premises).
    pub async fn set_password(&mut self, dn: &str, password: &str) -> anyhow::Result<()> {
        self.modify(dn, vec![replace("unicodePwd", unicode_pwd(password))])
            .await
    }

    pub async fn replace_attrs(&mut self, dn: &str, attrs: &[(&str, &str)]) -> anyhow::Result<()> {
        let mods = attrs.iter().map(|(k, v)| replace(k, *v)).collect();
        self.modify(dn, mods).await
    }

    /// Adds (`true`) or removes a member DN of a group.
    pub async fn set_member(
        &mut self,
        group_dn: &str,
        member_dn: &str,
        present: bool,
    ) -> anyhow::Result<()> {
        let values = HashSet::from([member_dn.as_bytes().to_vec()]);
        let m = if present {
            Mod::Add(b"member".to_vec(), values)
        } else {
            Mod::Delete(b"member".to_vec(), values)
        };
        self.modify(group_dn, vec![m]).await
    }

    /// Renames or moves an entry: new RDN (`CN=x`), and a new parent when moving.
    pub async fn rename(
        &mut self,
        dn: &str,
        new_rdn: &str,
        new_parent: Option<&str>,
    ) -> anyhow::Result<()> {
        self.ldap
            .with_timeout(OP_TIMEOUT)
            .modifydn(dn, new_rdn, true, new_parent)
            .await?
            .success()
            .with_context(|| format!("renaming {dn}"))?;
        Ok(())
    }

    /// Deletes an entry.
    pub async fn delete(&mut self, dn: &str) -> anyhow::Result<()> {
        self.ldap
            .with_timeout(OP_TIMEOUT)
            .delete(dn)
            .await?
            .success()
            .with_context(|| format!("deleting {dn}"))?;
        Ok(())
    }

    async fn add(&mut self, dn: &str, attrs: Attrs) -> anyhow::Result<()> {
        self.ldap
            .with_timeout(OP_TIMEOUT)
            .add(dn, attrs)
            .await?
            .success()
            .with_context(|| format!("adding {dn}"))?;
        Ok(())
    }

    async fn modify(&mut self, dn: &str, mods: Vec<Mod<Vec<u8>>>) -> anyhow::Result<()> {
        self.ldap
            .with_timeout(OP_TIMEOUT)
            .modify(dn, mods)
            .await?
            .success()
            .with_context(|| format!("modifying {dn}"))?;
        Ok(())
    }

    /// Creates `user` enabled, with its password, and puts it in its state, except the
    /// two states that need more: [`AccountState::LockedOut`] (wrong binds) and
    /// [`AccountState::PasswordExpired`] (`pwdLastSet` moved back in the DC's database); see
    /// [`Admin::create_users`].
    pub async fn create_user(&mut self, user: &TestUser) -> anyhow::Result<String> {
        let dn = user.dn(&self.base_dn);
        let attrs = vec![
            attr("objectClass", "user"),
            attr("sAMAccountName", user.sam.as_str()),
            attr("userPrincipalName", user.upn.as_str()),
            attr("displayName", user.display_name.as_str()),
            attr("givenName", user.given_name()),
            attr("sn", user.surname()),
            attr("mail", user.mail.as_str()),
            attr("unicodePwd", unicode_pwd(&user.password)),
            attr("userAccountControl", "512"),
        ];
        self.add(&dn, attrs).await?;
        let state_mod = match user.state {
            AccountState::Disabled => Some(replace("userAccountControl", "514")),
            AccountState::AccountExpired => Some(replace("accountExpires", "1")),
            AccountState::MustChange => Some(replace("pwdLastSet", "0")),
            AccountState::LogonHours => Some(replace("logonHours", vec![0u8; 21])),
            AccountState::Workstation => Some(replace("userWorkstations", "NOSUCHPC")),
            _ => None,
        };
        if let Some(m) = state_mod {
            self.modify(&dn, vec![m]).await?;
        }
        Ok(dn)
    }

    /// Creates `users` and puts each in its state: locks out the locked users with
    /// `lockout_threshold` wrong passwords, makes the password-expired users' passwords old
    /// (which needs the DC's smb.conf on this machine, see [`Admin::local_conf`] and
    /// [`backdate_password`]), then checks that every user's bind gives its expected result.
    pub async fn create_users(
        &mut self,
        users: &[TestUser],
        lockout_threshold: u32,
    ) -> anyhow::Result<()> {
        let mut expired = Vec::new();
        for user in users {
            let dn = self.create_user(user).await?;
            if user.state == AccountState::PasswordExpired {
                expired.push(dn);
            }
        }
        if !expired.is_empty() {
            let conf = self.local_conf.clone().ok_or_else(|| {
                anyhow!("expiring a password needs the DC's smb.conf on this machine")
            })?;
            tokio::task::spawn_blocking(move || backdate_password(&conf, &expired, EXPIRED_DAYS))
                .await??;
        }
        for user in users.iter().filter(|u| u.state == AccountState::LockedOut) {
            self.lock_out(user, lockout_threshold).await?;
        }
        for user in users {
            self.check_state(user).await?;
        }
        Ok(())
    }

    /// Sends `lockout_threshold` wrong passwords for `user`.
    pub async fn lock_out(
        &mut self,
        user: &TestUser,
        lockout_threshold: u32,
    ) -> anyhow::Result<()> {
        let mut ldap = connect(&self.ldaps_url, &self.ca_file).await?;
        for _ in 0..lockout_threshold.max(1) {
            let wrong = secret("Wr0ng");
            match bind_on(&mut ldap, &user.upn, &wrong).await {
                Err((49, _)) => {}
                other => bail!("a wrong password for {} gave {other:?}", user.upn),
            }
        }
        let _ = ldap.unbind().await;
        Ok(())
    }

    /// Checks that a bind of `user` with its password gives the expected result.
    pub async fn check_state(&mut self, user: &TestUser) -> anyhow::Result<()> {
        let want = user.state.expected();
        let r = bind(&self.ldaps_url, &self.ca_file, &user.upn, &user.password).await;
        let got = bind_outcome(&r).with_context(|| format!("user {}", user.upn))?;
        if got != want {
            bail!(
                "user {} ({}): bind gave {:?}, expected {:?}",
                user.upn,
                user.state,
                got.map(Win32::code),
                want.map(Win32::code)
            );
        }
        Ok(())
    }

    /// Closes the connection.
    pub async fn close(mut self) {
        let _ = self.ldap.unbind().await;
    }
}

/// Samba's Python bindings, run against the DC's own database: sets `pwdLastSet` of each DN
/// to `days` days ago. Over LDAP `pwdLastSet` takes only 0 and -1; locally the
/// `DSDB_CONTROL_PASSWORD_BYPASS_LAST_SET` control (1.3.6.1.4.1.7165.4.3.20) lets it be set.
const BACKDATE_PY: &str = r#"
import sys, time
import ldb
from samba.auth import system_session
from samba.param import LoadParm
from samba.samdb import SamDB
conf, days, dns = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
lp = LoadParm()
lp.load(conf)
db = SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)
when = int((time.time() - days * 86400 + 11644473600) * 10**7)
for dn in dns:
    m = ldb.Message()
    m.dn = ldb.Dn(db, dn)
    m["pwdLastSet"] = ldb.MessageElement(str(when), ldb.FLAG_MOD_REPLACE, "pwdLastSet")
    db.modify(m, controls=["local_oid:1.3.6.1.4.1.7165.4.3.20:0"])
"#;

/// Makes the passwords of `dns` `days` days old, writing `pwdLastSet` in the local DC's
/// database (`conf` is its smb.conf). A fine-grained password policy with a tiny maximum
/// age cannot do it: Samba treats any maximum age of a day or less as "never expires".
pub fn backdate_password(conf: &Path, dns: &[String], days: u32) -> anyhow::Result<()> {
    let python = if Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .arg("-c")
        .arg(BACKDATE_PY)
        .arg(conf)
        .arg(days.to_string())
        .args(dns)
        .stdin(Stdio::null())
        .output()
        .context("running python3 with Samba's bindings")?;
    crate::procs::stdout_of_success("setting pwdLastSet", &out).map(drop)
}
