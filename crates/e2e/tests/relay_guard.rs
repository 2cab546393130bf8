//! The relay's regression guard: a short run of the relay benchmark against a throwaway
//! slapd (`passthru-bench signins --directory slapd`, the real cloud and agent as processes)
//! and of one agent's ceiling (`passthru-bench agent`), with the binaries under test (the
//! suite's debug build). It fails only on a large regression, never on noise: each bound is
//! twice the figure this machine gave (recorded below), a figure is taken from the best of up
//! to three short runs, and CPU time per operation (from /proc) is compared, not throughput,
//! so that a loaded machine slows the runs without failing them. The release figures and
//! their targets are in docs/performance.md (`scripts/bench-signins.sh`, `bench-agent.sh`).

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context as _};
use passthru_testkit::procs::{bin, bin_dir, fresh_dir};

/// Debug build, 2026-12-07, 2-core machine (sealed sessions): 0.96 ms of cloud CPU per
/// password grant at 4 clients against slapd. Bound: twice that.
const MAX_CLOUD_MS_PER_GRANT: f64 = 1.9;
/// Debug build, same day: 4,563 validations per agent CPU-second against slapd, 64 in
/// flight. Bound: half of that.
const MIN_AGENT_PER_CORE_SECOND: f64 = 2_200.0;
/// Runs of each measure before the guard gives up.
const ATTEMPTS: usize = 3;

/// The two measures run one after the other: at once, each would take the other's CPU.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn run_bench(args: &[&str], summary: &Path) -> anyhow::Result<serde_json::Value> {
    let _ = std::fs::remove_file(summary);
    let out = Command::new(bin("passthru-bench"))
        .args(args)
        .arg("--summary")
        .arg(summary)
        .env("PASSTHRU_BIN_DIR", bin_dir())
        .output()
        .context("starting passthru-bench")?;
    if !out.status.success() {
        bail!(
            "passthru-bench {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(summary)
        .with_context(|| format!("reading {}", summary.display()))?;
    Ok(serde_json::from_str(&text)?)
}

fn number(v: &serde_json::Value, key: &str) -> anyhow::Result<f64> {
    v.get(key)
        .and_then(serde_json::Value::as_f64)
        .with_context(|| format!("the summary has no {key}: {v}"))
}

/// Runs `passthru-bench ARGS` up to [`ATTEMPTS`] times, until its `figure` is `within` the
/// bound; every run must have done work (`done`) without an error (`errors`). `Ok(None)` when
/// a run was within, else the figures seen.
fn best_of(
    name: &str,
    args: &[&str],
    (done, errors): (&str, &str),
    figure: &str,
    within: impl Fn(f64) -> bool,
) -> anyhow::Result<Option<Vec<f64>>> {
    let dir = fresh_dir(name)?;
    let summary = dir.join("summary.json");
    let mut seen = Vec::new();
    for _ in 0..ATTEMPTS {
        let v = run_bench(args, &summary)?;
        anyhow::ensure!(
            number(&v, errors)? == 0.0 && number(&v, done)? > 0.0,
            "{name}: the run failed requests: {v}"
        );
        let x = number(&v, figure)?;
        seen.push(x);
        if within(x) {
            return Ok(None);
        }
    }
    Ok(Some(seen))
}

/// Cloud CPU per password grant through the whole relay (HTTPS, the cloud, the agent, LDAPS
/// to slapd), and that every grant succeeded.
#[test]
fn the_cloud_cost_per_grant_has_not_doubled() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let args = [
        "signins",
        "--directory",
        "slapd",
        "--users",
        "50",
        "--concurrency",
        "4",
        "--duration",
        "4s",
        "--warmup",
        "1s",
        "--rounds",
        "1",
    ];
    let done = ("relay_per_second", "relay_errors");
    let within = |ms: f64| ms <= MAX_CLOUD_MS_PER_GRANT;
    if let Some(seen) = best_of(
        "relay-guard-cloud",
        &args,
        done,
        "cloud_ms_per_grant",
        within,
    )? {
        bail!(
            "cloud CPU per password grant {seen:?} ms in {ATTEMPTS} runs, over the guard's {MAX_CLOUD_MS_PER_GRANT} ms (twice the recorded figure): profile the grant path (docs/performance.md)"
        );
    }
    Ok(())
}

/// One agent's validations per CPU-second, driven at its ceiling by the bench's stand-in for
/// the cloud.
#[test]
fn the_agent_ceiling_has_not_halved() -> anyhow::Result<()> {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner());
    let args = [
        "agent",
        "--duration",
        "3s",
        "--warmup",
        "1s",
        "--max-rate",
        "6000",
    ];
    let figure = "validations_per_core_second";
    let within = |n: f64| n >= MIN_AGENT_PER_CORE_SECOND;
    if let Some(seen) = best_of(
        "relay-guard-agent",
        &args,
        ("validations", "errors"),
        figure,
        within,
    )? {
        bail!(
            "agent validations per core-second {seen:?} in {ATTEMPTS} runs, under the guard's {MIN_AGENT_PER_CORE_SECOND} (half the recorded figure): profile the agent (docs/performance.md)"
        );
    }
    Ok(())
}
