//! `passthru-connect-proxy` as a process, driven through the agent's own tunnel code
//! (`passthru_agent::proxy::open_tunnel`): credentials required (407 missing or wrong), targets
//! allowed (403), names mapped, bytes relayed; and intercept mode presenting a certificate of
//! its inspection CA for the name asked for.

use std::error::Error;
use std::sync::Arc;

use passthru_agent::link_error::LinkError;
use passthru_agent::proxy::{open_tunnel, ProxySettings};
use passthru_testkit::connect_proxy::{
    ConnectProxy, ConnectRecord, ProxyMode, ProxyOptions, INSPECTION_CA_NAME,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

type TestResult = Result<(), Box<dyn Error>>;

/// The agent's settings for `url` (with `user:password@` when given), as HTTPS_PROXY.
fn settings(url: &str) -> Result<ProxySettings, Box<dyn Error>> {
    let url = url.to_string();
    ProxySettings::resolve(None, move |var| (var == "HTTPS_PROXY").then(|| url.clone()))?
        .ok_or_else(|| "no proxy".into())
}

/// An echo server on 127.0.0.1; its address.
async fn echo() -> Result<std::net::SocketAddr, Box<dyn Error>> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    Ok(addr)
}

fn record(target: &str, status: u16, auth: &str) -> ConnectRecord {
    ConnectRecord {
        target: target.to_string(),
        status,
        auth: auth.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tunnel_mode_with_credentials_an_allow_list_and_a_map() -> TestResult {
    let target = echo().await?;
    let allowed = target.to_string();
    let proxy = tokio::task::block_in_place(|| {
        ConnectProxy::start(
            ProxyMode::Tunnel,
            ProxyOptions {
                credentials: Some(("px".into(), "Pr0xy-pw".into())),
                allow: vec![allowed.clone(), "cloud.test:443".into()],
                map: vec![("cloud.test:443".into(), allowed.clone())],
                dir: None,
            },
        )
    })?;
    let port = proxy.addr().port();
    let host = "127.0.0.1";

    let e = open_tunnel(&settings(&proxy.url())?, host, target.port())
        .await
        .err();
    assert!(
        matches!(e, Some(LinkError::ProxyAuthentication { .. })),
        "{e:?}"
    );
    let e = open_tunnel(
        &settings(&format!("http://px:wrong@{host}:{port}"))?,
        host,
        target.port(),
    )
    .await
    .err();
    assert!(
        matches!(e, Some(LinkError::ProxyAuthentication { .. })),
        "{e:?}"
    );
    let right = settings(&format!("http://px:Pr0xy-pw@{host}:{port}"))?;
    let mut tunnel = open_tunnel(&right, host, target.port()).await?;
    tunnel.write_all(b"through").await?;
    let mut back = [0u8; 7];
    tunnel.read_exact(&mut back).await?;
    assert_eq!(&back, b"through");

    // A target not allowed.
    let e = open_tunnel(&right, host, 9).await.err();
    assert!(
        matches!(e, Some(LinkError::ProxyRefused { status: 403, .. })),
        "{e:?}"
    );
    // A name the proxy maps.
    let mut tunnel = open_tunnel(&right, "cloud.test", 443).await?;
    tunnel.write_all(b"mapped").await?;
    let mut back = [0u8; 6];
    tunnel.read_exact(&mut back).await?;
    assert_eq!(&back, b"mapped");

    assert_eq!(
        proxy.connects(),
        vec![
            record(&allowed, 407, "missing"),
            record(&allowed, 407, "wrong"),
            record(&allowed, 200, "ok"),
            record("127.0.0.1:9", 403, "ok"),
            record("cloud.test:443", 200, "ok"),
        ]
    );
    assert_eq!(proxy.tunnels_to(&allowed), 1);
    assert_eq!(proxy.tunnels(), 2);
    // The password is in its credentials file only.
    let log = std::fs::read_to_string(proxy.dir().join("connects.log"))?;
    assert!(!log.contains("Pr0xy-pw"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intercept_mode_presents_its_own_ca_for_the_name_asked() -> TestResult {
    let proxy = tokio::task::block_in_place(|| {
        ConnectProxy::start(ProxyMode::Intercept, ProxyOptions::default())
    })?;
    let ca = proxy.ca_file().ok_or("no CA file")?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let trusting = |ca: &std::path::Path| -> Result<Arc<rustls::ClientConfig>, Box<dyn Error>> {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(ca)? {
            roots.add(cert?)?;
        }
        Ok(Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth(),
        ))
    };
    let p = settings(&proxy.url())?;

    // Trusting the inspection CA: the handshake works, and the certificate is its.
    let tunnel = open_tunnel(&p, "login.contoso.test", 443).await?;
    let tls = tokio_rustls::TlsConnector::from(trusting(ca)?)
        .connect(ServerName::try_from("login.contoso.test")?, tunnel)
        .await?;
    let (_, session) = tls.get_ref();
    let leaf = session
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or("no certificate")?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf.as_ref())?;
    assert!(
        cert.issuer().to_string().contains(INSPECTION_CA_NAME),
        "{}",
        cert.issuer()
    );

    // Trusting only the real cloud's CA (here: another one): refused, unknown issuer.
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cloud_ca = rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate()?)?;
    let cloud_ca_file = proxy.dir().join("cloud-ca.pem");
    std::fs::write(&cloud_ca_file, cloud_ca.pem())?;
    let tunnel = open_tunnel(&p, "127.0.0.1", 8443).await?;
    let refused = tokio_rustls::TlsConnector::from(trusting(&cloud_ca_file)?)
        .connect(ServerName::try_from("127.0.0.1")?, tunnel)
        .await;
    let reason = refused
        .err()
        .and_then(|e| passthru_client::untrusted_certificate_reason(&e));
    assert_eq!(
        reason.as_deref(),
        Some("it was issued by a CA that is not trusted here")
    );
    assert_eq!(proxy.tunnels(), 2);
    Ok(())
}
