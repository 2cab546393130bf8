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
    std::fs::rename(&tmp, path).map_err(io)
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

fn issue_server_cert(
    paths: &PkiPaths,
    issuer: &Issuer<'_, KeyPair>,
    hostnames: &[String],
    now: OffsetDateTime,
) -> Result<(), PkiError> {
    let mut names = vec!["localhost".to_string()];
    for h in hostnames {
        if !names.contains(h) {
            names.push(h.clone());
        }
    }
    let mut p = CertificateParams::new(names)?;
    p.subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    p.distinguished_name
        .push(DnType::CommonName, "Passthru cloud");
    p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.not_before = now - Duration::hours(1);
    p.not_after = now + Duration::days(825);
    p.serial_number = Some(random_serial());
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
    let cert = p.signed_by(&key, issuer)?;
    write_file(&paths.server_cert(), cert.pem().as_bytes(), 0o644)?;
    write_file(&paths.server_key(), key.serialize_pem().as_bytes(), 0o600)?;
    Ok(())
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
}
