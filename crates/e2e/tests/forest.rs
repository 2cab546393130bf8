//! The test bed itself: a forest stops and starts again, its users are in their states, and
//! the test bed's description round-trips through JSON.

use std::collections::HashSet;

use passthru_proto::Win32;
use passthru_testkit::bed::{self, block_on, free_loopback_address, BedForest, Testbed};
use passthru_testkit::users::{self, standard_users, Admin, RC_SERVER_DOWN};
use passthru_testkit::{AccountState, Forest, ForestSpec, TestUser};

#[test]
fn standard_users_cover_every_state_with_distinct_passwords() {
    let a = standard_users("corp.example.test");
    let b = standard_users("corp.example.test");
    for state in AccountState::ALL {
        assert!(a.iter().any(|u| u.state == state), "no {state} user");
    }
    let sams: HashSet<_> = a.iter().map(|u| u.sam.to_lowercase()).collect();
    assert_eq!(sams.len(), a.len(), "sAMAccountNames are unique");
    let passwords: HashSet<_> = a.iter().chain(&b).map(|u| u.password.clone()).collect();
    assert_eq!(
        passwords.len(),
        a.len() * 2,
        "passwords differ between users and runs"
    );
    for u in &a {
        assert_eq!(u.expected_win32, u.state.expected().map(Win32::code));
        assert!(u.upn.ends_with("@corp.example.test"));
    }
    assert!(a
        .iter()
        .any(|u| u.password.contains("*()\"'") && !u.password.is_ascii()));
    assert!(
        a.iter().any(|u| u.password.chars().any(|c| c > '\u{FFFF}')),
        "an emoji password"
    );
    assert!(a.iter().any(|u| u.upn.contains('*') && u.upn.contains('(')));
    assert!(a.iter().filter(|u| u.sam.starts_with("spare")).count() >= 8);
}

#[test]
fn a_forest_stops_starts_and_cleans_up() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!(
        "passthru-forest-test-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let ip = free_loopback_address()?;
    let mut spec = ForestSpec::new("LIFE.EXAMPLE.TEST", "LIFE", ip);
    spec.lockout_threshold = 2;
    let mut forest = Forest::provision(&dir, spec)?;
    assert!(forest.is_running());
    assert_eq!(forest.ldaps_url(), format!("ldaps://{ip}:636"));
    assert!(forest.ca_file().ends_with("private/tls/ca.pem"));

    let suffix = forest.dns_name();
    let alice = TestUser::new("alice", &suffix, AccountState::Good);
    let locked = TestUser::new("locked", &suffix, AccountState::LockedOut);
    let expired = TestUser::new("old", &suffix, AccountState::PasswordExpired);
    let (url, ca, upn, pw) = (
        forest.ldaps_url(),
        forest.ca_file(),
        forest.admin_upn(),
        forest.admin_password().to_string(),
    );
    let created = vec![alice.clone(), locked, expired];
    // create_users checks each state with a bind, so success proves them.
    block_on(async move {
        let mut admin = Admin::connect(&url, &ca, &upn, &pw).await?;
        assert!(admin.local_conf().is_some());
        admin.create_users(&created, 2).await?;
        admin.close().await;
        Ok(())
    })?;

    let bed = BedForest::describe("life", &forest, vec![alice.clone()]);
    let bind =
        |b: BedForest, u: TestUser| block_on(async move { Ok(b.bind(&u.upn, &u.password).await) });
    assert_eq!(bind(bed.clone(), alice.clone())?, Ok(()));

    let pid = forest.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    forest.stop();
    assert!(!forest.is_running());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "samba {pid} was reaped"
    );
    let down = bind(bed.clone(), alice.clone())?;
    assert!(
        matches!(&down, Err((rc, _)) if *rc == RC_SERVER_DOWN),
        "{down:?}"
    );

    forest.start()?;
    assert_eq!(bind(bed.clone(), alice.clone())?, Ok(()));
    let pid = forest.pid().ok_or_else(|| anyhow::anyhow!("no pid"))?;
    drop(forest);
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "Drop stops samba"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn the_test_bed_round_trips_through_json() -> anyhow::Result<()> {
    let users = standard_users("corp.example.test");
    let forest = BedForest {
        name: "corp".into(),
        realm: "CORP.EXAMPLE.TEST".into(),
        dns_name: "corp.example.test".into(),
        netbios: "CORP".into(),
        upn_suffix: "corp.example.test".into(),
        ip: "127.0.0.1".parse()?,
        ldaps_url: "ldaps://127.0.0.1:636".into(),
        ca_file: "/x/private/tls/ca.pem".into(),
        base_dn: "DC=corp,DC=example,DC=test".into(),
        admin_upn: "Administrator@corp.example.test".into(),
        admin_password: bed::secret("Adm1n"),
        lockout_threshold: 3,
        pid: Some(42),
        dir: "/x".into(),
        users,
    };
    let tb = Testbed {
        forests: vec![forest.clone()],
    };
    let path = std::env::temp_dir().join(format!(
        "passthru-testbed-{}.json",
        uuid::Uuid::new_v4().simple()
    ));
    tb.save(&path)?;
    let back = Testbed::load(&path)?;
    std::fs::remove_file(&path)?;
    assert_eq!(back.forest("CORP")?, &forest);
    assert!(back.forest("fabrikam").is_err());
    assert_eq!(back.passwords().len(), forest.users.len() + 1);
    let text = serde_json::to_string(&tb)?;
    assert!(text.contains("\"state\":\"locked_out\"") && text.contains("\"expected_win32\":1909"));
    assert_eq!(forest.user("a*b(c)")?.sam, "filter(x)");
    assert_eq!(forest.user("GOOD")?.sam, "good");
    let _ = users::RC_TIMEOUT;
    Ok(())
}
