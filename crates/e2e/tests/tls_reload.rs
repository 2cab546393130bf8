//! The served TLS certificate over the years, with the real `passthru-cloud` process: `tls
//! renew` then SIGHUP (new handshakes get the new certificate; an HTTP/1.1 keep-alive
//! connection and an agent's WebSocket opened before keep working), the operator's own
//! certificate (`serve --tls-cert/--tls-key`) replaced on SIGHUP, a failed reload that keeps
//! the old one, the expiry gauge on the metrics listener, and `serve` refusing bad files.
//! No domain controller is needed.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use passthru_testkit::cluster::free_port;
use passthru_testkit::procs::{bin, fresh_dir, Agent, Cloud};
use passthru_testkit::scripted_agent::ScriptedAgent;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

const STEP: Duration = Duration::from_secs(15);

fn fingerprint(der: &[u8]) -> String {
    hex(&Sha256::digest(der))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The fingerprint of the first certificate of a PEM file.
fn file_fingerprint(path: &Path) -> anyhow::Result<String> {
    let der = CertificateDer::from_pem_file(path)
        .with_context(|| format!("reading {}", path.display()))?;
    Ok(fingerprint(&der))
}

/// A new TLS connection to the cloud trusting only `ca_file`, and the fingerprint of the
/// certificate the cloud presented.
async fn handshake(
    cloud: &Cloud,
    ca_file: &Path,
) -> anyhow::Result<(TlsStream<TcpStream>, String)> {
    let config = passthru_testkit::tls::client_config(ca_file)?;
    let mut config = (*config).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::time::timeout(STEP, TcpStream::connect(&cloud.listen))
        .await
        .context("connecting timed out")??;
    let tls = tokio::time::timeout(
        STEP,
        TlsConnector::from(Arc::new(config)).connect(ServerName::try_from("localhost")?, tcp),
    )
    .await
    .context("the TLS handshake timed out")??;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .ok_or_else(|| anyhow!("the cloud presented no certificate"))?;
    let fp = fingerprint(leaf);
    Ok((tls, fp))
}

/// One `GET /healthz` on an open HTTP/1.1 connection (kept alive): the answer's body.
async fn healthz(tls: &mut TlsStream<TcpStream>) -> anyhow::Result<String> {
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await?;
    let deadline = Instant::now() + STEP;
    let mut got = Vec::new();
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                bail!("not 200: {head}");
            }
            if head.contains("connection: close") {
                bail!("the cloud closes the connection: {head}");
            }
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| anyhow!("no content-length: {head}"))?;
            if got.len() >= end + 4 + len {
                return Ok(String::from_utf8_lossy(&got[end + 4..end + 4 + len]).into_owned());
            }
        }
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline.into(), tls.read(&mut buf))
            .await
            .context("no answer in time")??;
        if n == 0 {
            bail!("the cloud closed the connection");
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// Sends SIGHUP to the cloud and waits for the log to say how the reload ended: `Ok(true)`
/// reloaded, `Ok(false)` failed (the old certificate kept).
fn sighup(cloud: &Cloud) -> anyhow::Result<bool> {
    const DONE: &str = "TLS certificate reloaded";
    const FAILED: &str = "TLS certificate reload failed";
    let count = |log: &str| (log.matches(DONE).count(), log.matches(FAILED).count());
    let before = count(&cloud.log());
    let pid = cloud
        .pid()
        .ok_or_else(|| anyhow!("the cloud is not running"))?;
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()?;
    if !status.success() {
        bail!("kill -HUP {pid} failed");
    }
    let deadline = Instant::now() + STEP;
    loop {
        let now = count(&cloud.log());
        if now.0 > before.0 {
            return Ok(true);
        }
        if now.1 > before.1 {
            return Ok(false);
        }
        if Instant::now() > deadline {
            bail!("the cloud logged no reload after SIGHUP:\n{}", cloud.log());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `passthru_tls_cert_expiry_timestamp_seconds` from the metrics listener.
async fn expiry_metric(metrics_addr: &str) -> anyhow::Result<i64> {
    let mut tcp = tokio::time::timeout(STEP, TcpStream::connect(metrics_addr))
        .await
        .context("connecting to the metrics listener timed out")??;
    tcp.write_all(b"GET /metrics HTTP/1.1\r\nHost: metrics\r\nConnection: close\r\n\r\n")
        .await?;
    let mut raw = Vec::new();
    tokio::time::timeout(STEP, tcp.read_to_end(&mut raw))
        .await
        .context("reading the metrics timed out")??;
    let text = String::from_utf8_lossy(&raw);
    text.lines()
        .find_map(|l| l.strip_prefix("passthru_tls_cert_expiry_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| anyhow!("no expiry gauge in:\n{text}"))
}

/// The notAfter of the first certificate of a PEM file, Unix seconds.
fn not_after(path: &Path) -> anyhow::Result<i64> {
    let der = CertificateDer::from_pem_file(path)?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)?;
    Ok(cert.validity().not_after.timestamp())
}

fn unix_now() -> anyhow::Result<i64> {
    Ok(i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs(),
    )?)
}

/// An organisation's CA, as an operator's certificates come from.
struct OrgCa {
    issuer: Issuer<'static, KeyPair>,
    file: PathBuf,
}

impl OrgCa {
    fn new(dir: &Path) -> anyhow::Result<OrgCa> {
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, "Contoso issuing CA (test)");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let file = dir.join("org-ca.pem");
        std::fs::write(&file, p.self_signed(&key)?.pem())?;
        Ok(OrgCa {
            issuer: Issuer::new(p, key),
            file,
        })
    }

    /// A server certificate for localhost valid from `from_days` to `until_days` from now:
    /// (chain PEM, key PEM, fingerprint, notAfter).
    fn issue(
        &self,
        from_days: i64,
        until_days: i64,
    ) -> anyhow::Result<(String, String, String, i64)> {
        let now = unix_now()?;
        let mut p = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])?;
        let at = |days: i64| rcgen::date_time_ymd(1970, 1, 1) + time_days(now, days);
        p.not_before = at(from_days);
        p.not_after = at(until_days);
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok((
            cert.pem(),
            key.serialize_pem(),
            fingerprint(cert.der()),
            p.not_after.unix_timestamp(),
        ))
    }
}

/// `now` plus `days`, as a duration since the Unix epoch.
fn time_days(now: i64, days: i64) -> Duration {
    Duration::from_secs(u64::try_from(now + days * 86_400).unwrap_or(0))
}

/// Replaces `path` atomically (as an operator's deployment tool would).
fn replace(path: &Path, contents: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_renewed_and_replaced_without_dropping_connections() -> anyhow::Result<()>
{
    let dir = fresh_dir("tls-reload")?;
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    // Keep-alive connections wait for their next request longer than the test takes.
    let base_args = [
        "--metrics-listen",
        metrics_addr.as_str(),
        "--header-read-timeout-seconds",
        "120",
    ];
    let mut cloud = Cloud::start_with(
        &dir,
        "contoso",
        "admin@contoso.example",
        "Adm1n-Passw0rd!",
        "127.0.0.1:0",
        &[],
        &base_args,
    )?;
    let deployment_ca = cloud.ca_file();
    let generated = cloud.data_dir.join("tls/server.pem");

    // 1. The generated certificate, renewed by `tls renew`, picked up on SIGHUP.
    let mut agent = Agent::register(
        &cloud,
        &dir,
        "contoso",
        &cloud.admin_upn,
        &cloud.admin_password,
        &[],
    )?;
    let (mut ws, _) = ScriptedAgent::connect(&agent.state_dir, &["contoso.example"]).await?;
    let (mut kept, fp) = handshake(&cloud, &deployment_ca).await?;
    let first = file_fingerprint(&generated)?;
    assert_eq!(fp, first);
    assert_eq!(healthz(&mut kept).await?, "ok");
    assert_eq!(expiry_metric(&metrics_addr).await?, not_after(&generated)?);

    let out = Command::new(bin("passthru-cloud"))
        .args(["tls", "renew", "--data-dir"])
        .arg(&cloud.data_dir)
        .args(["--hostname", "login.contoso.example"])
        .output()?;
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        printed.contains("Valid until ")
            && printed.contains("SIGHUP")
            && printed.contains("login.contoso.example"),
        "{printed}"
    );
    let renewed = file_fingerprint(&generated)?;
    assert_ne!(renewed, first);
    // Not yet reloaded: still the first.
    assert_eq!(handshake(&cloud, &deployment_ca).await?.1, first);
    assert!(sighup(&cloud)?, "{}", cloud.log());
    assert_eq!(handshake(&cloud, &deployment_ca).await?.1, renewed);
    assert_eq!(
        healthz(&mut kept).await?,
        "ok",
        "the keep-alive connection answers"
    );
    ws.ping()
        .await
        .context("the agent's WebSocket after the reload")?;
    // The renewed certificate's notAfter (825 days out; the gauge's move is checked below,
    // where the two certificates' expiries differ by months).
    let renewed_until = not_after(&generated)?;
    assert!((unix_now()? + 825 * 86_400 - renewed_until).abs() < 120);
    assert_eq!(expiry_metric(&metrics_addr).await?, renewed_until);
    drop(ws);
    agent.stop_with(15);

    // 2. The operator's certificate from another CA: A, then B on SIGHUP; then a bad B'.
    let org = OrgCa::new(&dir)?;
    let cert_file = dir.join("org-cert.pem");
    let key_file = dir.join("org-key.pem");
    let (a_pem, a_key, a_fp, a_until) = org.issue(-1, 90)?;
    std::fs::write(&cert_file, &a_pem)?;
    std::fs::write(&key_file, &a_key)?;
    cloud.stop();
    let mut args: Vec<&str> = base_args.to_vec();
    let (cert_arg, key_arg) = (
        cert_file.display().to_string(),
        key_file.display().to_string(),
    );
    args.extend([
        "--tls-cert",
        cert_arg.as_str(),
        "--tls-key",
        key_arg.as_str(),
    ]);
    cloud.set_serve_args(&args);
    cloud.serve()?;
    let (mut kept, fp) = handshake(&cloud, &org.file).await?;
    assert_eq!(fp, a_fp);
    assert_eq!(healthz(&mut kept).await?, "ok");
    assert_eq!(expiry_metric(&metrics_addr).await?, a_until);

    let (b_pem, b_key, b_fp, b_until) = org.issue(-1, 400)?;
    replace(&key_file, &b_key)?;
    replace(&cert_file, &b_pem)?;
    assert!(sighup(&cloud)?, "{}", cloud.log());
    assert_eq!(handshake(&cloud, &org.file).await?.1, b_fp);
    assert_eq!(
        healthz(&mut kept).await?,
        "ok",
        "the keep-alive connection answers"
    );
    assert_eq!(expiry_metric(&metrics_addr).await?, b_until);

    // A new certificate without its key: the reload fails, B stays and says why.
    let (c_pem, _, _, _) = org.issue(-1, 500)?;
    replace(&cert_file, &c_pem)?;
    assert!(!sighup(&cloud)?, "a mismatched key must not be loaded");
    assert!(
        cloud.log().contains("does not belong to the certificate"),
        "{}",
        cloud.log()
    );
    assert_eq!(handshake(&cloud, &org.file).await?.1, b_fp);
    assert_eq!(healthz(&mut kept).await?, "ok");
    assert_eq!(expiry_metric(&metrics_addr).await?, b_until);
    drop(kept);
    cloud.stop();

    // 3. serve refuses bad files, naming them.
    cloud.set_serve_args(&[]);
    let err = cloud.try_serve(&["--tls-cert", cert_arg.as_str()])?;
    assert!(err.contains("--tls-key"), "{err}");
    let err = cloud.try_serve(&[
        "--tls-cert",
        cert_arg.as_str(),
        "--tls-key",
        key_arg.as_str(),
    ])?;
    assert!(
        err.contains("does not belong") && err.contains("org-key.pem"),
        "{err}"
    );
    let (old_pem, old_key, _, _) = org.issue(-30, -1)?;
    std::fs::write(&cert_file, &old_pem)?;
    std::fs::write(&key_file, &old_key)?;
    let err = cloud.try_serve(&[
        "--tls-cert",
        cert_arg.as_str(),
        "--tls-key",
        key_arg.as_str(),
    ])?;
    assert!(
        err.contains("expired") && err.contains("org-cert.pem"),
        "{err}"
    );
    let missing = dir.join("missing.pem").display().to_string();
    let err = cloud.try_serve(&[
        "--tls-cert",
        missing.as_str(),
        "--tls-key",
        key_arg.as_str(),
    ])?;
    assert!(
        err.contains("cannot read") && err.contains("missing.pem"),
        "{err}"
    );
    Ok(())
}
