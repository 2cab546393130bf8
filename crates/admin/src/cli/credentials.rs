//! `admin app secret ...` and `admin app credential ...`: an application's client secrets and
//! certificates, several at once with their own expiry, so that one is replaced without an
//! outage.

use std::path::{Path, PathBuf};

use clap::Subcommand;
use serde_json::Value;

use super::output::*;
use super::Cx;
use crate::api;

/// `app secret ...`
#[derive(Debug, Subcommand)]
pub(super) enum SecretCommand {
    /// Add a client secret beside the app's others (both work until one is removed). Prints
    /// the credential id, then the secret on a second line: it is shown only this once.
    Add {
        client_id: String,
        /// Days until the secret expires (at most 730).
        #[arg(long, default_value_t = api::DEFAULT_SECRET_DAYS,
              value_parser = clap::value_parser!(u32).range(1..=i64::from(api::MAX_SECRET_DAYS)))]
        expires_in_days: u32,
    },
    /// Remove one client secret (ID from `app credential list`); it stops working at once.
    Remove { client_id: String, id: String },
}

/// `app credential ...`
#[derive(Debug, Subcommand)]
pub(super) enum CredentialCommand {
    /// Register a certificate the app signs client assertions with (private_key_jwt, MSAL's
    /// clientCertificate). FILE is the certificate in PEM, never its private key; it expires
    /// with the certificate. Prints the credential id, then its thumbprints.
    Add {
        client_id: String,
        /// The certificate (PEM, -----BEGIN CERTIFICATE-----).
        #[arg(long)]
        cert: PathBuf,
    },
    /// List the app's secrets (by hint) and certificates (by SHA-1 thumbprint) with their
    /// expiry.
    List { client_id: String },
    /// Remove one credential, secret or certificate; it stops working at once.
    Remove { client_id: String, id: String },
}

/// The most bytes of a certificate file read.
const MAX_CERT_FILE: u64 = 64 * 1024;

/// The PEM text of the certificate file at `path`, refused here when it holds a private key
/// (which is then never sent) or is not text. The cloud checks the rest.
pub(super) fn certificate_text(path: &Path, bytes: &[u8]) -> anyhow::Result<String> {
    let shown = path.display();
    let Ok(text) = std::str::from_utf8(bytes) else {
        anyhow::bail!(
            "{shown} is not a PEM file (a DER certificate?): convert it with `openssl x509 -inform der -in {shown} -out cert.pem` and give cert.pem"
        );
    };
    let private_key = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("-----BEGIN "))
        .any(|label| label.contains("PRIVATE KEY"));
    if private_key {
        anyhow::bail!(
            "{shown} holds a private key, which must stay with the application: give its certificate instead (the -----BEGIN CERTIFICATE----- block, e.g. `openssl x509 -in {shown} -out cert.pem`). Nothing was sent."
        );
    }
    Ok(text.to_string())
}

/// The lines of `credential list`.
pub(super) fn credential_lines(list: &api::CredentialList) -> Vec<String> {
    let mut out = vec!["ID\tKIND\tHINT/THUMBPRINT\tEXPIRES".to_string()];
    for c in &list.credentials {
        let shown = match c.kind.as_str() {
            "certificate" => dash(c.thumbprint.as_ref()),
            _ => c
                .hint
                .as_ref()
                .map_or_else(|| "-".to_string(), |h| format!("{h}...")),
        };
        out.push(format!(
            "{}\t{}\t{}\t{}{}",
            c.id,
            c.kind,
            shown,
            format_time(c.expires_at),
            if c.expired { " (expired)" } else { "" }
        ));
    }
    out
}

/// The lines `credential add` prints of the certificate it registered.
pub(super) fn certificate_lines(c: &api::Credential) -> Vec<String> {
    vec![
        c.id.to_string(),
        format!("thumbprint (SHA-1, x5t)\t{}", dash(c.thumbprint.as_ref())),
        format!(
            "thumbprint (SHA-256, x5t#S256)\t{}",
            dash(c.thumbprint_sha256.as_ref())
        ),
        format!("subject\t{}", dash(c.subject.as_ref())),
        format!("expires\t{}", format_time(c.expires_at)),
    ]
}

fn credentials_path(t: &str, client_id: &str) -> String {
    format!("/{t}/admin/apps/{}/credentials", seg(client_id))
}

/// Runs an `app secret` command.
pub(super) async fn secret(cx: &Cx<'_>, command: SecretCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        SecretCommand::Add {
            client_id,
            expires_in_days,
        } => {
            let v: Value = client
                .post_json(
                    &format!("{}/secrets", credentials_path(t, &client_id)),
                    token,
                    &api::NewSecret {
                        expires_in_days: Some(expires_in_days),
                    },
                )
                .await?;
            emit_as(json, &v, |s: &api::SecretAdded| {
                println!("{}", s.id);
                println!("{}", s.secret);
                eprintln!(
                    "Store the client secret (second line) now: it is not shown again. It expires on {}: add the next one before then, move the app to it, then remove this one.",
                    format_time(Some(s.expires_at))
                );
            })?;
        }
        SecretCommand::Remove { client_id, id } => {
            let v = client
                .delete(
                    &format!("{}/secrets/{}", credentials_path(t, &client_id), seg(&id)),
                    token,
                )
                .await?;
            emit_as(json, &v, print_removed)?;
        }
    }
    Ok(())
}

/// Runs an `app credential` command.
pub(super) async fn credential(cx: &Cx<'_>, command: CredentialCommand) -> anyhow::Result<()> {
    let Cx {
        client,
        t,
        token,
        json,
    } = *cx;
    match command {
        CredentialCommand::Add { client_id, cert } => {
            let size = std::fs::metadata(&cert)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", cert.display()))?
                .len();
            if size > MAX_CERT_FILE {
                anyhow::bail!(
                    "{} is larger than {MAX_CERT_FILE} bytes: give the application's certificate alone (PEM)",
                    cert.display()
                );
            }
            let bytes = zeroize::Zeroizing::new(
                std::fs::read(&cert)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", cert.display()))?,
            );
            let certificate = certificate_text(&cert, &bytes)?;
            let v: Value = client
                .post_json(
                    &format!("{}/certificates", credentials_path(t, &client_id)),
                    token,
                    &api::NewCertificate { certificate },
                )
                .await?;
            emit_as(json, &v, |c: &api::Credential| {
                print_lines(&certificate_lines(c));
            })?;
        }
        CredentialCommand::List { client_id } => {
            let v: Value = client
                .get_json(&credentials_path(t, &client_id), token)
                .await?;
            emit_as(json, &v, |l: &api::CredentialList| {
                print_lines(&credential_lines(l));
            })?;
        }
        CredentialCommand::Remove { client_id, id } => {
            let v = client
                .delete(
                    &format!("{}/{}", credentials_path(t, &client_id), seg(&id)),
                    token,
                )
                .await?;
            emit_as(json, &v, print_removed)?;
        }
    }
    Ok(())
}

fn print_removed(r: &api::CredentialRemoved) {
    println!("Removed credential {} of app {}", r.id, r.client_id);
}

/// The credential lines `app show` adds for a confidential app.
pub(super) async fn show_lines(cx: &Cx<'_>, client_id: &str) -> anyhow::Result<Vec<String>> {
    let v: Value = cx
        .client
        .get_json(&credentials_path(cx.t, client_id), cx.token)
        .await?;
    let list: api::CredentialList = answer(&v)?;
    Ok(credential_lines(&list)
        .into_iter()
        .skip(1)
        .map(|l| format!("  credential {l}"))
        .collect())
}

#[cfg(test)]
#[path = "credentials_tests.rs"]
mod tests;
