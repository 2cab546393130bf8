//! `passthru-agent register` (the binary) against a fake cloud on 127.0.0.1: the state dir it
//! writes, and its messages for a wrong password, a non-admin, an untrusted certificate and an
//! unreachable cloud.

use std::error::Error;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use base64::Engine as _;
use passthru_proto::admin::{RegisterAgentRequest, RegisterAgentResponse};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, CertifiedIssuer, IsCa,
    KeyPair,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use uuid::Uuid;

type TestResult = Result<(), Box<dyn Error>>;

const BIN: &str = env!("CARGO_BIN_EXE_passthru-agent");
const TENANT_ID: &str = "3f2e1a9d-4c70-4d8e-9b0c-3e2f1a9d4c70";
const AGENT_ID: &str = "0b7c6c1e-2b5a-4f1e-8f00-5a3d2e1c0b9a";

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        let dir = std::env::temp_dir().join(format!("passthru-register-it-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The fake cloud's answer to one request.
fn answer(
    agent_ca: &CertifiedIssuer<'static, KeyPair>,
    base: &str,
    method: &str,
    path: &str,
    authorization: &str,
    body: &str,
) -> (u16, String) {
    match (method, path) {
        ("POST", "/contoso/oauth2/v2.0/token") => {
            if body.contains("username=admin%40contoso.example")
                && body.contains("password=R1ght-Pass")
            {
                (
                    200,
                    r#"{"access_token":"admin-token","token_type":"Bearer"}"#.into(),
                )
            } else if body.contains("username=bob%40contoso.example") {
                (
                    200,
                    r#"{"access_token":"bob-token","token_type":"Bearer"}"#.into(),
                )
            } else {
                (400, r#"{"error":"invalid_grant","error_description":"AADSTS50126: Error validating credentials due to invalid username or password. Trace ID: t Correlation ID: c Timestamp: 2026-01-01 00:00:00Z","error_codes":[50126]}"#.into())
            }
        }
        ("POST", "/contoso/admin/agents/register") => {
            if authorization == "Bearer bob-token" {
                return (403, r#"{"error":"access_denied","error_description":"'bob@contoso.example' is not allowed to do this: it needs the role GlobalAdministrator or HybridIdentityAdministrator."}"#.into());
            }
            if authorization != "Bearer admin-token" {
                return (
                    401,
                    r#"{"error":"invalid_token","error_description":"no"}"#.into(),
                );
            }
            let Ok(req) = serde_json::from_str::<RegisterAgentRequest>(body) else {
                return (
                    400,
                    r#"{"error":"invalid_request","error_description":"bad json"}"#.into(),
                );
            };
            let hpke_ok = base64::engine::general_purpose::STANDARD
                .decode(&req.hpke_public_key)
                .is_ok_and(|k| k.len() == 32);
            let cert = CertificateSigningRequestParams::from_pem(&req.csr_pem)
                .and_then(|csr| csr.signed_by(agent_ca));
            match cert {
                Ok(cert) if hpke_ok && !req.host.is_empty() => {
                    let response = RegisterAgentResponse {
                        agent_id: Uuid::parse_str(AGENT_ID).unwrap_or_default(),
                        tenant_id: Uuid::parse_str(TENANT_ID).unwrap_or_default(),
                        tenant_name: "contoso".into(),
                        certificate_pem: cert.pem(),
                        agent_endpoint: base.to_string(),
                    };
                    (200, serde_json::to_string(&response).unwrap_or_default())
                }
                _ => (
                    400,
                    r#"{"error":"invalid_request","error_description":"bad csr or key"}"#.into(),
                ),
            }
        }
        _ => (
            404,
            r#"{"error":"not_found","error_description":"no such route"}"#.into(),
        ),
    }
}

/// Starts the fake cloud; returns its URL and the CA file clients should trust.
fn start_cloud(
    rt: &tokio::runtime::Runtime,
    dir: &Path,
) -> Result<(String, PathBuf), Box<dyn Error>> {
    let ca = |name: &str| -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(rcgen::DnType::CommonName, name);
        CertifiedIssuer::self_signed(p, KeyPair::generate()?)
    };
    let server_ca = ca("deployment CA")?;
    let agent_ca = Arc::new(ca("agent CA")?);
    let server_key = KeyPair::generate()?;
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?
        .signed_by(&server_key, &server_ca)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![server_cert.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
    )?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, server_ca.pem())?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = rt.block_on(TcpListener::bind("127.0.0.1:0"))?;
    let base = format!("https://{}", listener.local_addr()?);
    let base_for_server = base.clone();
    rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let agent_ca = Arc::clone(&agent_ca);
            let base = base_for_server.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 8192];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                        .unwrap_or_default()
                };
                let length: usize = header("content-length").parse().unwrap_or(0);
                while buf.len() < head_end + length {
                    match tls.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + length]).to_string();
                let mut first = head.lines().next().unwrap_or_default().split(' ');
                let method = first.next().unwrap_or_default();
                let path = first.next().unwrap_or_default();
                let (status, reply) =
                    answer(&agent_ca, &base, method, path, &header("authorization"), &body);
                let response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    Ok((base, ca_file))
}

fn register(args: &[&str], upn: &str, password: &str) -> std::io::Result<Output> {
    Command::new(BIN)
        .arg("register")
        .args(args)
        .env("PASSTHRU_ADMIN_UPN", upn)
        .env("PASSTHRU_ADMIN_PASSWORD", password)
        .env_remove("PASSTHRU_LOG")
        .stdin(std::process::Stdio::null())
        .output()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

#[test]
fn register_writes_a_private_state_dir_and_explains_failures() -> TestResult {
    let rt = tokio::runtime::Runtime::new()?;
    let tmp = TempDir::new()?;
    let (cloud, ca_file) = start_cloud(&rt, &tmp.0)?;
    let ca = ca_file.to_string_lossy().to_string();
    let state = tmp.0.join("state");
    let state_s = state.to_string_lossy().to_string();
    let base_args = [
        "--cloud",
        cloud.as_str(),
        "--tenant",
        "contoso",
        "--ca-file",
        ca.as_str(),
        "--state-dir",
        state_s.as_str(),
    ];

    // Wrong password: the AADSTS text, what to do, non-zero, nothing written.
    let out = register(&base_args, "admin@contoso.example", "Wr0ng-Pass!")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("AADSTS50126") && err.contains("PASSTHRU_ADMIN_PASSWORD"),
        "{err}"
    );
    assert!(
        !err.contains("Wr0ng-Pass"),
        "the password must not be echoed: {err}"
    );
    assert!(!state.exists());

    // Not an admin: the API's 403 message.
    let out = register(&base_args, "bob@contoso.example", "whatever")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("needs the role") && err.contains("Sign in as a Global Administrator"),
        "{err}"
    );

    // Untrusted certificate (no --ca-file: the system roots, if any, do not know the fake CA).
    let no_ca = [
        "--cloud",
        cloud.as_str(),
        "--tenant",
        "contoso",
        "--state-dir",
        state_s.as_str(),
    ];
    let out = register(&no_ca, "admin@contoso.example", "R1ght-Pass!")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        (err.contains("certificate is not trusted") || err.contains("no trusted CA certificates"))
            && err.contains("--ca-file"),
        "{err}"
    );

    // Unreachable.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        format!("https://{}", l.local_addr()?)
    };
    let unreachable = [
        "--cloud",
        dead.as_str(),
        "--tenant",
        "contoso",
        "--ca-file",
        ca.as_str(),
        "--state-dir",
        state_s.as_str(),
    ];
    let out = register(&unreachable, "admin@contoso.example", "R1ght-Pass!")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("cannot reach the cloud"), "{err}");

    // Success: the agent id on stdout, the state dir 0700 with 0600 files.
    let out = register(&base_args, "admin@contoso.example", "R1ght-Pass!")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.trim(), AGENT_ID);
    assert_eq!(mode(&state), 0o700);
    for file in [
        "agent.json",
        "client-cert.pem",
        "client-key.pem",
        "hpke-key",
        "cloud-ca.pem",
    ] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    assert_eq!(std::fs::read(state.join("hpke-key"))?.len(), 32);
    assert_eq!(
        std::fs::read(state.join("cloud-ca.pem"))?,
        std::fs::read(&ca_file)?
    );
    let reg: serde_json::Value = serde_json::from_slice(&std::fs::read(state.join("agent.json"))?)?;
    assert_eq!(reg["agent_id"], AGENT_ID);
    assert_eq!(reg["tenant_id"], TENANT_ID);
    assert_eq!(reg["tenant_name"], "contoso");
    assert_eq!(reg["agent_endpoint"], cloud.as_str());
    assert!(reg["registered_at"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));

    // A second registration is refused without --force, accepted with it.
    let out = register(&base_args, "admin@contoso.example", "R1ght-Pass!")?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("already holds the registration") && err.contains("--force"),
        "{err}"
    );
    let mut forced: Vec<&str> = base_args.to_vec();
    forced.push("--force");
    let out = register(&forced, "admin@contoso.example", "R1ght-Pass!")?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // status reads it back.
    let out = Command::new(BIN)
        .args(["status", "--state-dir", state_s.as_str()])
        .output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(
        text.contains(AGENT_ID) && text.contains("contoso") && text.contains("expires"),
        "{text}"
    );

    // No file of the state dir holds the admin password.
    for entry in std::fs::read_dir(&state)? {
        let bytes = std::fs::read(entry?.path())?;
        assert!(!bytes.windows(10).any(|w| w == b"R1ght-Pass"));
    }
    Ok(())
}

#[test]
fn a_second_agent_on_the_same_state_dir_refuses_to_start() -> TestResult {
    let tmp = TempDir::new()?;
    std::fs::set_permissions(&tmp.0, std::fs::Permissions::from_mode(0o700))?;
    let _held = passthru_agent::lock::acquire(&tmp.0)?;
    let config = tmp.0.join("agent.toml");
    std::fs::write(&config, "")?;
    let out = Command::new(BIN)
        .args(["run", "--state-dir"])
        .arg(&tmp.0)
        .arg("--config")
        .arg(&config)
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("already using the state dir"), "{err}");
    Ok(())
}
