//! `passthru-agent run`: lock the state dir and the host (one agent per server, see
//! [`crate::lock`]), load the registration, check the configuration, tell systemd it is ready
//! (see `passthru_client::service_notify`), then keep one outbound connection to the cloud, to one of its
//! addresses, moving to the next address when it fails (see [`crate::failover`]), until
//! SIGTERM or SIGINT drains it. When an update is staged ([`crate::update`]), it drains, lets
//! go of its locks and tries the new version: handing over to it when it connects, serving
//! again when it does not.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::admin_log::AdminLog;
use crate::admission::{Admission, Identity};
use crate::backoff::random_unit;
use crate::config::{AgentConfig, ConfigError};
use crate::connect::{connect, Endpoint};
use crate::failover::{NextDial, Rotation};
use crate::link_error::LinkError;
use crate::lock::{self, LockError};
use crate::proxy::{ProxyError, ProxySettings};
use crate::renewal::{RenewError, Renewal};
use crate::replay;
use crate::session::{serve_reporting, AgentContext, HelloInfo, SessionEnd};
use crate::state_dir::Credentials;
use crate::state_dir::{StateDir, StateError, ADMIN_LOG_FILE, CONNECTION_FILE, TRACE_LOG_FILE};
use crate::tls_config::TlsConfigError;
use crate::trace_log::TraceLog;
use crate::update::staging::Staging;
use crate::update::trial::{self, TrialEnd};
use crate::update::updater::{Staged, CATEGORY as UPDATE};
use crate::update::verify::PublisherKey;
use crate::update::{Updater, UpdaterSetup};
use crate::validator::Validator;
use crate::wrong_passwords::{self, WrongPasswords};
use passthru_client::service_notify;
use passthru_proto::AgentKeyPair;

/// What `run` was given.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The state dir written by `register`.
    pub state_dir: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
    /// The host-wide lock ([`crate::lock::DEFAULT_HOST_LOCK`] but in tests).
    pub host_lock: PathBuf,
    /// The version this binary reports (in `Hello` and update checks).
    pub version: String,
    /// The update publisher key built into this binary (`PASSTHRU_UPDATE_PUBLIC_KEY` at
    /// build time), if any.
    pub built_in_update_key: Option<String>,
    /// The session (debug) log the process's tracing writes to while it is on; SIGUSR1
    /// switches it (`None`: no session log, as in tests that run in-process).
    pub session_log: Option<Arc<crate::session_log::SessionLog>>,
}

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// Another agent holds the state dir.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// The configuration file is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The state dir is missing or damaged.
    #[error(transparent)]
    State(#[from] StateError),
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// The recorded endpoint (or one of `[cloud] urls`) is unusable.
    #[error(transparent)]
    Endpoint(#[from] LinkError),
    /// The proxy settings (`[cloud] proxy_auth_file`, `HTTPS_PROXY`) cannot be used.
    #[error(transparent)]
    Proxy(#[from] ProxyError),
    /// The directory could not be set up from the configuration.
    #[error("{file}: cannot set up the directory connections: {detail}")]
    Directory {
        /// The configuration file.
        file: String,
        /// What the directory said.
        detail: String,
    },
    /// The trace log could not be opened.
    #[error("cannot open the trace log {path}: {source}")]
    TraceLog {
        /// The trace log.
        path: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The operating system's random generator failed (the wrong-password memory's key).
    #[error("cannot make a random key: the operating system's random generator failed")]
    Random,
    /// Signal handlers could not be installed.
    #[error("cannot listen for SIGTERM/SIGINT/SIGHUP: {0}")]
    Signals(#[source] std::io::Error),
    /// The credentials in the state dir cannot be used.
    #[error(transparent)]
    Renewal(#[from] RenewError),
    /// The certificate expired while the agent was not running.
    #[error(
        "this agent's certificate expired at {expired_at} (a running agent renews it over its \
         connection when a third of its lifetime is left, but this one was not running or not \
         connected then). Register the agent again: passthru-agent register --cloud {cloud} \
         --tenant {tenant} --ca-file CA.pem --state-dir {dir} --force"
    )]
    CertificateExpired {
        /// When it expired (RFC 3339).
        expired_at: String,
        /// The cloud it was registered with.
        cloud: String,
        /// The tenant's name.
        tenant: String,
        /// The state dir.
        dir: String,
    },
}

/// Refuses to start with a certificate that has expired (and no renewed one to use): the
/// cloud would refuse every connection.
fn refuse_expired(
    renewal: &Renewal,
    state: &StateDir,
    registration: &crate::state_dir::Registration,
    now: time::OffsetDateTime,
) -> Result<(), RunError> {
    let not_after = renewal.current_validity().not_after;
    let usable_renewed = renewal
        .renewed_validity()
        .is_some_and(|v| v.not_after > now.unix_timestamp());
    if not_after > now.unix_timestamp() || usable_renewed {
        return Ok(());
    }
    Err(RunError::CertificateExpired {
        expired_at: time::OffsetDateTime::from_unix_timestamp(not_after)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| not_after.to_string()),
        cloud: registration.cloud_url.clone(),
        tenant: registration.tenant_name.clone(),
        dir: state.path().display().to_string(),
    })
}

/// Runs the agent until a signal drains it, validating with what `build_validator` makes
/// from the configuration (the real one is
/// [`crate::directory_validator::DirectoryValidator::new`]).
pub async fn run<V, E, F>(options: &RunOptions, build_validator: F) -> Result<(), RunError>
where
    V: Validator,
    E: std::fmt::Display,
    F: FnOnce(&AgentConfig) -> Result<V, E>,
{
    let state = StateDir::new(&options.state_dir);
    if !state.path().is_dir() {
        return Err(StateError::NotRegistered {
            dir: state.path().display().to_string(),
        }
        .into());
    }
    // The state dir as another agent's refusal will name it: absolute.
    let state_path = std::fs::canonicalize(state.path()).unwrap_or_else(|_| state.path().into());
    let locks = Locks::take(&state, &state_path, &options.host_lock)?;
    let admin = AdminLog::open(state.path()).map_err(|source| RunError::TraceLog {
        path: state.file(ADMIN_LOG_FILE).display().to_string(),
        source,
    })?;
    let result = run_locked(
        options,
        build_validator,
        &state,
        &state_path,
        locks,
        admin.clone(),
    )
    .await;
    match &result {
        Ok(Ended::Drained) => admin.record("stop", "stopped (drained)"),
        // The update's lines said it all.
        Ok(Ended::HandedOver) => {}
        Err(e) => admin.record("start", &format!("cannot start: {e}")),
    }
    result.map(|_| ())
}

/// How [`run_locked`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ended {
    /// A signal drained it.
    Drained,
    /// A new version took over (an update).
    HandedOver,
}

/// [`run`] once the locks are held (let go of while a new version is on trial, taken back
/// when it is rolled back).
async fn run_locked<V, E, F>(
    options: &RunOptions,
    build_validator: F,
    state: &StateDir,
    state_path: &std::path::Path,
    locks: Locks,
    admin: AdminLog,
) -> Result<Ended, RunError>
where
    V: Validator,
    E: std::fmt::Display,
    F: FnOnce(&AgentConfig) -> Result<V, E>,
{
    let mut locks = Some(locks);
    // The registration first: registering is the first step, the configuration the next.
    let agent = state.load()?;
    let config = AgentConfig::load(&options.config)?;
    for path in state.loose_permissions() {
        tracing::warn!(path = %path.display(), "readable by other users: the state dir should be 0700 and its files 0600");
    }
    let registration = agent.registration.clone();
    let hpke = AgentKeyPair::from_private_bytes(agent.hpke.private_bytes()).map_err(|e| {
        StateError::Damaged {
            path: state
                .file(crate::state_dir::HPKE_KEY_FILE)
                .display()
                .to_string(),
            detail: e.to_string(),
        }
    })?;
    let renewal = Renewal::new(
        state.clone(),
        agent.cloud_ca.clone(),
        Credentials {
            client_cert_chain: agent.client_cert_chain,
            client_key: agent.client_key,
            hpke: agent.hpke,
        },
        agent.renewed,
    )?;
    refuse_expired(&renewal, state, &registration, crate::clock::now_utc())?;
    let tls = renewal.dial_set().tls;
    // `[cloud] urls` replaces the address the cloud gave at registration.
    let (endpoints, from) = match &config.cloud_urls {
        Some(urls) => (
            urls.iter()
                .map(|url| Endpoint::new(url.as_str(), registration.tenant_id))
                .collect::<Result<Vec<_>, _>>()?,
            "the configuration's [cloud] urls",
        ),
        None => (
            vec![Endpoint::new(
                &registration.agent_endpoint,
                registration.tenant_id,
            )?],
            "the registration",
        ),
    };
    // `[cloud] proxy`, else HTTPS_PROXY (unless NO_PROXY names the cloud's host).
    let proxy = ProxySettings::from_environment(config.proxy.as_ref())?.map(Arc::new);
    let endpoints: Vec<Endpoint> = endpoints
        .into_iter()
        .map(|e| e.through(proxy.as_ref()))
        .collect();
    let proxied: Vec<String> = endpoints
        .iter()
        .filter_map(|e| {
            e.proxy()
                .map(|p| format!("{} through {}", e.address(), p.describe()))
        })
        .collect();
    if !proxied.is_empty() {
        tracing::info!("reaching the cloud through a proxy: {}", proxied.join("; "));
    } else if let Some(proxy) = &proxy {
        tracing::info!(
            "not using the proxy {}: NO_PROXY names every cloud address",
            proxy.describe()
        );
    }
    let updater = updater_for(options, &config, &registration, state, &admin);
    let validator = build_validator(&config).map_err(|e| RunError::Directory {
        file: options.config.display().to_string(),
        detail: e.to_string(),
    })?;
    let trace_path = state.file(TRACE_LOG_FILE);
    let trace =
        TraceLog::open_with(&trace_path, config.trace).map_err(|source| RunError::TraceLog {
            path: trace_path.display().to_string(),
            source,
        })?;
    let mut reopen = vec![trace.file().clone()];
    reopen.extend(admin.file().cloned());
    crate::trace_log::reopen_on_sighup(reopen, options.session_log.clone(), admin.clone())
        .map_err(RunError::Signals)?;
    if let Some(session) = &options.session_log {
        crate::session_log::switch_on_sigusr1(Arc::clone(session), state.clone(), admin.clone())
            .map_err(RunError::Signals)?;
    }
    let sync_forests = validator.sync_forests();
    for f in &sync_forests {
        tracing::info!(forest = %f.forest, interval_s = f.interval_seconds, "directory sync configured (the cloud picks one agent per forest)");
    }
    let ctx = Arc::new(AgentContext {
        admission: Admission::new(
            Identity {
                tenant_id: registration.tenant_id,
                agent_id: registration.agent_id,
                keys: hpke,
            },
            config.clock_skew_tolerance,
            replay::DEFAULT_CAPACITY,
        ),
        validator,
        limit: Arc::new(Semaphore::new(config.max_concurrency)),
        trace,
        hello: HelloInfo {
            version: options.version.clone(),
            host: crate::host::host_name(),
            upn_suffixes: config.upn_suffixes(),
            sync_forests,
        },
        skew_tolerance: config.clock_skew_tolerance,
        stats: Default::default(),
        wrong_passwords: WrongPasswords::new(wrong_passwords::WINDOW)
            .map_err(|_| RunError::Random)?,
        renewal: Some(renewal),
        updater: updater.clone(),
        admin_log: admin.clone(),
    });
    let shutdown = shutdown_on_signals()?;
    tracing::info!(
        agent = %registration.agent_id,
        tenant = %registration.tenant_name,
        forests = config.forests.len(),
        cloud = %endpoints.iter().map(Endpoint::address).collect::<Vec<_>>().join(", "),
        from,
        "passthru-agent starting"
    );
    if trial::on_trial() {
        // A new version on trial: the process that started it is still systemd's main
        // process, and says so until it hands over (MAINPID) and exits.
        notify_once_handed_over(shutdown.clone());
    } else {
        notify_service(shutdown.clone());
    }
    admin.record(
        "start",
        &format!(
            "passthru-agent {} started: agent {} of tenant {}, configuration {} ({} forest(s): {}), cloud {} (from {from})",
            options.version,
            registration.agent_id,
            registration.tenant_name,
            options.config.display(),
            config.forests.len(),
            config.forests.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", "),
            endpoints.iter().map(Endpoint::address).collect::<Vec<_>>().join(", "),
        ),
    );
    loop {
        let stop = session_stop(shutdown.clone(), updater.as_ref().map(|u| u.ready()));
        stay_connected(
            Arc::clone(&ctx),
            &endpoints,
            Arc::clone(&tls),
            stop,
            Some(state),
        )
        .await;
        if let Err(e) = state.remove_file(CONNECTION_FILE) {
            tracing::debug!(error = %e, "cannot remove the connection record");
        }
        if *shutdown.borrow() {
            break;
        }
        let Some(staged) = updater.as_ref().and_then(|u| u.take_ready()) else {
            break;
        };
        // The new version takes both locks: let go of them while it is on trial.
        drop(locks.take());
        let mut watching = shutdown.clone();
        match apply_update(&staged, options, &config, state, &admin, &mut watching).await {
            Applied::HandedOver => return Ok(Ended::HandedOver),
            Applied::Stopped => break,
            Applied::RolledBack => {
                locks = Some(Locks::take(state, state_path, &options.host_lock)?);
            }
        }
    }
    tracing::info!("passthru-agent stopped");
    Ok(Ended::Drained)
}

/// The state dir's lock and the host's, held together.
#[derive(Debug)]
struct Locks {
    _state: lock::StateLock,
    _host: lock::HostLock,
}

impl Locks {
    fn take(
        state: &StateDir,
        state_path: &std::path::Path,
        host_lock: &std::path::Path,
    ) -> Result<Locks, RunError> {
        let state_lock = lock::acquire(state.path())?;
        let host = lock::acquire_host(host_lock, state_path)?;
        Ok(Locks {
            _state: state_lock,
            _host: host,
        })
    }
}

/// Tells systemd the agent is ready and pings its watchdog from now on.
fn notify_service(shutdown: watch::Receiver<bool>) {
    // Nothing to check but that the runtime still runs the watchdog's task.
    service_notify::spawn_watchdog(
        || async { Ok::<(), std::convert::Infallible>(()) },
        shutdown,
    );
    service_notify::ready();
}

/// [`notify_service`], once the process that started this one (the version it replaces)
/// has exited.
fn notify_once_handed_over(mut shutdown: watch::Receiver<bool>) {
    let parent = std::os::unix::process::parent_id();
    tokio::spawn(async move {
        while std::os::unix::process::parent_id() == parent {
            tokio::select! {
                _ = tokio::time::sleep(std::time::Duration::from_millis(250)) => {}
                _ = shutdown.wait_for(|s| *s) => return,
            }
        }
        notify_service(shutdown);
    });
}

/// A receiver that turns `true` when `shutdown` does or an update is staged: either ends
/// the connection's session (drained).
fn session_stop(
    mut shutdown: watch::Receiver<bool>,
    ready: Option<watch::Receiver<Option<Staged>>>,
) -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(*shutdown.borrow());
    tokio::spawn(async move {
        let staged = async move {
            match ready {
                Some(mut r) => {
                    if r.wait_for(Option::is_some).await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => {}
            () = staged => {}
            () = tx.closed() => return,
        }
        let _ = tx.send(true);
    });
    rx
}

/// The updater, when updates are on and a publisher key is pinned; says in the admin log
/// when they are not.
fn updater_for(
    options: &RunOptions,
    config: &AgentConfig,
    registration: &crate::state_dir::Registration,
    state: &StateDir,
    log: &AdminLog,
) -> Option<Arc<Updater>> {
    let settings = &config.updates;
    if !settings.enabled {
        log.record(UPDATE, "updates are turned off ([updates] enabled = false)");
        return None;
    }
    let key = match PublisherKey::pinned(settings, options.built_in_update_key.as_deref()) {
        Ok(Some(key)) => key,
        Ok(None) => {
            log.record(
                UPDATE,
                "updates refused: no key is pinned to verify releases with ([updates] \
                 public_key or public_key_file in the configuration, or a build with \
                 PASSTHRU_UPDATE_PUBLIC_KEY): this agent never updates itself",
            );
            return None;
        }
        Err(e) => {
            log.record(UPDATE, &format!("{e}: this agent never updates itself"));
            return None;
        }
    };
    tracing::info!(key = %key.base64(), from = %key.from(), "updates on: releases must be signed by the pinned publisher key");
    Some(Updater::new(
        UpdaterSetup {
            own_version: options.version.clone(),
            target: passthru_proto::release::this_target(),
            key,
            check_interval: settings.check_interval,
            tenant_id: registration.tenant_id,
        },
        Staging::new(state.path()),
        log.clone(),
    ))
}

/// How applying an update ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Applied {
    /// The new version connected and serves: this process exits.
    HandedOver,
    /// It did not: this process serves again.
    RolledBack,
    /// A shutdown was asked meanwhile.
    Stopped,
}

/// Tries the staged version (this agent already drained and without its locks): see
/// [`crate::update::trial`].
async fn apply_update(
    staged: &Staged,
    options: &RunOptions,
    config: &AgentConfig,
    state: &StateDir,
    log: &AdminLog,
    shutdown: &mut watch::Receiver<bool>,
) -> Applied {
    let own = &options.version;
    let version = &staged.version;
    let deadline = config.updates.rollback_after;
    log.record(
        UPDATE,
        &format!(
            "applying version {version}: this agent (version {own}) drained and disconnected; \
             starting version {version} and waiting up to {} s for it to connect",
            deadline.as_secs()
        ),
    );
    let staging = Staging::new(state.path());
    let args = crate::update::launcher::own_arguments();
    match trial::try_version(&staged.path, &args, own, state, deadline, shutdown).await {
        TrialEnd::Connected { child, address } => {
            let previous = staging.current();
            let pid = child.id();
            match staging.set_current(version) {
                Ok(()) => log.record(
                    UPDATE,
                    &format!(
                        "swapped to version {version}: it connected to {address} (pid {pid}); \
                         updates/current points to it; this process (version {own}, pid {}) \
                         hands over and exits",
                        std::process::id()
                    ),
                ),
                Err(e) => log.record(
                    UPDATE,
                    &format!(
                        "version {version} connected (pid {pid}) but updates/current cannot \
                         point to it ({e}): it serves until it stops, then version {own} runs \
                         again; this process hands over and exits"
                    ),
                ),
            }
            service_notify::main_pid(pid);
            let keep: Vec<&str> = [Some(version.as_str()), previous.as_deref()]
                .into_iter()
                .flatten()
                .collect();
            for old in staging.prune(&keep) {
                tracing::info!(version = %old, "an older staged version removed");
            }
            Applied::HandedOver
        }
        TrialEnd::Failed { reason } => {
            let at = crate::clock::now_utc()
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            let recorded = match staging.refuse(version, &reason, &at) {
                Ok(()) => "it is refused from now on (updates/refused.json)".to_string(),
                Err(e) => format!("it cannot be recorded as refused ({e})"),
            };
            log.record(
                UPDATE,
                &format!(
                    "rolled back version {version}: {reason}; {recorded}; version {own} serves again"
                ),
            );
            Applied::RolledBack
        }
        TrialEnd::Stopped => {
            log.record(
                UPDATE,
                &format!("update to version {version} abandoned: the agent is stopping"),
            );
            Applied::Stopped
        }
    }
}

/// A receiver that turns `true` on the first SIGTERM or SIGINT.
fn shutdown_on_signals() -> Result<watch::Receiver<bool>, RunError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).map_err(RunError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(RunError::Signals)?;
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("{name} received: stopping");
        service_notify::stopping();
        let _ = tx.send(true);
        // Keep the sender (and so the receivers' state) alive until the process ends.
        std::future::pending::<()>().await;
    });
    Ok(rx)
}

/// The first connection made with the renewed certificate works: it becomes current and the
/// old HPKE key is dropped (it opens nothing sent from now on).
fn renewed_works<V>(ctx: &AgentContext<V>) {
    let Some(renewal) = &ctx.renewal else { return };
    match renewal.renewed_works() {
        Ok(keep) => {
            ctx.admission.keep_only(&keep);
            ctx.admin_log.record(
                "renewal",
                &format!(
                    "connected with the renewed certificate (valid until {}): it is now the agent's",
                    unix_text(renewal.current_validity().not_after)
                ),
            );
            tracing::info!(
                not_after = renewal.current_validity().not_after,
                hpke_key = %keep,
                "connected with the renewed certificate: it is now the agent's; the old certificate and keys are gone"
            );
        }
        Err(e) => {
            tracing::error!(error = %e, "connected with the renewed certificate but cannot make it current in the state dir; the next start retries")
        }
    }
}

/// The cloud refused the renewed certificate: back to the current one.
fn renewed_refused<V>(ctx: &AgentContext<V>, why: &LinkError) {
    let Some(renewal) = &ctx.renewal else { return };
    tracing::warn!(error = %why, "the cloud refused the renewed certificate: it is discarded and the current one used again");
    ctx.admin_log.record(
        "renewal",
        &format!("the cloud refused the renewed certificate ({why}): discarded, the current one is used again"),
    );
    match renewal.renewed_refused() {
        Ok(keep) => ctx.admission.keep_only(&keep),
        Err(e) => {
            tracing::error!(error = %e, "cannot discard the renewed certificate in the state dir")
        }
    }
}

/// A Unix time as RFC 3339, for messages.
fn unix_text(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Records the connection in the state dir for `status` (nothing without a state dir); a
/// failure is logged, never fatal.
fn record_connection(state: Option<&StateDir>, address: Option<&str>) {
    if let Some(state) = state {
        if let Err(e) = state.write_connection(address) {
            tracing::warn!(error = %e, "cannot record the connection for `passthru-agent status`");
        }
    }
}

/// Connects to one of `endpoints` (starting at a random one), serves, and when the dial fails
/// or the connection is lost moves to the next address at once; after every address failed in
/// a row, waits with exponential backoff and full jitter (see [`crate::failover`]). Runs until
/// `shutdown` turns `true`; returns once drained (or at once when not connected). With a
/// state dir, records there which address it is connected to (for `status`).
pub async fn stay_connected<V: Validator>(
    ctx: Arc<AgentContext<V>>,
    endpoints: &[Endpoint],
    tls: Arc<ClientConfig>,
    mut shutdown: watch::Receiver<bool>,
    state: Option<&StateDir>,
) {
    if endpoints.is_empty() {
        tracing::error!("no cloud address to connect to");
        return;
    }
    let mut rotation = Rotation::random_start(endpoints.len());
    record_connection(state, None);
    // The admin log says when the link changes state, not at every retry.
    let mut link_failing = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(endpoint) = endpoints.get(rotation.current()) else {
            return;
        };
        let address = endpoint.address();
        // The renewed certificate while there is one not yet used, else the current one.
        let (dial_tls, renewed) = match ctx.renewal.as_ref().map(|r| r.dial_set()) {
            Some(set) => {
                if set.renewed {
                    // Requests sealed to the new key may come as soon as the cloud has the
                    // connection; the old key stays until it works.
                    ctx.admission.add_key(Arc::clone(&set.hpke));
                }
                (set.tls, set.renewed)
            }
            None => (Arc::clone(&tls), false),
        };
        tracing::debug!(%address, renewed, "connecting to the cloud");
        let dialed = tokio::select! {
            dialed = connect(endpoint, dial_tls) => dialed,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (why, next) = match dialed {
            Err(e) => {
                if renewed && matches!(e, LinkError::Refused { status: 403, .. }) {
                    renewed_refused(&ctx, &e);
                }
                if !link_failing {
                    link_failing = true;
                    ctx.admin_log.record(
                        "connection",
                        &format!("cannot connect to the cloud at {address}: {e} (retrying; the next line says when it connects)"),
                    );
                }
                (
                    format!("cannot connect to the cloud at {address}: {e}"),
                    rotation.dial_failed(random_unit(), std::time::Instant::now()),
                )
            }
            Ok(socket) => {
                let opened = Instant::now();
                let served =
                    serve_reporting(Arc::clone(&ctx), endpoint, socket, shutdown.clone(), || {
                        record_connection(state, Some(&address));
                        link_failing = false;
                        ctx.admin_log.record(
                            "connection",
                            &format!("connected to the cloud at {address}"),
                        );
                        if renewed {
                            renewed_works(&ctx);
                        }
                    })
                    .await;
                let held = opened.elapsed();
                match served {
                    Ok(SessionEnd::Drained) => {
                        ctx.admin_log.record(
                            "connection",
                            &format!("disconnected from {address}: drained for shutdown"),
                        );
                        return;
                    }
                    Ok(SessionEnd::Renewed) => {
                        ctx.admin_log.record(
                            "connection",
                            &format!("disconnected from {address} to reconnect with the renewed certificate"),
                        );
                        // Drained; connect again at once, to the same address, with the
                        // renewed certificate.
                        record_connection(state, None);
                        continue;
                    }
                    Err(e) => {
                        record_connection(state, None);
                        link_failing = true;
                        ctx.admin_log.record(
                            "connection",
                            &format!(
                                "lost the connection to the cloud at {address} after {} s: {e}",
                                held.as_secs()
                            ),
                        );
                        (
                            format!(
                                "lost the connection to the cloud at {address} after {} s: {e}",
                                held.as_secs()
                            ),
                            rotation.connection_lost(
                                held,
                                random_unit(),
                                std::time::Instant::now(),
                            ),
                        )
                    }
                }
            }
        };
        let following = endpoints
            .get(next.index)
            .map(Endpoint::address)
            .unwrap_or_default();
        match next {
            NextDial { delay: None, .. } => {
                tracing::warn!("{why}; moving to {following}");
            }
            NextDial {
                delay: Some(delay), ..
            } => {
                tracing::warn!("{why}");
                if endpoints.len() > 1 {
                    tracing::info!(
                        delay_ms = delay.as_millis() as u64,
                        "every cloud address failed in a row: reconnecting, to {following}, after a delay"
                    );
                } else {
                    tracing::info!(delay_ms = delay.as_millis() as u64, "reconnecting");
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state_dir::{Credentials, Registration};
    use crate::test_support::TempDir;
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    fn credentials(
        not_after: time::OffsetDateTime,
    ) -> Result<Credentials, Box<dyn std::error::Error>> {
        let key = rcgen::KeyPair::generate()?;
        let mut params = rcgen::CertificateParams::new(vec!["agent".to_string()])?;
        params.not_before = not_after - time::Duration::days(365);
        params.not_after = not_after;
        let cert = params.self_signed(&key)?;
        Ok(Credentials {
            client_cert_chain: vec![CertificateDer::from_pem_slice(cert.pem().as_bytes())?],
            client_key: PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())?,
            hpke: AgentKeyPair::generate(),
        })
    }

    /// An agent whose certificate expired while it was off refuses to start, saying when and
    /// how to register again; a renewed certificate still valid lets it start.
    #[test]
    fn an_expired_certificate_is_refused_at_start_with_what_to_do(
    ) -> Result<(), Box<dyn std::error::Error>> {
        let tmp = TempDir::new("run-expired")?;
        let state = StateDir::new(tmp.path());
        let registration = Registration {
            agent_id: uuid::Uuid::new_v4(),
            tenant_id: uuid::Uuid::new_v4(),
            tenant_name: "contoso".into(),
            cloud_url: "https://login.contoso.test".into(),
            agent_endpoint: "https://login.contoso.test".into(),
            registered_at: "2026-01-01T00:00:00Z".into(),
        };
        let now = time::OffsetDateTime::now_utc();
        let expired = Renewal::new(
            state.clone(),
            None,
            credentials(now - time::Duration::days(2))?,
            None,
        )?;
        let err = refuse_expired(&expired, &state, &registration, now)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        for part in [
            "certificate expired at",
            "passthru-agent register --cloud https://login.contoso.test --tenant contoso",
            "--force",
            &state.path().display().to_string(),
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        let valid = Renewal::new(
            state.clone(),
            None,
            credentials(now + time::Duration::days(2))?,
            None,
        )?;
        assert!(refuse_expired(&valid, &state, &registration, now).is_ok());
        let with_renewed = Renewal::new(
            state.clone(),
            None,
            credentials(now - time::Duration::days(2))?,
            Some(credentials(now + time::Duration::days(300))?),
        )?;
        assert!(refuse_expired(&with_renewed, &state, &registration, now).is_ok());
        Ok(())
    }
}
