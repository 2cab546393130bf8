//! `passthru-connect-proxy`: an HTTP CONNECT proxy for tests (see
//! `passthru_testkit::connect_proxy`).
//!
//! ```text
//! passthru-connect-proxy [--listen ADDR] [--mode tunnel|intercept] [--auth-file FILE]
//!     [--allow HOST:PORT]... [--map NAME:PORT=IP:PORT]... [--log FILE] [--ca-out FILE]
//! ```
//!
//! Prints `LISTENING IP:PORT` once it listens (`--listen 127.0.0.1:0` by default), then one
//! line per request to `--log` (else standard output). `--auth-file` holds `user:password`:
//! requests without those basic credentials get 407. In intercept mode `--ca-out` receives the
//! inspection CA's certificate. Runs until killed.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use base64::Engine as _;
use passthru_testkit::connect_proxy::server::{serve, ProxyMode, ServerSettings};

const USAGE: &str = "usage: passthru-connect-proxy [--listen ADDR] [--mode tunnel|intercept] \
     [--auth-file FILE] [--allow HOST:PORT]... [--map NAME:PORT=IP:PORT]... [--log FILE] \
     [--ca-out FILE]";

fn parse() -> anyhow::Result<(String, ServerSettings)> {
    let mut listen = "127.0.0.1:0".to_string();
    let mut settings = ServerSettings {
        mode: ProxyMode::Tunnel,
        authorization: None,
        allow: Vec::new(),
        map: Vec::new(),
        log: None,
        ca_out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| anyhow!("{arg} needs a value; {USAGE}"))
        };
        match arg.as_str() {
            "--listen" => listen = value()?,
            "--mode" => {
                settings.mode = match value()?.as_str() {
                    "tunnel" => ProxyMode::Tunnel,
                    "intercept" => ProxyMode::Intercept,
                    other => bail!("unknown mode {other}; {USAGE}"),
                }
            }
            "--auth-file" => {
                let path = PathBuf::from(value()?);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?;
                let pair = text.trim_end_matches(['\r', '\n']);
                if !pair.contains(':') {
                    bail!("{} must hold user:password", path.display());
                }
                settings.authorization = Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ));
            }
            "--allow" => settings.allow.push(value()?),
            "--map" => {
                let v = value()?;
                let (from, to) = v
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--map takes NAME:PORT=IP:PORT, not {v}"))?;
                settings.map.push((from.to_string(), to.to_string()));
            }
            "--log" => settings.log = Some(PathBuf::from(value()?)),
            "--ca-out" => settings.ca_out = Some(PathBuf::from(value()?)),
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    Ok((listen, settings))
}

fn run() -> anyhow::Result<()> {
    let (listen, settings) = parse()?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        let addr = listener.local_addr()?;
        {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            writeln!(out, "LISTENING {addr}")?;
            out.flush()?;
        }
        serve(listener, settings).await
    })
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passthru-connect-proxy: {e:#}");
            ExitCode::FAILURE
        }
    }
}
