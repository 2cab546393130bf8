//! The command line (a contract: scripts and the docs use exactly these).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// `passthru-agent`: the on-premises pass-through authentication agent.
#[derive(Debug, Parser)]
#[command(
    name = "passthru-agent",
    version,
    about = "Passthru authentication agent: validates passwords against Active Directory for the cloud, over one outbound connection"
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Register this agent with the cloud (once; as a Global or Hybrid Identity Administrator,
    /// from PASSTHRU_ADMIN_UPN / PASSTHRU_ADMIN_PASSWORD or prompted, or signed in through a
    /// web browser with --device-code).
    Register(RegisterArgs),
    /// Run the agent until SIGTERM or SIGINT.
    Run(RunArgs),
    /// Explain a code from the trace log and what to do about it.
    Helpmsg(HelpmsgArgs),
    /// Show this agent's registration and certificate expiry.
    Status(StatusArgs),
    /// Publisher tools for signed auto-update: make a signing key, sign a release.
    Release(ReleaseArgs),
    /// Switch the running agent's session (debug) log on (debug) or off (info), without a
    /// restart (SIGUSR1 alone switches it too).
    LogLevel(LogLevelArgs),
    /// Check everything this agent needs (configuration, state dir, the way to the cloud,
    /// each domain controller), each check with PASS or FAIL and what to do; exit status 0
    /// only when all pass.
    Doctor(DoctorArgs),
    /// Write a support bundle (.tar.gz): version, status, doctor, the configuration with
    /// secrets redacted, the logs, system facts. Never a key or a password.
    CollectLogs(CollectLogsArgs),
}

/// `doctor` arguments.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// The state dir written by `register`.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// Print the checks as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `collect-logs` arguments.
#[derive(Debug, Args)]
pub struct CollectLogsArgs {
    /// The state dir written by `register`.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The configuration file.
    #[arg(long)]
    pub config: PathBuf,
    /// The bundle to write (FILE.tar.gz, created 0600).
    #[arg(long)]
    pub out: PathBuf,
}

/// `log-level` arguments.
#[derive(Debug, Args)]
pub struct LogLevelArgs {
    /// `debug` (the session log STATE_DIR/session.log on) or `info` (off).
    pub level: String,
    /// The state dir of the running agent.
    #[arg(long)]
    pub state_dir: PathBuf,
}

/// `release` arguments.
#[derive(Debug, Args)]
pub struct ReleaseArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: ReleaseCommand,
}

/// `release` subcommands.
#[derive(Debug, Subcommand)]
pub enum ReleaseCommand {
    /// Make an Ed25519 signing key: the private key goes to KEYFILE (mode 0600, never
    /// overwritten), the public key (base64, to pin in agents) to standard output.
    Keygen {
        /// Where to write the private key.
        #[arg(long, value_name = "KEYFILE")]
        out: PathBuf,
    },
    /// Sign a release: write the package's signed manifest (version, SHA-256, size,
    /// platform, oldest cloud version) to SIGFILE, for `passthru-cloud admin agents release
    /// add FILE SIGFILE`.
    Sign {
        /// The private key `release keygen` wrote.
        #[arg(long, value_name = "KEYFILE")]
        key: PathBuf,
        /// The package: the passthru-agent executable.
        #[arg(long, value_name = "FILE")]
        package: PathBuf,
        /// The package's version (default: what `FILE --version` prints).
        #[arg(long)]
        version: Option<String>,
        /// The oldest cloud version that may offer this release.
        #[arg(long, default_value = "0.0.0")]
        min_cloud_version: String,
        /// The platform the package runs on (ARCH-OS).
        #[arg(long, default_value_t = passthru_proto::release::this_target())]
        target: String,
        /// Where to write the signed manifest.
        #[arg(long, value_name = "SIGFILE")]
        out: PathBuf,
    },
}

/// `register` arguments.
#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The cloud's URL, e.g. https://login.contoso.example
    #[arg(long)]
    pub cloud: String,
    /// Tenant name or id.
    #[arg(long)]
    pub tenant: String,
    /// CA certificate to trust for the cloud's TLS (the cloud's DIR/tls/ca.pem), besides the
    /// system's roots; copied into the state dir.
    #[arg(long)]
    pub ca_file: Option<PathBuf>,
    /// Where to keep the agent's registration and keys (created 0700).
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Replace an existing registration in the state dir.
    #[arg(long)]
    pub force: bool,
    /// The agent's configuration file, for its [cloud] proxy settings only (proxy,
    /// proxy_auth_file; the other tables may be missing yet). Without it, or without a
    /// proxy in it, HTTPS_PROXY (and NO_PROXY) apply.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Sign the administrator in through a web browser (on any device) with a code this
    /// command prints, instead of the password grant: for administrators who must prove a
    /// second factor (AADSTS50076). PASSTHRU_ADMIN_UPN / PASSTHRU_ADMIN_PASSWORD are then
    /// not used.
    #[arg(long)]
    pub device_code: bool,
}

/// `run` arguments.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The state dir written by `register`.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// The configuration file ([[forest]] tables).
    #[arg(long)]
    pub config: PathBuf,
    /// Threads that run validations and sync. One thread serves several thousand
    /// validations a second and spends no CPU handing work between threads; raise it only
    /// when one core is not enough.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: u16,
    /// The host-wide lock that keeps a second agent from running on this host (one agent
    /// per server). Only tests, which run several agents on one machine, give each its own.
    #[arg(
        long,
        value_name = "PATH",
        env = "PASSTHRU_AGENT_HOST_LOCK",
        default_value = crate::lock::DEFAULT_HOST_LOCK
    )]
    pub host_lock: PathBuf,
}

/// `helpmsg` arguments.
#[derive(Debug, Args)]
pub struct HelpmsgArgs {
    /// A Win32 code (e.g. 1909) or an agent error code (e.g. 80013) from the trace log.
    pub code: String,
}

/// `status` arguments.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The state dir written by `register`.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// Print the status as one JSON object (with `cert_not_after`, for monitoring).
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "register",
            "--cloud",
            "https://127.0.0.1:8443",
            "--tenant",
            "contoso",
            "--ca-file",
            "ca.pem",
            "--state-dir",
            "/var/lib/a",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli { command: Command::Register(RegisterArgs { ref tenant, force: false, ca_file: Some(_), config: None, .. }) }) if tenant == "contoso"
        ));
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "register",
            "--cloud",
            "https://x",
            "--tenant",
            "t",
            "--state-dir",
            "/s",
            "--config",
            "/etc/passthru-agent/agent.toml",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli { command: Command::Register(RegisterArgs { config: Some(ref c), .. }) })
                if c.as_os_str() == "/etc/passthru-agent/agent.toml"
        ));
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "register",
            "--cloud",
            "https://x",
            "--tenant",
            "t",
            "--state-dir",
            "/s",
            "--force",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli {
                command: Command::Register(RegisterArgs {
                    force: true,
                    ca_file: None,
                    device_code: false,
                    ..
                })
            })
        ));
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "register",
            "--device-code",
            "--cloud",
            "https://x",
            "--tenant",
            "t",
            "--state-dir",
            "/s",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli {
                command: Command::Register(RegisterArgs {
                    device_code: true,
                    force: false,
                    ..
                })
            })
        ));
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "run",
            "--state-dir",
            "/s",
            "--config",
            "/etc/a.toml",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli {
                command: Command::Run(RunArgs { threads: 1, ref host_lock, .. })
            }) if host_lock.as_os_str() == crate::lock::DEFAULT_HOST_LOCK
                || std::env::var_os("PASSTHRU_AGENT_HOST_LOCK").is_some()
        ));
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "run",
            "--state-dir",
            "/s",
            "--config",
            "/c",
            "--host-lock",
            "/tmp/h.lock",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli {
                command: Command::Run(RunArgs { ref host_lock, .. })
            }) if host_lock.as_os_str() == "/tmp/h.lock"
        ));
        let run_with = |threads: &str| {
            Cli::try_parse_from([
                "passthru-agent",
                "run",
                "--state-dir",
                "/s",
                "--config",
                "/c",
                "--threads",
                threads,
            ])
        };
        assert!(matches!(
            run_with("4"),
            Ok(Cli {
                command: Command::Run(RunArgs { threads: 4, .. })
            })
        ));
        assert!(run_with("0").is_err() && run_with("65").is_err());
        let cli = Cli::try_parse_from(["passthru-agent", "helpmsg", "1909"]);
        assert!(
            matches!(cli, Ok(Cli { command: Command::Helpmsg(HelpmsgArgs { ref code }) }) if code == "1909")
        );
        let cli = Cli::try_parse_from(["passthru-agent", "status", "--state-dir", "/s"]);
        assert!(matches!(
            cli,
            Ok(Cli {
                command: Command::Status(_)
            })
        ));
        assert!(Cli::try_parse_from(["passthru-agent", "run", "--state-dir", "/s"]).is_err());
        let cli = Cli::try_parse_from(["passthru-agent", "release", "keygen", "--out", "k"]);
        assert!(matches!(
            cli,
            Ok(Cli { command: Command::Release(ReleaseArgs { command: ReleaseCommand::Keygen { ref out } }) }) if out.as_os_str() == "k"
        ));
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "release",
            "sign",
            "--key",
            "k",
            "--package",
            "p",
            "--out",
            "s",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli { command: Command::Release(ReleaseArgs { command: ReleaseCommand::Sign { version: None, ref min_cloud_version, ref target, .. } }) })
                if min_cloud_version == "0.0.0" && *target == passthru_proto::release::this_target()
        ));
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "release",
            "sign",
            "--key",
            "k",
            "--package",
            "p",
            "--version",
            "0.2.0",
            "--min-cloud-version",
            "0.1.0",
            "--out",
            "s",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli { command: Command::Release(ReleaseArgs { command: ReleaseCommand::Sign { version: Some(ref v), ref min_cloud_version, .. } }) })
                if v == "0.2.0" && min_cloud_version == "0.1.0"
        ));
        assert!(Cli::try_parse_from(["passthru-agent", "release", "sign", "--key", "k"]).is_err());
    }

    #[test]
    fn the_operations_command_lines_parse() {
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "doctor",
            "--state-dir",
            "/s",
            "--config",
            "/c",
            "--json",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli { command: Command::Doctor(DoctorArgs { json: true, ref config, .. }) }) if config.as_os_str() == "/c"
        ));
        let cli = Cli::try_parse_from([
            "passthru-agent",
            "collect-logs",
            "--state-dir",
            "/s",
            "--config",
            "/c",
            "--out",
            "/tmp/b.tar.gz",
        ]);
        assert!(matches!(
            cli,
            Ok(Cli { command: Command::CollectLogs(CollectLogsArgs { ref out, .. }) }) if out.as_os_str() == "/tmp/b.tar.gz"
        ));
        for level in ["debug", "info"] {
            let cli =
                Cli::try_parse_from(["passthru-agent", "log-level", level, "--state-dir", "/s"]);
            assert!(matches!(
                cli,
                Ok(Cli { command: Command::LogLevel(LogLevelArgs { level: ref l, .. }) }) if l == level
            ));
        }
        assert!(Cli::try_parse_from(["passthru-agent", "doctor", "--state-dir", "/s"]).is_err());
        assert!(Cli::try_parse_from([
            "passthru-agent",
            "collect-logs",
            "--state-dir",
            "/s",
            "--config",
            "/c"
        ])
        .is_err());
    }
}
