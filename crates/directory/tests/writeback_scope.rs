//! The agent-side writeback guard against a real Samba AD forest (the test bed's CORP forest,
//! or one this test process provisions): a protected account (`adminCount=1`, the forest's
//! Administrator among them) is neither reset nor changed unless the forest allows it, and
//! `writeback_base_dn` limits writeback to a subtree. A refusal writes nothing.

use passthru_directory::{
    Directory, DirectoryError, ForestConfig, PasswordWrite, SyncCredentials, WriteVerdict,
    WritebackScope,
};
use passthru_proto::AgentError;
use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::procs::recorded_secret;
use passthru_testkit::{AccountState, TestUser};
use url::Url;
use zeroize::Zeroizing;

fn directory(f: &BedForest) -> anyhow::Result<Directory> {
    Ok(Directory::new(vec![ForestConfig {
        name: f.dns_name.clone(),
        upn_suffixes: vec![f.upn_suffix.clone()],
        domain_controllers: vec![Url::parse(&f.ldaps_url)?],
        ca_file: f.ca_file.clone(),
        bind_dn_template: None,
        tls_server_name: None,
    }])?)
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn reset(new: &str) -> PasswordWrite<'_> {
    PasswordWrite::Reset {
        new,
        must_change: false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn protected_accounts_and_users_outside_the_base_dn_are_not_written() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let ou = format!("OU=wbscope-{tag},{}", corp.base_dn);
    admin
        .add_entry(&ou, &[("objectClass", "organizationalUnit")])
        .await?;
    let mk = |prefix: &str| {
        TestUser::with(
            &format!("{prefix}{tag}"),
            &format!("{prefix}{tag}"),
            &corp.upn_suffix,
            AccountState::Good,
            recorded_secret("Wbs-Pw1!"),
            "Writeback scope",
        )
    };
    let (inside, outside, protected) = (mk("wbsin"), mk("wbsout"), mk("wbsprot"));
    for u in [&inside, &outside, &protected] {
        admin.create_user(u).await?;
    }
    for u in [&inside, &protected] {
        admin
            .rename(&u.dn(&corp.base_dn), &format!("CN={}", u.sam), Some(&ou))
            .await?;
    }
    let protected_dn = format!("CN={},{ou}", protected.sam);
    admin
        .replace_attrs(&protected_dn, &[("adminCount", "1")])
        .await?;

    let d = directory(&corp)?;
    let service = SyncCredentials {
        account: corp.admin_upn.clone(),
        password: Zeroizing::new(corp.admin_password.clone()),
    };
    let default = WritebackScope::default();
    let new = recorded_secret("Wbs-New2!");

    // The forest's own Administrator (adminCount=1 in Samba as in Windows): neither a reset
    // by the service account nor a change with its own password.
    let r = d
        .write_password(
            &corp.admin_upn,
            reset(&new),
            Some(&service),
            &default,
            now(),
        )
        .await;
    assert!(
        matches!(&r, Err(e @ DirectoryError::WritebackProtectedAccount { .. }) if e.agent_error() == AgentError::WritebackProtectedAccount),
        "{r:?}"
    );
    let change = PasswordWrite::Change {
        old: &corp.admin_password,
        new: &new,
    };
    let r = d
        .write_password(&corp.admin_upn, change, Some(&service), &default, now())
        .await;
    assert!(
        matches!(&r, Err(DirectoryError::WritebackProtectedAccount { .. })),
        "{r:?}"
    );
    assert!(
        corp.bind(&corp.admin_upn, &corp.admin_password)
            .await
            .is_ok(),
        "the Administrator's password is unchanged"
    );

    // Another protected account: refused by default, a change too (with its own password).
    let r = d
        .write_password(&protected.upn, reset(&new), Some(&service), &default, now())
        .await;
    assert!(
        matches!(&r, Err(DirectoryError::WritebackProtectedAccount { .. })),
        "{r:?}"
    );
    let own_change = PasswordWrite::Change {
        old: &protected.password,
        new: &new,
    };
    let r = d
        .write_password(&protected.upn, own_change, None, &default, now())
        .await;
    assert!(
        matches!(&r, Err(DirectoryError::WritebackProtectedAccount { .. })),
        "{r:?}"
    );
    assert!(corp.bind(&protected.upn, &protected.password).await.is_ok());
    // Allowed by the forest's configuration, within the base DN: written.
    let scoped = WritebackScope {
        protected_accounts: true,
        base_dn: Some(format!(" {} ", ou.to_ascii_lowercase())),
    };
    let r = d
        .write_password(&protected.upn, reset(&new), Some(&service), &scoped, now())
        .await;
    assert!(matches!(&r, Ok(WriteVerdict::Written(_))), "{r:?}");
    assert!(corp.bind(&protected.upn, &new).await.is_ok());

    // The base DN: a user under it is written, one outside is not, and a base DN that does
    // not exist covers nobody.
    let r = d
        .write_password(&inside.upn, reset(&new), Some(&service), &scoped, now())
        .await;
    assert!(matches!(&r, Ok(WriteVerdict::Written(_))), "{r:?}");
    let r = d
        .write_password(&outside.upn, reset(&new), Some(&service), &scoped, now())
        .await;
    assert!(
        matches!(&r, Err(e @ DirectoryError::WritebackOutsideBaseDn { .. }) if e.agent_error() == AgentError::WritebackOutsideScope),
        "{r:?}"
    );
    let nowhere = WritebackScope {
        protected_accounts: false,
        base_dn: Some(format!("OU=nosuch-{tag},{}", corp.base_dn)),
    };
    let r = d
        .write_password(&outside.upn, reset(&new), Some(&service), &nowhere, now())
        .await;
    assert!(
        matches!(&r, Err(DirectoryError::WritebackOutsideBaseDn { .. })),
        "{r:?}"
    );
    assert!(corp.bind(&outside.upn, &outside.password).await.is_ok());
    // Without limits, the user outside is written.
    let r = d
        .write_password(&outside.upn, reset(&new), Some(&service), &default, now())
        .await;
    assert!(matches!(&r, Ok(WriteVerdict::Written(_))), "{r:?}");

    for dn in [
        format!("CN={},{ou}", inside.sam),
        protected_dn,
        outside.dn(&corp.base_dn),
        ou,
    ] {
        admin.delete(&dn).await?;
    }
    Ok(())
}
