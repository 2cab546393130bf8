//! `passthru-directory` against OpenLDAP slapd, a plain LDAP directory reached with a forest's
//! `bind_dn_template`. Skipped (with the reason printed) when slapd is not installed: it is
//! only installed for the relay benchmark (`PASSTHRU_NEED_SLAPD=1 bash scripts/deps.sh`).

use anyhow::bail;
use passthru_directory::{Directory, ForestConfig, Verdict};
use passthru_proto::Win32;
use passthru_testkit::bed::free_loopback_address;
use passthru_testkit::slapd::{self, Slapd};
use passthru_testkit::{AccountState, TestUser};
use url::Url;

#[tokio::test]
async fn plain_ldap_binds_by_template() -> anyhow::Result<()> {
    if !slapd::installed() {
        eprintln!(
            "skipped: slapd is not installed (PASSTHRU_NEED_SLAPD=1 bash scripts/deps.sh installs it)"
        );
        return Ok(());
    }
    let suffix = "people.example.test";
    let ann = TestUser::new("ann", suffix, AccountState::Good);
    let ip = free_loopback_address()?;
    let dir = std::env::temp_dir().join(format!(
        "passthru-slapd-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let users = vec![ann.clone()];
    let server =
        tokio::task::spawn_blocking(move || Slapd::start(&dir, ip, suffix, &users)).await??;
    let d = Directory::new(vec![ForestConfig {
        name: suffix.into(),
        upn_suffixes: vec![suffix.into()],
        domain_controllers: vec![Url::parse(&server.ldaps_url())?],
        ca_file: server.ca_file(),
        bind_dn_template: Some(server.bind_dn_template()),
        tls_server_name: None,
    }])?;

    let user = match d.validate(&ann.upn, &ann.password).await {
        Ok(Verdict::Accepted(u)) => u,
        other => bail!("expected Accepted, got {other:?}"),
    };
    assert!(!user.object_guid.is_nil(), "the entryUUID is the object id");
    assert_eq!(user.user_principal_name, ann.upn);
    assert_eq!(user.sam_account_name.as_deref(), Some("ann"));
    assert_eq!(user.mail.as_deref(), Some(ann.mail.as_str()));
    // The same entry gives the same id.
    let again = d.validate(&ann.upn, &ann.password).await;
    assert!(
        matches!(&again, Ok(Verdict::Accepted(u)) if u.object_guid == user.object_guid),
        "{again:?}"
    );

    // slapd gives LDAP 49 without AD's sub-code: 1326, for a wrong password and for no such
    // user alike.
    let wrong = d.validate(&ann.upn, "not-the-password").await;
    assert!(
        matches!(wrong, Ok(Verdict::Denied(Win32::LogonFailure))),
        "{wrong:?}"
    );
    let nobody = d.validate(&format!("nobody@{suffix}"), "x-pw").await;
    assert!(
        matches!(nobody, Ok(Verdict::Denied(Win32::LogonFailure))),
        "{nobody:?}"
    );
    drop(server);
    Ok(())
}
