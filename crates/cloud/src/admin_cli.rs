//! `passthru-cloud admin`: a thin client of the admin API. It signs the administrator in
//! through the STS (password grant of the first-party admin client) and never opens the data
//! dir.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use passthru_client::CloudClient;
use serde_json::{json, Value};
use zeroize::Zeroizing;

/// Arguments of `passthru-cloud admin`.
#[derive(Debug, Args)]
pub struct AdminArgs {
    /// The cloud's URL, e.g. https://127.0.0.1:443
    #[arg(long)]
    url: String,
    /// Tenant name or id.
    #[arg(long)]
    tenant: String,
    /// CA certificate to trust for the cloud's TLS (DIR/tls/ca.pem).
    #[arg(long)]
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
        command: DomainCommand,
    },
    /// Applications.
    App {
        #[command(subcommand)]
        command: AppCommand,
    },
    /// Users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Pass-through authentication (tenant-wide).
    Pta {
        #[command(subcommand)]
        command: PtaCommand,
    },
    /// Authentication agents.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Token signing keys (deployment-wide).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// The sign-in log.
    Signins {
        #[command(subcommand)]
        command: SigninsCommand,
    },
    /// Tenant settings.
    Settings {
        #[command(subcommand)]
        command: SettingsCommand,
    },
}

#[derive(Debug, Subcommand)]
enum SettingsCommand {
    /// Show every setting (or one) with its value and what it accepts.
    Get { key: Option<String> },
    /// Set one setting; the value is checked and refused with the reason.
    Set { key: String, value: String },
}

#[derive(Debug, Subcommand)]
enum DomainCommand {
    /// Add a managed domain (its users sign in by pass-through authentication), or with
    /// --federated a federated one (its users sign in at its OpenID Connect identity provider).
    Add {
        name: String,
        /// Issuer URL of the domain's OpenID Connect identity provider: makes it federated.
        #[arg(long, value_name = "ISSUER_URL", requires_all = ["client_id", "client_secret_file"])]
        federated: Option<String>,
        /// This service's client id at the identity provider.
        #[arg(long, value_name = "ID", requires = "federated")]
        client_id: Option<String>,
        /// File holding this service's client secret at the identity provider.
        #[arg(long, value_name = "FILE", requires = "federated")]
        client_secret_file: Option<PathBuf>,
    },
    /// Convert a federated domain to managed: its users sign in by pass-through
    /// authentication from their next sign-in on.
    Convert {
        name: String,
        /// Make the domain managed.
        #[arg(long, required = true)]
        managed: bool,
    },
    /// List the tenant's domains.
    List,
    /// Show a domain, with the DNS TXT record that proves control of it.
    Show { name: String },
    /// Look the domain's TXT record up now and mark the domain verified when it is there.
    Verify { name: String },
    /// Remove a domain (refused while users have UPNs in it).
    Remove { name: String },
}

#[derive(Debug, Subcommand)]
enum AppCommand {
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
    /// Give a confidential application a new secret (printed once); the old one stops working.
    RotateSecret { client_id: String },
    /// Delete an application and every token issued to it.
    Delete { client_id: String },
}

#[derive(Debug, Subcommand)]
enum UserCommand {
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
    /// Delete a cloud-only user.
    Delete { upn: String },
    /// Give a user a role: GlobalAdministrator, HybridIdentityAdministrator or none.
    Role { upn: String, role: String },
}

#[derive(Debug, Subcommand)]
enum PtaCommand {
    /// Enable pass-through authentication (needs an active agent).
    Enable,
    /// Disable pass-through authentication.
    Disable,
    /// Show whether it is enabled and how many agents are active.
    Status,
}

#[derive(Debug, Subcommand)]
enum AgentsCommand {
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

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Add a new signing key; older keys stay published until their tokens expire.
    Rotate,
    /// The current and published key ids.
    List,
}

#[derive(Debug, Subcommand)]
enum SigninsCommand {
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
        /// At most this many lines (1 to 10000).
        #[arg(long, default_value_t = 500)]
        top: u32,
        /// Print CSV (for a spreadsheet) instead of text.
        #[arg(long, conflicts_with = "json")]
        csv: bool,
    },
}

/// One path segment, percent-encoded.
fn seg(v: &str) -> String {
    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
}

fn query(pairs: &[(&str, Option<String>)]) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if let Some(v) = v {
            q.append_pair(k, v);
        }
    }
    let q = q.finish();
    if q.is_empty() {
        q
    } else {
        format!("?{q}")
    }
}

fn print_user(u: &Value) {
    for key in [
        "upn",
        "id",
        "display_name",
        "mail",
        "source",
        "immutable_id",
        "role",
        "enabled",
    ] {
        println!("{key:<14}{}", s(u, key));
    }
    for key in ["created_at", "updated_at", "last_sign_in"] {
        println!("{key:<14}{}", format_time(u[key].as_i64()));
    }
}

fn print_domain(d: &Value) {
    println!(
        "{}\t{}\t{}",
        s(d, "name"),
        s(d, "kind"),
        if d["verified"] == true {
            "verified"
        } else {
            "unverified"
        }
    );
    if d["verified"] == false {
        let v = &d["verification"];
        println!(
            "  Publish: {} TXT \"{}\" (TTL {})",
            s(v, "name"),
            s(v, "value"),
            s(v, "ttl")
        );
        println!("  {}", s(v, "next"));
    }
}

fn print_app(a: &Value) {
    println!(
        "{}\t{}\t{}",
        s(a, "client_id"),
        if a["public"] == true {
            "public"
        } else {
            "confidential"
        },
        s(a, "name")
    );
    for u in a["redirect_uris"].as_array().into_iter().flatten() {
        println!("  redirect {}", u.as_str().unwrap_or_default());
    }
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
    if json_out {
        print_json(&v);
    } else if v["enabled"] == false {
        println!(
            "{} is blocked: sign-in refused, sessions ended.",
            s(&v, "upn")
        );
    } else {
        println!("{} may sign in again.", s(&v, "upn"));
    }
    Ok(())
}

fn user_password() -> anyhow::Result<Zeroizing<String>> {
    if let Ok(p) = std::env::var("PASSTHRU_USER_PASSWORD") {
        return Ok(Zeroizing::new(p));
    }
    let p = rpassword::prompt_password("New user's password: ").map_err(|e| {
        anyhow::anyhow!("cannot prompt for the password ({e}): set PASSTHRU_USER_PASSWORD")
    })?;
    Ok(Zeroizing::new(p))
}

fn s(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(x)) => x.clone(),
        Some(Value::Null) | None => "-".into(),
        Some(other) => other.to_string(),
    }
}

/// Prints `v` as JSON with `--json`, else as text.
fn emit(json: bool, v: &Value, text: impl FnOnce(&Value)) {
    if json {
        print_json(v);
    } else {
        text(v);
    }
}

fn print_json(v: &Value) {
    println!("{}", serde_json::to_string_pretty(v).unwrap_or_default());
}

fn format_time(unix: Option<i64>) -> String {
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "never".into())
}

/// Runs one admin command.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let client = CloudClient::new(&args.url, args.ca_file.as_deref())?;
    let (upn, password) = passthru_client::admin_credentials_from_env_or_prompt()?;
    let token = client.admin_token(&args.tenant, &upn, &password).await?;
    drop(password);
    let t = &args.tenant;
    match args.command {
        AdminCommand::Domain {
            command:
                DomainCommand::Add {
                    name,
                    federated,
                    client_id,
                    client_secret_file,
                },
        } => {
            let body = crate::federation::domain_add_body(
                &name,
                federated.as_deref(),
                client_id.as_deref(),
                client_secret_file.as_deref(),
            )?;
            let v: Value = client
                .post_json(&format!("/{t}/admin/domains"), &token, &body)
                .await?;
            if args.json {
                print_json(&v);
            } else if v["kind"] == "federated" {
                println!(
                    "Added federated domain {} (identity provider {})",
                    s(&v, "name"),
                    s(&v, "issuer")
                );
            } else {
                println!("Added managed domain {}", s(&v, "name"));
            }
            if !args.json && v["verified"] == false {
                print_domain(&v);
            }
        }
        AdminCommand::Domain {
            command: DomainCommand::Show { name },
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/domains/{}", seg(&name)), &token)
                .await?;
            emit(args.json, &v, |v| {
                print_domain(v);
                println!("  users: {}", s(v, "users"));
            });
        }
        AdminCommand::Domain {
            command: DomainCommand::Verify { name },
        } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/domains/{}/verify", seg(&name)),
                    &token,
                    &json!({}),
                )
                .await?;
            emit(args.json, &v, |v| {
                println!("{} is verified: its users can sign in.", s(v, "name"));
            });
        }
        AdminCommand::Domain {
            command: DomainCommand::Remove { name },
        } => {
            let v = client
                .delete(&format!("/{t}/admin/domains/{}", seg(&name)), &token)
                .await?;
            emit(args.json, &v, |v| {
                println!("Removed domain {}", s(v, "name"));
            });
        }
        AdminCommand::Domain {
            command: DomainCommand::Convert { name, managed: _ },
        } => {
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
            {
                anyhow::bail!("'{name}' is not a DNS domain name");
            }
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/domains/{name}/convert"),
                    &token,
                    &json!({ "to": "managed" }),
                )
                .await?;
            emit(args.json, &v, |v| {
                println!(
                    "Converted {} to a managed domain: its users sign in by pass-through authentication from their next sign-in on.",
                    s(v, "name")
                );
                if v["pta_enabled"] == false {
                    eprintln!("Pass-through authentication is disabled: enable it (`pta enable`) so that they can sign in.");
                }
            });
        }
        AdminCommand::Domain {
            command: DomainCommand::List,
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/domains"), &token)
                .await?;
            emit(args.json, &v, |v| {
                for d in v["domains"].as_array().into_iter().flatten() {
                    print_domain(d);
                }
            });
        }
        AdminCommand::App {
            command:
                AppCommand::Add {
                    name,
                    public,
                    confidential,
                    redirect_uris,
                },
        } => {
            let body = json!({ "name": name, "public": public, "confidential": confidential, "redirect_uris": redirect_uris });
            let v: Value = client
                .post_json(&format!("/{t}/admin/apps"), &token, &body)
                .await?;
            emit(args.json, &v, |v| {
                println!("{}", s(v, "client_id"));
                if let Some(secret) = v["client_secret"].as_str() {
                    println!("{secret}");
                    eprintln!("Store the client secret (second line) now: it is not shown again.");
                }
            });
        }
        AdminCommand::App {
            command: AppCommand::List,
        } => {
            let v: Value = client.get_json(&format!("/{t}/admin/apps"), &token).await?;
            emit(args.json, &v, |v| {
                for a in v["apps"].as_array().into_iter().flatten() {
                    print_app(a);
                }
            });
        }
        AdminCommand::App {
            command: AppCommand::Show { client_id },
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/apps/{}", seg(&client_id)), &token)
                .await?;
            emit(args.json, &v, |v| {
                print_app(v);
            });
        }
        AdminCommand::App {
            command:
                AppCommand::SetRedirectUris {
                    client_id,
                    redirect_uris,
                },
        } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/apps/{}/redirect-uris", seg(&client_id)),
                    &token,
                    &json!({ "redirect_uris": redirect_uris }),
                )
                .await?;
            emit(args.json, &v, |v| {
                print_app(v);
            });
        }
        AdminCommand::App {
            command: AppCommand::RotateSecret { client_id },
        } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/apps/{}/secret", seg(&client_id)),
                    &token,
                    &json!({}),
                )
                .await?;
            emit(args.json, &v, |v| {
                println!("{}", s(v, "client_secret"));
                eprintln!("Store the new client secret now: it is not shown again. The old one no longer works.");
            });
        }
        AdminCommand::App {
            command: AppCommand::Delete { client_id },
        } => {
            let v = client
                .delete(&format!("/{t}/admin/apps/{}", seg(&client_id)), &token)
                .await?;
            emit(args.json, &v, |v| {
                println!("Deleted app {}", s(v, "client_id"));
            });
        }
        AdminCommand::User {
            command: UserCommand::Add { upn, display_name },
        } => {
            let pw = user_password()?;
            let body = json!({ "upn": upn, "password": pw.as_str(), "display_name": display_name });
            let v: Value = client
                .post_json(&format!("/{t}/admin/users"), &token, &body)
                .await?;
            emit(args.json, &v, |v| {
                println!("Added cloud-only user {} ({})", s(v, "upn"), s(v, "id"));
            });
        }
        AdminCommand::User {
            command:
                UserCommand::List {
                    search,
                    top,
                    mut skiptoken,
                    all,
                },
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
                let v: Value = client.get_json(&path, &token).await?;
                skiptoken = v["next_skiptoken"].as_str().map(str::to_string);
                if !args.json {
                    for u in v["users"].as_array().into_iter().flatten() {
                        println!(
                            "{}\t{}\t{}\t{}\t{}",
                            s(u, "upn"),
                            s(u, "source"),
                            s(u, "role"),
                            if u["enabled"] == false {
                                "blocked"
                            } else {
                                "enabled"
                            },
                            s(u, "id")
                        );
                    }
                }
                pages.push(v);
                if !all || skiptoken.is_none() {
                    break;
                }
            }
            if args.json {
                let users: Vec<Value> = pages
                    .iter()
                    .flat_map(|p| p["users"].as_array().cloned().unwrap_or_default())
                    .collect();
                print_json(&json!({ "users": users, "next_skiptoken": skiptoken }));
            } else if let Some(next) = skiptoken {
                eprintln!("More users: repeat with --skiptoken {next} (or --all).");
            }
        }
        AdminCommand::User {
            command: UserCommand::Show { upn },
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/users/{}", seg(&upn)), &token)
                .await?;
            emit(args.json, &v, |v| {
                print_user(v);
            });
        }
        AdminCommand::User {
            command: UserCommand::SetPassword { upn },
        } => {
            let pw = user_password()?;
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/users/{}/password", seg(&upn)),
                    &token,
                    &json!({ "password": pw.as_str() }),
                )
                .await?;
            emit(args.json, &v, |v| {
                println!(
                    "Password set for {}; their sessions were ended.",
                    s(v, "upn")
                );
            });
        }
        AdminCommand::User {
            command: UserCommand::Disable { upn },
        } => set_blocked(&client, t, &token, &upn, true, args.json).await?,
        AdminCommand::User {
            command: UserCommand::Enable { upn },
        } => set_blocked(&client, t, &token, &upn, false, args.json).await?,
        AdminCommand::User {
            command: UserCommand::Delete { upn },
        } => {
            let v = client
                .delete(&format!("/{t}/admin/users/{}", seg(&upn)), &token)
                .await?;
            emit(args.json, &v, |v| {
                println!("Deleted {}", s(v, "upn"));
            });
        }
        AdminCommand::User {
            command: UserCommand::Role { upn, role },
        } => {
            let v: Value = client
                .put_json(
                    &format!("/{t}/admin/users/{}/role", seg(&upn)),
                    &token,
                    &json!({ "role": role }),
                )
                .await?;
            emit(args.json, &v, |v| {
                println!("{} now has the role {}", s(v, "upn"), s(v, "role"));
            });
        }
        AdminCommand::Settings { command } => {
            let (v, only): (Value, Option<String>) = match command {
                SettingsCommand::Get { key } => (
                    client
                        .get_json(&format!("/{t}/admin/settings"), &token)
                        .await?,
                    key,
                ),
                SettingsCommand::Set { key, value } => (
                    client
                        .put_json(
                            &format!("/{t}/admin/settings/{}", seg(&key)),
                            &token,
                            &json!({ "value": value }),
                        )
                        .await?,
                    Some(key),
                ),
            };
            let list: Vec<&Value> = v["settings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| only.as_deref().is_none_or(|k| e["key"] == k))
                .collect();
            if let Some(k) = &only {
                if list.is_empty() {
                    anyhow::bail!("'{k}' is not a setting: `settings get` lists them");
                }
            }
            if args.json {
                print_json(&json!({ "settings": list }));
            } else {
                for e in list {
                    println!("{:<26}{:<20}{}", s(e, "key"), s(e, "value"), s(e, "help"));
                }
            }
        }
        AdminCommand::Pta { command } => {
            let v: Value = match command {
                PtaCommand::Status => client.get_json(&format!("/{t}/admin/pta"), &token).await?,
                PtaCommand::Enable | PtaCommand::Disable => {
                    let enabled = matches!(command, PtaCommand::Enable);
                    client
                        .post_json(
                            &format!("/{t}/admin/pta"),
                            &token,
                            &json!({ "enabled": enabled }),
                        )
                        .await?
                }
            };
            emit(args.json, &v, |v| {
                let on = v["enabled"].as_bool().unwrap_or(false);
                let n = |k: &str| v[k].as_u64().unwrap_or(0);
                println!(
                    "Pass-through authentication: {} ({} active, {} draining, {} inactive of {} registered agent(s))",
                    if on { "enabled" } else { "disabled" },
                    n("active_agents"),
                    n("draining_agents"),
                    n("inactive_agents"),
                    n("registered_agents")
                );
            });
        }
        AdminCommand::Agents {
            command: AgentsCommand::Revoke { id, force },
        } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/agents/{id}/revoke"),
                    &token,
                    &json!({ "force": force }),
                )
                .await?;
            emit(args.json, &v, |v| {
                println!(
                    "Revoked agent {id} ({} connection(s) closed)",
                    s(v, "connections_closed")
                );
            });
        }
        AdminCommand::Agents {
            command: AgentsCommand::List,
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/agents"), &token)
                .await?;
            emit(args.json, &v, |v| {
                println!("ID\tHOST\tVERSION\tSTATUS\tLAST SEEN\tSOURCE IP\tFORESTS\tCERT EXPIRES\tSERVED\tFAILURES\tP50 MS\tP99 MS");
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
                    println!(
                        "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
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
                    );
                }
            });
        }
        AdminCommand::Keys { command } => {
            let v: Value = match command {
                KeysCommand::Rotate => {
                    client
                        .post_json(&format!("/{t}/admin/keys/rotate"), &token, &json!({}))
                        .await?
                }
                KeysCommand::List => client.get_json(&format!("/{t}/admin/keys"), &token).await?,
            };
            emit(args.json, &v, |v| {
                println!("current: {}", s(v, "current"));
                for k in v["published"].as_array().into_iter().flatten() {
                    println!("published: {}", k.as_str().unwrap_or_default());
                }
            });
        }
        AdminCommand::Signins {
            command:
                SigninsCommand::List {
                    user,
                    result,
                    since,
                    until,
                    top,
                    csv,
                },
        } => {
            let q = |format: &str| {
                query(&[
                    ("user", user.clone()),
                    ("result", result.clone()),
                    ("since", since.clone()),
                    ("until", until.clone()),
                    ("top", Some(top.to_string())),
                    ("format", Some(format.to_string())),
                ])
            };
            if csv {
                let text = client
                    .get_text(&format!("/{t}/admin/signins{}", q("csv")), &token)
                    .await?;
                print!("{text}");
                return Ok(());
            }
            let v: Value = client
                .get_json(&format!("/{t}/admin/signins{}", q("json")), &token)
                .await?;
            emit(args.json, &v, |v| {
                for e in v["signins"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}\tAADSTS {}\tWin32 {}\tagent {}\t{} ms\t{}",
                        format_time(e["time_ms"].as_i64().map(|m| m / 1000)),
                        s(e, "username"),
                        s(e, "result"),
                        s(e, "aadsts"),
                        s(e, "win32"),
                        s(e, "agent_id"),
                        s(e, "latency_ms"),
                        s(e, "correlation_id")
                    );
                }
            });
        }
    }
    Ok(())
}
