//! `passthru-agent`: register, run, helpmsg, status, log-level, doctor, collect-logs, release.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{CommandFactory as _, FromArgMatches as _};
use passthru_agent::cli::{Cli, Command, ReleaseCommand};
use passthru_agent::directory_validator::DirectoryValidator;
use passthru_agent::register::{register, register_proxy, RegisterOptions};
use passthru_agent::run::{run, RunOptions};
use passthru_agent::session_log::{Level, MakeSessionWriter, SessionLog};
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

/// `run`'s logging: the process log on standard error (PASSTHRU_LOG, default info) and the
/// session (debug) log, which writes the agent's debug events while it is switched on.
fn init_run_logging(session: &Arc<SessionLog>) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = EnvFilter::try_from_env("PASSTHRU_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(filter);
    // The session layer's filter lets nothing through while the log is off, so that debug
    // events on the validation path are not even looked at; a switch reloads it.
    let targets = |on: bool| {
        let t = tracing_subscriber::filter::Targets::new();
        if on {
            t.with_target("passthru", tracing::Level::DEBUG)
        } else {
            t
        }
    };
    let (filter, handle) = tracing_subscriber::reload::Layer::new(targets(false));
    session.on_switch(Box::new(move |on| {
        let _ = handle.reload(targets(on));
    }));
    let session_layer = tracing_subscriber::fmt::layer()
        .with_writer(MakeSessionWriter(Arc::clone(session)))
        .with_ansi(false)
        .with_filter(filter);
    tracing_subscriber::registry()
        .with(stderr)
        .with(session_layer)
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
fn out(text: &str) -> ExitCode {
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

/// mimalloc instead of glibc's malloc: allocation and freeing were 7-12% of the CPU per
/// sign-in (docs/performance.md, issue 20).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = parse();
    match cli.command {
        Command::Release(args) => match args.command {
            ReleaseCommand::Keygen { out: key_file } => {
                match passthru_agent::update::publish::keygen(&key_file) {
                    Ok(public) => {
                        eprintln!(
                            "Private key written to {} (mode 0600: keep it offline). Pin the \
                         public key below in agents: [updates] public_key = \"...\"",
                            key_file.display()
                        );
                        out(&format!("{public}\n"))
                    }
                    Err(e) => fail(e),
                }
            }
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
            Ok(text) => out(&format!("{text}\n")),
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
                Ok(text) => out(&text),
                Err(e) => fail(e),
            }
        }
        Command::Register(args) => {
            init_logging("warn");
            let proxy = match register_proxy(args.config.as_deref(), &args.cloud, |var| {
                std::env::var(var).ok()
            }) {
                Ok(proxy) => proxy,
                Err(e) => return fail(e),
            };
            if let Some(proxy) = &proxy {
                eprintln!("Reaching the cloud through the proxy {}.", proxy.describe());
            }
            let options = RegisterOptions {
                cloud: args.cloud,
                tenant: args.tenant,
                ca_file: args.ca_file,
                state_dir: args.state_dir,
                force: args.force,
                proxy,
                device_code: args.device_code,
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
        Command::Doctor(args) => {
            let rt = match runtime(1) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            let options = passthru_agent::doctor::DoctorOptions::new(args.state_dir, args.config);
            let report = rt.block_on(passthru_agent::doctor::doctor(&options));
            let code = out(&if args.json {
                report.json()
            } else {
                report.text()
            });
            if report.ok {
                code
            } else {
                ExitCode::FAILURE
            }
        }
        Command::CollectLogs(args) => {
            let rt = match runtime(1) {
                Ok(rt) => rt,
                Err(code) => return code,
            };
            match rt.block_on(passthru_agent::collect_logs::collect(
                &args.state_dir,
                &args.config,
                &args.out,
                time::OffsetDateTime::now_utc(),
            )) {
                Ok(bundle) => out(&format!(
                    "Wrote the support bundle {} ({} files; no keys or passwords in it).\n",
                    bundle.path.display(),
                    bundle.entries.len()
                )),
                Err(e) => fail(e),
            }
        }
        Command::LogLevel(args) => {
            let Some(level) = Level::parse(&args.level) else {
                return fail(format!(
                    "'{}' is not a level: give debug (session log on) or info (off)",
                    args.level
                ));
            };
            match passthru_agent::session_log::ask(&args.state_dir, level) {
                Ok(pid) => out(&format!(
                    "Asked the agent (pid {pid}) for log level {}: {}\n",
                    level.name(),
                    match level {
                        Level::Debug => format!(
                            "the session log is {}",
                            args.state_dir
                                .join(passthru_agent::state_dir::SESSION_LOG_FILE)
                                .display()
                        ),
                        Level::Info => "the session log is off".to_string(),
                    }
                )),
                Err(e) => fail(e),
            }
        }
        Command::Run(args) => {
            let session_log = SessionLog::new(&args.state_dir);
            init_run_logging(&session_log);
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
                session_log: Some(session_log),
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
