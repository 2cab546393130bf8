//! The setup the end-to-end tests and the demo share: a cloud serving tenant `contoso`, the
//! managed domain of a forest, a public app, a registered and running agent for that forest,
//! and pass-through authentication on. [`PtaSetup`] can stop short of any of the later steps,
//! so that a test takes them itself, in its own order, with its own checks in between
//! ([`PtaTenant::start_agent`], [`PtaTenant::enable_pta`]).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{anyhow, bail};

use crate::bed::BedForest;
use crate::http::SignInClient;
use crate::procs::{recorded_secret, Agent, Cloud, ForestEntry};

/// The tenant the fixture creates.
pub const TENANT: &str = "contoso";
/// Its Global Administrator.
pub const ADMIN_UPN: &str = "admin@contoso.example";
/// Where the cloud listens unless told otherwise: a free port on 127.0.0.1.
pub const ANY_PORT: &str = "127.0.0.1:0";
/// How long [`PtaTenant::start_agent`] waits for the agent to show as active.
pub const AGENT_ACTIVE_TIMEOUT: Duration = Duration::from_secs(30);

/// A cloud serving [`TENANT`] on [`ANY_PORT`], its data in `dir`, the admin's password a fresh
/// [`recorded_secret`]; nothing else set up.
pub fn contoso_cloud(dir: &Path) -> anyhow::Result<Cloud> {
    Cloud::start(dir, TENANT, ADMIN_UPN, &recorded_secret("Adm1n"), ANY_PORT)
}

/// How far [`PtaSetup`] takes the agent for the forest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentStage {
    /// No agent.
    None,
    /// Registered (its state dir and config written) but not running.
    Registered,
    /// Registered, running, and active in the cloud.
    Running,
}

/// What to set up; by default everything (domain, app "Test app", running agent, PTA on),
/// with the cloud on [`ANY_PORT`] and a recorded admin password.
#[derive(Debug, Clone)]
pub struct PtaSetup<'a> {
    dir: PathBuf,
    forest: &'a BedForest,
    listen: String,
    admin_password: Option<String>,
    domain: bool,
    app: Option<String>,
    redirect_uris: Vec<String>,
    agent: AgentStage,
    pta: bool,
    serve_args: Vec<String>,
    init_args: Vec<String>,
}

impl<'a> PtaSetup<'a> {
    /// Everything for `forest`, the cloud's data and the agent's state in `dir`.
    pub fn new(dir: &Path, forest: &'a BedForest) -> PtaSetup<'a> {
        PtaSetup {
            dir: dir.to_path_buf(),
            forest,
            listen: ANY_PORT.to_string(),
            admin_password: None,
            domain: true,
            app: Some("Test app".to_string()),
            redirect_uris: Vec::new(),
            agent: AgentStage::Running,
            pta: true,
            serve_args: Vec::new(),
            init_args: Vec::new(),
        }
    }

    /// Extra arguments for the cloud's `serve` (e.g. `--threads 1`), after those given
    /// before.
    pub fn serve_args(mut self, args: &[&str]) -> Self {
        self.serve_args.extend(args.iter().map(|a| a.to_string()));
        self
    }

    /// The cloud keeps its state in the PostgreSQL database at `url` (`init --store`).
    pub fn store(mut self, url: &str) -> Self {
        self.init_args = vec!["--store".into(), url.to_string()];
        self
    }

    /// The cloud's instances talk through the NATS server at `url` (`serve --bus`).
    pub fn bus(mut self, url: &str) -> Self {
        self.serve_args
            .extend(["--bus".to_string(), url.to_string()]);
        self
    }

    /// The cloud listens on `listen` (e.g. `127.0.0.1:443`).
    pub fn listen(mut self, listen: &str) -> Self {
        self.listen = listen.to_string();
        self
    }

    /// The admin's password is `password` instead of a fresh recorded one.
    pub fn admin_password(mut self, password: &str) -> Self {
        self.admin_password = Some(password.to_string());
        self
    }

    /// The public app is called `name`.
    pub fn app(mut self, name: &str) -> Self {
        self.app = Some(name.to_string());
        self
    }

    /// Registers `uri` as a redirect URI of the public app (repeatable).
    pub fn redirect_uri(mut self, uri: &str) -> Self {
        self.redirect_uris.push(uri.to_string());
        self
    }

    /// No app (then [`PtaTenant::client_id`] is an error).
    pub fn without_app(mut self) -> Self {
        self.app = None;
        self
    }

    /// The forest's UPN suffix is not added as a managed domain.
    pub fn without_domain(mut self) -> Self {
        self.domain = false;
        self
    }

    /// How far to take the agent.
    pub fn agent(mut self, stage: AgentStage) -> Self {
        self.agent = stage;
        self
    }

    /// Whether to enable pass-through authentication (it needs [`AgentStage::Running`]).
    pub fn pta(mut self, on: bool) -> Self {
        self.pta = on;
        self
    }

    /// Starts the cloud and takes the steps asked for, in order: domain, app, agent, PTA.
    pub fn start(self) -> anyhow::Result<PtaTenant> {
        if self.pta && self.agent != AgentStage::Running {
            bail!("pass-through authentication needs a running agent");
        }
        let admin_password = self
            .admin_password
            .unwrap_or_else(|| recorded_secret("Adm1n"));
        let serve_args: Vec<&str> = self.serve_args.iter().map(String::as_str).collect();
        let init_args: Vec<&str> = self.init_args.iter().map(String::as_str).collect();
        let cloud = Cloud::start_full(
            &self.dir,
            TENANT,
            ADMIN_UPN,
            &admin_password,
            &self.listen,
            &[],
            &serve_args,
            &init_args,
        )?;
        let mut tenant = PtaTenant {
            agent: None,
            cloud,
            client_id: None,
            dir: self.dir,
        };
        if self.domain {
            tenant.cloud.add_domain(&[&self.forest.upn_suffix])?;
        }
        if let Some(app) = &self.app {
            tenant.client_id = Some(tenant.add_public_app_with(app, &self.redirect_uris)?);
        }
        let forests = [ForestEntry::for_forest(self.forest)];
        tenant.agent = match self.agent {
            AgentStage::None => None,
            AgentStage::Registered => Some(tenant.register_agent(&forests)?),
            AgentStage::Running => Some(tenant.start_agent(&forests)?),
        };
        if self.pta {
            tenant.enable_pta()?;
        }
        Ok(tenant)
    }
}

/// A cloud serving [`TENANT`] and what [`PtaSetup`] set up in it. The fields drop in order:
/// the agent stops before the cloud.
#[derive(Debug)]
pub struct PtaTenant {
    /// The agent [`PtaSetup`] registered, if any.
    pub agent: Option<Agent>,
    pub cloud: Cloud,
    /// The public app's client id, if an app was added.
    pub client_id: Option<String>,
    /// Where the cloud's data and the agents' state live.
    pub dir: PathBuf,
}

impl PtaTenant {
    /// The public app's client id.
    pub fn client_id(&self) -> anyhow::Result<&str> {
        self.client_id
            .as_deref()
            .ok_or_else(|| anyhow!("the fixture added no app"))
    }

    /// A sign-in client for the public app.
    pub fn sign_in(&self) -> anyhow::Result<SignInClient> {
        SignInClient::new(&self.cloud.ca_file(), &self.cloud.url, self.client_id()?)
    }

    /// Takes the agent out, for a test that drives it itself.
    pub fn take_agent(&mut self) -> anyhow::Result<Agent> {
        self.agent
            .take()
            .ok_or_else(|| anyhow!("the fixture registered no agent"))
    }

    /// Adds a public app called `name` and returns its client id (what `app add` prints).
    pub fn add_public_app(&self, name: &str) -> anyhow::Result<String> {
        self.add_public_app_with(name, &[])
    }

    /// Adds a public app with redirect URIs and returns its client id.
    pub fn add_public_app_with(
        &self,
        name: &str,
        redirect_uris: &[String],
    ) -> anyhow::Result<String> {
        let mut args = vec!["app", "add", name, "--public"];
        for uri in redirect_uris {
            args.extend(["--redirect-uri", uri.as_str()]);
        }
        Ok(self.cloud.admin(&args)?.trim().to_string())
    }

    /// Registers an agent for `forests` as the tenant's admin, state in [`PtaTenant::dir`].
    pub fn register_agent(&self, forests: &[ForestEntry]) -> anyhow::Result<Agent> {
        Agent::register(
            &self.cloud,
            &self.dir,
            &self.cloud.tenant,
            &self.cloud.admin_upn,
            &self.cloud.admin_password,
            forests,
        )
    }

    /// Registers and runs an agent for `forests`, and waits until the tenant has an active
    /// agent.
    pub fn start_agent(&self, forests: &[ForestEntry]) -> anyhow::Result<Agent> {
        let mut agent = self.register_agent(forests)?;
        agent.run()?;
        self.cloud.wait_active_agents(1, AGENT_ACTIVE_TIMEOUT)?;
        Ok(agent)
    }

    /// Waits (up to 60 s) until directory sync brought `upn` into the cloud (`user show`
    /// has its `synced` object).
    pub fn wait_synced(&self, upn: &str) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            let out = self.cloud.admin_as(
                &self.cloud.tenant,
                &self.cloud.admin_upn,
                &self.cloud.admin_password,
                &["--json", "user", "show", upn],
            )?;
            if out.status.success() {
                let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
                if v["synced"].is_object() {
                    return Ok(());
                }
            }
            if started.elapsed() > Duration::from_secs(60) {
                anyhow::bail!("{upn} was not synced within 60 s");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// `pta enable`, which must succeed.
    pub fn enable_pta(&self) -> anyhow::Result<()> {
        self.cloud.admin(&["pta", "enable"]).map(drop)
    }
}
