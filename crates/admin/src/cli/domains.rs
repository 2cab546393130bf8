//! `admin domain ...`

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::{json, Value};
use zeroize::Zeroizing;

use super::output::*;
use super::Cx;
use crate::api;

#[derive(Debug, Subcommand)]
pub(super) enum DomainCommand {
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

/// Runs a domain command.
pub(super) async fn run(cx: &Cx<'_>, command: DomainCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        DomainCommand::Add {
            name,
            federated,
            client_id,
            client_secret_file,
        } => {
            let body = domain_add_body(
                &name,
                federated.as_deref(),
                client_id.as_deref(),
                client_secret_file.as_deref(),
            )?;
            let v: Value = client
                .post_json(&format!("/{t}/admin/domains"), token, &body)
                .await?;
            emit_as(json, &v, |d: &api::Domain| {
                if d.kind == "federated" {
                    println!(
                        "Added federated domain {} (identity provider {})",
                        d.name,
                        dash(d.issuer.as_ref())
                    );
                } else {
                    println!("Added managed domain {}", d.name);
                }
                if !d.verified {
                    print_domain(d);
                }
            })?;
        }
        DomainCommand::Show { name } => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/domains/{}", seg(&name)), token)
                .await?;
            emit_as(json, &v, |d: &api::Domain| {
                print_domain(d);
                println!("  users: {}", dash(d.users));
            })?;
        }
        DomainCommand::Verify { name } => {
            let v: Value = client
                .post_json(
                    &format!("/{t}/admin/domains/{}/verify", seg(&name)),
                    token,
                    &json!({}),
                )
                .await?;
            emit_as(json, &v, |d: &api::Domain| {
                println!("{} is verified: its users can sign in.", d.name);
            })?;
        }
        DomainCommand::Remove { name } => {
            let v = client
                .delete(&format!("/{t}/admin/domains/{}", seg(&name)), token)
                .await?;
            emit_as(json, &v, |d: &api::DomainRemoved| {
                println!("Removed domain {}", d.name);
            })?;
        }
        DomainCommand::Convert { name, managed: _ } => {
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
                    token,
                    &api::ConvertDomain {
                        to: api::MANAGED.to_string(),
                    },
                )
                .await?;
            emit_as(json, &v, |d: &api::DomainConverted| {
                println!(
                    "Converted {} to a managed domain: its users sign in by pass-through authentication from their next sign-in on.",
                    d.name
                );
                if !d.pta_enabled {
                    eprintln!("Pass-through authentication is disabled: enable it (`pta enable`) so that they can sign in.");
                }
            })?;
        }
        DomainCommand::List => {
            let v: Value = client
                .get_json(&format!("/{t}/admin/domains"), token)
                .await?;
            emit_as(json, &v, |l: &api::DomainList| {
                l.domains.iter().for_each(print_domain);
            })?;
        }
    }
    Ok(())
}

/// The body of `passthru-cloud admin domain add NAME [--federated ISSUER_URL --client-id ID
/// --client-secret-file FILE]`. The secret is the file's content, trimmed; it never appears on
/// a command line.
pub(crate) fn domain_add_body(
    name: &str,
    issuer: Option<&str>,
    client_id: Option<&str>,
    secret_file: Option<&Path>,
) -> anyhow::Result<api::NewDomain> {
    let (Some(issuer), Some(client_id), Some(file)) = (issuer, client_id, secret_file) else {
        if issuer.is_some() || client_id.is_some() || secret_file.is_some() {
            anyhow::bail!(
                "a federated domain needs --federated ISSUER_URL, --client-id ID and --client-secret-file FILE together"
            );
        }
        return Ok(api::NewDomain {
            name: name.to_string(),
            federated: None,
        });
    };
    api::valid_issuer(issuer).map_err(|e| anyhow::anyhow!(e))?;
    let raw = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
        anyhow::anyhow!("cannot read the client secret file {}: {e}", file.display())
    })?);
    let secret = raw.trim();
    if secret.is_empty() {
        anyhow::bail!("the client secret file {} is empty", file.display());
    }
    Ok(api::NewDomain {
        name: name.to_string(),
        federated: Some(api::FederatedIdp {
            issuer: issuer.to_string(),
            client_id: client_id.to_string(),
            client_secret: Zeroizing::new(secret.to_string()),
        }),
    })
}
