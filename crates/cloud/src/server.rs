//! `passthru-cloud serve`: one HTTPS port for browsers, apps, administration and agents.
//! TLS asks every client for a certificate but does not require one; the agent endpoint
//! refuses connections without a certificate from the private agent CA.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use crate::gateway::Gateway;
use crate::http::ClientInfo;
use crate::pki::{fingerprint, AgentCa, PkiPaths};
use crate::state::{AppState, Shared};
use crate::store::Store;
use crate::tokens::Signer;
use crate::{
    admin_api, agent_releases, agent_ws, authorize, device, federation, password_change,
    password_reset, sts, token,
};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// The data dir is missing pieces.
    #[error("{0}")]
    DataDir(String),
    /// TLS files are unusable.
    #[error("TLS setup failed: {0}")]
    Tls(String),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}. Is another server using the port, or does it need root?")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Options of `serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub listen: String,
    pub heartbeat: Duration,
    /// The DNS server asked for domain verification records (else the system's).
    pub dns_server: Option<std::net::SocketAddr>,
    /// Where to serve `GET /metrics` (plain HTTP, for 127.0.0.1 or a private network);
    /// `None`: nowhere.
    pub metrics_listen: Option<String>,
    /// Agents a tenant may have registered and not revoked (40, as in Azure).
    pub max_agents_per_tenant: u32,
    /// How long agent certificates are valid (`--agent-cert-lifetime`, 365 days).
    pub agent_cert_lifetime: time::Duration,
    /// `--public-url`: the base of every absolute URL the cloud produces (issuer,
    /// discovery, device `verification_uri`, redirects), checked by
    /// [`crate::sts::parse_public_url`]. `None`: taken from each request's `Host`.
    pub public_url: Option<String>,
    /// `--allow-private-federation`: identity providers of federated domains may resolve to
    /// loopback, link-local or private addresses.
    pub allow_private_federation: bool,
    /// Rate limits, connection caps, time-outs and row caps.
    pub limits: crate::limits::Limits,
    /// `--bus nats://HOST:PORT`: the NATS server this deployment's instances talk through.
    pub bus: Option<String>,
    /// `--store postgres://...`: serve this PostgreSQL store instead of the data dir's own
    /// (after `migrate`).
    pub store: Option<String>,
    /// `--tls-cert FILE --tls-key FILE`: the operator's certificate chain and key, served
    /// instead of the data dir's `tls/server.pem` and `tls/server-key.pem`.
    pub tls_files: Option<crate::server_cert::TlsFiles>,
}

/// The certificate files `serve` reads (at start and on SIGHUP): the operator's, or the
/// data dir's generated ones.
pub fn served_tls_files(data_dir: &Path, opts: &ServeOptions) -> crate::server_cert::TlsFiles {
    opts.tls_files.clone().unwrap_or_else(|| {
        let paths = PkiPaths::new(data_dir);
        crate::server_cert::TlsFiles {
            cert: paths.server_cert(),
            key: paths.server_key(),
        }
    })
}

/// Unverified domain claims are dropped after this long.
pub const UNVERIFIED_DOMAIN_SECS: i64 = 7 * 86_400;

/// Sign-in log lines and audit entries past each tenant's retention, and domain claims never
/// verified.
pub async fn purge_admin_rows(store: &Store, now_ms: i64) -> Result<(), crate::store::StoreError> {
    let lines = store.purge_sign_ins(now_ms).await?;
    let audit = store.purge_audit(now_ms).await?;
    let domains = store
        .purge_unverified_domains(now_ms / 1000, UNVERIFIED_DOMAIN_SECS)
        .await?;
    if lines + audit + domains > 0 {
        tracing::info!(
            lines,
            audit,
            domains,
            "sign-in log lines and audit entries past retention and stale domain claims removed"
        );
    }
    Ok(())
}

/// The management listener's routes: `GET /metrics`, and `GET /healthz` and `GET /readyz`
/// ([`crate::health`]).
pub fn metrics_router(state: Shared) -> Router {
    Router::new()
        .route("/healthz", get(crate::health::healthz))
        .route("/readyz", get(crate::health::readyz))
        .route(
            "/metrics",
            get(
                |axum::extract::State(state): axum::extract::State<Shared>| async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            crate::metrics::CONTENT_TYPE,
                        )],
                        state.metrics.render(&state.gateway.agent_loads()),
                    )
                },
            ),
        )
        .with_state(state)
}

/// Removes agents inactive for 10 days (`store::AGENT_EXPIRY_SECS`), never a connected one,
/// after storing every agent's pending statistics.
async fn remove_inactive_agents(state: &Shared) {
    for (agent_id, delta) in state.gateway.take_all_unflushed() {
        if let Err(e) = state
            .store
            .add_agent_stats(agent_id, &delta, crate::clock::unix_now())
            .await
        {
            tracing::warn!(agent = %agent_id, error = %e, "could not store the agent's statistics; will retry");
            state.gateway.restore_unflushed(agent_id, &delta);
        }
    }
    let connected = state.gateway.connected_ids();
    match state
        .store
        .remove_inactive_agents(crate::clock::unix_now(), &connected)
        .await
    {
        Ok(removed) => {
            for id in removed {
                tracing::info!(agent = %id, "agent removed after 10 days without a connection");
            }
        }
        Err(e) => tracing::warn!(error = %e, "removing inactive agents failed"),
    }
}

/// Builds the HTTP routes.
pub fn router(state: Shared) -> Router {
    // The pages people see (sign-in, password, device code, MFA, sign-out) carry the tenant's
    // branding ([`crate::look::with_branding`]); the protocol endpoints do not pay for it.
    let pages = Router::new()
        .route(
            "/{tenant}/oauth2/v2.0/authorize",
            get(authorize::authorize).post(authorize::authorize),
        )
        .route("/{tenant}/login", post(authorize::login_username))
        .route("/{tenant}/login/password", post(authorize::login_password))
        .route(
            "/{tenant}/login/password/change",
            post(password_change::during_sign_in),
        )
        .route(
            "/{tenant}/password/change",
            get(password_change::page_for_session).post(password_change::change_for_session),
        )
        .route(
            "/{tenant}/password/reset",
            get(password_reset::start_page).post(password_reset::start),
        )
        .route(
            "/{tenant}/password/reset/verify",
            post(password_reset::verify),
        )
        .route(
            "/{tenant}/password/reset/new",
            post(password_reset::set_new),
        )
        .route("/{tenant}/password/help", get(crate::pages::password_help))
        .route("/{tenant}/federation/callback", get(federation::callback))
        .route(
            "/{tenant}/oauth2/v2.0/logout",
            get(authorize::logout).post(authorize::logout_confirmed),
        )
        .route(
            "/{tenant}/devicelogin",
            get(device::code_entry).post(device::code_submit),
        )
        .merge(crate::mfa::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::look::with_branding,
        ));
    Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(sts::discovery),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(sts::keys))
        .route("/{tenant}/oauth2/v2.0/token", post(token::token))
        .route("/common/userrealm/{username}", get(sts::user_realm))
        .merge(pages)
        .route("/{tenant}/branding/logo", get(admin_api::branding::serve))
        .route(
            "/{tenant}/oauth2/v2.0/devicecode",
            post(device::device_code),
        )
        .route(
            "/{tenant}/openid/userinfo",
            get(authorize::userinfo).post(authorize::userinfo),
        )
        .route("/{tenant}/agent/v1/connect", get(agent_ws::connect))
        .route(
            "/{tenant}/agent/v1/releases/{version}/package",
            get(agent_releases::package),
        )
        .nest("/{tenant}/admin", admin_api::routes(state.clone()))
        .merge(crate::portal::routes())
        .route("/healthz", get(|| async { "ok" }))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::cors::cors,
        ))
        .layer(axum::middleware::from_fn(
            crate::http::echo_client_request_id,
        ))
        .layer(axum::middleware::map_response(crate::browser_policy::hsts))
        .with_state(state)
}

/// The server's TLS configuration: the certificate from `cert` (reloadable), client
/// certificates asked for but not required, and checked against the private agent CA.
fn tls_config(
    paths: &PkiPaths,
    cert: Arc<crate::server_cert::ReloadingCert>,
    provider: Arc<rustls::crypto::CryptoProvider>,
) -> Result<ServerConfig, ServeError> {
    let tls = |e: &dyn std::fmt::Display| ServeError::Tls(e.to_string());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(paths.agent_ca_cert())
        .map_err(|e| ServeError::Tls(format!("{}: {e}", paths.agent_ca_cert().display())))?
    {
        roots.add(c.map_err(|e| tls(&e))?).map_err(|e| tls(&e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls(&e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// How long a shutdown waits for the HTTP requests in flight (a sign-in's agent round trip
/// lasts up to its deadline, 10 s by default).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(11);

/// The state every handler shares, over the open store of `data_dir` and its secret box
/// (no listener, no background task).
#[cfg(test)]
pub(crate) fn app_state(
    data_dir: &Path,
    store: Store,
    mfa_box: Arc<crate::secret_box::SecretBox>,
    opts: &ServeOptions,
    shutdown: watch::Receiver<bool>,
) -> Result<Shared, ServeError> {
    app_state_with(data_dir, store, mfa_box, opts, shutdown, None)
}

/// [`app_state`] with another dispatcher than the gateway (`None`: the gateway).
#[cfg(test)]
pub(crate) fn app_state_with(
    data_dir: &Path,
    store: Store,
    mfa_box: Arc<crate::secret_box::SecretBox>,
    opts: &ServeOptions,
    shutdown: watch::Receiver<bool>,
    dispatcher: Option<Arc<dyn crate::dispatcher::Dispatcher>>,
) -> Result<Shared, ServeError> {
    let gateway = Arc::new(Gateway::with_agent_requests_per_tenant(
        opts.limits.agent_requests_per_tenant,
    ));
    app_state_over(
        data_dir, store, mfa_box, opts, shutdown, gateway, dispatcher, None,
    )
}

/// [`app_state_with`] over a given gateway, as one instance of several (`cluster`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn app_state_over(
    data_dir: &Path,
    store: Store,
    mfa_box: Arc<crate::secret_box::SecretBox>,
    opts: &ServeOptions,
    shutdown: watch::Receiver<bool>,
    gateway: Arc<Gateway>,
    dispatcher: Option<Arc<dyn crate::dispatcher::Dispatcher>>,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> Result<Shared, ServeError> {
    let paths = PkiPaths::new(data_dir);
    let signer = Signer::new(store.clone(), mfa_box.clone());
    let agent_ca = AgentCa::load(&paths).map_err(|e| ServeError::DataDir(e.to_string()))?;
    let domain_proof = crate::domain_proof::DomainProof::new(opts.dns_server)
        .map_err(|e| ServeError::DataDir(e.to_string()))?;
    let dispatcher = dispatcher.unwrap_or_else(|| match &cluster {
        Some(c) => c.clone(),
        None => gateway.clone(),
    });
    store.set_pending_rows_per_tenant(opts.limits.pending_rows_per_tenant);
    let metrics = gateway.metrics.clone();
    Ok(Arc::new(AppState {
        store,
        signer,
        gateway,
        dispatcher,
        metrics,
        agent_ca,
        heartbeat: opts.heartbeat,
        max_agents_per_tenant: opts.max_agents_per_tenant,
        agent_cert_lifetime: opts.agent_cert_lifetime,
        shutdown,
        domain_proof,
        sync: Default::default(),
        mfa_box,
        public_url: opts.public_url.clone(),
        lockout_gate: Default::default(),
        cluster,
    }))
}

/// Runs the server until SIGINT or SIGTERM.
pub async fn serve(data_dir: &Path, opts: ServeOptions) -> Result<(), ServeError> {
    let location = match &opts.store {
        Some(url) => crate::init::StoreLocation::Postgres(url.clone()),
        None => crate::init::store_location(data_dir)
            .map_err(|e| ServeError::DataDir(format!("{e:#}")))?,
    };
    let paths = PkiPaths::new(data_dir);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_cert = Arc::new(
        crate::server_cert::ReloadingCert::load(
            served_tls_files(data_dir, &opts),
            provider.clone(),
            crate::clock::unix_now(),
        )
        .map_err(|e| ServeError::Tls(e.to_string()))?,
    );
    let tls = tls_config(&paths, server_cert.clone(), provider)?;
    crate::federation::init_http_client(opts.allow_private_federation)
        .map_err(|e| ServeError::Tls(e.to_string()))?;
    // The store, with what an earlier release kept in the clear sealed now.
    // A deployment on PostgreSQL is served by copies of one data dir: one without the key
    // that seals the deployment's secrets (and authenticates its bus) must not make a new
    // one.
    if matches!(location, crate::init::StoreLocation::Postgres(_))
        && !data_dir.join(crate::secret_box::KEY_FILE).exists()
    {
        return Err(ServeError::DataDir(format!(
            "{} has no {}: serve a PostgreSQL deployment from a copy (cp -a) of the data dir of one of its instances, which holds the key that seals its secrets",
            data_dir.display(),
            crate::secret_box::KEY_FILE
        )));
    }
    let (store, mfa_box) = crate::init::open_store_at(data_dir, &location, false)
        .await
        .map_err(|e| ServeError::DataDir(format!("{e:#}")))?;
    if let Some(to) = store
        .meta(crate::store::instances::MOVED_TO)
        .await
        .map_err(|e| ServeError::DataDir(e.to_string()))?
    {
        return Err(ServeError::DataDir(format!(
            "the store {location} was moved to {to} by `passthru-cloud migrate`: serving it would split the deployment in two. Serve the moved deployment instead: passthru-cloud serve --data-dir {} --store {to} (give --store the URL with its password, if it has one)",
            data_dir.display()
        )));
    }
    // Every instance of a deployment has the same key: the first to serve records a check
    // value of it, and one with another key (a data dir of another deployment) is refused.
    let check = mfa_box.key_check();
    let recorded = store
        .init_meta(crate::store::instances::KEY_CHECK, &check)
        .await
        .map_err(|e| ServeError::DataDir(e.to_string()))?;
    if recorded != check {
        return Err(ServeError::DataDir(format!(
            "the {} of {} is not the key of the deployment in {location}: copy the data dir (cp -a) of one of its instances instead",
            crate::secret_box::KEY_FILE,
            data_dir.display()
        )));
    }
    // One instance per SQLite store; on PostgreSQL, several only when each has the bus.
    store
        .hold_serve_lock(opts.bus.is_some())
        .await
        .map_err(|e| ServeError::DataDir(e.to_string()))?;
    let gateway = Arc::new(Gateway::with_agent_requests_per_tenant(
        opts.limits.agent_requests_per_tenant,
    ));
    let cluster = match &opts.bus {
        Some(url) => {
            let deployment = store
                .deployment_id()
                .await
                .map_err(|e| ServeError::DataDir(e.to_string()))?;
            let c =
                crate::cluster::Cluster::join(url, &deployment, gateway.clone(), mfa_box.bus_key())
                    .await
                    .map_err(|e| ServeError::DataDir(e.to_string()))?;
            tracing::info!(bus = %url, instance = %c.instance, "joined the bus");
            Some(c)
        }
        None => None,
    };
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let state = app_state_over(
        data_dir,
        store.clone(),
        mfa_box,
        &opts,
        shutdown_rx,
        gateway,
        None,
        cluster.clone(),
    )?;
    if let Some(c) = cluster {
        crate::cluster::spawn(c, state.clone())
            .await
            .map_err(|e| ServeError::DataDir(e.to_string()))?;
    }
    crate::dirsync::spawn(state.clone());
    spawn_key_refresh(state.clone());
    crate::server_cert::record(
        &server_cert,
        &server_cert.current(),
        &state.metrics,
        crate::clock::unix_now(),
    );
    spawn_cert_reload(server_cert, state.clone())?;
    let listener = TcpListener::bind(&opts.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: opts.listen.clone(),
            source,
        })?;
    let local = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: opts.listen.clone(),
        source,
    })?;
    let metrics_listener = match &opts.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: addr.clone(),
                    source,
                })?,
        ),
        None => None,
    };
    // Expired codes, sessions, pending sign-ins and refresh tokens are removed every minute,
    // and so are agents inactive for 10 days (never a connected one).
    {
        let store = store.clone();
        let purge_state = state.clone();
        let mut stop = state.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Err(e) = store.purge_expired(crate::clock::unix_now()).await {
                            tracing::warn!(error = %e, "purging expired rows failed");
                        }
                        if let Err(e) = store.purge_lockouts(crate::clock::unix_now()).await {
                            tracing::warn!(error = %e, "purging stale smart lockout counters failed");
                        }
                        if let Err(e) = store.purge_check_places(crate::clock::unix_ms()).await {
                            tracing::warn!(error = %e, "purging lapsed smart lockout places failed");
                        }
                        if let Err(e) = store.purge_attempts(crate::clock::unix_now(), crate::password_reset::START_WINDOW).await {
                            tracing::warn!(error = %e, "purging attempt counters failed");
                        }
                        if let Err(e) = purge_admin_rows(&store, crate::clock::unix_ms()).await {
                            tracing::warn!(error = %e, "purging old sign-in log lines or stale domain claims failed");
                        }
                        remove_inactive_agents(&purge_state).await;
                    }
                    _ = stop.changed() => break,
                }
            }
        });
    }
    let rate = Arc::new(crate::limits::RateLimits::new(&opts.limits));
    {
        // Rate-limit keys whose bucket is full again are dropped; refusals are summed up.
        let rate = rate.clone();
        let mut stop = state.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        let (by_address, by_tenant) = rate.housekeeping();
                        if by_address + by_tenant > 0 {
                            tracing::warn!(by_address, by_tenant, tracked_addresses = rate.tracked_addresses(),
                                "requests refused with 429 in the last 10 s (rate limits: serve --rate-limit-per-address / --rate-limit-per-tenant)");
                        }
                    }
                    _ = stop.changed() => break,
                }
            }
        });
    }
    if let Some(listener) = metrics_listener {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let app = metrics_router(state.clone());
        let mut stop = state.shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "the metrics listener failed");
            }
        });
        println!("Passthru metrics on http://{addr}/metrics");
        tracing::info!(%addr, "metrics listener");
    }
    println!("Passthru cloud listening on https://{local}");
    tracing::info!(%local, "listening");
    // Ready for systemd: the store is open and every listener bound. The watchdog's pings
    // follow a cheap read of the store.
    {
        let store = store.clone();
        passthru_client::service_notify::spawn_watchdog(
            move || {
                let store = store.clone();
                async move {
                    store
                        .meta(crate::store::instances::KEY_CHECK)
                        .await
                        .map(|_| ())
                }
            },
            state.shutdown.clone(),
        );
    }
    passthru_client::service_notify::ready();
    let app = crate::limits::protect(
        router(state.clone()),
        rate,
        store.clone(),
        opts.limits.body_read_timeout,
    );
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let conn_limits = crate::limits::conn::ConnLimits::new(
        opts.limits.max_connections,
        opts.limits.max_connections_per_address,
    );
    let header_read_timeout = opts.limits.header_read_timeout;
    let idle_timeout = opts.limits.idle_timeout;
    // Tracks every HTTP connection, so that a shutdown lets the requests in flight finish
    // (their agent round trips included) before the agents are told to go.
    let graceful = GracefulShutdown::new();
    let mut stop = Box::pin(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (tcp, addr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // Over the connection caps: closed at once, before the TLS handshake.
                let permit = match conn_limits.admit(addr.ip()) {
                    Ok(p) => p,
                    Err(why) => {
                        tracing::debug!(%addr, ?why, "connection refused: too many open (serve --max-connections / --max-connections-per-address)");
                        drop(tcp);
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let app = app.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let _ = tcp.set_nodelay(true);
                    let tls = match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%addr, error = %e, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let peer = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(|c| fingerprint(c));
                    let activity = crate::limits::conn::Activity::new();
                    let svc = app
                        .layer(Extension(ClientInfo { addr, peer_cert_fingerprint: peer }))
                        .layer(Extension(activity.clone()));
                    let io = crate::limits::conn::Counted::new(tls, permit);
                    let mut conn = ConnBuilder::new(TokioExecutor::new());
                    // A client that never finishes its request headers is dropped; so is an
                    // HTTP/1 connection that waits that long for its next request.
                    conn.http1()
                        .timer(TokioTimer::new())
                        .header_read_timeout(header_read_timeout);
                    conn.http2()
                        .timer(TokioTimer::new())
                        .keep_alive_interval(Duration::from_secs(30))
                        .keep_alive_timeout(Duration::from_secs(20));
                    // An upgraded connection (an agent's WebSocket) leaves the watch at the
                    // upgrade: it ends with the agents, after the drain.
                    let served = watcher
                        .watch(conn.serve_connection_with_upgrades(TokioIo::new(io), TowerToHyperService::new(svc)));
                    // A connection with no request in flight for the idle time-out is
                    // closed (HTTP/2 clients that hold connections open, slow handshakes of
                    // streams that never become requests).
                    tokio::select! {
                        ended = served => {
                            if let Err(e) = ended {
                                tracing::debug!(%addr, error = %e, "connection ended with an error");
                            }
                        }
                        _ = activity.idle_for(idle_timeout) => {
                            tracing::debug!(%addr, "idle connection closed");
                        }
                    }
                });
            }
            _ = &mut stop => break,
        }
    }
    passthru_client::service_notify::stopping();
    // No new connections; the open ones finish the request in flight (HTTP/1 then closes,
    // HTTP/2 gets GOAWAY), within the longest default deadline and a little.
    tracing::info!(
        connections = graceful.count(),
        "shutting down: finishing the requests in flight"
    );
    drop(listener);
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still in flight after the drain time-out; stopping anyway");
    }
    tracing::info!("shutting down: closing agent connections");
    let _ = shutdown_tx.send(true);
    // Give agent connections a moment to send their goodbyes.
    for _ in 0..20 {
        if state.gateway.total_connected() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (agent_id, delta) in state.gateway.take_all_unflushed() {
        if let Err(e) = store
            .add_agent_stats(agent_id, &delta, crate::clock::unix_now())
            .await
        {
            tracing::warn!(agent = %agent_id, error = %e, "could not store the agent's statistics");
        }
    }
    store.close().await;
    println!("Passthru cloud stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Reads the TLS certificate files again on every SIGHUP until the server shuts down (the
/// handler is installed before `serve` says it listens: SIGHUP never ends the process).
fn spawn_cert_reload(
    cert: Arc<crate::server_cert::ReloadingCert>,
    state: Shared,
) -> Result<(), ServeError> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|e| ServeError::Tls(format!("cannot handle SIGHUP: {e}")))?;
    let mut stop = state.shutdown.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                got = hangup.recv() => {
                    if got.is_none() {
                        break;
                    }
                    tracing::info!(cert = %cert.files().cert.display(), "SIGHUP: reloading the TLS certificate");
                    crate::server_cert::reload_and_record(&cert, &state.metrics, crate::clock::unix_now());
                }
                _ = stop.changed() => break,
            }
        }
    });
    Ok(())
}

/// Re-reads the token signing keys every [`crate::tokens::REFRESH_EVERY`] until the server
/// shuts down.
fn spawn_key_refresh(state: Shared) {
    let mut stop = state.shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::tokens::REFRESH_EVERY);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = state.signer.refresh(crate::clock::unix_now()).await {
                        tracing::warn!(error = %e, "re-reading the token signing keys failed; will retry");
                    }
                }
                _ = stop.changed() => break,
            }
        }
    });
}
