//! `app secret ...` and `app credential ...`: the command lines they take, what they print
//! (line for line: scripts read the id on the first line), and the private key that is never
//! sent.

use std::path::Path;

use clap::Parser as _;
use uuid::Uuid;

use super::{certificate_lines, certificate_text, credential_lines};
use crate::api;
use crate::cli::apps::AppCommand;
use crate::cli::output::answer;
use crate::cli::AdminCommand;

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);
const C: Uuid = Uuid::from_u128(0xc);

#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(flatten)]
    admin: crate::cli::AdminArgs,
}

fn parse(rest: &[&str]) -> Result<AppCommand, clap::Error> {
    let base = ["admin", "--url", "https://x", "--tenant", "contoso", "app"];
    let cli = Cli::try_parse_from(base.iter().chain(rest.iter()).copied())?;
    match cli.admin.command {
        AdminCommand::App { command } => Ok(command),
        _ => Err(clap::Error::new(clap::error::ErrorKind::InvalidSubcommand)),
    }
}

#[test]
fn the_command_lines_of_the_issue_parse() -> anyhow::Result<()> {
    use super::{CredentialCommand as Cred, SecretCommand as Secret};
    let days = |rest: &[&str]| match parse(rest) {
        Ok(AppCommand::Secret {
            command:
                Secret::Add {
                    client_id,
                    expires_in_days,
                },
        }) => Some((client_id, expires_in_days)),
        _ => None,
    };
    assert_eq!(days(&["secret", "add", "ID"]), Some(("ID".into(), 180)));
    assert_eq!(
        days(&["secret", "add", "ID", "--expires-in-days", "730"]),
        Some(("ID".into(), 730))
    );
    for bad in ["0", "731", "-1", "x"] {
        assert!(
            parse(&["secret", "add", "ID", "--expires-in-days", bad]).is_err(),
            "{bad}"
        );
    }
    assert!(matches!(
        parse(&["secret", "remove", "ID", "CRED"])?,
        AppCommand::Secret { command: Secret::Remove { client_id, id } } if client_id == "ID" && id == "CRED"
    ));
    assert!(matches!(
        parse(&["credential", "add", "ID", "--cert", "app.pem"])?,
        AppCommand::Credential { command: Cred::Add { client_id, cert } } if client_id == "ID" && cert == Path::new("app.pem")
    ));
    assert!(
        parse(&["credential", "add", "ID"]).is_err(),
        "--cert is required"
    );
    assert!(matches!(
        parse(&["credential", "list", "ID"])?,
        AppCommand::Credential { command: Cred::List { client_id } } if client_id == "ID"
    ));
    assert!(matches!(
        parse(&["credential", "remove", "ID", "CRED"])?,
        AppCommand::Credential { command: Cred::Remove { client_id, id } } if client_id == "ID" && id == "CRED"
    ));
    // The old form keeps working.
    assert!(matches!(
        parse(&["rotate-secret", "ID"])?,
        AppCommand::RotateSecret { client_id } if client_id == "ID"
    ));
    Ok(())
}

/// `t` as the CLI gets it: written as JSON text and read back as its type.
fn wire<T: serde::Serialize + serde::de::DeserializeOwned + utoipa::ToSchema>(
    t: &T,
) -> anyhow::Result<T> {
    let v: serde_json::Value = serde_json::from_str(&serde_json::to_string(t)?)?;
    answer(&v)
}

fn secret(id: Uuid, hint: Option<&str>, expires_at: Option<i64>, expired: bool) -> api::Credential {
    api::Credential {
        id,
        kind: "secret".into(),
        hint: hint.map(str::to_string),
        thumbprint: None,
        thumbprint_sha256: None,
        subject: None,
        created_at: 1_700_000_000,
        starts_at: None,
        expires_at,
        expired,
    }
}

fn certificate() -> api::Credential {
    api::Credential {
        id: C,
        kind: "certificate".into(),
        hint: None,
        thumbprint: Some("AB".repeat(20)),
        thumbprint_sha256: Some("CD".repeat(32)),
        subject: Some("CN=daemon".into()),
        created_at: 1_700_000_000,
        starts_at: Some(1_700_000_000),
        expires_at: Some(1_900_000_000),
        expired: false,
    }
}

#[test]
fn credential_list_prints_one_line_each_never_a_secret() -> anyhow::Result<()> {
    let list = wire(&api::CredentialList {
        client_id: "app".into(),
        credentials: vec![
            secret(A, None, None, false),
            secret(B, Some("Xy~"), Some(1_800_000_000), true),
            certificate(),
        ],
    })?;
    assert_eq!(
        credential_lines(&list),
        [
            "ID\tKIND\tHINT/THUMBPRINT\tEXPIRES".to_string(),
            "00000000-0000-0000-0000-00000000000a\tsecret\t-\tnever".to_string(),
            "00000000-0000-0000-0000-00000000000b\tsecret\tXy~...\t2027-01-15T08:00:00Z (expired)"
                .to_string(),
            format!(
                "00000000-0000-0000-0000-00000000000c\tcertificate\t{}\t2030-03-17T17:46:40Z",
                "AB".repeat(20)
            ),
        ]
    );
    assert_eq!(
        certificate_lines(&wire(&certificate())?),
        [
            "00000000-0000-0000-0000-00000000000c".to_string(),
            format!("thumbprint (SHA-1, x5t)\t{}", "AB".repeat(20)),
            format!("thumbprint (SHA-256, x5t#S256)\t{}", "CD".repeat(32)),
            "subject\tCN=daemon".to_string(),
            "expires\t2030-03-17T17:46:40Z".to_string(),
        ]
    );
    // `secret add --json` is exactly {id, secret, hint, expires_at}; its Debug hides the
    // secret.
    let added = api::SecretAdded {
        id: A,
        secret: "s3cret-value".into(),
        hint: "s3c".into(),
        expires_at: 1_800_000_000,
    };
    let v = serde_json::to_value(&added)?;
    let mut keys: Vec<&str> = v
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    keys.sort_unstable();
    assert_eq!(keys, ["expires_at", "hint", "id", "secret"]);
    assert!(!format!("{added:?}").contains("s3cret-value"));
    Ok(())
}

#[test]
fn a_private_key_is_refused_here_and_never_sent() {
    let path = Path::new("app.pem");
    let cert = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
    assert_eq!(
        certificate_text(path, cert.as_bytes()).ok().as_deref(),
        Some(cert)
    );
    for key in [
        "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n".to_string(),
        "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----\n".to_string(),
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIE\n-----END ENCRYPTED PRIVATE KEY-----\n"
            .to_string(),
        format!("{cert}-----BEGIN EC PRIVATE KEY-----\nMHcC\n-----END EC PRIVATE KEY-----\n"),
    ] {
        let e = certificate_text(path, key.as_bytes())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("private key") && e.contains("Nothing was sent"),
            "{e}"
        );
        assert!(!e.contains("MII") && !e.contains("MHcC"), "{e}");
    }
    let der = [0x30u8, 0x82, 0x01, 0xff, 0xfe];
    let e = certificate_text(path, &der)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(e.contains("openssl x509 -inform der"), "{e}");
}
