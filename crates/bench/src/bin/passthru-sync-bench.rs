//! `passthru-sync-bench`: directory sync at scale (issue targets: the initial sync of 20,000
//! users in at most 60 s on this machine; an incremental change visible in the cloud at most
//! `sync_interval_seconds` + 2 s after it is made in AD).
//!
//! It provisions its own Samba forest on a free loopback address (in a temporary directory
//! it removes at the end), then:
//! 1. adds `--users` users (disabled, without a password: password hashing is Samba's
//!    slowest part) and 10 groups holding them, over `--connections` concurrent LDAPS
//!    connections (not measured: the add rate is printed);
//! 2. creates a plain service account and its password file (mode 0600), starts the cloud
//!    (no agent, no pass-through) and one agent syncing the forest every `--interval` s;
//! 3. measures the initial sync: from the agent process start, and from the agent showing
//!    as active, until `GET /{tenant}/admin/sync` shows a successful run with every user
//!    (polled every 100 ms through the admin API with one token and one client);
//! 4. `--changes` times, at a random moment within the interval, changes one user's
//!    displayName in AD and polls `GET /{tenant}/admin/users/{upn}` every 50 ms until the new
//!    name shows; prints each latency, p50, max and the ratio of the max to interval + 2 s;
//! 5. prints the cloud's and the agent's resident memory and the cloud store's size.
//!
//! Run it through `bash scripts/bench-sync.sh` (release build).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use passthru_bench::{rss_mib, thousands, AdminApi, OwnForest};
use passthru_testkit::bed::BedForest;
use passthru_testkit::fixture::{AgentStage, PtaSetup};
use passthru_testkit::procs::{fresh_dir, ForestEntry};
use passthru_testkit::users::Admin;
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

/// The initial-sync target, seconds.
const INITIAL_TARGET_S: f64 = 60.0;
/// The slack of the incremental target above the interval, seconds.
const INCREMENTAL_SLACK_S: f64 = 2.0;
/// Groups created (each user is a member of one).
const GROUPS: usize = 10;

struct Opts {
    users: usize,
    interval: u64,
    changes: usize,
    connections: usize,
}

fn parse_opts() -> anyhow::Result<Opts> {
    let mut o = Opts {
        users: 20_000,
        interval: 5,
        changes: 10,
        connections: 6,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut num = |name: &str| -> anyhow::Result<u64> {
            args.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| anyhow!("{name} takes a number"))
        };
        match a.as_str() {
            "--users" => o.users = num("--users")?.max(1) as usize,
            "--interval" => o.interval = num("--interval")?.max(1),
            "--changes" => o.changes = num("--changes")? as usize,
            "--connections" => o.connections = num("--connections")?.max(1) as usize,
            other => bail!(
                "unknown argument {other}; use --users N --interval S --changes K [--connections C]"
            ),
        }
    }
    Ok(o)
}

fn attr(name: &str, values: &[&[u8]]) -> (Vec<u8>, HashSet<Vec<u8>>) {
    (
        name.as_bytes().to_vec(),
        values.iter().map(|v| v.to_vec()).collect(),
    )
}

fn user_dn(i: usize, base: &str) -> String {
    format!("CN=bu{i:05},CN=Users,{base}")
}

/// Adds users `0..n` over `connections` concurrent LDAPS connections; returns how many were
/// added (an existing one counts as added).
async fn add_users(bed: &BedForest, n: usize, connections: usize) -> anyhow::Result<usize> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (bed, next) = (bed.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut admin = bed.admin().await?;
            let base = admin.base_dn().to_string();
            let mut added = 0usize;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let sam = format!("bu{i:05}");
                let upn = format!("{sam}@{}", bed.upn_suffix);
                let display = format!("Bench User {i:05}");
                let given = format!("Bench{i:05}");
                let res = admin
                    .ldap()
                    .add(
                        &user_dn(i, &base),
                        vec![
                            attr("objectClass", &[b"user"]),
                            attr("sAMAccountName", &[sam.as_bytes()]),
                            attr("userPrincipalName", &[upn.as_bytes()]),
                            attr("displayName", &[display.as_bytes()]),
                            attr("givenName", &[given.as_bytes()]),
                            attr("sn", &[b"User"]),
                            attr("mail", &[upn.as_bytes()]),
                            attr("userAccountControl", &[b"514"]),
                        ],
                    )
                    .await?;
                match res.rc {
                    0 | 68 => added += 1, // 68: already exists
                    rc => bail!("adding {}: {rc} {}", user_dn(i, &base), res.text),
                }
            }
            admin.close().await;
            anyhow::Ok(added)
        }));
    }
    let mut added = 0;
    for w in workers {
        added += w.await??;
    }
    Ok(added)
}

/// Adds [`GROUPS`] groups; user `i` is a member of group `i % GROUPS`.
async fn add_groups(admin: &mut Admin, n: usize) -> anyhow::Result<()> {
    let base = admin.base_dn().to_string();
    for g in 0..GROUPS {
        let members: Vec<String> = (g..n).step_by(GROUPS).map(|i| user_dn(i, &base)).collect();
        let refs: Vec<&[u8]> = members.iter().map(|m| m.as_bytes()).collect();
        let name = format!("benchgroup{g}");
        let mut attrs = vec![
            attr("objectClass", &[b"group"]),
            attr("sAMAccountName", &[name.as_bytes()]),
        ];
        if !refs.is_empty() {
            attrs.push(attr("member", &refs));
        }
        let res = admin
            .ldap()
            .add(&format!("CN={name},CN=Users,{base}"), attrs)
            .await?;
        if res.rc != 0 && res.rc != 68 {
            bail!("adding {name}: {} {}", res.rc, res.text);
        }
    }
    Ok(())
}

/// The service account (a plain user) and its password file (mode 0600) in `dir`.
async fn service_account(
    bed: &BedForest,
    admin: &mut Admin,
    dir: &Path,
) -> anyhow::Result<(String, PathBuf)> {
    let user = TestUser::new("svcbench", &bed.upn_suffix, AccountState::Good);
    admin.create_user(&user).await?;
    std::fs::create_dir_all(dir)?;
    let file = dir.join("password");
    std::fs::write(&file, format!("{}\n", user.password))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok((user.upn, file))
}

/// The sync state of `forest` (`GET /{tenant}/admin/sync`).
async fn forest_state(api: &AdminApi, forest: &str) -> anyhow::Result<Value> {
    let v = api
        .get("sync")
        .await?
        .ok_or_else(|| anyhow!("no sync status"))?;
    Ok(v["forests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["forest"].as_str() == Some(forest))
        .cloned()
        .unwrap_or(Value::Null))
}

/// How many agents show as active (`GET /{tenant}/admin/agents`).
async fn active_agents(api: &AdminApi) -> anyhow::Result<usize> {
    let v = api.get("agents").await?.unwrap_or(Value::Null);
    Ok(v["agents"]
        .as_array()
        .map(|a| a.iter().filter(|x| x["status"] == "Active").count())
        .unwrap_or(0))
}

/// Bytes of the files in `dir` (recursively) whose name contains `.db` or `.sqlite`.
fn store_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            total += store_bytes(&path);
        } else {
            let name = e.file_name().to_string_lossy().to_string();
            if name.contains(".db") || name.contains(".sqlite") {
                total += e.metadata().map(|m| m.len()).unwrap_or(0);
            }
        }
    }
    total
}

/// The `millis=` of the cloud log's last "sync run finished" line with `full=true`.
fn logged_full_run_millis(log: &str) -> Option<u64> {
    log.lines()
        .filter(|l| l.contains("sync run finished") && l.contains("full=true"))
        .filter_map(|l| {
            l.split_whitespace()
                .find_map(|w| w.strip_prefix("millis="))
                .and_then(|v| v.parse().ok())
        })
        .next_back()
}

/// A random number in `0..n` (uuid's random bits: no other crate needed).
fn random_below(n: u64) -> u64 {
    (uuid::Uuid::new_v4().as_u128() % u128::from(n.max(1))) as u64
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let o = parse_opts()?;
    println!("forest: provisioning BENCH.EXAMPLE.TEST on a free loopback address ...");
    let started = Instant::now();
    let own = OwnForest::provision("syncbench", "BENCH.EXAMPLE.TEST", "BENCH").await?;
    let bed = own.bed.clone();
    println!("forest: ready in {:.1} s", started.elapsed().as_secs_f64());

    // 1. Users and groups (setup, not measured).
    let started = Instant::now();
    let added = add_users(&bed, o.users, o.connections).await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "setup: {} users added over {} LDAPS connections in {secs:.1} s ({:.0} adds/s; disabled, no password)",
        thousands(added as u64),
        o.connections,
        added as f64 / secs
    );
    let mut admin = bed.admin().await?;
    let started = Instant::now();
    add_groups(&mut admin, o.users).await?;
    println!(
        "setup: {GROUPS} groups of ~{} members each in {:.1} s",
        thousands((o.users / GROUPS) as u64),
        started.elapsed().as_secs_f64()
    );

    // 2. Service account, cloud, agent.
    let (account, password_file) =
        service_account(&bed, &mut admin, &own.root().join("svc")).await?;
    let run_dir = fresh_dir("bench-sync")?;
    let t = PtaSetup::new(&run_dir, &bed)
        .without_app()
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let api = AdminApi::new(&t.cloud).await?;
    let entry = ForestEntry::for_forest(&bed).with_sync(&account, &password_file, o.interval);
    let mut agent = t.register_agent(&[entry])?;

    // 3. The initial sync.
    // The bench's users (the service account is synced too; Administrator, a critical
    // system object, is not).
    let want_users = o.users as i64;
    let spawned = Instant::now();
    agent.run()?;
    let mut active_at = None;
    let deadline = Duration::from_secs(900);
    let mut last_report = Instant::now();
    let state = loop {
        if active_at.is_none() && active_agents(&api).await? >= 1 {
            active_at = Some(spawned.elapsed());
        }
        let f = forest_state(&api, &bed.dns_name).await?;
        if f["last_success_at"].is_i64() && f["users"].as_i64().unwrap_or(0) >= want_users {
            break f;
        }
        if let Some(e) = f["last_error"].as_str() {
            bail!("the sync run failed: {e}");
        }
        if spawned.elapsed() > deadline {
            bail!("no complete sync after {deadline:?}: {f}");
        }
        if last_report.elapsed() > Duration::from_secs(5) {
            last_report = Instant::now();
            println!(
                "  ... {:.0} s: {} objects read, {} users in the cloud",
                spawned.elapsed().as_secs_f64(),
                f["running"]["objects"],
                f["users"]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let from_spawn = spawned.elapsed().as_secs_f64();
    let active = active_at.unwrap_or_default().as_secs_f64();
    let measured = from_spawn - active;
    let users = state["users"].as_i64().unwrap_or(0);
    let groups = state["groups"].as_i64().unwrap_or(0);
    let objects = state["last_objects"].as_i64().unwrap_or(users + groups);
    let agent_millis = logged_full_run_millis(&t.cloud.log());
    println!(
        "initial sync: {} users + {} groups in {measured:.1} s ({:.0} objects/s): {:.2}x of the {INITIAL_TARGET_S:.0} s target",
        thousands(users as u64),
        groups,
        objects as f64 / measured,
        measured / INITIAL_TARGET_S
    );
    println!(
        "  (from the agent's start {from_spawn:.1} s, active after {active:.1} s; the agent's run took {}; {} objects read)",
        agent_millis
            .map(|m| format!("{:.1} s", m as f64 / 1000.0))
            .unwrap_or_else(|| "?".into()),
        thousands(objects as u64)
    );
    let (cloud_rss, cloud_hwm) = rss_mib(t.cloud.pid());
    let (agent_rss, agent_hwm) = rss_mib(agent.pid());
    println!(
        "memory after the import: cloud RSS {cloud_rss:.0} MiB (peak {cloud_hwm:.0}), agent RSS {agent_rss:.0} MiB (peak {agent_hwm:.0}); cloud store {:.1} MiB",
        store_bytes(&t.cloud.data_dir) as f64 / (1024.0 * 1024.0)
    );

    // 4. Incremental changes.
    let mut latencies = Vec::new();
    let base = bed.base_dn.clone();
    for k in 0..o.changes {
        tokio::time::sleep(Duration::from_millis(random_below(o.interval * 1000))).await;
        let i = random_below(o.users as u64) as usize;
        let upn = format!("bu{i:05}@{}", bed.upn_suffix);
        let name = format!(
            "Renamed {k} {}",
            &uuid::Uuid::new_v4().simple().to_string()[..6]
        );
        let changed = Instant::now();
        admin
            .replace_attrs(&user_dn(i, &base), &[("displayName", &name)])
            .await?;
        let limit = Duration::from_secs(o.interval * 4 + 30);
        loop {
            let u = api.get(&format!("users/{upn}")).await?;
            if u.as_ref()
                .is_some_and(|u| u["display_name"] == name.as_str())
            {
                break;
            }
            if changed.elapsed() > limit {
                bail!("change {k} of {upn} not seen after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let secs = changed.elapsed().as_secs_f64();
        println!("  change {}: {upn} visible after {secs:.2} s", k + 1);
        latencies.push(secs);
    }
    if !latencies.is_empty() {
        latencies.sort_by(f64::total_cmp);
        let p50 = latencies[(latencies.len() - 1) / 2];
        let max = latencies[latencies.len() - 1];
        let budget = o.interval as f64 + INCREMENTAL_SLACK_S;
        println!(
            "incremental: {} changes, p50 {p50:.2} s, max {max:.2} s (interval {} s, target <= {budget:.0} s): max {:.2}x of the target",
            latencies.len(),
            o.interval,
            max / budget
        );
    }
    let last = forest_state(&api, &bed.dns_name).await?;
    if let Some(n) = last["last_objects"].as_i64() {
        println!(
            "  (the last run read {} objects: incremental runs read the changes; a run that lists every objectGUID for deletions comes at most every 10 times its duration)",
            thousands(n as u64)
        );
    }
    let (cloud_rss, cloud_hwm) = rss_mib(t.cloud.pid());
    let (agent_rss, agent_hwm) = rss_mib(agent.pid());
    println!(
        "memory at the end: cloud RSS {cloud_rss:.0} MiB (peak {cloud_hwm:.0}), agent RSS {agent_rss:.0} MiB (peak {agent_hwm:.0}); cloud store {:.1} MiB",
        store_bytes(&t.cloud.data_dir) as f64 / (1024.0 * 1024.0)
    );

    admin.close().await;
    drop(agent);
    drop(t);
    let _ = std::fs::remove_dir_all(&run_dir);
    drop(own);
    Ok(())
}
