//! Tenant-wide commands: `pta`, `settings`, `keys`, `signins`.

use clap::Subcommand;
use serde_json::{json, Value};

use super::output::*;
use super::Cx;
use crate::api;

#[derive(Debug, Subcommand)]
pub(super) enum PtaCommand {
    /// Enable pass-through authentication (needs an active agent).
    Enable,
    /// Disable pass-through authentication.
    Disable,
    /// Show whether it is enabled and how many agents are active.
    Status,
}

#[derive(Debug, Subcommand)]
pub(super) enum SettingsCommand {
    /// Show every setting (or one) with its value and what it accepts.
    Get { key: Option<String> },
    /// Set one setting; the value is checked and refused with the reason.
    Set { key: String, value: String },
}

#[derive(Debug, Subcommand)]
pub(super) enum KeysCommand {
    /// Add a new signing key of each algorithm (ES256, RS256); older keys stay published
    /// until their tokens expire.
    Rotate,
    /// The current and published key ids.
    List,
}

#[derive(Debug, Subcommand)]
pub(super) enum SigninsCommand {
    /// The sign-in log, newest first.
    List {
        /// Only this sign-in name.
        #[arg(long)]
        user: Option<String>,
        /// success, failure, or an AADSTS code such as 50126.
        #[arg(long)]
        result: Option<String>,
        /// From this time on: RFC 3339, a date, or an age such as 30m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// Before this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Only this AADSTS code, such as 50126.
        #[arg(long)]
        aadsts: Option<u32>,
        /// Only this app (client id).
        #[arg(long)]
        app: Option<String>,
        /// Only lines answered by this agent (id).
        #[arg(long)]
        agent: Option<String>,
        /// Only this client address.
        #[arg(long)]
        client_ip: Option<String>,
        /// Only this correlation id.
        #[arg(long)]
        correlation_id: Option<String>,
        /// At most this many lines (1 to 10000).
        #[arg(long, default_value_t = 500)]
        top: u32,
        /// The next page: the skiptoken printed after a full page.
        #[arg(long)]
        skiptoken: Option<String>,
        /// Print CSV (for a spreadsheet) instead of text.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
}

#[derive(Debug, Subcommand)]
pub(super) enum AuditCommand {
    /// Administrative changes, newest first: who, when, from where, what, before and after.
    List {
        /// From this time on: RFC 3339, a date, or an age such as 30m, 2h, 7d.
        #[arg(long)]
        since: Option<String>,
        /// Before this time (same forms as --since).
        #[arg(long)]
        until: Option<String>,
        /// Only changes made by this administrator (UPN).
        #[arg(long)]
        actor: Option<String>,
        /// Only this operation (disableUser, addDomain, ...).
        #[arg(long)]
        operation: Option<String>,
        /// Only changes whose target path contains this text.
        #[arg(long)]
        target: Option<String>,
        /// At most this many entries (1 to 1000).
        #[arg(long, default_value_t = 100)]
        top: u32,
        /// The next page: the skiptoken printed after a full page.
        #[arg(long)]
        skiptoken: Option<String>,
        /// Print CSV instead of text.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
}

/// Runs an audit command.
pub(super) async fn audit(cx: &Cx<'_>, command: AuditCommand) -> anyhow::Result<()> {
    let AuditCommand::List {
        since,
        until,
        actor,
        operation,
        target,
        top,
        skiptoken,
        csv,
    } = command;
    let q = |format: &str| {
        query(&[
            ("since", since.clone()),
            ("until", until.clone()),
            ("actor", actor.clone()),
            ("operation", operation.clone()),
            ("target", target.clone()),
            ("top", Some(top.to_string())),
            ("skiptoken", skiptoken.clone()),
            ("format", Some(format.to_string())),
        ])
    };
    listing(cx, "audit", q, csv, |list: &api::AuditList| {
        print_lines(&audit_lines(list));
        if let Some(next) = &list.next_skiptoken {
            eprintln!("More entries: repeat with --skiptoken {next}");
        }
    })
    .await
}

/// A listing of the admin API (`/{t}/admin/{path}` with the query `q(format)`): CSV printed
/// as it comes, or JSON shown by `show` (as it came with `--json`).
async fn listing<T: serde::de::DeserializeOwned + utoipa::ToSchema>(
    cx: &Cx<'_>,
    path: &str,
    q: impl Fn(&str) -> String,
    csv: bool,
    show: impl FnOnce(&T),
) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    if csv {
        let text = client
            .get_text(&format!("/{t}/admin/{path}{}", q("csv")), token)
            .await?;
        print!("{text}");
        return Ok(());
    }
    let v: Value = client
        .get_json(&format!("/{t}/admin/{path}{}", q("json")), token)
        .await?;
    emit_as(json, &v, show)
}

/// `audit list` as text: a line per change.
pub(super) fn audit_lines(list: &api::AuditList) -> Vec<String> {
    list.entries
        .iter()
        .map(|e| {
            format!(
                "{}\t{}\t{}\t{}\t{} {}\t{}\t{}",
                format_time(Some(e.time_ms / 1000)),
                e.actor,
                e.via,
                e.client_ip.as_deref().unwrap_or("-"),
                e.operation,
                e.target,
                e.status,
                e.correlation_id
            )
        })
        .collect()
}

/// Runs a pta command.
pub(super) async fn pta(cx: &Cx<'_>, command: PtaCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    let v: Value = match command {
        PtaCommand::Status => client.get_json(&format!("/{t}/admin/pta"), token).await?,
        PtaCommand::Enable | PtaCommand::Disable => {
            let enabled = matches!(command, PtaCommand::Enable);
            client
                .post_json(&format!("/{t}/admin/pta"), token, &api::SetPta { enabled })
                .await?
        }
    };
    emit_as(json, &v, |p: &api::PtaStatus| {
        println!(
            "Pass-through authentication: {} ({} active, {} draining, {} inactive of {} registered agent(s))",
            if p.enabled { "enabled" } else { "disabled" },
            p.active_agents,
            p.draining_agents,
            p.inactive_agents,
            p.registered_agents
        );
    })?;

    Ok(())
}

/// Runs a settings command.
pub(super) async fn settings(cx: &Cx<'_>, command: SettingsCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    let (v, only): (Value, Option<String>) = match command {
        SettingsCommand::Get { key } => (
            client
                .get_json(&format!("/{t}/admin/settings"), token)
                .await?,
            key,
        ),
        SettingsCommand::Set { key, value } => (
            client
                .put_json(
                    &format!("/{t}/admin/settings/{}", seg(&key)),
                    token,
                    &api::SetSetting {
                        value: api::SettingValue::Text(value),
                    },
                )
                .await?,
            Some(key),
        ),
    };
    let all: api::Settings = answer(&v)?;
    let list: Vec<&api::Setting> = all
        .settings
        .iter()
        .filter(|e| only.as_deref().is_none_or(|k| e.key == k))
        .collect();
    if let Some(k) = &only {
        if list.is_empty() {
            anyhow::bail!("'{k}' is not a setting: `settings get` lists them");
        }
    }
    if json {
        print_json(&json!({ "settings": list }));
    } else {
        print_lines(&setting_lines(&list));
    }

    Ok(())
}

/// `settings get` as text: a line per setting.
pub(super) fn setting_lines(list: &[&api::Setting]) -> Vec<String> {
    list.iter()
        .map(|e| format!("{:<26}{:<20}{}", e.key, e.value, e.help))
        .collect()
}

/// Runs a keys command.
pub(super) async fn keys(cx: &Cx<'_>, command: KeysCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    let v: Value = match command {
        KeysCommand::Rotate => {
            client
                .post_json(&format!("/{t}/admin/keys/rotate"), token, &json!({}))
                .await?
        }
        KeysCommand::List => client.get_json(&format!("/{t}/admin/keys"), token).await?,
    };
    emit_as(json, &v, |k: &api::SigningKeys| {
        println!("current: {}", dash(k.current.as_ref()));
        if let Some(rs256) = &k.current_rs256 {
            println!("current RS256: {rs256}");
        }
        for kid in &k.published {
            println!("published: {kid}");
        }
    })?;

    Ok(())
}

/// Runs a signins command.
pub(super) async fn signins(cx: &Cx<'_>, command: SigninsCommand) -> anyhow::Result<()> {
    match command {
        SigninsCommand::List {
            user,
            result,
            since,
            until,
            aadsts,
            app,
            agent,
            client_ip,
            correlation_id,
            top,
            skiptoken,
            csv,
        } => {
            let q = |format: &str| {
                query(&[
                    ("user", user.clone()),
                    ("result", result.clone()),
                    ("since", since.clone()),
                    ("until", until.clone()),
                    ("aadsts", aadsts.map(|c| c.to_string())),
                    ("app", app.clone()),
                    ("agent", agent.clone()),
                    ("client_ip", client_ip.clone()),
                    ("correlation_id", correlation_id.clone()),
                    ("skiptoken", skiptoken.clone()),
                    ("top", Some(top.to_string())),
                    ("format", Some(format.to_string())),
                ])
            };
            listing(cx, "signins", q, csv, |list: &api::SignInList| {
                print_lines(&sign_in_lines(list));
                if let Some(next) = &list.next_skiptoken {
                    eprintln!("More lines: repeat with --skiptoken {next}");
                }
            })
            .await?;
        }
    }
    Ok(())
}

/// `signins list` as text: a line per sign-in.
pub(super) fn sign_in_lines(list: &api::SignInList) -> Vec<String> {
    list.signins
        .iter()
        .map(|e| {
            // Agents that got the request first and did not answer.
            let agent = if e.other_agents.is_empty() {
                dash(e.agent_id)
            } else {
                let before: Vec<String> = e.other_agents.iter().map(|a| a.to_string()).collect();
                format!("{} (after {})", dash(e.agent_id), before.join(", "))
            };
            format!(
                "{}\t{}\t{}\tAADSTS {}\tWin32 {}\tagent {}\t{} ms\t{}",
                format_time(Some(e.time_ms / 1000)),
                e.username,
                e.result,
                dash(e.aadsts),
                dash(e.win32),
                agent,
                dash(e.latency_ms),
                e.correlation_id
            )
        })
        .collect()
}

#[derive(Debug, Subcommand)]
pub(super) enum BrandingCommand {
    /// Set the sign-in pages' logo: a PNG, JPEG, GIF or WebP file of at most 48 KiB. The
    /// organization's name, button colour and text are settings (`settings set branding_name
    /// ...`, `branding_accent_color`, `branding_sign_in_text`).
    Logo {
        /// The image file.
        file: std::path::PathBuf,
    },
    /// Remove the logo.
    RemoveLogo,
}

/// The largest logo file read (the cloud takes 48 KiB).
const MAX_LOGO_FILE: u64 = 64 * 1024;

/// Runs a branding command.
pub(super) async fn branding(cx: &Cx<'_>, command: BrandingCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    let v: Value = match command {
        BrandingCommand::Logo { file } => {
            use std::io::Read as _;
            let mut bytes = Vec::new();
            std::fs::File::open(&file)
                .and_then(|f| f.take(MAX_LOGO_FILE + 1).read_to_end(&mut bytes))
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            if bytes.len() as u64 > MAX_LOGO_FILE {
                anyhow::bail!("{} is larger than the 48 KiB a logo may be", file.display());
            }
            client
                .post_bytes(
                    &format!("/{t}/admin/branding/logo"),
                    token,
                    bytes,
                    &[],
                    std::time::Duration::from_secs(30),
                )
                .await?
        }
        BrandingCommand::RemoveLogo => {
            client
                .delete(&format!("/{t}/admin/branding/logo"), token)
                .await?
        }
    };
    if json {
        println!("{v:#}");
    } else if v["present"] == true {
        println!(
            "Logo set ({}, {} bytes): {}",
            v["content_type"].as_str().unwrap_or_default(),
            v["bytes"],
            v["url"].as_str().unwrap_or_default()
        );
    } else {
        println!("Logo removed.");
    }
    Ok(())
}
