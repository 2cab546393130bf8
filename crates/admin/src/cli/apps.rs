//! `admin app ...`

use clap::Subcommand;
use serde_json::{json, Value};

use super::credentials;
use super::output::*;
use super::Cx;
use crate::api;

#[derive(Debug, Subcommand)]
pub(super) enum AppCommand {
    /// Register an application. Prints its client id (and, for a confidential app, its
    /// secret on a second line: it is shown only this once).
    Add {
        name: String,
        /// A public client (no secret: desktop, mobile, CLI, single-page apps).
        #[arg(
            long,
            conflicts_with = "confidential",
            required_unless_present = "confidential"
        )]
        public: bool,
        /// A confidential client (a web app or service that can keep a secret).
        #[arg(long)]
        confidential: bool,
        /// Where sign-in answers may be sent (exact match; repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
    },
    /// List applications.
    List,
    /// Show one application.
    Show { client_id: String },
    /// Replace an application's redirect URIs (give none to remove them all).
    SetRedirectUris {
        client_id: String,
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
    },
    /// Put the user's synced groups (object ids) in the app's tokens (`on`), or stop (`off`).
    GroupsClaim {
        client_id: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Give a confidential application a new secret (printed once, no expiry); its other
    /// secrets stop working at once (`secret add` replaces one without an outage).
    RotateSecret { client_id: String },
    /// Client secrets, several at once with their own expiry: add one, remove one.
    Secret {
        #[command(subcommand)]
        command: credentials::SecretCommand,
    },
    /// Credentials (secrets and certificates): register a certificate, list, remove.
    Credential {
        #[command(subcommand)]
        command: credentials::CredentialCommand,
    },
    /// Delete an application and every token issued to it.
    Delete { client_id: String },
}

/// Runs an app command.
pub(super) async fn run(cx: &Cx<'_>, command: AppCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        AppCommand::Add {
            name,
            public,
            confidential,
            redirect_uris,
        } => {
            let body = api::NewApp {
                name,
                public,
                confidential,
                redirect_uris,
            };
            let v: Value = client
                .post_json(&format!("/{t}/admin/apps"), token, &body)
                .await?;
            emit_as(json, &v, |a: &api::App| {
                println!("{}", a.client_id);
                if let Some(secret) = &a.client_secret {
                    println!("{secret}");
                    eprintln!("Store the client secret (second line) now: it is not shown again.");
                }
            })?;
        }
        AppCommand::List => {
            let v: Value = client.get_json(&format!("/{t}/admin/apps"), token).await?;
            emit_as(json, &v, |l: &api::AppList| {
                l.apps.iter().for_each(print_app);
            })?;
        }
        AppCommand::Show { client_id } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/apps/{}", seg(&client_id)), token)
                .await?;
            emit_as(json, &v, print_app)?;
            if !json && answer::<api::App>(&v).is_ok_and(|a| !a.public) {
                print_lines(&credentials::show_lines(cx, &client_id).await?);
            }
        }
        AppCommand::SetRedirectUris {
            client_id,
            redirect_uris,
        } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/apps/{}/redirect-uris", seg(&client_id)),
                    token,
                    &api::SetRedirectUris { redirect_uris },
                )
                .await?;
            emit_as(json, &v, print_app)?;
        }
        AppCommand::GroupsClaim { client_id, state } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/apps/{}/groups-claim", seg(&client_id)),
                    token,
                    &api::SetGroupsClaim {
                        enabled: state == "on",
                    },
                )
                .await?;
            emit_as(json, &v, print_app)?;
        }
        AppCommand::RotateSecret { client_id } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/apps/{}/secret", seg(&client_id)),
                    token,
                    &json!({}),
                )
                .await?;
            emit_as(json, &v, |a: &api::App| {
                println!("{}", dash(a.client_secret.as_ref()));
                eprintln!("Store the new client secret now: it is not shown again. The app's other secrets no longer work.");
            })?;
        }
        AppCommand::Secret { command } => credentials::secret(cx, command).await?,
        AppCommand::Credential { command } => credentials::credential(cx, command).await?,
        AppCommand::Delete { client_id } => {
            let v = client
                .delete(&format!("/{t}/admin/apps/{}", seg(&client_id)), token)
                .await?;
            emit_as(json, &v, |d: &api::AppDeleted| {
                println!("Deleted app {}", d.client_id);
            })?;
        }
    }
    Ok(())
}
