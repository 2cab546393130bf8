//! `diagnose::check_dc`'s TLS step against real TLS handshakes with local servers, one per
//! certificate problem a DC can have: a certificate with no subjectAltName at all (what Samba
//! AD makes by default), one for another name, an expired one, one from another CA; and a
//! DC addressed by IP whose certificate holds only its name, accepted through
//! `tls_server_name`. Each failure names itself and what to do.

use std::sync::Arc;
use std::time::Duration;

use passthru_directory::diagnose::{check_dc, DcCheck, Status, Step};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

struct Ca {
    params: CertificateParams,
    key: KeyPair,
    pem: String,
}

fn ca(name: &str) -> anyhow::Result<Ca> {
    let mut params = CertificateParams::default();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let key = KeyPair::generate()?;
    let pem = params.self_signed(&key)?.pem();
    Ok(Ca { params, key, pem })
}

/// A TLS server on 127.0.0.1 presenting `params` signed by `ca`; its port.
async fn server(ca: &Ca, params: CertificateParams) -> anyhow::Result<u16> {
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &Issuer::from_params(&ca.params, &ca.key))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(
        vec![cert.der().clone()],
        rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
            .map_err(|e| anyhow::anyhow!("{e}"))?,
    )?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    Ok(port)
}

fn leaf(names: &[&str]) -> anyhow::Result<CertificateParams> {
    let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())?;
    p.distinguished_name
        .push(DnType::CommonName, "dc1.corp.example.test");
    Ok(p)
}

async fn tls_step(
    trusted: &Ca,
    port: u16,
    host: &str,
    tls_server_name: Option<&str>,
) -> anyhow::Result<Step> {
    let dir = std::env::temp_dir().join(format!("passthru-diagnose-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir)?;
    let ca_file = dir.join("ca.pem");
    std::fs::write(&ca_file, &trusted.pem)?;
    let url = url::Url::parse(&format!("ldaps://{host}:{port}"))?;
    let steps = check_dc(&DcCheck {
        url: &url,
        ca_file: &ca_file,
        tls_server_name,
        service: None,
        timeout: Duration::from_secs(5),
        now_unix: time::OffsetDateTime::now_utc().unix_timestamp(),
    })
    .await;
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        steps.iter().find(|s| s.name == "tcp").map(|s| s.status),
        Some(Status::Pass)
    );
    steps
        .into_iter()
        .find(|s| s.name == "tls")
        .ok_or_else(|| anyhow::anyhow!("no tls step"))
}

#[tokio::test]
async fn each_certificate_problem_names_itself() -> anyhow::Result<()> {
    let domain_ca = ca("Corp Domain CA")?;

    // No subjectAltName at all (Samba's default self-made certificate).
    let mut no_san = CertificateParams::default();
    no_san
        .distinguished_name
        .push(DnType::CommonName, "dc1.corp.example.test");
    let port = server(&domain_ca, no_san).await?;
    let step = tls_step(&domain_ca, port, "127.0.0.1", None).await?;
    assert_eq!(step.status, Status::Fail, "{step:?}");
    assert!(
        step.detail.contains("has no subjectAltName at all"),
        "{step:?}"
    );
    let fix = step.fix.unwrap_or_default();
    assert!(
        fix.contains("tls certfile") && fix.contains("tls_server_name"),
        "{fix}"
    );

    // Another name.
    let port = server(&domain_ca, leaf(&["dc9.corp.example.test"])?).await?;
    let step = tls_step(&domain_ca, port, "127.0.0.1", None).await?;
    assert_eq!(step.status, Status::Fail, "{step:?}");
    assert!(
        step.detail
            .contains("is for dc9.corp.example.test, not for '127.0.0.1'"),
        "{step:?}"
    );
    // ... which tls_server_name accepts for a DC addressed by IP.
    let step = tls_step(&domain_ca, port, "127.0.0.1", Some("dc9.corp.example.test")).await?;
    assert_eq!(step.status, Status::Pass, "{step:?}");
    assert!(
        step.detail.contains("for 'dc9.corp.example.test'"),
        "{step:?}"
    );

    // Expired.
    let mut expired = leaf(&["127.0.0.1"])?;
    expired.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(400);
    expired.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(35);
    let port = server(&domain_ca, expired).await?;
    let step = tls_step(&domain_ca, port, "127.0.0.1", None).await?;
    assert_eq!(step.status, Status::Fail, "{step:?}");
    assert!(step.detail.contains(" expired on "), "{step:?}");

    // From another CA.
    let other_ca = ca("Someone Else CA")?;
    let port = server(&other_ca, leaf(&["127.0.0.1"])?).await?;
    let step = tls_step(&domain_ca, port, "127.0.0.1", None).await?;
    assert_eq!(step.status, Status::Fail, "{step:?}");
    assert!(
        step.detail.contains("issued by 'CN=Someone Else CA'"),
        "{step:?}"
    );
    assert!(
        step.detail.contains("was not issued by a CA in"),
        "{step:?}"
    );

    // A good one passes, with its expiry.
    let port = server(&domain_ca, leaf(&["127.0.0.1"])?).await?;
    let step = tls_step(&domain_ca, port, "127.0.0.1", None).await?;
    assert_eq!(step.status, Status::Pass, "{step:?}");
    assert!(step.detail.contains("valid until "), "{step:?}");
    Ok(())
}
