//! `passthru-cloud admin`: a thin client of the admin API. It signs the administrator in
//! through the STS (password grant of the first-party admin client) and never opens the data
//! dir. It sends the request types of [`crate::api`] and reads the answers as its answer types
//! to print them as text; `--json` prints the answer as the cloud sent it.

mod agents;
mod apps;
mod directory;
mod domains;
mod output;
mod tenant;
mod users;

use std::path::PathBuf;

use clap::{Args, Subcommand};
use passthru_client::CloudClient;

/// Arguments of `passthru-cloud admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The cloud's URL, e.g. https://127.0.0.1:443
    #[arg(long, env = "PASSTHRU_URL")]
    url: String,
    /// Tenant name or id.
    #[arg(long, env = "PASSTHRU_TENANT")]
    tenant: String,
    /// CA certificate to trust for the cloud's TLS (DIR/tls/ca.pem).
    #[arg(long, env = "PASSTHRU_CA_FILE")]
    ca_file: Option<PathBuf>,
    /// Print machine-readable JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Domains of the tenant.
    Domain {
        #[command(subcommand)]
        command: domains::DomainCommand,
    },
    /// Applications.
    App {
        #[command(subcommand)]
        command: apps::AppCommand,
    },
    /// Users.
    User {
        #[command(subcommand)]
        command: users::UserCommand,
    },
    /// Groups synced from Active Directory (read-only).
    Group {
        #[command(subcommand)]
        command: directory::GroupCommand,
    },
    /// Directory sync.
    Sync {
        #[command(subcommand)]
        command: directory::SyncCommand,
    },
    /// Pass-through authentication (tenant-wide).
    Pta {
        #[command(subcommand)]
        command: tenant::PtaCommand,
    },
    /// Authentication agents.
    Agents {
        #[command(subcommand)]
        command: agents::AgentsCommand,
    },
    /// This tenant's token signing keys.
    Keys {
        #[command(subcommand)]
        command: tenant::KeysCommand,
    },
    /// The sign-in log.
    Signins {
        #[command(subcommand)]
        command: tenant::SigninsCommand,
    },
    /// Tenant settings.
    Settings {
        #[command(subcommand)]
        command: tenant::SettingsCommand,
    },
}

/// What every command needs: the client, the tenant, the admin token, the output form.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cx<'a> {
    client: &'a CloudClient,
    t: &'a str,
    token: &'a str,
    json: bool,
}

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let client = CloudClient::new(&args.url, args.ca_file.as_deref())?;
    let (upn, password) = passthru_client::admin_credentials_from_env_or_prompt()?;
    let token = client.admin_token(&args.tenant, &upn, &password).await?;
    drop(password);
    let cx = Cx {
        client: &client,
        t: &args.tenant,
        token: &token,
        json: args.json,
    };
    match args.command {
        AdminCommand::Domain { command } => domains::run(&cx, command).await,
        AdminCommand::App { command } => apps::run(&cx, command).await,
        AdminCommand::User { command } => users::run(&cx, command).await,
        AdminCommand::Group { command } => directory::groups(&cx, command).await,
        AdminCommand::Sync { command } => directory::sync(&cx, command).await,
        AdminCommand::Pta { command } => tenant::pta(&cx, command).await,
        AdminCommand::Agents { command } => agents::run(&cx, command).await,
        AdminCommand::Keys { command } => tenant::keys(&cx, command).await,
        AdminCommand::Signins { command } => tenant::signins(&cx, command).await,
        AdminCommand::Settings { command } => tenant::settings(&cx, command).await,
    }
}

#[cfg(test)]
mod tests;
