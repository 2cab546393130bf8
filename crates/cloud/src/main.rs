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
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: String,
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
    },
    /// Administer a tenant through the running cloud's admin API.
    Admin(passthru_cloud_cli::AdminArgs),
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
    pub use passthru_cloud::admin_cli::AdminArgs;
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
        } => {
            let pw = admin_password()?;
            let id = passthru_cloud::init::init(&data_dir, &tenant, &admin, pw, &hostnames).await?;
            println!(
                "Initialised {}: tenant '{tenant}' ({id}), Global Administrator {admin}.",
                data_dir.display()
            );
            println!("Clients trust {}", data_dir.join("tls/ca.pem").display());
            println!(
                "Next: passthru-cloud serve --data-dir {} --listen 127.0.0.1:443",
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
        Command::Serve {
            data_dir,
            listen,
            heartbeat_seconds,
            dns_server,
            metrics_listen,
            max_agents_per_tenant,
            threads: _,
            public_url,
            allow_private_federation,
        } => {
            init_tracing();
            let opts = passthru_cloud::server::ServeOptions {
                listen,
                heartbeat: Duration::from_secs(heartbeat_seconds.clamp(1, 300)),
                dns_server,
                metrics_listen,
                max_agents_per_tenant,
                public_url,
                allow_private_federation,
            };
            passthru_cloud::server::serve(&data_dir, opts).await?;
            Ok(())
        }
        Command::Admin(args) => passthru_cloud::admin_cli::run(args).await,
    }
}

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
