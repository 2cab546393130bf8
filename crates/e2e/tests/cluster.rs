//! Several cloud instances as one service: one PostgreSQL database and one nats-server per
//! test, instances made as an operator makes them (`cp -a` of the first one's data dir, the
//! same `--bus`), the real agent and the Samba forest. A sign-in reaching any instance is
//! served by the agent connected to another; only sealed data crosses the bus; admin changes
//! hold everywhere within 2 s; smart lockout and one-time codes count across instances.

use std::time::{Duration, Instant};

use passthru_testkit::bed;
use passthru_testkit::browser::FormBrowser;
use passthru_testkit::cluster::{Capture, NatsServer, TestDatabase};
use passthru_testkit::fixture::PtaSetup;
use passthru_testkit::http::{verify_with_jwks, SignInClient};
use passthru_testkit::procs::{fresh_dir, recorded_secret, Cloud};
use passthru_testkit::{AccountState, TestUser};
use serde_json::Value;

const REDIRECT: &str = "http://127.0.0.1:9/callback";
/// How soon an admin change made at one instance must hold at every other.
const PROPAGATION: Duration = Duration::from_secs(2);

fn client_at(cloud: &Cloud, client_id: &str) -> anyhow::Result<SignInClient> {
    SignInClient::new(&cloud.ca_file(), &cloud.url, client_id)
}

/// Polls `check` every 50 ms until it is true or `within` passed; returns how long it took.
async fn within<F, Fut>(within: Duration, what: &str, mut check: F) -> anyhow::Result<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let start = Instant::now();
    loop {
        if check().await? {
            return Ok(start.elapsed());
        }
        if start.elapsed() > within {
            anyhow::bail!("{what}: not within {within:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pkce() -> (String, String) {
    use base64::Engine as _;
    use sha2::Digest as _;
    let verifier = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// The browser code flow at `at` (form by form), the code redeemed at `redeem_at`: the
/// token answer and the HTTP status of a replay of the code at `replay_at`.
async fn code_flow(
    at: &Cloud,
    redeem_at: &Cloud,
    replay_at: &Cloud,
    client_id: &str,
    upn: &str,
    password: &str,
) -> anyhow::Result<(Value, u16, Value)> {
    let mut b = FormBrowser::new(&at.ca_file(), &at.url)?;
    let (verifier, challenge) = pkce();
    let first = b
        .get(&format!(
            "/contoso/oauth2/v2.0/authorize?client_id={client_id}&response_type=code&redirect_uri={}&scope=openid%20offline_access&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
            urlencode(REDIRECT)
        ))
        .await?;
    anyhow::ensure!(
        first.status == 200,
        "authorize: {} {}",
        first.status,
        first.body
    );
    let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
    let pw_page = b
        .post(
            "/contoso/login",
            &[("req", &req), ("csrf", &csrf), ("username", upn)],
        )
        .await?;
    anyhow::ensure!(pw_page.status == 200, "{}", pw_page.body);
    let done = b
        .post(
            "/contoso/login/password",
            &[("req", &req), ("csrf", &csrf), ("password", password)],
        )
        .await?;
    anyhow::ensure!(
        matches!(done.status, 302 | 303),
        "the sign-in did not redirect: {} {}",
        done.status,
        done.body
    );
    let code = done.query().get("code").cloned().unwrap_or_default();
    let form = [
        ("grant_type", "authorization_code"),
        ("client_id", client_id),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", verifier.as_str()),
    ];
    let http = passthru_testkit::http::client(&at.ca_file())?;
    let token: Value = http
        .post(format!("{}/contoso/oauth2/v2.0/token", redeem_at.url))
        .form(&form)
        .send()
        .await?
        .json()
        .await?;
    let replay = http
        .post(format!("{}/contoso/oauth2/v2.0/token", replay_at.url))
        .form(&form)
        .send()
        .await?;
    let status = replay.status().as_u16();
    Ok((token, status, replay.json().await?))
}

/// Three instances; the agent is connected to the first only. Password grants and the
/// browser code flow at the other two are served by it; the code is redeemed at a third
/// instance and its replay refused at another; the bus carried the relayed requests, and
/// no password, in any message.
#[tokio::test(flavor = "multi_thread")]
async fn sign_ins_at_any_instance_reach_the_agent_and_only_sealed_data_crosses_the_bus(
) -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("cluster-sign-ins")?;
    let db = TestDatabase::create("cluster_sign_ins")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let capture = Capture::start(&nats.url(), &dir.join("bus-capture.txt")).await?;
    let t = PtaSetup::new(&dir, &corp)
        .store(&db.url)
        .bus(&nats.url())
        .redirect_uri(REDIRECT)
        .start()?;
    let a = &t.cloud;
    let b = a.another_instance(&dir.join("b"))?;
    let c = a.another_instance(&dir.join("c"))?;
    let client_id = t.client_id()?.to_string();
    // Every instance sees the agent connected to A (presence on the bus).
    for inst in [&b, &c] {
        inst.wait_active_agents(1, Duration::from_secs(10))?;
    }
    let good = corp.user("good")?;
    let wrong = recorded_secret("Wrong");
    for inst in [&b, &c] {
        let client = client_at(inst, &client_id)?;
        let r = client
            .password("contoso", &good.upn, &good.password)
            .await?;
        assert!(r.ok(), "a sign-in at {} failed: {:?}", inst.url, r.body);
        client.verify_id_token("contoso", &r).await?;
        let r = client.password("contoso", &good.upn, &wrong).await?;
        assert_eq!(r.code(), Some(50126), "{:?}", r.body);
    }
    // The browser code flow at B, its code redeemed at C and replayed at A.
    let (token, replay_status, replay) =
        code_flow(&b, &c, a, &client_id, &good.upn, &good.password).await?;
    assert!(token["id_token"].is_string(), "{token}");
    assert_eq!(replay_status, 400, "{replay}");
    assert_eq!(replay["error"], "invalid_grant", "{replay}");
    // The refresh token works at A, and its reuse is caught at B.
    let http = passthru_testkit::http::client(&a.ca_file())?;
    let refresh = token["refresh_token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let form = [
        ("grant_type", "refresh_token"),
        ("client_id", client_id.as_str()),
        ("refresh_token", refresh.as_str()),
    ];
    let first = http
        .post(format!("{}/contoso/oauth2/v2.0/token", a.url))
        .form(&form)
        .send()
        .await?;
    assert_eq!(first.status(), 200);
    let reuse = http
        .post(format!("{}/contoso/oauth2/v2.0/token", b.url))
        .form(&form)
        .send()
        .await?;
    assert_eq!(
        reuse.status(),
        400,
        "a reused refresh token is refused at another instance"
    );

    // The sign-in log (one store) has every attempt, served by the agent at A.
    let log: Value =
        serde_json::from_str(&c.admin(&["--json", "signins", "list", "--top", "20"])?)?;
    let lines = log["signins"].as_array().cloned().unwrap_or_default();
    assert!(lines.len() >= 5, "{log}");

    // The bus: relayed requests and their answers went over it; nothing of JetStream was
    // used (the server has none: nothing is durable); no password is in any message.
    let text = capture.text();
    let relays = text.lines().filter(|l| l.contains(".relay.")).count();
    assert!(
        relays >= 5,
        "{relays} relayed requests captured of {}",
        capture.messages()
    );
    assert!(!text.contains("$JS."), "no JetStream API call");
    for secret in [&good.password, &wrong] {
        assert!(
            !text.contains(secret.as_str()),
            "a password crossed the bus"
        );
    }
    assert!(text.contains("\"sealed\""), "requests cross sealed");
    Ok(())
}

/// Admin changes made at one instance hold at the others within 2 s: the PTA switch, a
/// user block, a new app, a setting, a key rotation (JWKS and new tokens), an agent
/// revocation (the agent connected elsewhere is dropped).
#[tokio::test(flavor = "multi_thread")]
async fn admin_changes_hold_at_every_instance_within_two_seconds() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let dir = fresh_dir("cluster-admin")?;
    let db = TestDatabase::create("cluster_admin")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let mut t = PtaSetup::new(&dir, &corp)
        .store(&db.url)
        .bus(&nats.url())
        .start()?;
    let b = t.cloud.another_instance(&dir.join("b"))?;
    let c = t.cloud.another_instance(&dir.join("c"))?;
    let a = &t.cloud;
    let client_id = t.client_id()?.to_string();
    c.wait_active_agents(1, Duration::from_secs(10))?;
    let good = corp.user("good")?;
    let at_c = client_at(&c, &client_id)?;
    // Warm C's caches (tenant, app, domain) first.
    assert!(at_c
        .password("contoso", &good.upn, &good.password)
        .await?
        .ok());

    // PTA off at B: C refuses pass-through within 2 s; on again.
    b.admin(&["pta", "disable"])?;
    let took = within(PROPAGATION, "PTA disabled at C", || async {
        Ok(at_c
            .password("contoso", &good.upn, &good.password)
            .await?
            .code()
            == Some(50056))
    })
    .await?;
    eprintln!("pta disable reached C in {took:?}");
    b.admin(&["pta", "enable"])?;
    within(PROPAGATION, "PTA enabled at C", || async {
        Ok(at_c
            .password("contoso", &good.upn, &good.password)
            .await?
            .ok())
    })
    .await?;

    // A cloud-only user blocked at A: refused at B.
    let pw = recorded_secret("Cl0ud");
    a.add_user("amy@contoso.example", &pw)?;
    let at_b = client_at(&b, &client_id)?;
    assert!(at_b
        .password("contoso", "amy@contoso.example", &pw)
        .await?
        .ok());
    a.admin(&["user", "disable", "amy@contoso.example"])?;
    within(PROPAGATION, "user block at B", || async {
        Ok(at_b
            .password("contoso", "amy@contoso.example", &pw)
            .await?
            .code()
            == Some(50057))
    })
    .await?;

    // An app added at C signs in at A.
    let new_app = t.add_public_app("Added at C")?;
    let at_a_new = client_at(a, &new_app)?;
    within(PROPAGATION, "new app at A", || async {
        Ok(at_a_new
            .password("contoso", &good.upn, &good.password)
            .await?
            .ok())
    })
    .await?;

    // A setting changed at A reads back at B and C.
    a.admin(&["settings", "set", "lockout_threshold", "7"])?;
    for inst in [&b, &c] {
        within(PROPAGATION, "setting at another instance", || async {
            let v: Value = serde_json::from_str(&inst.admin(&[
                "--json",
                "settings",
                "get",
                "lockout_threshold",
            ])?)?;
            Ok(v["settings"][0]["value"] == "7" || v["settings"][0]["value"] == 7)
        })
        .await?;
    }

    // Keys rotated at B: every instance's JWKS has the new key, and tokens signed at each
    // carry it and verify.
    let http = passthru_testkit::http::client(&a.ca_file())?;
    let rotated: Value = serde_json::from_str(&b.admin(&["--json", "keys", "rotate"])?)?;
    let new_kid = rotated["current"].as_str().unwrap_or_default().to_string();
    for inst in [a, &b, &c] {
        within(PROPAGATION, "rotated key in JWKS", || async {
            let jwks: Value = http
                .get(format!("{}/contoso/discovery/v2.0/keys", inst.url))
                .send()
                .await?
                .json()
                .await?;
            Ok(jwks["keys"][0]["kid"].as_str() == Some(new_kid.as_str()))
        })
        .await?;
        let r = client_at(inst, &client_id)?
            .password("contoso", &good.upn, &good.password)
            .await?;
        let id_token = r.body["id_token"].as_str().unwrap_or_default().to_string();
        assert_eq!(
            jsonwebtoken::decode_header(&id_token)?.kid.as_deref(),
            Some(new_kid.as_str())
        );
        verify_with_jwks(&http, &c.url, "contoso", &id_token, &client_id).await?;
    }

    // The agent (connected to A) revoked at B: dropped within 2 s.
    let mut agent = t.take_agent()?;
    let id = agent.id()?;
    let answer: Value =
        serde_json::from_str(&b.admin(&["--json", "agents", "revoke", &id, "--force"])?)?;
    assert!(answer["connections_closed"].as_u64() >= Some(1), "{answer}");
    within(PROPAGATION, "revoked agent dropped", || async {
        Ok(agent
            .log()
            .contains("this agent has been revoked by an administrator"))
    })
    .await?;
    let r = at_c.password("contoso", &good.upn, &good.password).await?;
    assert_eq!(
        r.code(),
        Some(80001),
        "no agent serves any more: {:?}",
        r.body
    );
    agent.stop_with(15);
    Ok(())
}

/// 300 wrong passwords at once, spread over three instances: they count as one account's,
/// so at most the cloud's threshold reach AD (`badPwdCount`) and the rest get 50053.
#[tokio::test(flavor = "multi_thread")]
async fn smart_lockout_counts_attempts_at_every_instance_as_one() -> anyhow::Result<()> {
    let corp = bed::corp()?;
    let mut admin = corp.admin().await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..6];
    let user = TestUser::with(
        &format!("c{tag}"),
        &format!("clu.ster{tag}"),
        &corp.upn_suffix,
        AccountState::Good,
        recorded_secret("Pw"),
        "Cluster Lockout",
    );
    admin.create_user(&user).await?;
    let dn = user.dn(&corp.base_dn);
    let pso = admin
        .add_password_policy(
            &format!("clu50-{tag}"),
            &[("msDS-LockoutThreshold", "50")],
            std::slice::from_ref(&dn),
        )
        .await?;
    let dir = fresh_dir("cluster-lockout")?;
    let db = TestDatabase::create("cluster_lockout")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let t = PtaSetup::new(&dir, &corp)
        .store(&db.url)
        .bus(&nats.url())
        .serve_args(&passthru_testkit::procs::UNTHROTTLED)
        .start()?;
    let b = t.cloud.another_instance(&dir.join("b"))?;
    let c = t.cloud.another_instance(&dir.join("c"))?;
    t.cloud
        .admin(&["settings", "set", "lockout_threshold", "3"])?;
    t.cloud
        .admin(&["settings", "set", "lockout_duration_seconds", "600"])?;
    b.wait_active_agents(1, Duration::from_secs(10))?;
    c.wait_active_agents(1, Duration::from_secs(10))?;
    let client_id = t.client_id()?.to_string();
    let clients = [
        client_at(&t.cloud, &client_id)?,
        client_at(&b, &client_id)?,
        client_at(&c, &client_id)?,
    ];
    // The setting is read through each instance's cache: let it expire.
    tokio::time::sleep(PROPAGATION).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..300 {
        let client = clients[i % 3].clone();
        let upn = user.upn.clone();
        tasks.spawn(async move {
            client
                .password("contoso", &upn, &format!("Wrong-Passw0rd-{i}!"))
                .await
                .map(|r| r.code())
        });
    }
    let (mut wrong, mut locked) = (0, 0);
    while let Some(r) = tasks.join_next().await {
        match r?? {
            Some(50126) => wrong += 1,
            Some(50053) => locked += 1,
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
    let bad = admin.bad_pwd_count(&dn).await?;
    assert!(
        bad <= 3,
        "AD counted {bad} wrong passwords from three instances"
    );
    assert!(wrong <= 3, "{wrong} answers of 50126");
    assert_eq!(locked, 300 - wrong);
    // Locked at every instance, the right password too.
    for client in &clients {
        let r = client
            .password("contoso", &user.upn, &user.password)
            .await?;
        assert_eq!(r.code(), Some(50053), "{:?}", r.body);
    }
    admin.delete(&pso).await?;
    admin.delete(&dn).await?;
    Ok(())
}

/// Refusals that keep one deployment from being served two ways: a second instance on one
/// SQLite store; a second instance on PostgreSQL without `--bus` (and one with `--bus`
/// beside one without); `init` on a database that holds a deployment.
#[tokio::test(flavor = "multi_thread")]
async fn instances_that_cannot_share_a_store_are_refused() -> anyhow::Result<()> {
    let dir = fresh_dir("cluster-refusals")?;
    // SQLite: the same data dir twice.
    let sqlite = passthru_testkit::fixture::contoso_cloud(&dir.join("sqlite"))?;
    let err = sqlite.try_serve(&[])?;
    assert!(
        err.contains("another passthru-cloud instance already serves the SQLite store")
            && err.contains("PostgreSQL"),
        "{err}"
    );

    // PostgreSQL: the first instance without a bus; a second one is refused either way.
    let db = TestDatabase::create("cluster_refusals")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let pw = recorded_secret("Adm1n");
    let first = Cloud::start_full(
        &dir.join("pg"),
        "contoso",
        "admin@contoso.example",
        &pw,
        "127.0.0.1:0",
        &[],
        &[],
        &["--store", &db.url],
    )?;
    let second = first.copy_for_instance(&dir.join("pg-b"))?;
    let err = second.try_serve(&[])?;
    assert!(err.contains("--bus"), "{err}");
    let err = second.try_serve(&["--bus", &nats.url()])?;
    assert!(err.contains("without --bus"), "{err}");

    // init on the database that holds the deployment.
    let out = std::process::Command::new(passthru_testkit::procs::bin("passthru-cloud"))
        .args(["init", "--data-dir"])
        .arg(dir.join("again"))
        .args(["--tenant", "other", "--admin", "admin@other.example"])
        .args(["--store", &db.url])
        .env("PASSTHRU_ADMIN_PASSWORD", &pw)
        .output()?;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already holds a Passthru deployment"), "{err}");
    assert!(!dir.join("again").exists(), "nothing was made");
    Ok(())
}

/// `migrate` moves a SQLite deployment into PostgreSQL and says what it moved; the old data
/// dir's `serve` is then refused for its store; served from PostgreSQL, the deployment has
/// its users, apps, keys and sign-in log.
#[tokio::test(flavor = "multi_thread")]
async fn migrate_moves_a_sqlite_deployment_into_postgresql() -> anyhow::Result<()> {
    let dir = fresh_dir("cluster-migrate")?;
    let mut cloud = passthru_testkit::fixture::contoso_cloud(&dir)?;
    let pw = recorded_secret("Cl0ud");
    cloud.add_user("amy@contoso.example", &pw)?;
    let app = cloud.admin(&["app", "add", "Moved app", "--public"])?;
    let client_id = app
        .split_whitespace()
        .find(|w| {
            uuid::Uuid::parse_str(w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-'))
                .is_ok()
        })
        .map(|w| {
            w.trim_matches(|c: char| !c.is_ascii_hexdigit() && c != '-')
                .to_string()
        })
        .ok_or_else(|| anyhow::anyhow!("no client id in {app}"))?;
    let client = client_at(&cloud, &client_id)?;
    let r = client
        .password("contoso", "amy@contoso.example", &pw)
        .await?;
    assert!(r.ok(), "{:?}", r.body);
    let old_token = r.body["id_token"].as_str().unwrap_or_default().to_string();
    cloud.stop();

    let db = TestDatabase::create("cluster_migrate")?;
    let out = std::process::Command::new(passthru_testkit::procs::bin("passthru-cloud"))
        .args(["migrate", "--data-dir"])
        .arg(&cloud.data_dir)
        .args(["--to", &db.url])
        .output()?;
    let said = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for table in [
        "tenants: 1",
        "users: 2",
        "apps: 1",
        // ES256 only: the tenant's RS256 key is made when something first needs it (its
        // JWKS, an RS256 ID token), and nothing here did.
        "signing_keys: 1",
        "signins: ",
    ] {
        assert!(said.contains(table), "'{table}' in: {said}");
    }
    let moved_lines: usize = said
        .lines()
        .find_map(|l| l.trim().strip_prefix("signins: "))
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no sign-in log count in: {said}"))?;
    assert!(moved_lines >= 1, "{said}");
    // The old data dir's store is refused from now on.
    let err = cloud.try_serve(&[])?;
    assert!(
        err.contains("was moved to") && err.contains("--store"),
        "{err}"
    );
    // Served from PostgreSQL: the same users, apps, keys and log.
    cloud.set_serve_args(&["--store", &db.url]);
    cloud.serve()?;
    let client = client_at(&cloud, &client_id)?;
    let r = client
        .password("contoso", "amy@contoso.example", &pw)
        .await?;
    assert!(r.ok(), "{:?}", r.body);
    let http = passthru_testkit::http::client(&cloud.ca_file())?;
    verify_with_jwks(&http, &cloud.url, "contoso", &old_token, &client_id).await?;
    let log: Value =
        serde_json::from_str(&cloud.admin(&["--json", "signins", "list", "--top", "10"])?)?;
    let lines = log["signins"].as_array().map(Vec::len).unwrap_or(0);
    assert!(
        lines > moved_lines,
        "the moved log and the new sign-in: {log}"
    );
    Ok(())
}

/// The text of the element with `id` on an HTML page (its first text, entities as sent).
fn text_of(body: &str, id: &str) -> String {
    let marker = format!("id=\"{id}\">");
    body.split_once(&marker)
        .and_then(|(_, rest)| rest.split_once('<'))
        .map(|(t, _)| t.trim().to_string())
        .unwrap_or_default()
}

/// MFA across instances: a user enrols at A; later, wrong codes for one sign-in sent to A, B
/// and C in turn count as one user's (the fifth locks the second factor everywhere, a right
/// code included), and a code used at one instance is refused at another.
#[tokio::test(flavor = "multi_thread")]
async fn mfa_attempt_limits_and_one_time_codes_hold_across_instances() -> anyhow::Result<()> {
    use passthru_e2e::chromium::{step_now, totp, usable_step};
    const AMY: &str = "amy@contoso.example";
    let dir = fresh_dir("cluster-mfa")?;
    let db = TestDatabase::create("cluster_mfa")?;
    let nats = NatsServer::start(&dir.join("nats"))?;
    let pw = recorded_secret("Adm1n");
    let a = Cloud::start_full(
        &dir,
        "contoso",
        "admin@contoso.example",
        &pw,
        "127.0.0.1:0",
        &[],
        &["--bus", &nats.url()],
        &["--store", &db.url],
    )?;
    let b = a.another_instance(&dir.join("b"))?;
    let c = a.another_instance(&dir.join("c"))?;
    let amy_pw = recorded_secret("Mfa");
    a.add_user(AMY, &amy_pw)?;
    a.admin(&["user", "mfa", AMY, "required"])?;
    let app = a.admin(&[
        "--json",
        "app",
        "add",
        "MFA app",
        "--public",
        "--redirect-uri",
        REDIRECT,
    ])?;
    let app: Value = serde_json::from_str(&app)?;
    let client_id = app["client_id"].as_str().unwrap_or_default().to_string();
    anyhow::ensure!(!client_id.is_empty(), "{app}");

    // Password step at `at`, then the page it leads to, with the request's form fields.
    let password_step = |at: String| {
        let (ca, client_id, amy_pw) = (a.ca_file(), client_id.clone(), amy_pw.clone());
        async move {
            let mut fb = FormBrowser::new(&ca, &at)?;
            let (_, challenge) = pkce();
            let first = fb
                .get(&format!(
                    "/contoso/oauth2/v2.0/authorize?client_id={client_id}&response_type=code&redirect_uri={}&scope=openid&state=s&nonce=n&code_challenge={challenge}&code_challenge_method=S256",
                    urlencode(REDIRECT)
                ))
                .await?;
            let (req, csrf) = (first.hidden("req"), first.hidden("csrf"));
            fb.post(
                "/contoso/login",
                &[("req", &req), ("csrf", &csrf), ("username", AMY)],
            )
            .await?;
            let page = fb
                .post(
                    "/contoso/login/password",
                    &[("req", &req), ("csrf", &csrf), ("password", &amy_pw)],
                )
                .await?;
            anyhow::Ok((fb, page, req, csrf))
        }
    };

    // Enrolment at A: the key from the page, the first code, the recovery codes, on.
    let (mut fb, page, req, csrf) = password_step(a.url.clone()).await?;
    let base32 = text_of(&page.body, "secret").replace(' ', "");
    let secret = totp_rs::Secret::Encoded(base32.clone())
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("no key on the enrolment page ({e:?}): {}", page.body))?;
    let enrolled_step = step_now();
    let done = fb
        .post(
            "/contoso/login/mfa/enrol",
            &[
                ("req", &req),
                ("csrf", &csrf),
                ("code", &totp(&secret, enrolled_step)),
            ],
        )
        .await?;
    assert!(done.body.contains("recovery-codes"), "{}", done.body);

    // A code used at one instance is refused at another (same step).
    let step = usable_step(enrolled_step).await;
    let code = totp(&secret, step);
    let (_, page, req, csrf) = password_step(b.url.clone()).await?;
    assert!(page.body.contains("id=\"code\""), "{}", page.body);
    let http = passthru_testkit::browser::no_redirect_client(&a.ca_file())?;
    let post_code = |at: &str, req: &str, csrf: &str, code: &str| {
        let (http, url) = (http.clone(), format!("{at}/contoso/login/mfa"));
        let form = [
            ("req", req.to_string()),
            ("csrf", csrf.to_string()),
            ("code", code.to_string()),
        ];
        async move {
            let r = http.post(url).form(&form).send().await?;
            let status = r.status().as_u16();
            anyhow::Ok((status, r.text().await?))
        }
    };
    let (status, _) = post_code(&b.url, &req, &csrf, &code).await?;
    assert!(matches!(status, 302 | 303), "the code at B: {status}");
    let (_, _, req2, csrf2) = password_step(c.url.clone()).await?;
    let (status, body) = post_code(&c.url, &req2, &csrf2, &code).await?;
    assert_eq!(status, 401, "the same code again, at C: {body}");

    // Five wrong codes spread over A, B and C lock the second factor at every instance.
    let urls = [a.url.clone(), b.url.clone(), c.url.clone()];
    for i in 0..5 {
        let (status, body) = post_code(
            &urls[i % 3],
            &req2,
            &csrf2,
            &format!("{:06}", (i * 7919 + 13) % 1_000_000),
        )
        .await?;
        assert_eq!(status, 401, "wrong code {i}");
        if i == 4 {
            assert!(body.contains("is locked until"), "{body}");
        }
    }
    let right_step = usable_step(step).await;
    let right = totp(&secret, right_step);
    for url in &urls {
        let (status, body) = post_code(url, &req2, &csrf2, &right).await?;
        assert!(
            status == 401 && body.contains("is locked until"),
            "{url}: {status} {body}"
        );
    }

    // The same, many at once. Unlocked: one code posted at A, B and C together for three
    // sign-ins is taken by exactly one.
    a.admin(&["user", "unlock", AMY])?;
    let code = totp(&secret, usable_step(right_step).await);
    let mut reqs = Vec::new();
    for url in &urls {
        let (_, page, req, csrf) = password_step(url.clone()).await?;
        assert!(page.body.contains("id=\"code\""), "{}", page.body);
        reqs.push((url.clone(), req, csrf));
    }
    let taken = futures_util::future::join_all(
        reqs.iter()
            .map(|(url, req, csrf)| post_code(url, req, csrf, &code)),
    )
    .await;
    let mut statuses = Vec::new();
    for t in taken {
        statuses.push(t?.0);
    }
    assert_eq!(
        statuses.iter().filter(|s| matches!(s, 302 | 303)).count(),
        1,
        "one code, three instances at once: {statuses:?}"
    );
    // 30 wrong codes at once over A, B and C: at most 4 are refused as merely wrong (the
    // fifth locks), every other one finds the lock.
    let (_, _, req3, csrf3) = password_step(c.url.clone()).await?;
    let burst = futures_util::future::join_all((0..30).map(|i| {
        post_code(
            &urls[i % 3],
            &req3,
            &csrf3,
            &format!("{:06}", (i * 104_729 + 7) % 1_000_000),
        )
    }))
    .await;
    let mut merely_wrong = 0;
    for r in burst {
        let (status, body) = r?;
        assert_eq!(status, 401, "{body}");
        if !body.contains("is locked until") {
            merely_wrong += 1;
        }
    }
    assert!(
        merely_wrong <= 4,
        "{merely_wrong} of 30 parallel wrong codes were checked past the limit"
    );
    Ok(())
}
