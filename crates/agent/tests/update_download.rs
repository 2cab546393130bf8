//! The update download against a real TLS server that requires the agent's client
//! certificate (as the cloud's agent routes do): the package arrives whole with its SHA-256;
//! more bytes than the signed size are refused, whether announced or not; an error answer
//! carries the cloud's words; a server that does not know the client certificate's CA
//! refuses the handshake.

use std::error::Error;
use std::sync::Arc;

use passthru_agent::update::download::{download, DownloadError};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn Error>>;

struct Pki {
    server: rustls::ServerConfig,
    client: Arc<rustls::ClientConfig>,
}

fn ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, rcgen::Error> {
    let mut p = CertificateParams::new(Vec::<String>::new())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(rcgen::DnType::CommonName, name);
    CertifiedIssuer::self_signed(p, KeyPair::generate()?)
}

/// A server certificate for 127.0.0.1 that requires a client certificate of `trusted` (the
/// agent CA), and a client with a certificate of `issuer`.
fn pki(client_from_trusted_ca: bool) -> Result<Pki, Box<dyn Error>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let server_ca = ca("deployment CA")?;
    let agent_ca = ca("agent CA")?;
    let stranger_ca = ca("another CA")?;
    let server_key = KeyPair::generate()?;
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string()])?
        .signed_by(&server_key, &server_ca)?;
    let client_key = KeyPair::generate()?;
    let mut client_params = CertificateParams::new(Vec::<String>::new())?;
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let issuer = if client_from_trusted_ca {
        &agent_ca
    } else {
        &stranger_ca
    };
    let client_cert = client_params.signed_by(&client_key, issuer)?;

    let mut agent_roots = rustls::RootCertStore::empty();
    agent_roots.add(agent_ca.der().clone())?;
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(agent_roots),
        provider.clone(),
    )
    .build()?;
    let mut server = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![server_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )?;
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(server_ca.der().to_vec()))?;
    let mut client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_client_auth_cert(
            vec![client_cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(client_key.serialize_der())),
        )?;
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pki {
        server,
        client: Arc::new(client),
    })
}

/// Serves one HTTPS request with `response` (raw HTTP/1.1 bytes); returns the address and
/// the request line it got.
async fn serve_once(
    server: rustls::ServerConfig,
    response: Vec<u8>,
) -> Result<
    (
        std::net::SocketAddr,
        tokio::task::JoinHandle<Option<String>>,
    ),
    Box<dyn Error>,
> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.ok()?;
        let mut tls = acceptor.accept(tcp).await.ok()?;
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = tls.read(&mut buf).await.ok()?;
            if n == 0 {
                return None;
            }
            request.extend_from_slice(&buf[..n]);
        }
        tls.write_all(&response).await.ok()?;
        tls.shutdown().await.ok()?;
        String::from_utf8_lossy(&request)
            .lines()
            .next()
            .map(str::to_string)
    });
    Ok((addr, task))
}

fn ok_response(body: &[u8], announced: Option<usize>) -> Vec<u8> {
    let mut r =
        b"HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\nconnection: close\r\n"
            .to_vec();
    if let Some(n) = announced {
        r.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn temp_file() -> Result<(std::fs::File, std::path::PathBuf), Box<dyn Error>> {
    let path = std::env::temp_dir().join(format!("passthru-download-{}", uuid::Uuid::new_v4()));
    Ok((std::fs::File::create(&path)?, path))
}

#[tokio::test]
async fn the_package_arrives_whole_with_its_digest_over_mutual_tls() -> TestResult {
    let pki = pki(true)?;
    let package: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let (addr, served) = serve_once(pki.server, ok_response(&package, Some(package.len()))).await?;
    let (file, path) = temp_file()?;
    let url = format!("https://{addr}/t/agent/v1/releases/0.2.0/package");
    let got = download(&url, &pki.client, None, package.len() as u64, file).await;
    let written = std::fs::read(&path);
    let _ = std::fs::remove_file(&path);
    let got = got?;
    assert_eq!(got.size, package.len() as u64);
    assert_eq!(got.sha256, sha256_hex(&package));
    assert_eq!(written?, package);
    assert_eq!(
        served.await?.as_deref(),
        Some("GET /t/agent/v1/releases/0.2.0/package HTTP/1.1")
    );
    Ok(())
}

#[tokio::test]
async fn more_bytes_than_signed_are_refused_announced_or_not() -> TestResult {
    for announced in [true, false] {
        let pki = pki(true)?;
        let package = vec![7u8; 10_000];
        let length = announced.then_some(package.len());
        let (addr, _served) = serve_once(pki.server, ok_response(&package, length)).await?;
        let (file, path) = temp_file()?;
        let url = format!("https://{addr}/p");
        let got = download(&url, &pki.client, None, 9_999, file).await;
        let _ = std::fs::remove_file(&path);
        assert!(
            matches!(got, Err(DownloadError::TooLarge { limit: 9_999 })),
            "announced {announced}: {got:?}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn an_error_answer_carries_the_clouds_words() -> TestResult {
    let pki = pki(true)?;
    let body = br#"{"error":"access_denied","error_description":"Agent updates are off for this tenant (settings agent_updates)."}"#;
    let mut response = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    let (addr, _served) = serve_once(pki.server, response).await?;
    let (file, path) = temp_file()?;
    let got = download(&format!("https://{addr}/p"), &pki.client, None, 100, file).await;
    let _ = std::fs::remove_file(&path);
    match got {
        Err(DownloadError::Http {
            status: 403,
            detail,
        }) => {
            assert!(detail.contains("Agent updates are off"), "{detail}")
        }
        other => return Err(format!("{other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn a_certificate_the_server_does_not_trust_gets_nothing() -> TestResult {
    let pki = pki(false)?;
    let (addr, _served) = serve_once(pki.server, ok_response(b"package", Some(7))).await?;
    let (file, path) = temp_file()?;
    let got = download(&format!("https://{addr}/p"), &pki.client, None, 7, file).await;
    let _ = std::fs::remove_file(&path);
    assert!(matches!(got, Err(DownloadError::Transport(_))), "{got:?}");
    Ok(())
}

/// A one-shot HTTP CONNECT proxy: reads the request head, answers 200, then relays bytes
/// both ways; returns its address and the request head it got.
async fn connect_proxy() -> Result<
    (
        std::net::SocketAddr,
        tokio::task::JoinHandle<Option<String>>,
    ),
    Box<dyn Error>,
> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let (mut client, _) = listener.accept().await.ok()?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        let target = head.lines().next()?.split_whitespace().nth(1)?.to_string();
        let mut upstream = tokio::net::TcpStream::connect(target).await.ok()?;
        client
            .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
            .await
            .ok()?;
        let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        Some(head)
    });
    Ok((addr, task))
}

/// Behind a proxy, the package comes through it (CONNECT to the cloud's address, with the
/// proxy's credentials), the agent's TLS running end to end inside.
#[tokio::test]
async fn the_package_comes_through_the_connections_proxy() -> TestResult {
    use passthru_agent::proxy::ProxySettings;
    let pki = pki(true)?;
    let package = vec![42u8; 50_000];
    let (server, served) =
        serve_once(pki.server, ok_response(&package, Some(package.len()))).await?;
    let (proxy_addr, proxy_saw) = connect_proxy().await?;
    let proxy = ProxySettings::resolve(None, |var| {
        (var == "HTTPS_PROXY").then(|| format!("http://agent:Pr0xy-pw@{proxy_addr}"))
    })?
    .ok_or("no proxy")?;
    let (file, path) = temp_file()?;
    let url = format!("https://{server}/t/agent/v1/releases/0.2.0/package");
    let got = download(&url, &pki.client, Some(&proxy), package.len() as u64, file).await;
    let _ = std::fs::remove_file(&path);
    let got = got?;
    assert_eq!(got.sha256, sha256_hex(&package));
    let head = proxy_saw.await?.ok_or("the proxy saw nothing")?;
    assert!(
        head.starts_with(&format!("CONNECT {server} HTTP/1.1")),
        "{head}"
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("agent:Pr0xy-pw");
    assert!(
        head.to_ascii_lowercase().contains(&format!(
            "proxy-authorization: basic {}",
            basic.to_ascii_lowercase()
        )),
        "{head}"
    );
    assert!(
        served.await?.is_some(),
        "the server got the request through the tunnel"
    );
    Ok(())
}
