//! Faults of a service of several cloud instances (one PostgreSQL store, one nats-server),
//! with the real agent and the Samba forest:
//!
//! - the directory-sync lease: with agents for one forest at two instances, one agent syncs
//!   it at a time; when the instance of the agent that syncs dies (kill -9), the other agent
//!   takes the forest over within 2 sync intervals;
//! - an instance killed (kill -9) under a load of sign-ins at the two others: its agent is on
//!   another instance within 5 s and no sign-in fails (they wait for the agent);
//! - PostgreSQL stopped and started: sign-ins fail fast with a server error while it is down
//!   and work again within 5 s of its return;
//! - nats-server killed and started: sign-ins at the agent's instance keep working;
//!   relayed ones at another instance work again within 5 s of its return.
//!
//! In both outages the other instance's `/readyz` answers 503 naming what is down (`store:
//! unreachable`, `bus: disconnected`) and 200 again after.
//!
//! Every wait is bounded; everything is on loopback.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure};
use passthru_testkit::bed::{self, BedForest};
use passthru_testkit::cluster::{NatsServer, PrivatePostgres, TestDatabase};
use passthru_testkit::fixture::{AgentStage, PtaSetup};
use passthru_testkit::http::SignInClient;
use passthru_testkit::procs::{fresh_dir, recorded_secret, secret_file, Agent, Cloud, ForestEntry};
use passthru_testkit::users::Admin;
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

/// The agents' sync interval in the lease case.
const INTERVAL: u64 = 2;
/// A sync run of the test forest, from the lease's grant to its end (an incremental run
/// reads a few objects; a busy 2-core machine).
const RUN_TIME: Duration = Duration::from_secs(3);
/// The tenant's sign-in deadline (`request_deadline_ms`, its default).
const DEADLINE: Duration = Duration::from_secs(10);
/// What a client may see beyond the deadline: the cloud's own work around it.
const MARGIN: Duration = Duration::from_secs(1);
/// How soon a sign-in fails while PostgreSQL is down.
const FAIL_FAST: Duration = Duration::from_secs(6);
/// How soon an agent whose instance died is connected to another (issue bound).
const RECONNECT: Duration = Duration::from_secs(5);
/// How soon sign-ins work again after PostgreSQL or nats-server is back (issue bound).
const RECOVERY: Duration = Duration::from_secs(5);

/// `GET http://ADDR/readyz` on an instance's management listener: the status and the body.
/// (`ca`: the deployment's CA file; the tests' client is made with one, and used on plain
/// HTTP here.)
async fn readyz(ca: &std::path::Path, addr: &str) -> anyhow::Result<(u16, String)> {
    let http = passthru_testkit::http::client(ca)?;
    let r = http
        .get(format!("http://{addr}/readyz"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    Ok((r.status().as_u16(), r.text().await?))
}

/// Polls `/readyz` at `addr` until it answers `status` (within `within`); returns the body.
async fn wait_readyz(
    ca: &std::path::Path,
    addr: &str,
    status: u16,
    within: Duration,
) -> anyhow::Result<String> {
    let started = Instant::now();
    loop {
        let (got, body) = readyz(ca, addr).await?;
        if got == status {
            return Ok(body);
        }
        if started.elapsed() > within {
            bail!("/readyz still answers {got} ({body:?}) after {within:?}, not {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Another instance of `cloud`'s deployment in `dir`, with its own management listener
/// (returned: HOST:PORT).
fn instance_with_metrics(cloud: &Cloud, dir: &std::path::Path) -> anyhow::Result<(Cloud, String)> {
    let addr = format!("127.0.0.1:{}", passthru_testkit::cluster::free_port()?);
    let mut b = cloud.copy_for_instance(dir)?;
    b.add_serve_args(&["--metrics-listen", &addr]);
    b.serve()?;
    Ok((b, addr))
}

fn client_at(cloud: &Cloud, client_id: &str) -> anyhow::Result<SignInClient> {
    SignInClient::new(&cloud.ca_file(), &cloud.url, client_id)
}

/// Runs a blocking step (a process, an admin command) without stalling the other tasks.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Polls `check` every 100 ms until it gives a value, or fails after `timeout` with the last
/// error; returns the value and how long it took.
async fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut check: impl FnMut() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<(T, Duration)> {
    let started = Instant::now();
    loop {
        let last = match blocking(&mut check) {
            Ok(Some(v)) => return Ok((v, started.elapsed())),
            Ok(None) => None,
            Err(e) => Some(e),
        };
        if started.elapsed() > timeout {
            return Err(match last {
                Some(e) => e.context(format!("{what}: not within {timeout:?}")),
                None => anyhow!("{what}: not within {timeout:?}"),
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A service account in `forest` and its password file (outside the scanned directories).
async fn service_account(
    forest: &BedForest,
    admin: &mut Admin,
) -> anyhow::Result<(String, PathBuf)> {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let user = TestUser::with(
        &format!("svc{}", &tag[..8]),
        &format!("svc{}", &tag[..8]),
        &forest.upn_suffix,
        AccountState::Good,
        recorded_secret("Svc"),
        "Sync service",
    );
    admin.create_user(&user).await?;
    Ok((user.upn, secret_file(&user.password)?))
}

/// The forest's entry in `sync status` at `cloud`.
fn forest_state(cloud: &Cloud, forest: &BedForest) -> anyhow::Result<Value> {
    let status: Value = serde_json::from_str(&cloud.admin(&["--json", "sync", "status"])?)?;
    status["forests"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["forest"].as_str() == Some(forest.dns_name.as_str()))
        .cloned()
        .ok_or_else(|| anyhow!("{} is not in sync status: {status}", forest.dns_name))
}

/// The agent that holds the forest's sync lease, per `sync status` at `cloud`.
fn holder(cloud: &Cloud, forest: &BedForest) -> anyhow::Result<String> {
    Ok(forest_state(cloud, forest)?["holder_agent_id"]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Sync runs of `forest` the agent finished (its log's "sync of FOREST done" lines).
fn runs_done(agent: &Agent, forest: &BedForest) -> usize {
    let done = format!("sync of {} done", forest.dns_name);
    agent.log().lines().filter(|l| l.contains(&done)).count()
}

/// The port of `url` (`https://127.0.0.1:PORT`).
fn port_of(url: &str) -> &str {
    url.rsplit(':').next().unwrap_or_default()
}

/// The address of each connection the agent made (its log's "connected to the cloud at"
/// lines), oldest first.
fn connections(agent: &Agent) -> Vec<String> {
    agent
        .log()
        .lines()
        .filter_map(|l| l.split("connected to the cloud at ").nth(1))
        .map(|rest| {
            rest.split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// Three instances; two agents with sync for one forest, the first connected to A only, the
/// second to B only (C has none). One agent syncs at a time: `sync status` names one holder
/// throughout and only that agent finishes runs. A (or B) is killed (-9) with the holder's
/// agent on it: the other agent holds the lease within 2 sync intervals and finishes a run
/// (which brings a user created after the kill) soon after.
#[tokio::test(flavor = "multi_thread")]
async fn the_sync_lease_moves_to_another_instance_when_its_instance_dies() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let (account, file) = service_account(&corp, &mut admin).await?;
    let dir = fresh_dir("cluster-sync-lease")?;
    let db = TestDatabase::create("cluster_sync_lease")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let mut t = PtaSetup::new(&dir, &corp)
        .store(&db.url)
        .bus(&nats.url())
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let mut b = t.cloud.another_instance(&dir.join("b"))?;
    let c = t.cloud.another_instance(&dir.join("c"))?;
    let entry = [ForestEntry::for_forest(&corp).with_sync(&account, &file, INTERVAL)];
    let mut at_a = t.register_agent(&entry)?;
    at_a.set_cloud_urls(&[&t.cloud.url])?;
    let mut at_b = t.register_agent(&entry)?;
    at_b.set_cloud_urls(&[&b.url])?;
    at_a.run()?;
    at_b.run()?;
    c.wait_active_agents(2, Duration::from_secs(30))?;
    // The first run (a full import) is done by one of them.
    wait_for(Duration::from_secs(60), "the first sync run", || {
        Ok((runs_done(&at_a, &corp) + runs_done(&at_b, &corp) > 0).then_some(()))
    })
    .await?;
    let first = blocking(|| holder(&c, &corp))?;
    let (a_id, b_id) = (at_a.id()?, at_b.id()?);
    ensure!(first == a_id || first == b_id, "holder {first:?}");
    // Over 4 intervals: the same holder all along, and only its agent runs.
    let watch_until = Instant::now() + Duration::from_secs(4 * INTERVAL);
    let before = (runs_done(&at_a, &corp), runs_done(&at_b, &corp));
    while Instant::now() < watch_until {
        for inst in [&t.cloud, &b, &c] {
            let now = blocking(|| holder(inst, &corp))?;
            ensure!(now == first, "the holder changed from {first} to {now}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let after = (runs_done(&at_a, &corp), runs_done(&at_b, &corp));
    let (holder_runs, other_runs) = if first == a_id {
        (after.0 - before.0, after.1)
    } else {
        (after.1 - before.1, after.0)
    };
    eprintln!(
        "over {} s: {holder_runs} runs by the holder, {other_runs} by the other agent",
        4 * INTERVAL
    );
    ensure!(
        holder_runs >= 2,
        "the holder ran {holder_runs} times in 4 intervals"
    );
    ensure!(other_runs == 0, "the other agent ran {other_runs} times");

    // The holder's instance dies; a user appears in AD meanwhile.
    let (survivor, other_agent, other_id) = if first == a_id {
        t.cloud.kill9();
        (&b, &at_b, b_id.clone())
    } else {
        b.kill9();
        (&t.cloud, &at_a, a_id.clone())
    };
    let killed = Instant::now();
    let newcomer = TestUser::new(
        &format!("lease{}", &uuid::Uuid::new_v4().simple().to_string()[..6]),
        &corp.upn_suffix,
        AccountState::Good,
    );
    admin.create_user(&newcomer).await?;
    wait_for(
        Duration::from_secs(2 * INTERVAL) + RUN_TIME,
        "the lease at the other agent",
        || Ok((holder(&c, &corp)? == other_id).then_some(())),
    )
    .await?;
    let moved = killed.elapsed();
    wait_for(
        Duration::from_secs(2 * INTERVAL) + RUN_TIME,
        "a run by the other agent",
        || Ok((runs_done(other_agent, &corp) > 0).then_some(())),
    )
    .await?;
    let ran = killed.elapsed();
    eprintln!("after the kill: lease moved in {moved:?}, first run done in {ran:?}");
    ensure!(
        moved <= Duration::from_secs(2 * INTERVAL),
        "the lease took {moved:?} to move (2 intervals: {} s)",
        2 * INTERVAL
    );
    ensure!(
        ran <= Duration::from_secs(2 * INTERVAL) + RUN_TIME,
        "the other agent's first run ended {ran:?} after the kill"
    );
    // Its runs bring what changed in AD: the user created after the kill.
    wait_for(
        Duration::from_secs(2 * INTERVAL) + RUN_TIME,
        "the newcomer synced",
        || {
            let out = survivor.admin_as(
                &survivor.tenant,
                &survivor.admin_upn,
                &survivor.admin_password,
                &["--json", "user", "show", &newcomer.upn],
            )?;
            Ok(out.status.success().then_some(()))
        },
    )
    .await?;
    admin.delete(&newcomer.dn(&corp.base_dn)).await?;
    at_a.stop_with(15);
    at_b.stop_with(15);
    let _ = std::fs::remove_dir_all(file.parent().unwrap_or(&file));
    Ok(())
}

/// One password grant: the answer (or the transport error), where and how long it took.
#[derive(Debug)]
struct Sample {
    at: String,
    started: Duration,
    took: Duration,
    answer: Result<(u16, Option<u64>, bool), String>,
}

/// Three instances, one agent listing all three (connected to whichever it picked). A load
/// of sign-ins (4 workers, 10 s) at the two others; the agent's instance is killed (-9)
/// after 3 s. The agent is connected to another within 5 s, and every sign-in succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn an_instance_killed_under_load_loses_no_sign_in_at_the_others() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("cluster-kill")?;
    let db = TestDatabase::create("cluster_kill")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let mut t = PtaSetup::new(&dir, &corp)
        // (Before `bus`: `serve_args` replaces what is there.)
        .serve_args(&passthru_testkit::procs::UNTHROTTLED)
        .store(&db.url)
        .bus(&nats.url())
        .agent(AgentStage::None)
        .pta(false)
        .start()?;
    let mut b = t.cloud.another_instance(&dir.join("b"))?;
    let mut c = t.cloud.another_instance(&dir.join("c"))?;
    let mut agent = t.register_agent(&[ForestEntry::for_forest(&corp)])?;
    agent.set_cloud_urls(&[&t.cloud.url, &b.url, &c.url])?;
    agent.run()?;
    for inst in [&t.cloud, &b, &c] {
        inst.wait_active_agents(1, Duration::from_secs(30))?;
    }
    t.enable_pta()?;
    let client_id = t.client_id()?.to_string();
    let good = corp.user("good")?;
    let first = connections(&agent)
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the agent logged no connection: {}", agent.log()))?;
    let mut clouds = [&mut t.cloud, &mut b, &mut c];
    let victim = clouds
        .iter()
        .position(|cl| port_of(&cl.url) == port_of(&first))
        .ok_or_else(|| anyhow!("the agent connected to {first}, not an instance"))?;
    let survivors: Vec<SignInClient> = (0..3)
        .filter(|i| *i != victim)
        .map(|i| client_at(clouds[i], &client_id))
        .collect::<anyhow::Result<_>>()?;
    // Warm each survivor (tenant, app and domain caches; a relay) before the load.
    for s in &survivors {
        let r = s.password("contoso", &good.upn, &good.password).await?;
        ensure!(r.ok(), "warm-up at {}: {:?}", s.url, r.body);
    }

    let origin = Instant::now();
    let load_for = Duration::from_secs(10);
    let mut workers = tokio::task::JoinSet::new();
    for w in 0..4usize {
        let clients = survivors.clone();
        let (upn, password) = (good.upn.clone(), good.password.clone());
        workers.spawn(async move {
            let mut samples = Vec::new();
            let mut n = w;
            while origin.elapsed() < load_for {
                let client = &clients[n % clients.len()];
                n += 1;
                let started = origin.elapsed();
                let answer = client
                    .password("contoso", &upn, &password)
                    .await
                    .map(|r| (r.status, r.code(), r.ok()))
                    .map_err(|e| format!("{e:#}"));
                samples.push(Sample {
                    at: client.url.clone(),
                    started,
                    took: origin.elapsed() - started,
                    answer,
                });
            }
            samples
        });
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    blocking(|| clouds[victim].kill9());
    let killed_at = origin.elapsed();
    let (to, reconnect) = wait_for(RECONNECT, "the agent on another instance", || {
        Ok(connections(&agent).get(1).cloned())
    })
    .await?;
    eprintln!(
        "killed {} at {killed_at:?}; the agent connected to {to} {reconnect:?} later",
        first
    );
    ensure!(
        port_of(&to) != port_of(&first),
        "reconnected to the dead instance {to}"
    );
    let mut samples = Vec::new();
    while let Some(s) = workers.join_next().await {
        samples.extend(s?);
    }
    let failed: Vec<&Sample> = samples
        .iter()
        .filter(|s| !matches!(s.answer, Ok((_, _, true))))
        .collect();
    let worst = samples.iter().map(|s| s.took).max().unwrap_or_default();
    eprintln!(
        "{} sign-ins at the survivors, {} failed, worst {worst:?}",
        samples.len(),
        failed.len()
    );
    for s in &failed {
        eprintln!("  failed: {s:?}");
    }
    ensure!(
        failed.is_empty(),
        "{} sign-ins failed: {failed:?}",
        failed.len()
    );
    ensure!(worst <= DEADLINE + MARGIN, "a sign-in took {worst:?}");
    ensure!(
        samples.iter().filter(|s| s.started > killed_at).count() > 10,
        "too few sign-ins after the kill"
    );
    agent.stop_with(15);
    Ok(())
}

/// Four sign-ins at once at each instance: their samples.
async fn round(clients: &[SignInClient], upn: &str, password: &str) -> Vec<Sample> {
    let origin = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for client in clients {
        for _ in 0..4 {
            let (client, upn, password) = (client.clone(), upn.to_string(), password.to_string());
            set.spawn(async move {
                let started = origin.elapsed();
                let answer = client
                    .password("contoso", &upn, &password)
                    .await
                    .map(|r| (r.status, r.code(), r.ok()))
                    .map_err(|e| format!("{e:#}"));
                Sample {
                    at: client.url.clone(),
                    started,
                    took: origin.elapsed() - started,
                    answer,
                }
            });
        }
    }
    let mut samples = Vec::new();
    while let Some(s) = set.join_next().await {
        if let Ok(s) = s {
            samples.push(s);
        }
    }
    samples
}

/// Two instances on a PostgreSQL server of the test's own. While it is stopped, sign-ins at
/// either fail with a server error (HTTP 5xx, AADSTS50000), each well within its deadline;
/// once it is back, sign-ins at both work again within 5 s.
#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_fail_fast_while_postgresql_is_down_and_work_again_after() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("cluster-pg-restart")?;
    let mut pg = PrivatePostgres::start()?;
    let db_url = pg.create_database("passthru")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let t = PtaSetup::new(&dir, &corp)
        .store(&db_url)
        .bus(&nats.url())
        .start()?;
    let (b, b_metrics) = instance_with_metrics(&t.cloud, &dir.join("b"))?;
    b.wait_active_agents(1, Duration::from_secs(10))?;
    let client_id = t.client_id()?.to_string();
    let clients = [client_at(&t.cloud, &client_id)?, client_at(&b, &client_id)?];
    assert_eq!(
        readyz(&b.ca_file(), &b_metrics).await?,
        (200, "ready\n".to_string())
    );
    let good = corp.user("good")?;
    for s in round(&clients, &good.upn, &good.password).await {
        ensure!(
            matches!(s.answer, Ok((_, _, true))),
            "before the outage: {s:?}"
        );
    }

    blocking(|| pg.stop())?;
    let mut down = Vec::new();
    for _ in 0..2 {
        down.extend(round(&clients, &good.upn, &good.password).await);
    }
    for s in &down {
        eprintln!("while down: {s:?}");
    }
    for s in &down {
        // Fail fast: a store call gives up after 2 s without a connection; well inside
        // the sign-in's deadline.
        ensure!(
            s.took < FAIL_FAST,
            "a sign-in took {:?} while PostgreSQL was down",
            s.took
        );
        match &s.answer {
            Ok((status, code, false)) => {
                ensure!(*status >= 500 && *code == Some(50000), "while down: {s:?}")
            }
            other => bail!("while PostgreSQL was down: {other:?} at {}", s.at),
        }
    }
    let logs = t.cloud.log() + &b.log();
    ensure!(
        logs.contains("PostgreSQL") || logs.contains("store failed"),
        "the cloud's log says nothing of the store"
    );
    // The instance says it is not ready, naming the store (and stays alive).
    let body = wait_readyz(&b.ca_file(), &b_metrics, 503, Duration::from_secs(10)).await?;
    ensure!(body.starts_with("store: unreachable"), "{body:?}");

    blocking(|| pg.start_again())?;
    let back = Instant::now();
    let recovered = loop {
        let samples = round(&clients, &good.upn, &good.password).await;
        if samples.iter().all(|s| matches!(s.answer, Ok((_, _, true)))) {
            break back.elapsed();
        }
        if back.elapsed() > RECOVERY {
            bail!(
                "sign-ins still fail {:?} after PostgreSQL's return: {samples:?}",
                back.elapsed()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("sign-ins at both instances work again {recovered:?} after PostgreSQL's return");
    wait_readyz(&b.ca_file(), &b_metrics, 200, RECOVERY).await?;
    // The agent stayed connected all along: its session does not wait on the store.
    let agent = t.agent.as_ref().ok_or_else(|| anyhow!("no agent"))?;
    let made = connections(agent);
    ensure!(
        made.len() == 1,
        "the agent reconnected during the outage: {made:?}\n{}",
        agent.log()
    );
    for s in round(&clients, &good.upn, &good.password).await {
        ensure!(
            matches!(s.answer, Ok((_, _, true))),
            "after the outage: {s:?}"
        );
    }
    // The instances took their serve locks again (checked every 5 s): an instance without
    // --bus is still refused.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut third = t.cloud.copy_for_instance(&dir.join("c"))?;
    third.set_serve_args(&[]);
    let err = blocking(move || third.try_serve(&[]))?;
    ensure!(
        err.contains("already serves the PostgreSQL store") && err.contains("--bus"),
        "{err}"
    );
    Ok(())
}

/// Two instances, the agent at A. While nats-server is down, sign-ins at A keep working;
/// after it is back, sign-ins at B (relayed to A's agent) work again within 5 s.
#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_at_the_agents_instance_survive_a_nats_restart() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("cluster-nats-restart")?;
    let db = TestDatabase::create("cluster_nats_restart")?;
    let mut nats = NatsServer::start(&dir.join("nats"))?;
    let t = PtaSetup::new(&dir, &corp)
        .store(&db.url)
        .bus(&nats.url())
        .start()?;
    let (b, b_metrics) = instance_with_metrics(&t.cloud, &dir.join("b"))?;
    b.wait_active_agents(1, Duration::from_secs(10))?;
    let client_id = t.client_id()?.to_string();
    let (at_a, at_b) = (client_at(&t.cloud, &client_id)?, client_at(&b, &client_id)?);
    assert_eq!(
        readyz(&b.ca_file(), &b_metrics).await?,
        (200, "ready\n".to_string())
    );
    let good = corp.user("good")?;
    for s in round(&[at_a.clone(), at_b.clone()], &good.upn, &good.password).await {
        ensure!(
            matches!(s.answer, Ok((_, _, true))),
            "before the outage: {s:?}"
        );
    }

    nats.kill();
    let down = Instant::now();
    // Longer than presence lasts (3 s): B forgets A's agent.
    let mut at_a_samples = Vec::new();
    while down.elapsed() < Duration::from_secs(4) {
        at_a_samples.extend(round(std::slice::from_ref(&at_a), &good.upn, &good.password).await);
    }
    let worst = at_a_samples
        .iter()
        .map(|s| s.took)
        .max()
        .unwrap_or_default();
    eprintln!(
        "{} sign-ins at A while the bus was down, worst {worst:?}",
        at_a_samples.len()
    );
    for s in &at_a_samples {
        ensure!(
            matches!(s.answer, Ok((_, _, true))),
            "at A without the bus: {s:?}"
        );
    }
    // B is not ready without the bus, and says so.
    let body = wait_readyz(&b.ca_file(), &b_metrics, 503, Duration::from_secs(5)).await?;
    ensure!(body == "bus: disconnected\n", "{body:?}");

    blocking(|| nats.restart())?;
    let back = Instant::now();
    let recovered = loop {
        let r = at_b.password("contoso", &good.upn, &good.password).await?;
        if r.ok() {
            break back.elapsed();
        }
        if back.elapsed() > RECOVERY {
            bail!(
                "sign-ins at B still fail {:?} after the bus's return: {:?}",
                back.elapsed(),
                r.body
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("a sign-in at B worked {recovered:?} after the bus's return");
    wait_readyz(&b.ca_file(), &b_metrics, 200, RECOVERY).await?;
    ensure!(recovered <= RECOVERY, "took {recovered:?}");
    for s in round(&[at_a, at_b], &good.upn, &good.password).await {
        ensure!(
            matches!(s.answer, Ok((_, _, true))),
            "after the bus's return: {s:?}"
        );
    }
    Ok(())
}
