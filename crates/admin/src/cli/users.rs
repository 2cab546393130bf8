//! `admin user ...`

use clap::Subcommand;
use passthru_client::CloudClient;
use serde_json::{json, Value};

use super::output::*;
use super::Cx;
use crate::api;

#[derive(Debug, Subcommand)]
pub(super) enum UserCommand {
    /// Add a cloud-only user (password from PASSTHRU_USER_PASSWORD, else prompted).
    Add {
        upn: String,
        #[arg(long)]
        display_name: Option<String>,
    },
    /// List users, a page at a time.
    List {
        /// Only users whose UPN, name or mail contains this.
        #[arg(long)]
        search: Option<String>,
        /// Users per page (1 to 1000).
        #[arg(long, default_value_t = 100)]
        top: u32,
        /// Continue after the page that printed this token.
        #[arg(long)]
        skiptoken: Option<String>,
        /// Follow every page.
        #[arg(long)]
        all: bool,
    },
    /// Show one user.
    Show { upn: String },
    /// Set a cloud-only user's password (from PASSTHRU_USER_PASSWORD, else prompted); their
    /// sessions end.
    SetPassword { upn: String },
    /// Block a user's sign-in in the cloud; their sessions and refresh tokens end.
    Disable { upn: String },
    /// Let a blocked user sign in again.
    Enable { upn: String },
    /// End a smart lockout of the user now (and forget their wrong passwords).
    Unlock { upn: String },
    /// Reset a user's password (from PASSTHRU_USER_PASSWORD, else prompted): in Active
    /// Directory through an agent for an on-premises user (password writeback must be on),
    /// in the cloud for a cloud-only user. Their sessions end.
    ResetPassword {
        upn: String,
        /// The user must change the password at the next sign-in (on-premises users).
        #[arg(long)]
        must_change: bool,
    },
    /// Allow (`on`) or forbid (`off`) the user's self-service password writeback: changing
    /// an expired password while signing in, the change page, self-service reset.
    Writeback {
        upn: String,
        #[arg(value_parser = ["on", "off"])]
        state: String,
    },
    /// Delete a cloud-only user.
    Delete { upn: String },
    /// Give a user a role: GlobalAdministrator, HybridIdentityAdministrator or none.
    Role { upn: String, role: String },
    /// Set a user's own multi-factor policy: default (the tenant's `mfa` setting), off,
    /// optional or required.
    Mfa { upn: String, policy: String },
    /// Remove a user's authenticator app and recovery codes (they enrol again); their
    /// sessions end.
    MfaReset { upn: String },
}

/// Runs a user command.
pub(super) async fn run(cx: &Cx<'_>, command: UserCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        UserCommand::Add { upn, display_name } => {
            let pw = user_password()?;
            let body = api::NewUser {
                upn,
                password: pw,
                display_name,
            };
            let v: Value = client
                .post_json(&format!("/{t}/admin/users"), token, &body)
                .await?;
            emit_as(json, &v, |u: &api::User| {
                println!("Added cloud-only user {} ({})", u.upn, u.id);
            })?;
        }
        UserCommand::List {
            search,
            top,
            mut skiptoken,
            all,
        } => {
            let mut pages = Vec::new();
            loop {
                let path = format!(
                    "/{t}/admin/users{}",
                    query(&[
                        ("search", search.clone()),
                        ("top", Some(top.to_string())),
                        ("skiptoken", skiptoken.clone()),
                    ])
                );
                let v: Value = client.get_json(&path, token).await?;
                skiptoken = v["next_skiptoken"].as_str().map(str::to_string);
                if !json {
                    for u in answer::<api::UserList>(&v)?.users {
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            u.upn,
                            u.source,
                            u.role,
                            if u.enabled { "enabled" } else { "blocked" },
                            u.id
                        );
                    }
                }
                pages.push(v);
                if !all || skiptoken.is_none() {
                    break;
                }
            }
            if json {
                let users: Vec<Value> = pages
                    .iter()
                    .flat_map(|p| p["users"].as_array().cloned().unwrap_or_default())
                    .collect();
                print_json(&json!({ "users": users, "next_skiptoken": skiptoken }));
            } else if let Some(next) = skiptoken {
                eprintln!("More users: repeat with --skiptoken {next} (or --all).");
            }
        }
        UserCommand::Show { upn } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/users/{}", seg(&upn)), token)
                .await?;
            emit_as(json, &v, print_user)?;
        }
        UserCommand::SetPassword { upn } => {
            let pw = user_password()?;
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/users/{}/password", seg(&upn)),
                    token,
                    &api::SetPassword { password: pw },
                )
                .await?;
            emit_as(json, &v, |p: &api::PasswordSet| {
                println!("Password set for {}; their sessions were ended.", p.upn);
            })?;
        }
        UserCommand::ResetPassword { upn, must_change } => {
            let pw = user_password()?;
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/users/{}/reset-password", seg(&upn)),
                    token,
                    &api::ResetPassword {
                        password: pw,
                        must_change,
                    },
                )
                .await?;
            emit_as(json, &v, |p: &api::PasswordSet| {
                let place = if p.written_to.as_deref() == Some("cloud") {
                    "in the cloud"
                } else {
                    "in Active Directory"
                };
                let then = if p.must_change == Some(true) {
                    " They must change it at their next sign-in."
                } else {
                    ""
                };
                println!(
                    "Password reset {place} for {}; their sessions were ended.{then}",
                    p.upn
                );
            })?;
        }
        UserCommand::Writeback { upn, state } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/users/{}/writeback", seg(&upn)),
                    token,
                    &api::SetWriteback {
                        allowed: state == "on",
                    },
                )
                .await?;
            emit_as(json, &v, |w: &api::WritebackSet| {
                println!(
                    "Self-service password writeback {} for {}",
                    if w.writeback_allowed {
                        "allowed"
                    } else {
                        "not allowed"
                    },
                    w.upn
                );
            })?;
        }
        UserCommand::Disable { upn } => set_blocked(client, t, token, &upn, true, json).await?,
        UserCommand::Enable { upn } => set_blocked(client, t, token, &upn, false, json).await?,
        UserCommand::Unlock { upn } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/users/{}/unlock", seg(&upn)),
                    token,
                    &json!({}),
                )
                .await?;
            emit_as(json, &v, |u: &api::Unlocked| {
                if u.unlocked {
                    println!("Unlocked {}: it may sign in again", u.upn);
                } else {
                    println!(
                        "{} was not locked and had no wrong passwords counted",
                        u.upn
                    );
                }
            })?;
        }
        UserCommand::Delete { upn } => {
            let v = client
                .delete(&format!("/{t}/admin/users/{}", seg(&upn)), token)
                .await?;
            emit_as(json, &v, |d: &api::UserDeleted| {
                println!("Deleted {}", d.upn);
            })?;
        }
        UserCommand::Mfa { upn, policy } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/users/{}/mfa", seg(&upn)),
                    token,
                    &api::SetMfa { policy },
                )
                .await?;
            emit_as(json, &v, |m: &api::MfaSet| {
                println!(
                    "{}: MFA policy {} (effective: {}, enrolled: {})",
                    m.upn, m.mfa.policy, m.mfa.effective, m.mfa.enrolled
                );
            })?;
        }
        UserCommand::MfaReset { upn } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/users/{}/mfa/reset", seg(&upn)),
                    token,
                    &json!({}),
                )
                .await?;
            emit_as(json, &v, |m: &api::MfaReset| {
                if m.reset {
                    println!(
                        "{}: authenticator and recovery codes removed, sessions ended; they enrol again when MFA applies to them.",
                        m.upn
                    );
                } else {
                    println!("{} had no authenticator; sessions ended.", m.upn);
                }
            })?;
        }
        UserCommand::Role { upn, role } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/users/{}/role", seg(&upn)),
                    token,
                    &api::SetRole { role },
                )
                .await?;
            emit_as(json, &v, |u: &api::User| {
                println!("{} now has the role {}", u.upn, u.role);
            })?;
        }
    }
    Ok(())
}

async fn set_blocked(
    client: &CloudClient,
    t: &str,
    token: &str,
    upn: &str,
    blocked: bool,
    json_out: bool,
) -> anyhow::Result<()> {
    let action = if blocked { "disable" } else { "enable" };
    let v: Value = client
        .post_json(
            &format!("/{t}/admin/users/{}/{action}", seg(upn)),
            token,
            &json!({}),
        )
        .await?;
    emit_as(json_out, &v, |u: &api::User| {
        if u.enabled {
            println!("{} may sign in again.", u.upn);
        } else {
            println!("{} is blocked: sign-in refused, sessions ended.", u.upn);
        }
    })
}
