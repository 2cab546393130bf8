//! The cloud's two certificate authorities, made at `init`:
//! - the deployment CA (`tls/ca.pem`, what browsers, apps and agents trust) signs the server's
//!   TLS certificate;
//! - the private agent CA (`agent-ca/`) signs agents' client certificates, and nothing else.
//!
//! Every key is ECDSA P-256 and every file holding a private key is mode 0600.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
    PKCS_ECDSA_P256_SHA256,
};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// Why a PKI operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// Generating or signing failed, or a PEM did not parse.
    #[error("certificate operation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A CSR sent by an agent is not acceptable.
    #[error("the certificate signing request is not valid: {0}")]
    BadCsr(String),
}

/// Paths of the PKI files in a data dir.
#[derive(Debug, Clone)]
pub struct PkiPaths {
    pub tls_dir: PathBuf,
    pub agent_ca_dir: PathBuf,
}

impl PkiPaths {
    pub fn new(data_dir: &Path) -> PkiPaths {
        PkiPaths {
            tls_dir: data_dir.join("tls"),
            agent_ca_dir: data_dir.join("agent-ca"),
        }
    }
    /// The deployment CA certificate clients trust.
    pub fn ca_cert(&self) -> PathBuf {
        self.tls_dir.join("ca.pem")
    }
    fn ca_key(&self) -> PathBuf {
        self.tls_dir.join("ca-key.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.tls_dir.join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.tls_dir.join("server-key.pem")
    }
    pub fn agent_ca_cert(&self) -> PathBuf {
        self.agent_ca_dir.join("ca.pem")
    }
    fn agent_ca_key(&self) -> PathBuf {
        self.agent_ca_dir.join("ca-key.pem")
    }
}

/// Writes `contents` to `path` with the given mode, atomically (temp file, then rename).
pub fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    write_file_owned(path, contents, mode, None)
}

/// [`write_file`], the new file owned by `owner` (uid, gid) before it replaces the old one.
fn write_file_owned(
    path: &Path,
    contents: &[u8],
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<(), PkiError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(contents).map_err(io)?;
    f.sync_all().map_err(io)?;
    if let Some((uid, gid)) = owner {
        use std::os::unix::fs::MetadataExt as _;
        let new = f.metadata().map_err(io)?;
        if (new.uid(), new.gid()) != (uid, gid) {
            std::os::unix::fs::chown(&tmp, Some(uid), Some(gid)).map_err(io)?;
        }
    }
    std::fs::rename(&tmp, path).map_err(io)
}

/// The owner (uid, gid) of `path`, if it exists: what a file written in its place keeps
/// (`tls renew` run as root for a `serve` running as another user).
fn owner_of(path: &Path) -> Option<(u32, u32)> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata(path).ok().map(|m| (m.uid(), m.gid()))
}

fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn ca_template(common_name: &str, now: OffsetDateTime) -> CertificateParams {
    let mut p = CertificateParams::default();
    p.distinguished_name.push(DnType::CommonName, common_name);
    p.distinguished_name
        .push(DnType::OrganizationName, "Passthru");
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(3650);
    p.serial_number = Some(random_serial());
    p
}

fn random_serial() -> SerialNumber {
    let mut b = *Uuid::new_v4().as_bytes();
    b[0] &= 0x7f; // positive
    SerialNumber::from_slice(&b)
}

/// Creates both CAs and the server certificate for 127.0.0.1, localhost and `hostnames`.
pub fn create(paths: &PkiPaths, hostnames: &[String], now: OffsetDateTime) -> Result<(), PkiError> {
    for dir in [&paths.tls_dir, &paths.agent_ca_dir] {
        std::fs::create_dir_all(dir).map_err(|source| PkiError::Io {
            path: dir.clone(),
            source,
        })?;
    }
    // Deployment CA and server certificate.
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let ca_params = ca_template("Passthru deployment CA", now);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    write_file(&paths.ca_cert(), ca_cert.pem().as_bytes(), 0o644)?;
    write_file(&paths.ca_key(), ca_key.serialize_pem().as_bytes(), 0o600)?;
    let issuer = Issuer::new(ca_params, ca_key);
    issue_server_cert(paths, &issuer, hostnames, now)?;

    // Private agent CA.
    let agent_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let agent_params = ca_template("Passthru agent CA", now);
    let agent_cert = agent_params.self_signed(&agent_key)?;
    write_file(&paths.agent_ca_cert(), agent_cert.pem().as_bytes(), 0o644)?;
    write_file(
        &paths.agent_ca_key(),
        agent_key.serialize_pem().as_bytes(),
        0o600,
    )?;
    Ok(())
}

/// The names of a server certificate: `localhost`, `127.0.0.1` and `hostnames`, once each.
fn server_names(hostnames: &[String]) -> Vec<String> {
    let mut names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    for h in hostnames {
        let h = h.trim().to_ascii_lowercase();
        if !h.is_empty() && !names.contains(&h) {
            names.push(h);
        }
    }
    names
}

/// A server certificate just written.
#[derive(Debug, Clone)]
pub struct IssuedServerCert {
    /// Its DNS names and IP addresses.
    pub names: Vec<String>,
    /// Unix seconds.
    pub not_after: i64,
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
}

/// Validity of generated server certificates (the most browsers accepted for a while).
pub const SERVER_CERT_DAYS: i64 = 825;

fn issue_server_cert(
    paths: &PkiPaths,
    issuer: &Issuer<'_, KeyPair>,
    hostnames: &[String],
    now: OffsetDateTime,
) -> Result<IssuedServerCert, PkiError> {
    let names = server_names(hostnames);
    let mut p = CertificateParams::new(names.clone())?;
    p.distinguished_name
        .push(DnType::CommonName, "Passthru cloud");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(SERVER_CERT_DAYS);
    p.serial_number = Some(random_serial());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = p.signed_by(&key, issuer)?;
    // The key first: a reload between the two renames sees a key that does not match the
    // certificate and keeps the one it serves.
    let key_pem = zeroize::Zeroizing::new(key.serialize_pem());
    write_file_owned(
        &paths.server_key(),
        key_pem.as_bytes(),
        0o600,
        owner_of(&paths.server_key()),
    )?;
    write_file_owned(
        &paths.server_cert(),
        cert.pem().as_bytes(),
        0o644,
        owner_of(&paths.server_cert()),
    )?;
    Ok(IssuedServerCert {
        names,
        not_after: p.not_after.unix_timestamp(),
        fingerprint: fingerprint(cert.der()),
    })
}

/// What `tls renew` did.
#[derive(Debug, Clone)]
pub struct RenewedServerCert {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub issued: IssuedServerCert,
}

impl std::fmt::Display for RenewedServerCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "Issued a new server certificate and key from the deployment CA: {} and {}.",
            self.cert_file.display(),
            self.key_file.display()
        )?;
        writeln!(f, "Names: {}", self.issued.names.join(", "))?;
        writeln!(
            f,
            "Valid until {} (SHA-256 {}).",
            crate::clock::rfc3339(self.issued.not_after),
            self.issued.fingerprint
        )?;
        writeln!(
            f,
            "A running passthru-cloud serve keeps the old certificate until told: send it SIGHUP \
             (systemctl reload passthru-cloud, or kill -HUP PID). Connections stay open; new \
             ones get the new certificate."
        )
    }
}

/// The DNS names and IP addresses of the certificate in `path`.
fn certificate_names(path: &Path) -> Result<Vec<String>, String> {
    let pem = read(path).map_err(|e| e.to_string())?;
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(pem.as_bytes())
        .map_err(|e: rustls::pki_types::pem::Error| format!("{}: {e}", path.display()))?;
    let der: rustls::pki_types::CertificateDer<'static> = der;
    let (_, cert) = x509_parser::parse_x509_certificate(&der)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                x509_parser::extensions::GeneralName::DNSName(d) => names.push(d.to_string()),
                x509_parser::extensions::GeneralName::IPAddress(ip) => {
                    if let Ok(v4) = <[u8; 4]>::try_from(*ip) {
                        names.push(std::net::IpAddr::from(v4).to_string());
                    } else if let Ok(v6) = <[u8; 16]>::try_from(*ip) {
                        names.push(std::net::IpAddr::from(v6).to_string());
                    }
                }
                _ => {}
            }
        }
    }
    Ok(names)
}

/// `tls renew`: a new key and server certificate ([`SERVER_CERT_DAYS`]) from the deployment
/// CA, for `hostnames` or else the names of the current certificate, replacing
/// `tls/server.pem` and `tls/server-key.pem` (each atomically, with their owners kept).
pub fn renew_server_cert(
    paths: &PkiPaths,
    hostnames: &[String],
    now: OffsetDateTime,
) -> Result<RenewedServerCert, anyhow::Error> {
    if !paths.ca_key().exists() || !paths.ca_cert().exists() {
        anyhow::bail!(
            "{} has no deployment CA ({} and {}), so it cannot issue a server certificate: give the data dir `passthru-cloud init` made, or, for a certificate from your own CA, serve it with --tls-cert and --tls-key",
            paths.tls_dir.display(),
            paths.ca_cert().display(),
            paths.ca_key().display()
        );
    }
    let names = if hostnames.is_empty() {
        certificate_names(&paths.server_cert()).map_err(|e| {
            anyhow::anyhow!(
                "cannot read the names of the current certificate ({e}): give them with --hostname"
            )
        })?
    } else {
        hostnames.to_vec()
    };
    let key = zeroize::Zeroizing::new(read(&paths.ca_key())?);
    let key = KeyPair::from_pem(&key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", paths.ca_key().display()))?;
    let issuer = Issuer::from_ca_cert_pem(&read(&paths.ca_cert())?, key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", paths.ca_cert().display()))?;
    let issued = issue_server_cert(paths, &issuer, &names, now)?;
    Ok(RenewedServerCert {
        cert_file: paths.server_cert(),
        key_file: paths.server_key(),
        issued,
    })
}

/// The private agent CA, loaded for issuing agent certificates.
#[derive(Debug)]
pub struct AgentCa {
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate issued to an agent.
#[derive(Debug, Clone)]
pub struct IssuedAgentCert {
    pub pem: String,
    /// SHA-256 of the DER, hex: how the gateway recognises the agent.
    pub fingerprint: String,
    /// Unix seconds.
    pub not_after: i64,
}

/// Validity of agent certificates unless `serve --agent-cert-lifetime` says otherwise.
pub const AGENT_CERT_DAYS: i64 = 365;

/// The default lifetime of agent certificates.
pub fn default_agent_cert_lifetime() -> Duration {
    Duration::days(AGENT_CERT_DAYS)
}

/// Shortest and longest `serve --agent-cert-lifetime` (the agent CA is valid ten years).
const AGENT_CERT_LIFETIME_RANGE: (i64, i64) = (60, 3650 * 86_400);

/// Parses `serve --agent-cert-lifetime`: a whole number followed by `s`, `m`, `h` or `d`
/// (`365d`, `12h`, `2m`), from one minute to 3650 days.
pub fn parse_agent_cert_lifetime(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit_seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => {
            return Err(format!(
                "'{text}' is not a lifetime: write a number and a unit (s, m, h or d), as in 365d or 2m"
            ))
        }
    };
    let seconds = number
        .parse::<i64>()
        .ok()
        .and_then(|n| n.checked_mul(unit_seconds))
        .filter(|s| (AGENT_CERT_LIFETIME_RANGE.0..=AGENT_CERT_LIFETIME_RANGE.1).contains(s))
        .ok_or_else(|| {
            format!("'{text}' is out of range: an agent certificate lifetime is from 1m to 3650d")
        })?;
    Ok(Duration::seconds(seconds))
}

/// How far before its issue an agent certificate is valid (clock skew between the cloud and
/// the agent): ten minutes, or a tenth of a shorter lifetime, so that the lifetime an agent
/// reads from its certificate (notAfter - notBefore) stays close to the one configured.
fn backdate(lifetime: Duration) -> Duration {
    Duration::minutes(10).min(lifetime / 10)
}

impl AgentCa {
    pub fn load(paths: &PkiPaths) -> Result<AgentCa, PkiError> {
        let key = KeyPair::from_pem(&read(&paths.agent_ca_key())?)?;
        let issuer = Issuer::from_ca_cert_pem(&read(&paths.agent_ca_cert())?, key)?;
        Ok(AgentCa { issuer })
    }

    /// Issues a client certificate valid for `lifetime` for `agent_id` of `tenant_id` from an
    /// agent's CSR (at registration, and at each renewal). Only the CSR's public key is used;
    /// the subject is set here.
    pub fn issue(
        &self,
        csr_pem: &str,
        agent_id: Uuid,
        tenant_id: Uuid,
        now: OffsetDateTime,
        lifetime: Duration,
    ) -> Result<IssuedAgentCert, PkiError> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| PkiError::BadCsr(e.to_string()))?;
        let mut p = CertificateParams::default();
        p.distinguished_name
            .push(DnType::CommonName, format!("agent {agent_id}"));
        p.distinguished_name.push(
            DnType::OrganizationalUnitName,
            format!("tenant {tenant_id}"),
        );
        p.subject_alt_names = vec![SanType::URI(
            format!("urn:passthru:tenant:{tenant_id}:agent:{agent_id}")
                .try_into()
                .map_err(|e: rcgen::Error| PkiError::BadCsr(e.to_string()))?,
        )];
        p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        p.not_before = now - backdate(lifetime);
        p.not_after = now + lifetime;
        p.serial_number = Some(random_serial());
        let cert = p.signed_by(&csr.public_key, &self.issuer)?;
        Ok(IssuedAgentCert {
            pem: cert.pem(),
            fingerprint: fingerprint(cert.der()),
            not_after: p.not_after.unix_timestamp(),
        })
    }
}

/// SHA-256 of a certificate's DER, lower-case hex.
pub fn fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agent_cert_lifetimes_parse_with_a_unit_and_a_range() {
        assert_eq!(parse_agent_cert_lifetime("365d"), Ok(Duration::days(365)));
        assert_eq!(parse_agent_cert_lifetime("2m"), Ok(Duration::minutes(2)));
        assert_eq!(parse_agent_cert_lifetime("12h"), Ok(Duration::hours(12)));
        assert_eq!(parse_agent_cert_lifetime("90s"), Ok(Duration::seconds(90)));
        for bad in [
            "",
            "365",
            "d",
            "10x",
            "-5m",
            "59s",
            "3651d",
            "99999999999999999999d",
        ] {
            assert!(parse_agent_cert_lifetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn creates_cas_and_issues_agent_cert() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("passthru-pki-{}", Uuid::new_v4()));
        let paths = PkiPaths::new(&dir);
        let now = OffsetDateTime::now_utc();
        create(&paths, &["cloud.example.test".into()], now)?;
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(paths.server_key())?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let ca = AgentCa::load(&paths)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let csr = CertificateParams::new(vec!["ignored".to_string()])?.serialize_request(&key)?;
        let cert = ca.issue(
            &csr.pem()?,
            Uuid::new_v4(),
            Uuid::new_v4(),
            now,
            default_agent_cert_lifetime(),
        )?;
        assert!(cert.pem.contains("BEGIN CERTIFICATE"));
        assert_eq!(cert.fingerprint.len(), 64);
        assert_eq!(
            cert.not_after,
            (now + Duration::days(AGENT_CERT_DAYS)).unix_timestamp()
        );
        // A short lifetime (`serve --agent-cert-lifetime 2m`) is backdated by a tenth of it.
        let short = ca.issue(
            &csr.pem()?,
            Uuid::new_v4(),
            Uuid::new_v4(),
            now,
            Duration::minutes(2),
        )?;
        let (_, parsed) = x509_parser::pem::parse_x509_pem(short.pem.as_bytes())?;
        let x509 = parsed.parse_x509()?;
        assert_eq!(
            x509.validity().not_after.timestamp() - x509.validity().not_before.timestamp(),
            132
        );
        assert!(ca
            .issue(
                "garbage",
                Uuid::new_v4(),
                Uuid::new_v4(),
                now,
                default_agent_cert_lifetime()
            )
            .is_err());
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    fn temp_paths() -> (PathBuf, PkiPaths) {
        let dir = std::env::temp_dir().join(format!("passthru-pki-{}", Uuid::new_v4()));
        let paths = PkiPaths::new(&dir);
        (dir, paths)
    }

    /// `init --hostname A --hostname B`: both names are in the certificate, with localhost
    /// and 127.0.0.1.
    #[test]
    fn every_hostname_is_in_the_server_certificate() -> anyhow::Result<()> {
        let (dir, paths) = temp_paths();
        create(
            &paths,
            &["login.contoso.example".into(), "sso.contoso.example".into()],
            OffsetDateTime::now_utc(),
        )?;
        let names = certificate_names(&paths.server_cert()).map_err(anyhow::Error::msg)?;
        for want in [
            "localhost",
            "127.0.0.1",
            "login.contoso.example",
            "sso.contoso.example",
        ] {
            assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    /// `tls renew`: a new key and certificate from the same CA, 825 days from now, with the
    /// current names unless others are given; refused without the deployment CA key.
    #[test]
    fn renew_reissues_from_the_deployment_ca() -> anyhow::Result<()> {
        use rustls::client::danger::ServerCertVerifier as _;
        use rustls::pki_types::pem::PemObject as _;
        let (dir, paths) = temp_paths();
        let then = OffsetDateTime::now_utc() - Duration::days(800);
        create(&paths, &["login.contoso.example".into()], then)?;
        let old_cert = std::fs::read_to_string(paths.server_cert())?;
        let old_key = std::fs::read_to_string(paths.server_key())?;
        let now = OffsetDateTime::now_utc();
        let renewed = renew_server_cert(&paths, &[], now)?;
        let new_cert = std::fs::read_to_string(paths.server_cert())?;
        let new_key = std::fs::read_to_string(paths.server_key())?;
        assert_ne!(old_cert, new_cert);
        assert_ne!(old_key, new_key, "a new key");
        assert_eq!(
            renewed.issued.not_after,
            (now + Duration::days(SERVER_CERT_DAYS)).unix_timestamp()
        );
        let names = certificate_names(&paths.server_cert()).map_err(anyhow::Error::msg)?;
        assert!(
            names.iter().any(|n| n == "login.contoso.example"),
            "{names:?}"
        );
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(paths.server_key())?.permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = renewed.to_string();
        assert!(
            text.contains("SIGHUP") && text.contains("systemctl reload passthru-cloud"),
            "{text}"
        );
        // What serve loads: the new pair, valid, chained to the deployment CA.
        let served = crate::server_cert::load(
            &crate::server_cert::TlsFiles {
                cert: paths.server_cert(),
                key: paths.server_key(),
            },
            &rustls::crypto::ring::default_provider(),
            now.unix_timestamp(),
        )?;
        assert_eq!(served.fingerprint, renewed.issued.fingerprint);
        let mut roots = rustls::RootCertStore::empty();
        roots.add(rustls::pki_types::CertificateDer::from_pem_file(
            paths.ca_cert(),
        )?)?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()?;
        let leaf = rustls::pki_types::CertificateDer::from_pem_file(paths.server_cert())?;
        verifier.verify_server_cert(
            &leaf,
            &[],
            &rustls::pki_types::ServerName::try_from("login.contoso.example")?,
            &[],
            rustls::pki_types::UnixTime::now(),
        )?;

        // Other names given: those (and localhost), not the old ones.
        renew_server_cert(&paths, &["new.contoso.example".into()], now)?;
        let names = certificate_names(&paths.server_cert()).map_err(anyhow::Error::msg)?;
        assert!(
            names.iter().any(|n| n == "new.contoso.example"),
            "{names:?}"
        );
        assert!(
            !names.iter().any(|n| n == "login.contoso.example"),
            "{names:?}"
        );
        assert!(names.iter().any(|n| n == "localhost"), "{names:?}");

        // Without the CA key: refused, the files untouched.
        std::fs::remove_file(paths.ca_key())?;
        let before = std::fs::read_to_string(paths.server_cert())?;
        let err = renew_server_cert(&paths, &[], now)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains("no deployment CA") && err.contains("ca-key.pem"),
            "{err}"
        );
        assert_eq!(before, std::fs::read_to_string(paths.server_cert())?);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
