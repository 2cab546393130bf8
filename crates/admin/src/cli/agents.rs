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
            emit(json, &v, |v| {
                println!(
                    "Revoked agent {id} ({} connection(s) closed)",
                    s(v, "connections_closed")
                );
            });
        }
        AgentsCommand::List => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/agents"), token)
                .await?;
            emit(json, &v, |v| {
                println!("ID\tHOST\tVERSION\tSTATUS\tLAST SEEN\tSOURCE IP\tFORESTS\tCERT EXPIRES\tSERVED\tFAILURES\tP50 MS\tP99 MS\tDCS UP");
                for a in v["agents"].as_array().into_iter().flatten() {
                    let forests: Vec<&str> = a["forests"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect();
                    let failures: Vec<String> = a["failures"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, n)| format!("{k}:{n}"))
                        .collect();
                    let ms = |q: &str| {
                        a["round_trip_ms"][q]
                            .as_f64()
                            .map(|x| format!("{x:.1}"))
                            .unwrap_or_else(|| "-".into())
                    };
                    let dcs = a["domain_controllers"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let up = dcs.iter().filter(|d| d["up"] == true).count();
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                        s(a, "id"),
                        s(a, "host"),
                        s(a, "version"),
                        s(a, "status"),
                        format_time(a["last_seen"].as_i64()),
                        s(a, "source_ip"),
                        forests.join(","),
                        format_time(a["cert_expires_at"].as_i64()),
                        a["requests_served"].as_u64().unwrap_or(0),
                        if failures.is_empty() {
                            "-".to_string()
                        } else {
                            failures.join(",")
                        },
                        ms("p50"),
                        ms("p99"),
                        if dcs.is_empty() {
                            "-".to_string()
                        } else {
                            format!("{up}/{}", dcs.len())
                        },
                    );
                    for d in dcs.iter().filter(|d| d["up"] == false) {
                        println!(
                            "  domain controller down: {} ({})",
                            s(d, "url"),
                            s(d, "forest")
                        );
                    }
                }
            });
        }
    }
    Ok(())
}
