//! `admin app ...`

use clap::Subcommand;
use serde_json::{json, Value};

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
            required_unless_present_any = ["confidential", "spa"]
        )]
        public: bool,
        /// A confidential client (a web app or service that can keep a secret).
        #[arg(long)]
        confidential: bool,
        /// A single-page app (a public client running in a browser): its redirect URIs'
        /// origins get CORS on the token endpoint, discovery and JWKS; its refresh tokens
        /// live 24 hours.
        #[arg(long, conflicts_with = "confidential")]
        spa: bool,
        /// Where sign-in answers may be sent (exact match; repeatable).
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// How its ID tokens are signed: ES256 (the default) or RS256.
        #[arg(long = "id-token-alg", value_parser = ["ES256", "RS256"])]
        id_token_alg: Option<String>,
    },
    /// Choose how an application's ID tokens are signed: RS256 or ES256.
    IdTokenAlg {
        client_id: String,
        #[arg(value_parser = ["ES256", "RS256"])]
        alg: String,
    },
    /// Expose an API: its identifier URI, delegated scopes and app roles (replaces what the
    /// app exposed before; roles left out lose their assignments).
    Expose {
        client_id: String,
        /// `api://NAME` (or an https URL), unique in the tenant.
        #[arg(long = "identifier-uri")]
        identifier_uri: String,
        /// A delegated scope (`read`): clients ask for `api://NAME/read` (repeatable).
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// An app role (`Orders.Admin`), assignable to users, groups and apps (repeatable).
        #[arg(long = "app-role")]
        app_roles: Vec<String>,
    },
    /// Assign, remove and list the app roles of an application.
    Role {
        #[command(subcommand)]
        command: RoleCommand,
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
    /// Give a confidential application a new secret (printed once); the old one stops working.
    RotateSecret { client_id: String },
    /// Delete an application and every token issued to it.
    Delete { client_id: String },
}

#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub(super) struct Principal {
    /// A user (UPN or object id).
    #[arg(long)]
    user: Option<String>,
    /// A synced group (name or object id).
    #[arg(long)]
    group: Option<String>,
    /// An application (client id): app-only tokens it gets carry the role.
    #[arg(long)]
    app: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(super) enum RoleCommand {
    /// Assign one of the application's roles to a user, a group or an app.
    Assign {
        /// The application that defines the role (the API).
        client_id: String,
        role: String,
        #[command(flatten)]
        principal: Principal,
    },
    /// Remove a role assignment.
    Remove {
        client_id: String,
        role: String,
        #[command(flatten)]
        principal: Principal,
    },
    /// List who holds the application's roles.
    List { client_id: String },
}

impl Principal {
    fn kind_and_name(&self) -> (&'static str, &str) {
        match (&self.user, &self.group, &self.app) {
            (Some(u), _, _) => ("user", u),
            (_, Some(g), _) => ("group", g),
            (_, _, Some(a)) => ("app", a),
            _ => ("user", ""),
        }
    }
}

/// Runs an app role command.
async fn run_role(cx: &Cx<'_>, command: RoleCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    let print = |a: &api::RoleAssignment| {
        println!(
            "{}\t{}\t{}\t{}",
            a.role,
            a.principal_kind,
            a.principal_id,
            dash(a.principal_name.as_ref())
        );
    };
    match command {
        RoleCommand::Assign {
            client_id,
            role,
            principal,
        } => {
            let body = api::AssignRole {
                role,
                user: principal.user,
                group: principal.group,
                app: principal.app,
            };
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/apps/{}/role-assignments", seg(&client_id)),
                    token,
                    &body,
                )
                .await?;
            emit_as(json, &v, print)?;
        }
        RoleCommand::Remove {
            client_id,
            role,
            principal,
        } => {
            let (kind, name) = principal.kind_and_name();
            let v = client
                .delete(
                    &format!(
                        "/{t}/admin/apps/{}/role-assignments/{}/{kind}/{}",
                        seg(&client_id),
                        seg(&role),
                        seg(name)
                    ),
                    token,
                )
                .await?;
            emit_as(json, &v, |a: &api::RoleAssignment| {
                println!(
                    "Removed role {} from {} {}",
                    a.role, a.principal_kind, a.principal_id
                );
            })?;
        }
        RoleCommand::List { client_id } => {
            let v: Value = client
                .get_json(
                    &format!("/{t}/admin/apps/{}/role-assignments", seg(&client_id)),
                    token,
                )
                .await?;
            emit_as(json, &v, |l: &api::RoleAssignmentList| {
                l.assignments.iter().for_each(print);
            })?;
        }
    }
    Ok(())
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
            spa,
            redirect_uris,
            id_token_alg,
        } => {
            let body = api::NewApp {
                name,
                public,
                confidential,
                redirect_uris,
                spa,
                id_token_alg,
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
        AppCommand::IdTokenAlg { client_id, alg } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/apps/{}/id-token-alg", seg(&client_id)),
                    token,
                    &api::SetIdTokenAlg { alg },
                )
                .await?;
            emit_as(json, &v, print_app)?;
        }
        AppCommand::Expose {
            client_id,
            identifier_uri,
            scopes,
            app_roles,
        } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/apps/{}/api", seg(&client_id)),
                    token,
                    &api::ExposeApi {
                        identifier_uri: Some(identifier_uri),
                        scopes,
                        app_roles,
                    },
                )
                .await?;
            emit_as(json, &v, print_app)?;
        }
        AppCommand::Role { command } => run_role(cx, command).await?,
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
                eprintln!("Store the new client secret now: it is not shown again. The old one no longer works.");
            })?;
        }
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
