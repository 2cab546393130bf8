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
