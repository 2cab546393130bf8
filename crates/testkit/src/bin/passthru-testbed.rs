//! `passthru-testbed up --dir DIR [--forest corp|fabrikam|both]`: provisions the standard
//! Samba AD forests (CORP on 127.0.0.1, FABRIKAM on 127.0.0.2) with their test users, writes
//! `DIR/testbed.json`, prints `READY DIR/testbed.json`, and serves until SIGINT or SIGTERM,
//! then stops its DCs. Prints no password.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context as _};
use passthru_testkit::bed::{provision_standard, Standard, Testbed};

const USAGE: &str = "usage: passthru-testbed up --dir DIR [--forest corp|fabrikam|both]";

fn parse() -> anyhow::Result<(PathBuf, Vec<Standard>)> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("up") => {}
        _ => bail!("{USAGE}"),
    }
    let mut dir = None;
    let mut forests = vec![Standard::Corp, Standard::Fabrikam];
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().map(PathBuf::from),
            "--forest" => {
                forests = match args.next().as_deref() {
                    Some("both") => vec![Standard::Corp, Standard::Fabrikam],
                    Some(name) => vec![Standard::from_name(name)
                        .ok_or_else(|| anyhow!("unknown forest {name}; {USAGE}"))?],
                    None => bail!("{USAGE}"),
                }
            }
            other => bail!("unknown argument {other}; {USAGE}"),
        }
    }
    let dir = dir.ok_or_else(|| anyhow!("{USAGE}"))?;
    Ok((dir, forests))
}

fn run() -> anyhow::Result<()> {
    let (dir, which) = parse()?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let dir = std::fs::canonicalize(&dir)?;
    // Signals are caught from here on: one that comes while provisioning is acted on (the
    // DCs stopped) as soon as provisioning ends.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (mut int, mut term) = rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Ok::<_, std::io::Error>((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
        ))
    })?;

    // Both forests at once: provisioning is mostly waiting on Samba.
    let handles: Vec<_> = which
        .iter()
        .map(|&w| {
            let d = dir.join(w.name());
            std::thread::spawn(move || provision_standard(&d, w, w.ip()))
        })
        .collect();
    let mut forests = Vec::new();
    let mut bed = Testbed::default();
    let mut first_err = None;
    for h in handles {
        match h
            .join()
            .map_err(|_| anyhow!("a provisioning thread panicked"))?
        {
            Ok((forest, described, t)) => {
                eprintln!(
                    "passthru-testbed: {} on {} (pid {}): provisioned in {:.1} s, {} users in {:.1} s",
                    described.realm,
                    forest.ldaps_url(),
                    forest.pid().unwrap_or_default(),
                    t.provision.as_secs_f64(),
                    described.users.len(),
                    t.users.as_secs_f64()
                );
                bed.forests.push(described);
                forests.push(forest);
            }
            Err(e) => {
                first_err.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let json = dir.join("testbed.json");
    bed.save(&json)?;
    println!("READY {}", json.display());
    std::io::stdout().flush()?;

    let got = rt.block_on(async {
        tokio::select! {
            _ = int.recv() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        }
    });
    eprintln!("passthru-testbed: {got}: stopping the domain controllers");
    for mut f in forests {
        f.stop();
    }
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("passthru-testbed: {e:#}");
            ExitCode::FAILURE
        }
    }
}
