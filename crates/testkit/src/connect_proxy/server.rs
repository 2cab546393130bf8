//! The CONNECT proxy itself (what `passthru-connect-proxy` runs): reads each request head
//! with `httparse`, answers 407 without the required basic credentials, 403 for a target not
//! allowed, 405 for anything but CONNECT, 502 when the target cannot be reached; then, in
//! tunnel mode, relays bytes both ways, and in intercept mode answers 200 and acts as a TLS
//! server for the target's name with a certificate from its own CA (a TLS-inspecting
//! firewall), closing after the handshake. One line per request goes to the log:
//! `CONNECT <target> <status> auth=<none|missing|wrong|ok> mode=<tunnel|intercept>`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// The common name of the intercepting proxy's CA.
pub const INSPECTION_CA_NAME: &str = "Passthru Test Inspection CA";
/// Largest request head read.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a client has to send its request, and the proxy to reach a target.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What the proxy does after a CONNECT is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Relays bytes to the target.
    Tunnel,
    /// Terminates TLS itself with a certificate of its own CA for the target's name.
    Intercept,
}

impl ProxyMode {
    /// `tunnel` or `intercept`.
    pub fn name(self) -> &'static str {
        match self {
            ProxyMode::Tunnel => "tunnel",
            ProxyMode::Intercept => "intercept",
        }
    }
}

/// How one proxy behaves.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub mode: ProxyMode,
    /// The `Proxy-Authorization` value required (`Basic ...`); `None`: no authentication.
    pub authorization: Option<String>,
    /// Targets (`host:port`) allowed; empty: any.
    pub allow: Vec<String>,
    /// `NAME:PORT` → `IP:PORT`: where to connect for a target (names the proxy's host
    /// cannot resolve).
    pub map: Vec<(String, String)>,
    /// Where each request is logged (appended); `None`: standard output.
    pub log: Option<PathBuf>,
    /// Intercept mode: where to write the CA's certificate (PEM).
    pub ca_out: Option<PathBuf>,
}

/// The intercepting CA.
struct Inspection {
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Inspection {
    fn new() -> anyhow::Result<Inspection> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .distinguished_name
            .push(DnType::CommonName, INSPECTION_CA_NAME);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Passthru tests");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        Ok(Inspection {
            ca: CertifiedIssuer::self_signed(params, KeyPair::generate()?)?,
        })
    }

    /// A TLS server configuration presenting a certificate for `host` from this CA.
    fn server_config(&self, host: &str) -> anyhow::Result<Arc<rustls::ServerConfig>> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(vec![host.to_string()])?;
        params.distinguished_name.push(DnType::CommonName, host);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.ca)?;
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone(), self.ca.der().clone()], key)?;
        Ok(Arc::new(config))
    }
}

/// Shared by every connection.
struct Shared {
    settings: ServerSettings,
    inspection: Option<Inspection>,
    log: Mutex<()>,
}

impl Shared {
    async fn log(&self, line: String) {
        let _guard = self.log.lock().await;
        match &self.settings.log {
            None => println!("{line}"),
            Some(path) => {
                use std::io::Write as _;
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    let _ = writeln!(f, "{line}");
                }
            }
        }
    }
}

/// A request head as read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) authorization: Option<String>,
}

/// Reads a request head (at most [`MAX_HEAD_BYTES`]). Reads one byte at a time so that
/// nothing after the head (the client's first TLS bytes) is taken from the stream.
pub(crate) async fn read_request(stream: &mut TcpStream) -> anyhow::Result<Request> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        anyhow::ensure!(head.len() < MAX_HEAD_BYTES, "request head too long");
        let n = stream.read(&mut byte).await?;
        anyhow::ensure!(n == 1, "the client closed the connection");
        head.push(byte[0]);
    }
    parse_request(&head)
}

pub(crate) fn parse_request(head: &[u8]) -> anyhow::Result<Request> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head)? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => anyhow::bail!("incomplete request head"),
    }
    let authorization = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_string());
    Ok(Request {
        method: request.method.unwrap_or_default().to_string(),
        target: request.path.unwrap_or_default().to_string(),
        authorization,
    })
}

async fn answer(stream: &mut TcpStream, status: u16, reason: &str) {
    let extra = if status == 407 {
        "Proxy-Authenticate: Basic realm=\"passthru-test-proxy\"\r\n"
    } else {
        ""
    };
    let _ = stream
        .write_all(
            format!("HTTP/1.1 {status} {reason}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await;
}

/// The host of a `host:port` target (brackets removed).
fn target_host(target: &str) -> &str {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

async fn handle(shared: Arc<Shared>, mut client: TcpStream) {
    let Ok(Ok(request)) = tokio::time::timeout(STEP_TIMEOUT, read_request(&mut client)).await
    else {
        return;
    };
    let settings = &shared.settings;
    let mode = settings.mode.name();
    let auth = match (&settings.authorization, &request.authorization) {
        (None, _) => "none",
        (Some(_), None) => "missing",
        (Some(want), Some(got)) if want == got => "ok",
        (Some(_), Some(_)) => "wrong",
    };
    let target = request.target.clone();
    let (status, reason) = if request.method != "CONNECT" {
        (405, "Method Not Allowed")
    } else if matches!(auth, "missing" | "wrong") {
        (407, "Proxy Authentication Required")
    } else if !settings.allow.is_empty() && !settings.allow.contains(&target) {
        (403, "Forbidden")
    } else {
        (200, "Connection established")
    };
    if status != 200 {
        shared
            .log(format!("CONNECT {target} {status} auth={auth} mode={mode}"))
            .await;
        answer(&mut client, status, reason).await;
        return;
    }
    match settings.mode {
        ProxyMode::Tunnel => {
            let upstream_addr = settings
                .map
                .iter()
                .find(|(name, _)| *name == target)
                .map_or(target.clone(), |(_, to)| to.clone());
            let upstream =
                tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(upstream_addr.as_str()))
                    .await;
            let Ok(Ok(mut upstream)) = upstream else {
                shared
                    .log(format!("CONNECT {target} 502 auth={auth} mode={mode}"))
                    .await;
                answer(&mut client, 502, "Bad Gateway").await;
                return;
            };
            shared
                .log(format!("CONNECT {target} 200 auth={auth} mode={mode}"))
                .await;
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_ok()
            {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        }
        ProxyMode::Intercept => {
            let Some(config) = shared
                .inspection
                .as_ref()
                .and_then(|i| i.server_config(target_host(&target)).ok())
            else {
                answer(&mut client, 500, "Internal Server Error").await;
                return;
            };
            shared
                .log(format!("CONNECT {target} 200 auth={auth} mode={mode}"))
                .await;
            if client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await
                .is_err()
            {
                return;
            }
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            if let Ok(Ok(mut tls)) =
                tokio::time::timeout(STEP_TIMEOUT, acceptor.accept(client)).await
            {
                let _ = tls.shutdown().await;
            }
        }
    }
}

/// Serves CONNECT requests on `listener` until the process ends.
pub async fn serve(listener: TcpListener, settings: ServerSettings) -> anyhow::Result<()> {
    let inspection = match settings.mode {
        ProxyMode::Tunnel => None,
        ProxyMode::Intercept => {
            let inspection = Inspection::new()?;
            if let Some(path) = &settings.ca_out {
                std::fs::write(path, inspection.ca.pem())
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Some(inspection)
        }
    };
    let shared = Arc::new(Shared {
        settings,
        inspection,
        log: Mutex::new(()),
    });
    loop {
        let (client, _) = listener.accept().await?;
        tokio::spawn(handle(Arc::clone(&shared), client));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_heads() -> anyhow::Result<()> {
        let r = parse_request(
            b"CONNECT 127.0.0.1:8443 HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nproxy-authorization: Basic dTpw\r\n\r\n",
        )?;
        assert_eq!(
            r,
            Request {
                method: "CONNECT".into(),
                target: "127.0.0.1:8443".into(),
                authorization: Some("Basic dTpw".into()),
            }
        );
        assert!(parse_request(b"CONNECT x:1 HTTP/1.1\r\n").is_err());
        assert_eq!(target_host("[::1]:443"), "::1");
        assert_eq!(target_host("login.contoso.test:443"), "login.contoso.test");
        Ok(())
    }
}
