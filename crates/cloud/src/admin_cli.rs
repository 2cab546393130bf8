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
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a cloud-only user (password from PASSTHRU_USER_PASSWORD, else prompted).
    Add { upn: String },
    /// List users.
    List,
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
    /// The latest sign-ins.
    List,
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
            if args.json {
                print_json(&v);
            } else {
                println!(
                    "Converted {} to a managed domain: its users sign in by pass-through authentication from their next sign-in on.",
                    s(&v, "name")
                );
                if v["pta_enabled"] == false {
                    eprintln!("Pass-through authentication is disabled: enable it (`pta enable`) so that they can sign in.");
                }
            }
        }
        AdminCommand::Domain {
            command: DomainCommand::List,
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/domains"), &token)
                .await?;
            if args.json {
                print_json(&v);
            } else {
                for d in v["domains"].as_array().into_iter().flatten() {
                    println!("{}\t{}", s(d, "name"), s(d, "kind"));
                }
            }
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
            if args.json {
                print_json(&v);
            } else {
                println!("{}", s(&v, "client_id"));
                if let Some(secret) = v["client_secret"].as_str() {
                    println!("{secret}");
                    eprintln!("Store the client secret (second line) now: it is not shown again.");
                }
            }
        }
        AdminCommand::User {
            command: UserCommand::Add { upn },
        } => {
            let pw = user_password()?;
            let body = json!({ "upn": upn, "password": pw.as_str() });
            let v: Value = client
                .post_json(&format!("/{t}/admin/users"), &token, &body)
                .await?;
            if args.json {
                print_json(&v);
            } else {
                println!("Added cloud-only user {} ({})", s(&v, "upn"), s(&v, "id"));
            }
        }
        AdminCommand::User {
            command: UserCommand::List,
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/users"), &token)
                .await?;
            if args.json {
                print_json(&v);
            } else {
                for u in v["users"].as_array().into_iter().flatten() {
                    println!(
                        "{}\t{}\t{}\t{}",
                        s(u, "upn"),
                        s(u, "source"),
                        s(u, "role"),
                        s(u, "id")
                    );
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
            if args.json {
                print_json(&v);
            } else {
                let on = v["enabled"].as_bool().unwrap_or(false);
                println!(
                    "Pass-through authentication: {} ({} active agent(s))",
                    if on { "enabled" } else { "disabled" },
                    v["active_agents"].as_u64().unwrap_or(0)
                );
            }
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
            if args.json {
                print_json(&v);
            } else {
                println!(
                    "Revoked agent {id} ({} connection(s) closed)",
                    s(&v, "connections_closed")
                );
            }
        }
        AdminCommand::Agents {
            command: AgentsCommand::List,
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/agents"), &token)
                .await?;
            if args.json {
                print_json(&v);
            } else {
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
            }
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
            if args.json {
                print_json(&v);
            } else {
                println!("current: {}", s(&v, "current"));
                for k in v["published"].as_array().into_iter().flatten() {
                    println!("published: {}", k.as_str().unwrap_or_default());
                }
            }
        }
        AdminCommand::Signins {
            command: SigninsCommand::List,
        } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/signins"), &token)
                .await?;
            if args.json {
                print_json(&v);
            } else {
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
            }
        }
    }
    Ok(())
}
