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
            emit_as(json, &v, |list: &api::GroupList| {
                print_lines(&group_list_lines(list));
            })?;
        }
        GroupCommand::Show { group } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/groups/{}", seg(&group)), token)
                .await?;
            emit_as(json, &v, |g: &api::Group| print_lines(&group_lines(g)))?;
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
            emit_as(json, &v, |status: &api::SyncStatus| {
                print_lines(&status_lines(status));
            })?;
        }
        SyncCommand::Run { forest, full } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/sync/{}/run", seg(&forest)),
                    token,
                    &api::RunSync { full },
                )
                .await?;
            emit_as(json, &v, |r: &api::SyncRequested| {
                println!(
                    "{} of {} requested: it starts when the run in progress (if any) ends.",
                    if r.full { "A full import" } else { "A run" },
                    r.forest
                );
            })?;
        }
    }
    Ok(())
}

/// `group list` as text: a line per group, then where the next page starts.
pub(super) fn group_list_lines(list: &api::GroupList) -> Vec<String> {
    let mut out: Vec<String> = list
        .groups
        .iter()
        .map(|g| format!("{}\t{}\t{}", g.id, dash(g.name.as_ref()), g.dn))
        .collect();
    if let Some(next) = &list.next_skiptoken {
        out.push(format!("more: --skiptoken '{next}'"));
    }
    out
}

/// `group show` as text: the group, then a line per direct member.
pub(super) fn group_lines(g: &api::Group) -> Vec<String> {
    let mut out: Vec<String> = [
        ("name", dash(g.name.as_ref())),
        ("id", g.id.to_string()),
        ("display_name", dash(g.display_name.as_ref())),
        ("mail", dash(g.mail.as_ref())),
        ("dn", g.dn.clone()),
        ("forest", g.forest.clone()),
        ("object_guid", g.object_guid.to_string()),
        ("synced_at", format_time(Some(g.synced_at))),
    ]
    .iter()
    .map(|(key, value)| format!("{key:<13}{value}"))
    .collect();
    for m in &g.members {
        out.push(format!(
            "  {}\t{}\t{}",
            m.kind,
            dash(m.name.as_ref()),
            m.object_guid
        ));
    }
    out
}

/// `sync status` as text: a paragraph per forest.
pub(super) fn status_lines(status: &api::SyncStatus) -> Vec<String> {
    let mut out = vec![format!("sync_required {}", status.sync_required)];
    if status.forests.is_empty() {
        out.push("No forest is synced: give an agent a service account for a forest.".into());
    }
    for f in &status.forests {
        out.push(format!(
            "{}\tagent {}\tusers {}\tgroups {}\tevery {} s",
            f.forest,
            dash(f.holder_agent_id),
            f.users,
            f.groups,
            f.interval_seconds
        ));
        out.push(format!(
            "  last success {}  last full import {}",
            format_time(f.last_success_at),
            format_time(f.last_full_at)
        ));
        if let Some(e) = &f.last_error {
            out.push(format!("  last error: {e}"));
        }
        for c in &f.conflicts {
            out.push(format!("  not applied: {c}"));
        }
        if let Some(r) = &f.running {
            let eta = r
                .eta_seconds
                .map(|e| format!(", about {e} s left"))
                .unwrap_or_default();
            out.push(format!(
                "  {} in progress: {} objects, {}/s{eta}",
                if r.full {
                    "full import"
                } else {
                    "incremental run"
                },
                r.objects,
                json_number(r.objects_per_second)
            ));
        }
    }
    out
}
