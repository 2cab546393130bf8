//! `passthru-cloud admin`: a thin client of the admin API. It signs the administrator in
//! through the STS (password grant of the first-party admin client, or `--device-code`: a
//! sign-in through a web browser, kept in a token cache; see [`sign_in`]) and never opens the
//! data dir. It sends the request types of [`crate::api`] and reads the answers as its answer
//! types to print them as text; `--json` prints the answer as the cloud sent it.

mod agents;
mod apps;
mod confirm;
mod credentials;
mod directory;
mod domains;
mod output;
mod sign_in;
mod tenant;
mod token_cache;
mod users;

pub use token_cache::TOKEN_CACHE_ENV;

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
    /// Sign in through a web browser (on any device) with a code printed here, when no cached
    /// sign-in is left: for administrators who must prove a second factor. The tokens are
    /// cached (PASSTHRU_TOKEN_CACHE, default ~/.cache/passthru/admin-tokens.json) until
    /// `logout`. PASSTHRU_ADMIN_UPN / PASSTHRU_ADMIN_PASSWORD are then not used.
    #[arg(long)]
    device_code: bool,
    /// Do not ask before a destructive change (block, delete, remove, revoke, reset, turn off
    /// pass-through). Without it the CLI asks on a terminal; with no terminal to ask on (a
    /// script) it goes on, as it always has.
    #[arg(long, short = 'y', global = true)]
    yes: bool,
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
    /// The sign-in pages' branding: the logo (name, colour and text are settings).
    Branding {
        #[command(subcommand)]
        command: tenant::BrandingCommand,
    },
    /// The audit log: every administrative change (API, CLI, portal).
    Audit {
        #[command(subcommand)]
        command: tenant::AuditCommand,
    },
    /// Forget the cached sign-in (from --device-code) for this cloud and tenant.
    Logout,
}

impl AdminCommand {
    /// What a destructive command will do, in a sentence (asked before it runs), or `None`.
    fn destructive(&self) -> Option<String> {
        use agents::{AgentsCommand as Ag, ReleaseCommand as Rel};
        use apps::{AppCommand as A, RoleCommand as R};
        use credentials::{CredentialCommand as C, SecretCommand as S};
        use domains::DomainCommand as D;
        use users::UserCommand as U;
        Some(match self {
            AdminCommand::User { command } => match command {
                U::Disable { upn } => format!("Block {upn}'s sign-in and end their sessions"),
                U::Delete { upn } => format!("Delete the user {upn}"),
                U::MfaReset { upn } => format!("Remove {upn}'s authenticator app and recovery codes and end their sessions"),
                U::ResetPassword { upn, .. } => format!("Reset {upn}'s password and end their sessions"),
                _ => return None,
            },
            AdminCommand::Domain { command } => match command {
                D::Remove { name } => format!("Remove the domain {name}"),
                D::Convert { name, .. } => format!("Convert the domain {name}"),
                _ => return None,
            },
            AdminCommand::App { command } => match command {
                A::Delete { client_id } => format!("Delete the app {client_id} and every token issued to it"),
                A::RotateSecret { client_id } => format!("Replace every secret of the app {client_id} (the old ones stop working at once)"),
                A::Secret { command: S::Remove { client_id, id } } => format!("Remove the secret {id} of the app {client_id}"),
                A::Credential { command: C::Remove { client_id, id } } => format!("Remove the credential {id} of the app {client_id}"),
                A::Role { command: R::Remove { client_id, role, .. } } => format!("Remove an assignment of the role {role} of the app {client_id}"),
                _ => return None,
            },
            AdminCommand::Agents { command } => match command {
                Ag::Revoke { id, .. } => format!("Revoke the agent {id}"),
                Ag::Release { command: Rel::Remove { version } } => format!("Remove the agent release {version}"),
                _ => return None,
            },
            AdminCommand::Pta { command: tenant::PtaCommand::Disable } => {
                "Turn off pass-through authentication for the whole tenant".to_string()
            }
            _ => return None,
        })
    }
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
    if let AdminCommand::Logout = args.command {
        // No sign-in, and no need for the CA file: only the cache is touched.
        let cloud = passthru_client::normalize_base_url(&args.url)?;
        println!("{}", sign_in::logout(&cloud, &args.tenant)?);
        return Ok(());
    }
    if let Some(what) = args.command.destructive() {
        if !args.yes && !confirm::ask(&what)? {
            anyhow::bail!(
                "Nothing was changed (not confirmed). Add --yes to confirm without a question."
            );
        }
    }
    let client = CloudClient::new(&args.url, args.ca_file.as_deref())?;
    let signed_in = sign_in::admin_token(&client, &args.tenant, args.device_code).await?;
    let cx = Cx {
        client: &client,
        t: &args.tenant,
        token: &signed_in.token,
        json: args.json,
    };
    let done = match args.command {
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
        AdminCommand::Audit { command } => tenant::audit(&cx, command).await,
        AdminCommand::Branding { command } => tenant::branding(&cx, command).await,
        AdminCommand::Logout => Ok(()),
    };
    done.map_err(|e| sign_in::after_failure(e, &signed_in, client.base_url(), &args.tenant))
}

#[cfg(test)]
mod tests;
