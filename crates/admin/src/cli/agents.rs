//! `admin agents ...`

use clap::Subcommand;
use serde_json::Value;

use super::output::*;
use super::Cx;
use crate::api;

#[derive(Debug, Subcommand)]
pub(super) enum AgentsCommand {
    /// List registered agents with their status.
    List,
    /// Revoke an agent: its certificate is refused at once and its connection closed.
    Revoke {
        id: String,
        /// Revoke even the last active agent while pass-through authentication is on.
        #[arg(long)]
        force: bool,
    },
    /// Agent releases, offered to agents that update themselves (signed auto-update).
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
}

/// `agents release ...`
#[derive(Debug, Subcommand)]
pub(super) enum ReleaseCommand {
    /// Upload a release: FILE is the package (the passthru-agent executable), SIG the signed
    /// manifest `passthru-agent release sign` wrote for it. The cloud refuses a FILE whose
    /// SHA-256 or size is not the manifest's; the agents verify the signature.
    Add {
        /// The package.
        file: std::path::PathBuf,
        /// Its signed manifest.
        sig: std::path::PathBuf,
    },
    /// List the releases, the tenant's `agent_updates` policy and the release offered now.
    List,
    /// Remove a release: it is offered no more.
    Remove {
        /// Its version.
        version: String,
    },
}

/// How long an upload may take.
const UPLOAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(600);

/// Runs an `agents release` command.
async fn release(cx: &Cx<'_>, command: ReleaseCommand) -> anyhow::Result<()> {
    use base64::Engine as _;
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        ReleaseCommand::Add { file, sig } => {
            let signed = std::fs::read(&sig).map_err(|e| {
                anyhow::anyhow!("cannot read the signed manifest {}: {e}", sig.display())
            })?;
            let manifest = passthru_proto::release::SignedManifest::parse(&signed)
                .and_then(|s| s.unverified_manifest())
                .map_err(|e| anyhow::anyhow!("{}: {e}", sig.display()))?;
            let package = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read the package {}: {e}", file.display()))?;
            if package.len() as u64 != manifest.size {
                anyhow::bail!(
                    "{} is {} bytes but {} was signed for a package of {} bytes: give the FILE `passthru-agent release sign --package` was given",
                    file.display(),
                    package.len(),
                    sig.display(),
                    manifest.size
                );
            }
            let header = base64::engine::general_purpose::STANDARD.encode(&signed);
            let v: Value = client
                .post_bytes(
                    &format!("/{t}/admin/agents/releases"),
                    token,
                    package,
                    &[(api::SIGNED_MANIFEST_HEADER, header.as_str())],
                    UPLOAD_TIMEOUT,
                )
                .await?;
            emit_as(json, &v, |r: &api::Release| {
                println!(
                    "Added release {} ({}, {} bytes, SHA-256 {}): offered to the tenant's agents while settings agent_updates is auto",
                    r.version, r.target, r.size, r.sha256
                );
            })?;
        }
        ReleaseCommand::List => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/agents/releases"), token)
                .await?;
            emit_as(json, &v, |list: &api::ReleaseList| {
                print_lines(&release_lines(list));
            })?;
        }
        ReleaseCommand::Remove { version } => {
            let v = client
                .delete(
                    &format!("/{t}/admin/agents/releases/{}", seg(&version)),
                    token,
                )
                .await?;
            emit_as(json, &v, |r: &api::ReleaseRemoved| {
                println!("Removed release {}", r.version);
            })?;
        }
    }
    Ok(())
}

/// `agents release list` as text: a header, a line per release, then the policy and the
/// release offered now.
pub(super) fn release_lines(list: &api::ReleaseList) -> Vec<String> {
    let mut out = vec!["VERSION\tTARGET\tSIZE\tSHA256\tMIN CLOUD\tADDED\tBY".to_string()];
    for r in &list.releases {
        out.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}",
            r.version,
            r.target,
            r.size,
            r.sha256,
            r.min_cloud_version,
            format_time(Some(r.added_at)),
            r.added_by
        ));
    }
    out.push(format!(
        "agent_updates: {}; offered now: {}",
        list.agent_updates,
        list.offered.as_deref().unwrap_or("none")
    ));
    out
}

/// Runs an agents command.
pub(super) async fn run(cx: &Cx<'_>, command: AgentsCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        AgentsCommand::Release { command } => release(cx, command).await?,
        AgentsCommand::Revoke { id, force } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/agents/{id}/revoke"),
                    token,
                    &api::RevokeAgent { force },
                )
                .await?;
            emit_as(json, &v, |r: &api::AgentRevoked| {
                println!(
                    "Revoked agent {id} ({} connection(s) closed)",
                    r.connections_closed
                );
            })?;
        }
        AgentsCommand::List => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/agents"), token)
                .await?;
            emit_as(json, &v, |list: &api::AgentList| {
                print_lines(&agent_lines(list));
            })?;
        }
    }
    Ok(())
}

/// `agents list` as text: a header, then a line per agent, each followed by its domain
/// controllers that are down.
pub(super) fn agent_lines(list: &api::AgentList) -> Vec<String> {
    let mut out = vec!["ID\tHOST\tVERSION\tSTATUS\tLAST SEEN\tSOURCE IP\tFORESTS\tCERT EXPIRES\tSERVED\tFAILURES\tP50 MS\tP99 MS\tDCS UP".to_string()];
    for a in &list.agents {
        let failures: Vec<String> = a.failures.iter().map(|(k, n)| format!("{k}:{n}")).collect();
        let ms = |q: Option<f64>| q.map_or_else(|| "-".to_string(), |x| format!("{x:.1}"));
        let dcs = &a.domain_controllers;
        let up = dcs.iter().filter(|d| d.up).count();
        out.push(format!(
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            a.id,
            a.host,
            a.version,
            a.status,
            format_time(a.last_seen),
            dash(a.source_ip.as_ref()),
            a.forests.join(","),
            format_time(Some(a.cert_expires_at)),
            a.requests_served,
            if failures.is_empty() {
                "-".to_string()
            } else {
                failures.join(",")
            },
            ms(a.round_trip_ms.p50),
            ms(a.round_trip_ms.p99),
            if dcs.is_empty() {
                "-".to_string()
            } else {
                format!("{up}/{}", dcs.len())
            },
        ));
        for d in dcs.iter().filter(|d| !d.up) {
            out.push(format!(
                "  domain controller down: {} ({})",
                d.url, d.forest
            ));
        }
    }
    out
}
