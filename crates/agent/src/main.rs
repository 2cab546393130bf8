//! `passthru-agent`: register, run, helpmsg, status, release.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, FromArgMatches as _};
use passthru_agent::cli::{Cli, Command, ReleaseCommand};
use passthru_agent::directory_validator::DirectoryValidator;
use passthru_agent::register::{register, RegisterOptions};
use passthru_agent::run::{run, RunOptions};
use passthru_agent::state_dir::StateDir;
use tracing_subscriber::EnvFilter;

/// The version this binary reports (`--version`, the cloud, update checks): the package's,
/// unless the build set `PASSTHRU_AGENT_VERSION_OVERRIDE` (the update tests build a second
/// agent that way). Read here, in the binary, so that building with another value rebuilds
/// this file only.
const VERSION: &str = match option_env!("PASSTHRU_AGENT_VERSION_OVERRIDE") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

/// The update publisher's public key built in (base64), if the build set
/// `PASSTHRU_UPDATE_PUBLIC_KEY`; `[updates] public_key` in the configuration takes
/// precedence.
const BUILT_IN_UPDATE_KEY: Option<&str> = option_env!("PASSTHRU_UPDATE_PUBLIC_KEY");

fn init_logging(default: &str) {
    let filter =
        EnvFilter::try_from_env("PASSTHRU_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}

/// The async runtime: one thread (no work handed between threads), or `threads` workers.
fn runtime(threads: u16) -> Result<tokio::runtime::Runtime, ExitCode> {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(usize::from(threads));
        b
    };
    builder.enable_all().build().map_err(|e| {
        eprintln!("error: cannot start the async runtime: {e}");
        ExitCode::FAILURE
    })
}

/// Writes `text` to standard output. A reader that went away (`| head`, `| grep -q`) is not
/// an error worth a panic: the output is simply not read.
fn out_text(text: &str) -> ExitCode {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => fail(e),
        _ => ExitCode::SUCCESS,
    }
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// The command line, with this build's version.
fn parse() -> Cli {
    let matches = Cli::command().version(VERSION).get_matches();
    match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    }
}

fn main() -> ExitCode {
    let cli = parse();
    match cli.command {
        Command::Release(args) => match args.command {
            ReleaseCommand::Keygen { out } => match passthru_agent::update::publish::keygen(&out) {
                Ok(public) => {
                    eprintln!(
                        "Private key written to {} (mode 0600: keep it offline). Pin the \
                         public key below in agents: [updates] public_key = \"...\"",
                        out.display()
                    );
                    out_text(&format!("{public}\n"))
                }
                Err(e) => fail(e),
            },
            ReleaseCommand::Sign {
                key,
                package,
                version,
                min_cloud_version,
                target,
                out,
            } => {
                let options = passthru_agent::update::publish::SignOptions {
                    key,
                    package,
                    version,
                    min_cloud_version,
                    target,
                    out,
                };
                match passthru_agent::update::publish::sign(&options) {
                    Ok((_, m)) => {
                        eprintln!(
                            "Signed {} {} for {} ({} bytes, SHA-256 {}, for clouds from {} on): \
                             {}. Publish it with: passthru-cloud admin agents release add {} {}",
                            m.product,
                            m.version,
                            m.target,
                            m.size,
                            m.sha256,
                            m.min_cloud_version,
                            options.out.display(),
                            options.package.display(),
                            options.out.display()
                        );
                        ExitCode::SUCCESS
                    }
                    Err(e) => fail(e),
                }
            }
        },
        Command::Helpmsg(args) => match passthru_agent::helpmsg::helpmsg(&args.code) {
            Ok(text) => out_text(&format!("{text}\n")),
            Err(e) => fail(e),
        },
        Command::Status(args) => {
            let state = StateDir::new(&args.state_dir);
            let now = time::OffsetDateTime::now_utc();
            let text = if args.json {
                passthru_agent::status::report(&state, now)
                    .map(|r| serde_json::to_string_pretty(&r).unwrap_or_default() + "\n")
            } else {
                passthru_agent::status::status(&state, now)
            };
            match text {
                Ok(text) => out_text(&text),
                Err(e) => fail(e),
            }
        }
        Command::Register(args) => {
            init_logging("warn");
            let options = RegisterOptions {
                cloud: args.cloud,
                tenant: args.tenant,
                ca_file: args.ca_file,
                state_dir: args.state_dir,
                force: args.force,
            };
            let rt = match runtime(1) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(register(&options)) {
                Ok(reg) => {
                    println!("{}", reg.agent_id);
                    eprintln!(
                        "Registered agent {} for tenant {} ({}). State saved in {}.\n\
                         Start it with: passthru-agent run --state-dir {} --config CONFIG.toml",
                        reg.agent_id,
                        reg.tenant_name,
                        reg.tenant_id,
                        options.state_dir.display(),
                        options.state_dir.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Run(args) => {
            init_logging("info");
            passthru_agent::update::launcher::start_staged_if_newer(
                &args.state_dir,
                &args.config,
                VERSION,
                BUILT_IN_UPDATE_KEY,
            );
            let options = RunOptions {
                state_dir: args.state_dir,
                config: args.config,
                host_lock: args.host_lock,
                version: VERSION.to_string(),
                built_in_update_key: BUILT_IN_UPDATE_KEY.map(str::to_string),
            };
            let rt = match runtime(args.threads) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let result = rt.block_on(run(&options, DirectoryValidator::new));
            // Validations still running after the drain time-out must not hold the exit.
            rt.shutdown_timeout(std::time::Duration::from_secs(1));
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
    }
}
