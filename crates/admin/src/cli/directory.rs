//! `admin group ...` and `admin sync ...`: what directory sync brought (read-only).

use clap::Subcommand;
use serde_json::Value;

use super::output::*;
use super::Cx;
use crate::api;

#[derive(Debug, Subcommand)]
pub(super) enum GroupCommand {
    /// List synced groups.
    List {
        /// Only groups whose name contains this.
        #[arg(long)]
        search: Option<String>,
        /// Groups per page (1-1000).
        #[arg(long)]
        top: Option<i64>,
        /// Continue after this point (printed at the end of a page).
        #[arg(long)]
        skiptoken: Option<String>,
    },
    /// Show a synced group (by object id or name) with its direct members.
    Show { group: String },
}

#[derive(Debug, Subcommand)]
pub(super) enum SyncCommand {
    /// Each forest: the agent that syncs it, last runs, counts, conflicts, progress.
    Status,
    /// Run a forest's sync now (after the run in progress, if any).
    Run {
        /// The forest's name (as in `sync status`).
        forest: String,
        /// Read everything again (a full import) rather than the changes.
        #[arg(long)]
        full: bool,
    },
}

/// Runs a group command.
pub(super) async fn groups(cx: &Cx<'_>, command: GroupCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        GroupCommand::List {
            search,
            top,
            skiptoken,
        } => {
            let q = query(&[
                ("search", search),
                ("top", top.map(|n| n.to_string())),
                ("skiptoken", skiptoken),
            ]);
            let v: Value = client
                .get_json(&format!("/{t}/admin/groups{q}"), token)
                .await?;
            emit(json, &v, |v| {
                for g in v["groups"].as_array().into_iter().flatten() {
                    println!("{}\t{}\t{}", s(g, "id"), s(g, "name"), s(g, "dn"));
                }
                if let Some(next) = v["next_skiptoken"].as_str() {
                    println!("more: --skiptoken '{next}'");
                }
            });
        }
        GroupCommand::Show { group } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/groups/{}", seg(&group)), token)
                .await?;
            emit(json, &v, |v| {
                for key in [
                    "name",
                    "id",
                    "display_name",
                    "mail",
                    "dn",
                    "forest",
                    "object_guid",
                ] {
                    println!("{key:<13}{}", s(v, key));
                }
                println!(
                    "{:<13}{}",
                    "synced_at",
                    format_time(v["synced_at"].as_i64())
                );
                for m in v["members"].as_array().into_iter().flatten() {
                    println!(
                        "  {}\t{}\t{}",
                        s(m, "kind"),
                        s(m, "name"),
                        s(m, "object_guid")
                    );
                }
            });
        }
    }
    Ok(())
}

/// Runs a sync command.
pub(super) async fn sync(cx: &Cx<'_>, command: SyncCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        SyncCommand::Status => {
            let v: Value = client.get_json(&format!("/{t}/admin/sync"), token).await?;
            emit(json, &v, print_status);
        }
        SyncCommand::Run { forest, full } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/sync/{}/run", seg(&forest)),
                    token,
                    &api::RunSync { full },
                )
                .await?;
            emit(json, &v, |v| {
                println!(
                    "{} of {} requested: it starts when the run in progress (if any) ends.",
                    if v["full"] == true {
                        "A full import"
                    } else {
                        "A run"
                    },
                    s(v, "forest")
                );
            });
        }
    }
    Ok(())
}

fn print_status(v: &Value) {
    println!("sync_required {}", s(v, "sync_required"));
    let forests = v["forests"].as_array().cloned().unwrap_or_default();
    if forests.is_empty() {
        println!("No forest is synced: give an agent a service account for a forest.");
    }
    for f in &forests {
        println!(
            "{}\tagent {}\tusers {}\tgroups {}\tevery {} s",
            s(f, "forest"),
            s(f, "holder_agent_id"),
            s(f, "users"),
            s(f, "groups"),
            s(f, "interval_seconds")
        );
        println!(
            "  last success {}  last full import {}",
            format_time(f["last_success_at"].as_i64()),
            format_time(f["last_full_at"].as_i64())
        );
        if let Some(e) = f["last_error"].as_str() {
            println!("  last error: {e}");
        }
        for c in f["conflicts"].as_array().into_iter().flatten() {
            println!("  not applied: {}", c.as_str().unwrap_or_default());
        }
        let r = &f["running"];
        if r.is_object() {
            let eta = r["eta_seconds"]
                .as_u64()
                .map(|e| format!(", about {e} s left"))
                .unwrap_or_default();
            println!(
                "  {} in progress: {} objects, {}/s{eta}",
                if r["full"] == true {
                    "full import"
                } else {
                    "incremental run"
                },
                s(r, "objects"),
                s(r, "objects_per_second")
            );
        }
    }
}
