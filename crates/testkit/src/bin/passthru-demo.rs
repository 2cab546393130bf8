//! `passthru-demo`: the quickstart behind `bash scripts/demo.sh`. Provisions a throwaway
//! Samba AD forest with demo users, initialises and serves the cloud, registers and runs an
//! agent, enables pass-through authentication, prints how to sign in, and cleans everything
//! up on Ctrl-C.
//!
//! Environment: `PASSTHRU_DEMO_LISTEN` (default `127.0.0.1:443`), `PASSTHRU_DEMO_IP` (the
//! forest's loopback address, default `127.0.0.1`), `PASSTHRU_BIN_DIR` (where the built
//! binaries are).

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use passthru_testkit::bed::BedForest;
use passthru_testkit::fixture::{AgentStage, PtaSetup, PtaTenant};
use passthru_testkit::forest::{Forest, ForestSpec};
use passthru_testkit::procs::ForestEntry;
use passthru_testkit::users::{standard_users, Admin, TestUser};

struct Demo {
    dir: PathBuf,
    forest: Option<Forest>,
    /// The cloud and the agent.
    tenant: Option<PtaTenant>,
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Agent first, then the cloud (the order of `PtaTenant`'s fields), then the DC: each
        // by its own pid.
        drop(self.tenant.take());
        if let Some(mut f) = self.forest.take() {
            f.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn say(line: &str) {
    println!("{line}");
}

/// How often the demo's agent syncs the forest, seconds.
const SYNC_INTERVAL: u64 = 30;

async fn run() -> anyhow::Result<()> {
    let listen = std::env::var("PASSTHRU_DEMO_LISTEN").unwrap_or_else(|_| "127.0.0.1:443".into());
    let ip: Ipv4Addr = std::env::var("PASSTHRU_DEMO_IP")
        .unwrap_or_else(|_| "127.0.0.1".into())
        .parse()
        .context("PASSTHRU_DEMO_IP must be an IPv4 loopback address")?;
    let dir = std::env::temp_dir().join(format!("passthru-demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let mut demo = Demo {
        dir: dir.clone(),
        forest: None,
        tenant: None,
    };

    say("demo: provisioning a throwaway Active Directory forest (Samba AD DC), about 15 s ...");
    let spec = ForestSpec::new("CORP.EXAMPLE.TEST", "CORP", ip);
    let lockout = spec.lockout_threshold;
    let forest = Forest::provision(&dir.join("forest"), spec)?;
    let suffix = forest.dns_name();
    let users: Vec<TestUser> = standard_users(&suffix)
        .into_iter()
        .filter(|u| !u.sam.starts_with("spare") || u.sam == "spare1")
        .collect();
    let mut admin = Admin::connect(
        &forest.ldaps_url(),
        &forest.ca_file(),
        &forest.admin_upn(),
        forest.admin_password(),
    )
    .await?;
    admin.create_users(&users, lockout).await?;
    // A plain account for directory sync; its password stays in a 0600 file for the agent.
    let svc = TestUser::new("svc-sync", &suffix, passthru_testkit::AccountState::Good);
    admin.create_user(&svc).await?;
    admin.close().await;
    let svc_file = dir.join("sync-password");
    std::fs::write(&svc_file, format!("{}\n", svc.password))?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&svc_file, std::fs::Permissions::from_mode(0o600))?;
    }
    let bed = BedForest::describe("corp", &forest, users.clone());
    demo.forest = Some(forest);

    say("demo: initialising the cloud and starting it ...");
    let admin_pw = passthru_testkit::bed::secret("Adm1n");
    let mut tenant = PtaSetup::new(&dir, &bed)
        .listen(&listen)
        .admin_password(&admin_pw)
        .app("Demo app")
        .agent(AgentStage::None)
        .pta(false)
        .start()?;

    say("demo: registering and starting an authentication agent ...");
    let agent = tenant.start_agent(&[ForestEntry::for_forest(&bed).with_sync(
        &svc.upn,
        &svc_file,
        SYNC_INTERVAL,
    )])?;
    tenant.enable_pta()?;
    let (cloud, client_id) = (&tenant.cloud, tenant.client_id()?);

    let good = users
        .iter()
        .find(|u| u.sam == "good")
        .ok_or_else(|| anyhow::anyhow!("no good demo user"))?;
    let ca = cloud.ca_file();
    let url = cloud.url.clone();
    say("");
    say("Passthru demo is up. Everything lives in a throwaway directory; Ctrl-C removes it.");
    say(&format!(
        "  cloud:     {url}   (tenant 'contoso', trust {})",
        ca.display()
    ));
    say(&format!("  admin:     admin@contoso.example / {admin_pw}"));
    say(&format!("  app:       client id {client_id} (public)"));
    say("  AD users (on-premises passwords, checked by the agent):");
    for u in &users {
        let state = u
            .state
            .expected()
            .map(|w| format!("-> {} ({})", w.code(), w.aadsts()))
            .unwrap_or_else(|| "signs in".into());
        say(&format!("    {:<32} {:<40} {state}", u.upn, u.password));
    }
    say("");
    say("Sign in with curl (the password grant):");
    say(&format!(
        "  curl --cacert {} {url}/contoso/oauth2/v2.0/token -d grant_type=password -d client_id={client_id} \\\n       -d scope=openid -d username={} --data-urlencode 'password={}'",
        ca.display(),
        good.upn,
        good.password
    ));
    say("");
    say("Or with MSAL for Python (pip install msal; MSAL needs the cloud on port 443):");
    say(&format!(
        "  import msal\n  app = msal.PublicClientApplication('{client_id}', authority='{url}/contoso',\n        verify='{}', instance_discovery=False)\n  print(app.acquire_token_by_username_password('{}', '{}', scopes=[]))",
        ca.display(),
        good.upn,
        good.password
    ));
    say("");
    say(&format!(
        "Admin CLI: PASSTHRU_ADMIN_UPN=admin@contoso.example PASSTHRU_ADMIN_PASSWORD='{admin_pw}' {} admin --url {url} --tenant contoso --ca-file {} agents list   (or: sync status, user list, group list)",
        passthru_testkit::procs::bin("passthru-cloud").display(),
        ca.display()
    ));
    say(&format!(
        "Directory sync: the agent reads the forest every {SYNC_INTERVAL} s as {}; portal: {url}/contoso/portal/sync",
        svc.upn
    ));
    say(&format!(
        "Agent trace log: {}",
        agent.state_dir.join("trace.log").display()
    ));
    say(&format!(
        "DEMO {}",
        serde_json::json!({
            "url": url, "tenant": "contoso", "client_id": client_id, "ca_file": ca,
            "username": good.upn, "password": good.password, "dir": dir,
            "samba_pid": demo.forest.as_ref().and_then(Forest::pid),
            "cloud_pid": cloud.pid(), "agent_pid": agent.pid(),
        })
    ));
    say("Press Ctrl-C to stop and clean up.");
    tenant.agent = Some(agent);
    demo.tenant = Some(tenant);

    wait_for_stop().await;
    say("demo: stopping the agent, the cloud and the domain controller ...");
    drop(demo);
    say("demo: cleaned up");
    Ok(())
}

async fn wait_for_stop() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async {
            match term.as_mut() {
                Some(t) => { t.recv().await; }
                None => std::future::pending::<()>().await,
            }
        } => {}
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
