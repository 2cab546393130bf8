//! Directory sync against a real Samba AD forest over LDAPS (the test bed's CORP forest, or
//! one this process provisions): a full import read in small pages, incremental runs that
//! see each kind of change, deletions found by reconciliation (a plain service account
//! sees no tombstones) or as tombstones (an administrator does), a refused service account,
//! a watermark of another DC, and a receiver that went away.
//!
//! The forest is shared with other tests: every object here has a random suffix, and only
//! those are asserted on.

use std::collections::{HashMap, HashSet};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use ldap3::Mod;
use passthru_directory::{Directory, DirectoryError, ForestConfig, SyncCredentials};
use passthru_proto::sync::{
    SyncBatch, SyncDone, SyncGroup, SyncObject, SyncRun, SyncUser, Watermark,
};
use passthru_proto::Win32;
use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::users::Admin;
use passthru_testkit::{AccountState, TestUser};
use tokio::sync::mpsc;
use url::Url;
use uuid::Uuid;
use zeroize::Zeroizing;

const USERS: usize = 30;
const PAGE: u32 = 7;

fn directory(f: &BedForest) -> anyhow::Result<Directory> {
    let config = ForestConfig {
        name: f.dns_name.clone(),
        upn_suffixes: vec![f.upn_suffix.clone()],
        domain_controllers: vec![Url::parse(&f.ldaps_url)?],
        ca_file: f.ca_file.clone(),
        bind_dn_template: None,
        tls_server_name: None,
    };
    Ok(Directory::new(vec![config])?.with_sync_page_size(PAGE))
}

fn run(f: &BedForest, watermark: Option<Watermark>) -> SyncRun {
    SyncRun {
        forest: f.dns_name.clone(),
        run_id: Uuid::new_v4(),
        watermark,
        full: false,
        previous_total: None,
        reconcile: true,
    }
}

/// What a run sent and how it ended.
struct Outcome {
    batches: Vec<SyncBatch>,
    done: SyncDone,
}

impl Outcome {
    fn objects(&self) -> impl Iterator<Item = &SyncObject> {
        self.batches.iter().flat_map(|b| b.objects.iter())
    }

    fn users(&self) -> HashMap<String, SyncUser> {
        self.objects()
            .filter_map(|o| match o {
                SyncObject::User(u) => {
                    Some((u.sam_account_name.clone()?.to_lowercase(), u.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn groups(&self) -> HashMap<String, SyncGroup> {
        self.objects()
            .filter_map(|o| match o {
                SyncObject::Group(g) => {
                    Some((g.sam_account_name.clone()?.to_lowercase(), g.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn deleted(&self) -> HashSet<Uuid> {
        self.objects()
            .filter_map(|o| match o {
                SyncObject::Deleted { object_guid } => Some(*object_guid),
                _ => None,
            })
            .collect()
    }

    fn present(&self) -> HashSet<Uuid> {
        self.batches
            .iter()
            .flat_map(|b| b.present.iter().copied())
            .collect()
    }

    fn mentioned(&self) -> HashSet<Uuid> {
        let mut all = self.present();
        for o in self.objects() {
            match o {
                SyncObject::User(u) => all.insert(u.object_guid),
                SyncObject::Group(g) => all.insert(g.object_guid),
                SyncObject::Deleted { object_guid } => all.insert(*object_guid),
                _ => false,
            };
        }
        all
    }

    /// Batch invariants: the run id, at most MAX_BATCH_OBJECTS each, `done` cumulative.
    fn check(&self, run: &SyncRun) -> anyhow::Result<()> {
        let mut total = 0u64;
        for b in &self.batches {
            if b.run_id != run.run_id {
                bail!("a batch of another run");
            }
            let n = (b.objects.len() + b.present.len()) as u64;
            if n == 0 || n as usize > passthru_proto::sync::MAX_BATCH_OBJECTS {
                bail!("a batch of {n} objects");
            }
            total += n;
            if b.done != total {
                bail!("done {} after {total} objects", b.done);
            }
        }
        if self.done.objects != total || self.done.run_id != run.run_id {
            bail!(
                "SyncDone says {} objects, the batches {total}",
                self.done.objects
            );
        }
        Ok(())
    }
}

async fn sync(
    d: &Directory,
    creds: &SyncCredentials,
    run: &SyncRun,
) -> Result<Outcome, DirectoryError> {
    // A small channel: the run waits for the receiver (backpressure).
    let (tx, mut rx) = mpsc::channel(1);
    let collector = tokio::spawn(async move {
        let mut batches = Vec::new();
        while let Some(b) = rx.recv().await {
            batches.push(b);
        }
        batches
    });
    let result = d.sync_run(&run.forest, creds, run, &tx).await;
    drop(tx);
    let batches = collector
        .await
        .map_err(|e| DirectoryError::Unexpected(format!("collector: {e}")))?;
    Ok(Outcome {
        batches,
        done: result?,
    })
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

type Attrs = Vec<(Vec<u8>, HashSet<Vec<u8>>)>;

fn attr(name: &str, values: &[&[u8]]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (
        name.as_bytes().to_vec(),
        values.iter().map(|v| v.to_vec()).collect(),
    )
}

async fn add(admin: &mut Admin, dn: &str, attrs: Attrs) -> anyhow::Result<()> {
    admin
        .ldap()
        .add(dn, attrs)
        .await?
        .success()
        .with_context(|| format!("adding {dn}"))?;
    Ok(())
}

async fn modify(admin: &mut Admin, dn: &str, mods: Vec<Mod<Vec<u8>>>) -> anyhow::Result<()> {
    admin
        .ldap()
        .modify(dn, mods)
        .await?
        .success()
        .with_context(|| format!("modifying {dn}"))?;
    Ok(())
}

fn replace(name: &str, value: &[u8]) -> Mod<Vec<u8>> {
    Mod::Replace(name.as_bytes().to_vec(), HashSet::from([value.to_vec()]))
}

/// The objects of one test: users `{prefix}u0..`, groups, a service account, an OU.
struct Fixture {
    prefix: String,
    base: String,
    users: Vec<TestUser>,
    svc: SyncCredentials,
}

impl Fixture {
    fn sam(&self, i: usize) -> String {
        format!("{}u{i}", self.prefix)
    }

    fn dn(&self, i: usize) -> String {
        self.users[i].dn(&self.base)
    }

    fn group_dn(&self, g: &str) -> String {
        format!("CN={}{g},CN=Users,{}", self.prefix, self.base)
    }

    fn ou(&self) -> String {
        format!("OU={}ou,{}", self.prefix, self.base)
    }
}

/// Accounts expire 2030-01-01 (FILETIME).
const EXPIRES_FILETIME: i64 = 135_379_296_000_000_000;

async fn create(f: &BedForest, admin: &mut Admin) -> anyhow::Result<Fixture> {
    let prefix = format!("s{}", &Uuid::new_v4().simple().to_string()[..6]);
    let base = admin.base_dn().to_string();
    let svc_user = TestUser::new(&format!("{prefix}svc"), &f.upn_suffix, AccountState::Good);
    admin.create_user(&svc_user).await?;
    let mut users = Vec::new();
    for i in 0..USERS {
        let state = if i == 1 {
            AccountState::Disabled
        } else {
            AccountState::Good
        };
        let u = TestUser::with(
            &format!("{prefix}u{i}"),
            &format!("{prefix}u{i}"),
            &f.upn_suffix,
            state,
            bed::secret("Pw"),
            &format!("Given{i} Sur{i}"),
        );
        admin.create_user(&u).await?;
        users.push(u);
    }
    let fx = Fixture {
        prefix,
        base,
        users,
        svc: SyncCredentials {
            account: svc_user.upn.clone(),
            password: Zeroizing::new(svc_user.password.clone()),
        },
    };
    modify(
        admin,
        &fx.dn(0),
        vec![replace(
            "accountExpires",
            EXPIRES_FILETIME.to_string().as_bytes(),
        )],
    )
    .await?;
    let cg = Uuid::parse_str("00112233-4455-6677-8899-aabbccddeeff")?;
    modify(
        admin,
        &fx.dn(2),
        vec![replace("mS-DS-ConsistencyGuid", &cg.to_bytes_le())],
    )
    .await?;
    // gb: u5, u6. ga: u0..u4 and gb (nested).
    let gb = fx.group_dn("gb");
    let (m5, m6) = (fx.dn(5), fx.dn(6));
    add(
        admin,
        &gb,
        vec![
            attr("objectClass", &[b"group"]),
            attr("sAMAccountName", &[format!("{}gb", fx.prefix).as_bytes()]),
            attr("member", &[m5.as_bytes(), m6.as_bytes()]),
        ],
    )
    .await?;
    let mut members: Vec<String> = (0..5).map(|i| fx.dn(i)).collect();
    members.push(gb);
    let member_refs: Vec<&[u8]> = members.iter().map(|m| m.as_bytes()).collect();
    add(
        admin,
        &fx.group_dn("ga"),
        vec![
            attr("objectClass", &[b"group"]),
            attr("sAMAccountName", &[format!("{}ga", fx.prefix).as_bytes()]),
            attr("displayName", &[b"Group A"]),
            attr("member", &member_refs),
        ],
    )
    .await?;
    add(
        admin,
        &fx.ou(),
        vec![attr("objectClass", &[b"organizationalUnit"])],
    )
    .await?;
    Ok(fx)
}

fn guid(users: &HashMap<String, SyncUser>, sam: &str) -> anyhow::Result<Uuid> {
    users
        .get(sam)
        .map(|u| u.object_guid)
        .ok_or_else(|| anyhow!("{sam} was not read"))
}

#[tokio::test]
async fn full_import_then_incremental_runs() -> anyhow::Result<()> {
    let f = bed::corp()?;
    let mut admin = f.admin().await?;
    let fx = create(&f, &mut admin).await?;
    let d = directory(&f)?;

    // Full import, in pages of 7.
    let started = Instant::now();
    let r1 = run(&f, None);
    let full = sync(&d, &fx.svc, &r1).await?;
    let elapsed = started.elapsed();
    full.check(&r1)?;
    assert!(full.done.full && full.done.complete);
    assert!(full.done.objects as usize > USERS + 2);
    println!(
        "full import of {} objects in {:.3} s: {:.0} objects/s (pages of {PAGE}, {} batches)",
        full.done.objects,
        elapsed.as_secs_f64(),
        full.done.objects as f64 / elapsed.as_secs_f64(),
        full.batches.len()
    );
    assert!(
        full.batches.iter().any(|b| b.estimated_total.is_some()),
        "Samba gives a size estimate in the paged-results control"
    );
    let users = full.users();
    let groups = full.groups();
    for i in 0..USERS {
        let sam = fx.sam(i);
        let u = users.get(&sam).ok_or_else(|| anyhow!("{sam} missing"))?;
        assert_eq!(
            u.user_principal_name.as_deref(),
            Some(fx.users[i].upn.as_str())
        );
        assert_eq!(u.mail.as_deref(), Some(fx.users[i].mail.as_str()));
        assert_eq!(
            u.display_name.as_deref(),
            Some(format!("Given{i} Sur{i}").as_str())
        );
        assert_eq!(u.given_name.as_deref(), Some(format!("Given{i}").as_str()));
        assert_eq!(u.surname.as_deref(), Some(format!("Sur{i}").as_str()));
        assert!(
            u.dn.eq_ignore_ascii_case(&fx.dn(i)),
            "{} != {}",
            u.dn,
            fx.dn(i)
        );
        assert_eq!(u.enabled, i != 1, "{sam}");
        assert!(u.usn_changed > 0 && u.usn_changed <= full.done.watermark.usn + 100);
        let changed = u.when_changed.ok_or_else(|| anyhow!("no whenChanged"))?;
        assert!((changed - now()).abs() < 3600, "whenChanged {changed}");
        if i == 0 {
            // 2030-01-01T00:00:00Z.
            assert_eq!(u.account_expires, Some(1_893_456_000));
        } else {
            assert_eq!(u.account_expires, None, "{sam}");
        }
        if i == 2 {
            assert_eq!(
                u.consistency_guid.map(|g| g.to_string()).as_deref(),
                Some("00112233-4455-6677-8899-aabbccddeeff")
            );
            assert_eq!(u.anchor(), u.consistency_guid.unwrap_or_default());
        } else {
            assert_eq!(u.consistency_guid, None);
        }
    }
    assert!(users.contains_key(&format!("{}svc", fx.prefix)));
    // Critical system objects are out of scope.
    assert!(!users.contains_key("administrator") && !users.contains_key("krbtgt"));
    assert!(!groups.contains_key("domain admins"));
    let ga = groups
        .get(&format!("{}ga", fx.prefix))
        .ok_or_else(|| anyhow!("group a missing"))?;
    let gb = groups
        .get(&format!("{}gb", fx.prefix))
        .ok_or_else(|| anyhow!("group b missing"))?;
    let mut want: HashSet<Uuid> = (0..5)
        .map(|i| guid(&users, &fx.sam(i)))
        .collect::<anyhow::Result<_>>()?;
    want.insert(gb.object_guid);
    assert_eq!(ga.members.iter().copied().collect::<HashSet<_>>(), want);
    assert_eq!(ga.members.len(), 6);
    assert_eq!(ga.display_name.as_deref(), Some("Group A"));
    assert!(
        ga.dn.starts_with("CN=") && !ga.dn.contains("<GUID="),
        "{}",
        ga.dn
    );
    let want_b: HashSet<Uuid> = [guid(&users, &fx.sam(5))?, guid(&users, &fx.sam(6))?].into();
    assert_eq!(gb.members.iter().copied().collect::<HashSet<_>>(), want_b);

    // Validation reads ms-DS-ConsistencyGuid too.
    match d.validate(&fx.users[2].upn, &fx.users[2].password).await? {
        passthru_directory::Verdict::Accepted(u) => {
            assert_eq!(u.object_guid, guid(&users, &fx.sam(2))?);
            assert_eq!(
                u.consistency_guid.map(|g| g.to_string()).as_deref(),
                Some("00112233-4455-6677-8899-aabbccddeeff")
            );
        }
        other => bail!("u2 was not accepted: {other:?}"),
    }

    // An incremental run right away reads (almost) nothing of ours.
    let r2 = run(&f, Some(full.done.watermark.clone()));
    let quiet = sync(&d, &fx.svc, &r2).await?;
    quiet.check(&r2)?;
    assert!(!quiet.done.full);
    let quiet_users = quiet.users();
    // u2's successful bind above updated its logon attributes (lastLogon, logonCount),
    // which moves its uSNChanged on Samba: it is read again.
    assert!((0..USERS)
        .filter(|&i| i != 2)
        .all(|i| !quiet_users.contains_key(&fx.sam(i))));
    println!(
        "after a sign-in the user is read again by the next incremental run: {}",
        quiet_users.contains_key(&fx.sam(2))
    );

    // Changes.
    let new_user = TestUser::new(
        &format!("{}new", fx.prefix),
        &f.upn_suffix,
        AccountState::Good,
    );
    admin.create_user(&new_user).await?;
    modify(
        &mut admin,
        &fx.dn(3),
        vec![
            replace("displayName", b"Renamed Three"),
            replace("mail", format!("three@{}", f.upn_suffix).as_bytes()),
        ],
    )
    .await?;
    let upn4 = format!("{}four@{}", fx.prefix, f.upn_suffix);
    modify(
        &mut admin,
        &fx.dn(4),
        vec![replace("userPrincipalName", upn4.as_bytes())],
    )
    .await?;
    let cn5 = format!("{}five", fx.prefix);
    admin
        .ldap()
        .modifydn(&fx.dn(5), &format!("CN={cn5}"), true, None)
        .await?
        .success()?;
    admin
        .ldap()
        .modifydn(
            &fx.dn(6),
            &format!("CN={}", fx.sam(6)),
            true,
            Some(&fx.ou()),
        )
        .await?
        .success()?;
    modify(
        &mut admin,
        &fx.dn(7),
        vec![replace("userAccountControl", b"514")],
    )
    .await?;
    let ga_dn = fx.group_dn("ga");
    modify(
        &mut admin,
        &ga_dn,
        vec![
            Mod::Add(b"member".to_vec(), HashSet::from([fx.dn(8).into_bytes()])),
            Mod::Delete(b"member".to_vec(), HashSet::from([fx.dn(0).into_bytes()])),
        ],
    )
    .await?;
    admin.ldap().delete(&fx.dn(9)).await?.success()?;

    let r3 = run(&f, Some(full.done.watermark.clone()));
    let inc = sync(&d, &fx.svc, &r3).await?;
    inc.check(&r3)?;
    assert!(!inc.done.full);
    assert!(inc.done.watermark.usn > full.done.watermark.usn);
    assert_eq!(inc.done.watermark.dc, full.done.watermark.dc);
    let changed = inc.users();
    let g = |i: usize| guid(&users, &fx.sam(i));
    let new = changed
        .get(&new_user.sam.to_lowercase())
        .ok_or_else(|| anyhow!("the new user was not read"))?;
    assert_eq!(
        new.user_principal_name.as_deref(),
        Some(new_user.upn.as_str())
    );
    let u3 = changed
        .get(&fx.sam(3))
        .ok_or_else(|| anyhow!("u3 not read"))?;
    assert_eq!(u3.display_name.as_deref(), Some("Renamed Three"));
    assert_eq!(u3.mail, Some(format!("three@{}", f.upn_suffix)));
    assert!(u3.usn_changed > full.done.watermark.usn);
    let u4 = changed
        .get(&fx.sam(4))
        .ok_or_else(|| anyhow!("u4 not read"))?;
    assert_eq!(u4.user_principal_name.as_deref(), Some(upn4.as_str()));
    assert_eq!(u4.object_guid, g(4)?);
    let u5 = changed
        .get(&fx.sam(5))
        .ok_or_else(|| anyhow!("u5 not read"))?;
    assert!(
        u5.dn.starts_with(&format!("CN={cn5},CN=Users,")),
        "{}",
        u5.dn
    );
    assert_eq!(u5.object_guid, g(5)?);
    let u6 = changed
        .get(&fx.sam(6))
        .ok_or_else(|| anyhow!("u6 not read"))?;
    assert!(
        u6.dn.to_lowercase().ends_with(&fx.ou().to_lowercase()),
        "{}",
        u6.dn
    );
    let u7 = changed
        .get(&fx.sam(7))
        .ok_or_else(|| anyhow!("u7 not read"))?;
    assert!(!u7.enabled);
    // Group membership changes move the group's uSNChanged on Samba.
    let inc_groups = inc.groups();
    let ga2 = inc_groups
        .get(&format!("{}ga", fx.prefix))
        .ok_or_else(|| anyhow!("group a not read after its members changed"))?;
    assert!(ga2.usn_changed > ga.usn_changed);
    let members: HashSet<Uuid> = ga2.members.iter().copied().collect();
    assert!(members.contains(&g(8)?) && !members.contains(&g(0)?));
    assert_eq!(members.len(), 6);
    // Untouched users are not read again.
    for i in [10, 11, 12, 20] {
        assert!(!changed.contains_key(&fx.sam(i)), "u{i} read again");
    }
    assert!(
        !changed.contains_key(&fx.sam(9)),
        "the deleted user was read"
    );
    // The deletion: by reconciliation (a plain account sees no tombstones on Samba), or
    // as a tombstone.
    let deleted9 = g(9)?;
    if inc.done.complete {
        let mentioned = inc.mentioned();
        assert!(
            !mentioned.contains(&deleted9),
            "the deleted user is still mentioned"
        );
        for i in [0, 1, 2, 10, 29] {
            assert!(mentioned.contains(&g(i)?), "u{i} not mentioned");
        }
        assert!(mentioned.contains(&gb.object_guid));
        // Present holds only objects not sent in full.
        assert!(!inc.present().contains(&g(3)?));
        println!("incremental run: the deletion was found by reconciliation");
    } else {
        assert!(
            inc.deleted().contains(&deleted9),
            "the deletion was not seen"
        );
        println!("incremental run: the deletion was read as a tombstone");
    }

    // Asked not to reconcile (the cloud does so in large forests between reconciling runs),
    // the plain account's run lists only changes and is not complete.
    let quiet = SyncRun {
        reconcile: false,
        ..run(&f, Some(inc.done.watermark.clone()))
    };
    let q = sync(&d, &fx.svc, &quiet).await?;
    q.check(&quiet)?;
    if inc.done.complete {
        assert!(!q.done.complete && !q.done.full, "{:?}", q.done);
        assert!(q.present().is_empty());
    }

    // With an administrator, tombstones are visible: deletions come as Deleted.
    admin.ldap().delete(&fx.dn(11)).await?.success()?;
    let admin_creds = SyncCredentials {
        account: f.admin_upn.clone(),
        password: Zeroizing::new(f.admin_password.clone()),
    };
    let r4 = run(&f, Some(inc.done.watermark.clone()));
    let tomb = sync(&d, &admin_creds, &r4).await?;
    tomb.check(&r4)?;
    assert!(!tomb.done.full && !tomb.done.complete);
    assert!(
        tomb.deleted().contains(&g(11)?),
        "the tombstone was not read"
    );
    assert!(
        !tomb.deleted().contains(&deleted9),
        "an old tombstone was read again"
    );
    assert!(tomb.present().is_empty());

    // A watermark of another DC: a full import.
    let other = Watermark {
        dc: Uuid::new_v4().to_string(),
        usn: inc.done.watermark.usn,
    };
    let r5 = SyncRun {
        previous_total: Some(full.done.objects),
        ..run(&f, Some(other))
    };
    let again = sync(&d, &fx.svc, &r5).await?;
    again.check(&r5)?;
    assert!(again.done.full && again.done.complete);
    assert!(again.users().contains_key(&fx.sam(10)));
    assert!(!again.users().contains_key(&fx.sam(9)));
    // Asked for a full import with a good watermark: full too.
    let r6 = SyncRun {
        full: true,
        ..run(&f, Some(inc.done.watermark.clone()))
    };
    let forced = sync(&d, &fx.svc, &r6).await?;
    assert!(forced.done.full && forced.done.complete);
    Ok(())
}

#[tokio::test]
async fn refused_service_account_closed_receiver_and_unknown_forest() -> anyhow::Result<()> {
    let f = bed::corp()?;
    let mut admin = f.admin().await?;
    let svc = TestUser::new(
        &format!("s{}bad", &Uuid::new_v4().simple().to_string()[..6]),
        &f.upn_suffix,
        AccountState::Good,
    );
    admin.create_user(&svc).await?;
    let d = directory(&f)?;
    let wrong = SyncCredentials {
        account: svc.upn.clone(),
        password: Zeroizing::new(bed::secret("Wr0ng")),
    };
    let r = run(&f, None);
    match sync(&d, &wrong, &r).await {
        Err(DirectoryError::ServiceAccount { win32, forest, .. }) => {
            assert_eq!(win32, Some(Win32::LogonFailure));
            assert_eq!(win32.map(Win32::code), Some(1326));
            assert_eq!(forest, f.dns_name);
        }
        other => bail!("expected ServiceAccount, got {:?}", other.map(|o| o.done)),
    }
    let e = DirectoryError::ServiceAccount {
        forest: "f".into(),
        account: "a".into(),
        win32: Some(Win32::LogonFailure),
        detail: "data 52e".into(),
    };
    assert!(e.to_string().contains("1326"), "{e}");
    assert!(!format!("{wrong:?}").contains(wrong.password.as_str()));

    let good = SyncCredentials {
        account: svc.upn.clone(),
        password: Zeroizing::new(svc.password.clone()),
    };
    // The cloud connection ended: the receiver is gone.
    let (tx, rx) = mpsc::channel(1);
    drop(rx);
    let res = d.sync_run(&f.dns_name, &good, &r, &tx).await;
    assert!(
        matches!(&res, Err(DirectoryError::Abandoned { .. })),
        "{res:?}"
    );
    let res = d.sync_run("nowhere.test", &good, &r, &tx).await;
    assert!(matches!(&res, Err(DirectoryError::Config(_))), "{res:?}");
    // The DC was not marked down by any of this.
    assert!(d.health().iter().all(|h| h.up));

    // A dead first DC: marked down, the run goes to the next one.
    let config = ForestConfig {
        name: f.dns_name.clone(),
        upn_suffixes: vec![f.upn_suffix.clone()],
        domain_controllers: vec![
            Url::parse("ldaps://127.0.0.1:1")?,
            Url::parse(&f.ldaps_url)?,
        ],
        ca_file: f.ca_file.clone(),
        bind_dn_template: None,
        tls_server_name: None,
    };
    let two = Directory::new(vec![config])?;
    let out = sync(&two, &good, &r).await?;
    assert!(out.done.full && out.done.complete);
    assert_eq!(Url::parse(&out.done.dc_url)?, Url::parse(&f.ldaps_url)?);
    let health = two.health();
    assert!(!health[0].up && health[1].up, "{health:?}");
    Ok(())
}

/// The import rate with more objects: 1,000 users (created once per forest, disabled,
/// without passwords: about 20 adds a second on Samba) and a group holding them all, read
/// in pages of 500. Ignored by default (creating the users takes about a minute); run with
/// `cargo test -p passthru-directory --test sync -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn bulk_import_rate() -> anyhow::Result<()> {
    const BULK: usize = 1000;
    let f = bed::corp()?;
    let mut admin = f.admin().await?;
    let base = admin.base_dn().to_string();
    let dn = |i: usize| format!("CN=bulk{i},CN=Users,{base}");
    let started = Instant::now();
    let mut created = 0;
    for i in 0..BULK {
        let sam = format!("bulk{i}");
        let res = admin
            .ldap()
            .add(
                &dn(i),
                vec![
                    attr("objectClass", &[b"user"]),
                    attr("sAMAccountName", &[sam.as_bytes()]),
                    attr(
                        "userPrincipalName",
                        &[format!("{sam}@{}", f.upn_suffix).as_bytes()],
                    ),
                ],
            )
            .await?;
        match res.rc {
            0 => created += 1,
            68 => {} // already exists
            rc => bail!("adding {}: {rc} {}", dn(i), res.text),
        }
    }
    let members: Vec<String> = (0..BULK).map(dn).collect();
    let refs: Vec<&[u8]> = members.iter().map(|m| m.as_bytes()).collect();
    let group = format!("CN=bulkgroup,CN=Users,{base}");
    let res = admin
        .ldap()
        .add(
            &group,
            vec![
                attr("objectClass", &[b"group"]),
                attr("sAMAccountName", &[b"bulkgroup"]),
                attr("member", &refs),
            ],
        )
        .await?;
    if res.rc != 0 && res.rc != 68 {
        bail!("adding the group: {} {}", res.rc, res.text);
    }
    println!(
        "created {created} users in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let svc = TestUser::new(
        &format!("s{}blk", &Uuid::new_v4().simple().to_string()[..6]),
        &f.upn_suffix,
        AccountState::Good,
    );
    admin.create_user(&svc).await?;
    let creds = SyncCredentials {
        account: svc.upn.clone(),
        password: Zeroizing::new(svc.password.clone()),
    };
    let d = directory(&f)?.with_sync_page_size(500);
    for _ in 0..2 {
        let r = run(&f, None);
        let started = Instant::now();
        let out = sync(&d, &creds, &r).await?;
        let secs = started.elapsed().as_secs_f64();
        out.check(&r)?;
        let g = out
            .groups()
            .remove("bulkgroup")
            .ok_or_else(|| anyhow!("bulkgroup not read"))?;
        assert_eq!(g.members.len(), BULK, "every member, no ranged retrieval");
        println!(
            "full import of {} objects in {secs:.3} s: {:.0} objects/s, {} batches, estimate {:?}",
            out.done.objects,
            out.done.objects as f64 / secs,
            out.batches.len(),
            out.batches.first().and_then(|b| b.estimated_total)
        );
    }
    Ok(())
}
