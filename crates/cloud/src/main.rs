//! `passthru-cloud`: init, serve, and the admin CLI.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "passthru-cloud",
    version,
    about = "Passthru cloud identity service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data dir: store, tenant, Global Administrator, signing key, CAs, TLS certificate.
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        tenant: String,
        /// UPN of the tenant's cloud-only Global Administrator (password from
        /// PASSTHRU_ADMIN_PASSWORD, else prompted). Its domain becomes the tenant's initial domain.
        #[arg(long)]
        admin: String,
        /// Extra DNS name for the server certificate (repeatable).
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
        /// Keep all state in this PostgreSQL database (postgres://USER@HOST[:PORT]/DB),
        /// for several instances; default: SQLite in the data dir.
        #[arg(long, value_parser = parse_store_url)]
        store: Option<String>,
    },
    /// Move a data dir's SQLite store into PostgreSQL (serve it then with --store).
    Migrate {
        #[arg(long)]
        data_dir: PathBuf,
        /// The PostgreSQL database to move to (postgres://USER@HOST[:PORT]/DB); it must hold
        /// no deployment yet.
        #[arg(long, value_parser = parse_store_url)]
        to: String,
    },
    /// Back up a data dir into one archive (mode 0600): a consistent copy of a SQLite store,
    /// taken while serving, and the keys (mfa.key, tls/, agent-ca/). For a PostgreSQL store,
    /// the keys only: back the database up with pg_dump.
    Backup {
        #[arg(long)]
        data_dir: PathBuf,
        /// The archive to write (tar); restore with
        /// `install -d -m 0700 NEW && tar -xpf FILE -C NEW`.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Manage tenants of an existing data dir (offline).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Serve HTTPS (STS, admin API, agent endpoint) until Ctrl-C or SIGTERM.
    Serve {
        #[arg(long)]
        data_dir: PathBuf,
        /// Address and port of the HTTPS listener (browsers, apps, administration and agents);
        /// MSAL reaches the cloud on port 443.
        #[arg(long, default_value = "0.0.0.0:443")]
        listen: String,
        /// The certificate chain to serve (PEM: the server's certificate first, then
        /// intermediates), from any CA, instead of the data dir's tls/server.pem; read again
        /// on SIGHUP. Needs --tls-key.
        #[arg(long, value_name = "FILE", requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// The private key of --tls-cert (PEM: PKCS#8, SEC1 or RSA, unencrypted); read again
        /// on SIGHUP. Needs --tls-cert.
        #[arg(long, value_name = "FILE", requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// The NATS server the instances of one deployment talk through
        /// (nats://HOST:PORT); needed by every instance when several serve one PostgreSQL
        /// store.
        #[arg(long, value_name = "URL", value_parser = parse_bus_url)]
        bus: Option<String>,
        /// Serve this PostgreSQL store (postgres://USER@HOST[:PORT]/DB) instead of the data
        /// dir's own: after `migrate`, with the data dir the deployment had.
        #[arg(long, value_name = "URL", value_parser = parse_store_url)]
        store: Option<String>,
        /// Seconds between heartbeats on agent connections.
        #[arg(long, default_value_t = 10)]
        heartbeat_seconds: u64,
        /// DNS server (IP:PORT) asked for domain verification TXT records; default: the
        /// system's resolv.conf.
        #[arg(long)]
        dns_server: Option<std::net::SocketAddr>,
        /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP, no authentication:
        /// bind it to 127.0.0.1 or a private management network). Off by default.
        #[arg(long, value_name = "ADDR")]
        metrics_listen: Option<String>,
        /// Authentication agents a tenant may register (not revoked), as Azure allows.
        #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        max_agents_per_tenant: u32,
        /// How long the certificates issued to agents (at registration and at each renewal)
        /// are valid: a number and a unit, s, m, h or d. Agents renew theirs over their
        /// connection when a third of the lifetime is left.
        #[arg(long, value_name = "DURATION", default_value = "365d", value_parser = passthru_cloud::pki::parse_agent_cert_lifetime)]
        agent_cert_lifetime: time::Duration,
        /// Threads serving requests and agent connections (default: one per CPU core). Fewer
        /// threads hand less work between them; on a host shared with other busy processes
        /// one or two do best.
        #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
        threads: Option<u16>,
        /// The cloud's public base URL (https://HOST[:PORT], no path): the issuer, the
        /// discovery document, the device flow's verification_uri and every absolute URL
        /// come from it, never from a request's Host header. Set it in production; without
        /// it (quickstart, demo) URLs follow the Host the client used.
        #[arg(long, value_name = "URL", value_parser = parse_public_url)]
        public_url: Option<String>,
        /// Let federated domains' identity providers be on loopback, link-local or private
        /// addresses (a test identity provider, or one on your own network). Off: the cloud
        /// connects to public addresses only, so a tenant administrator cannot make it call
        /// your internal network.
        #[arg(long)]
        allow_private_federation: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// The generated server TLS certificate (offline, on the data dir).
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Administer a tenant through the running cloud's admin API.
    Admin(passthru_cloud_cli::AdminArgs),
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Issue a new server certificate (new key, 825 days) from the deployment CA into
    /// tls/server.pem and tls/server-key.pem; a running serve uses it after SIGHUP.
    Renew {
        #[arg(long)]
        data_dir: PathBuf,
        /// DNS name (or IP address) for the certificate (repeatable); default: those of the
        /// current certificate. localhost and 127.0.0.1 are always included.
        #[arg(long = "hostname")]
        hostnames: Vec<String>,
    },
}

/// Rate limits, connection caps, time-outs and row caps of `serve` (docs/operations.md,
/// "Limits").
#[derive(clap::Args)]
struct LimitArgs {
    /// Requests per second one client address may make to the sign-in endpoints (token,
    /// authorize and the sign-in pages, devicecode, password reset, userrealm, discovery);
    /// 0: no limit. Excess requests get 429 with Retry-After (AADSTS90055).
    #[arg(long, default_value_t = 100)]
    rate_limit_per_address: u32,
    /// Requests one client address may make at once before its rate applies.
    #[arg(long, default_value_t = 1_000)]
    rate_burst_per_address: u32,
    /// Requests per second one tenant's sign-in endpoints take from all addresses; 0: no limit.
    #[arg(long, default_value_t = 1_000)]
    rate_limit_per_tenant: u32,
    /// Requests one tenant may take at once before its rate applies.
    #[arg(long, default_value_t = 5_000)]
    rate_burst_per_tenant: u32,
    /// Client addresses whose rate state is kept in memory; past it, new addresses share
    /// one bucket.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    rate_limit_tracked_addresses: u64,
    /// Open HTTPS connections at most (agents' included); more are closed at once.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Open HTTPS connections at most from one client address (IPv6: one /64).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections_per_address: u64,
    /// Seconds a client has to send a request's headers; also how long an HTTP/1
    /// keep-alive connection may wait for its next request.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    header_read_timeout_seconds: u64,
    /// Seconds a client has to send a request's whole body (408 after).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    body_read_timeout_seconds: u64,
    /// Seconds a connection may stay open with no request in flight.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3_600))]
    idle_timeout_seconds: u64,
    /// Requests one tenant may have in flight to its agents (sign-ins and password
    /// writes); more get AADSTS90055.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_agent_requests_per_tenant: u64,
    /// Sign-ins in progress one tenant may have in each table (authorization requests,
    /// device codes, password resets, federated and portal sign-ins); more are refused
    /// with 429 until the oldest expire.
    #[arg(long, default_value_t = 100_000, value_parser = clap::value_parser!(i64).range(1..=100_000_000))]
    max_pending_per_tenant: i64,
}

impl LimitArgs {
    fn limits(&self) -> passthru_cloud::limits::Limits {
        let usize_of = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
        passthru_cloud::limits::Limits {
            per_address_rate: self.rate_limit_per_address,
            per_address_burst: self.rate_burst_per_address,
            per_tenant_rate: self.rate_limit_per_tenant,
            per_tenant_burst: self.rate_burst_per_tenant,
            tracked_addresses: usize_of(self.rate_limit_tracked_addresses),
            max_connections: usize_of(self.max_connections),
            max_connections_per_address: usize_of(self.max_connections_per_address),
            header_read_timeout: Duration::from_secs(self.header_read_timeout_seconds),
            body_read_timeout: Duration::from_secs(self.body_read_timeout_seconds),
            idle_timeout: Duration::from_secs(self.idle_timeout_seconds),
            agent_requests_per_tenant: usize_of(self.max_agent_requests_per_tenant),
            pending_rows_per_tenant: self.max_pending_per_tenant,
        }
    }
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Add a tenant with its Global Administrator.
    Add {
        #[arg(long)]
        data_dir: PathBuf,
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        admin: String,
    },
}

mod passthru_cloud_cli {
    pub use passthru_admin::cli::AdminArgs;
}

fn parse_store_url(raw: &str) -> Result<String, String> {
    passthru_cloud::init::parse_store_url(raw)
}

fn parse_bus_url(raw: &str) -> Result<String, String> {
    passthru_cloud::cluster::parse_bus_url(raw).map_err(|e| e.to_string())
}

fn parse_public_url(raw: &str) -> Result<String, String> {
    passthru_cloud::sts::parse_public_url(raw)
}

fn admin_password() -> anyhow::Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("PASSTHRU_ADMIN_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    let first = Zeroizing::new(
        rpassword::prompt_password("New Global Administrator password: ").map_err(|e| {
            anyhow::anyhow!(
                "cannot prompt for the admin password ({e}): set PASSTHRU_ADMIN_PASSWORD"
            )
        })?,
    );
    let second = Zeroizing::new(rpassword::prompt_password("Repeat it: ")?);
    if first != second {
        anyhow::bail!("the two passwords differ");
    }
    Ok(first)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PASSTHRU_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init {
            data_dir,
            tenant,
            admin,
            hostnames,
            store,
        } => {
            let pw = admin_password()?;
            let id = passthru_cloud::init::init(
                &data_dir,
                &tenant,
                &admin,
                pw,
                &hostnames,
                store.as_deref(),
            )
            .await?;
            println!(
                "Initialised {}: tenant '{tenant}' ({id}), Global Administrator {admin}.",
                data_dir.display()
            );
            println!("Clients trust {}", data_dir.join("tls/ca.pem").display());
            println!(
                "Next: passthru-cloud serve --data-dir {} --listen 0.0.0.0:443",
                data_dir.display()
            );
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Add {
                    data_dir,
                    tenant,
                    admin,
                },
        } => {
            let pw = admin_password()?;
            let id = passthru_cloud::init::add_tenant(&data_dir, &tenant, &admin, pw).await?;
            println!("Added tenant '{tenant}' ({id}), Global Administrator {admin}.");
            Ok(())
        }
        Command::Backup {
            data_dir,
            out,
            force,
        } => {
            let done = passthru_cloud::backup::backup(&data_dir, &out, force).await?;
            print!("{done}");
            Ok(())
        }
        Command::Migrate { data_dir, to } => {
            let moved = passthru_cloud::migrate::migrate(&data_dir, &to).await?;
            print!("{moved}");
            Ok(())
        }
        Command::Serve {
            data_dir,
            listen,
            tls_cert,
            tls_key,
            bus,
            store,
            heartbeat_seconds,
            dns_server,
            metrics_listen,
            max_agents_per_tenant,
            agent_cert_lifetime,
            threads: _,
            public_url,
            allow_private_federation,
            limits,
        } => {
            init_tracing();
            let opts = passthru_cloud::server::ServeOptions {
                listen,
                heartbeat: Duration::from_secs(heartbeat_seconds.clamp(1, 300)),
                dns_server,
                metrics_listen,
                max_agents_per_tenant,
                agent_cert_lifetime,
                public_url,
                allow_private_federation,
                limits: limits.limits(),
                bus,
                store,
                tls_files: match (tls_cert, tls_key) {
                    (Some(cert), Some(key)) => {
                        Some(passthru_cloud::server_cert::TlsFiles { cert, key })
                    }
                    (None, None) => None,
                    _ => anyhow::bail!("give both --tls-cert and --tls-key, or neither"),
                },
            };
            passthru_cloud::server::serve(&data_dir, opts).await?;
            Ok(())
        }
        Command::Tls {
            command:
                TlsCommand::Renew {
                    data_dir,
                    hostnames,
                },
        } => {
            let renewed = passthru_cloud::pki::renew_server_cert(
                &passthru_cloud::pki::PkiPaths::new(&data_dir),
                &hostnames,
                time::OffsetDateTime::now_utc(),
            )?;
            print!("{renewed}");
            Ok(())
        }
        Command::Admin(args) => passthru_admin::cli::run(args).await,
    }
}

/// mimalloc instead of glibc's malloc: allocation and freeing were 7-12% of the CPU per
/// sign-in (docs/performance.md, issue 20).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Command::Serve {
        threads: Some(n), ..
    } = &cli.command
    {
        builder.worker_threads(usize::from(*n));
    }
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
