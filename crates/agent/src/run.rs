//! `passthru-agent run`: lock the state dir, check the configuration, load the registration,
//! then keep one outbound connection to the cloud, to one of its addresses, moving to the next
//! address when it fails (see [`crate::failover`]), until SIGTERM or SIGINT drains it.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::ClientConfig;
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::admission::{Admission, Identity};
use crate::backoff::random_unit;
use crate::config::{AgentConfig, ConfigError};
use crate::connect::{connect, Endpoint};
use crate::failover::{NextDial, Rotation};
use crate::link_error::LinkError;
use crate::lock::{self, LockError};
use crate::replay;
use crate::session::{serve_reporting, AgentContext, HelloInfo, SessionEnd};
use crate::state_dir::{StateDir, StateError, CONNECTION_FILE, TRACE_LOG_FILE};
use crate::tls_config::{self, TlsConfigError};
use crate::trace_log::TraceLog;
use crate::validator::Validator;
use crate::wrong_passwords::{self, WrongPasswords};

/// What `run` was given.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The state dir written by `register`.
    pub state_dir: PathBuf,
    /// The configuration file.
    pub config: PathBuf,
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
    let _lock = lock::acquire(state.path())?;
    let config = AgentConfig::load(&options.config)?;
    let agent = state.load()?;
    for path in state.loose_permissions() {
        tracing::warn!(path = %path.display(), "readable by other users: the state dir should be 0700 and its files 0600");
    }
    let tls = tls_config::client_config(&agent)?;
    let registration = agent.registration.clone();
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
    crate::trace_log::reopen_on_sighup(trace.clone()).map_err(RunError::Signals)?;
    let sync_forests = validator.sync_forests();
    for f in &sync_forests {
        tracing::info!(forest = %f.forest, interval_s = f.interval_seconds, "directory sync configured (the cloud picks one agent per forest)");
    }
    let ctx = Arc::new(AgentContext {
        admission: Admission::new(
            Identity {
                tenant_id: registration.tenant_id,
                agent_id: registration.agent_id,
                keys: agent.hpke,
            },
            config.clock_skew_tolerance,
            replay::DEFAULT_CAPACITY,
        ),
        validator,
        limit: Arc::new(Semaphore::new(config.max_concurrency)),
        trace,
        hello: HelloInfo {
            version: env!("CARGO_PKG_VERSION").to_string(),
            host: crate::host::host_name(),
            upn_suffixes: config.upn_suffixes(),
            sync_forests,
        },
        skew_tolerance: config.clock_skew_tolerance,
        stats: Default::default(),
        wrong_passwords: WrongPasswords::new(wrong_passwords::WINDOW)
            .map_err(|_| RunError::Random)?,
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
    stay_connected(ctx, &endpoints, tls, shutdown, Some(&state)).await;
    if let Err(e) = state.remove_file(CONNECTION_FILE) {
        tracing::debug!(error = %e, "cannot remove the connection record");
    }
    tracing::info!("passthru-agent stopped");
    Ok(())
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
        let _ = tx.send(true);
        // Keep the sender (and so the receivers' state) alive until the process ends.
        std::future::pending::<()>().await;
    });
    Ok(rx)
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
    loop {
        if *shutdown.borrow() {
            return;
        }
        let Some(endpoint) = endpoints.get(rotation.current()) else {
            return;
        };
        let address = endpoint.address();
        tracing::debug!(%address, "connecting to the cloud");
        let dialed = tokio::select! {
            dialed = connect(endpoint, Arc::clone(&tls)) => dialed,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (why, next) = match dialed {
            Err(e) => (
                format!("cannot connect to the cloud at {address}: {e}"),
                rotation.dial_failed(random_unit(), std::time::Instant::now()),
            ),
            Ok(socket) => {
                let opened = Instant::now();
                let served =
                    serve_reporting(Arc::clone(&ctx), endpoint, socket, shutdown.clone(), || {
                        record_connection(state, Some(&address))
                    })
                    .await;
                let held = opened.elapsed();
                match served {
                    Ok(SessionEnd::Drained) => return,
                    Err(e) => {
                        record_connection(state, None);
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
