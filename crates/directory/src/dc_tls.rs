//! TLS to domain controllers: trust only the forest's `ca_file`, check the certificate
//! against the DC's host name or, for DCs addressed by IP, against the forest's
//! `tls_server_name`. [`ServerVerifier`] also keeps the certificate the server presented, so
//! that `passthru-agent doctor` can say what was wrong with it.

use std::path::Path;
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};

use crate::DirectoryError;

/// The standard verifier (webpki), checking the name `name_override` when given instead of
/// the one dialed, and remembering the last certificate presented.
#[derive(Debug)]
pub struct ServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    name_override: Option<ServerName<'static>>,
    seen: Mutex<Option<CertificateDer<'static>>>,
}

impl ServerVerifier {
    /// A verifier trusting `roots`, checking `name_override` (a DNS name or an IP address)
    /// instead of the dialed name when given.
    pub fn new(
        roots: rustls::RootCertStore,
        name_override: Option<&str>,
    ) -> Result<ServerVerifier, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| e.to_string())?;
        let name_override = match name_override {
            Some(n) => Some(
                ServerName::try_from(n.to_string())
                    .map_err(|e| format!("'{n}' is not a DNS name or IP address: {e}"))?,
            ),
            None => None,
        };
        Ok(ServerVerifier {
            inner,
            name_override,
            seen: Mutex::new(None),
        })
    }

    /// The end-entity certificate the server presented last (even if it was refused).
    pub fn seen(&self) -> Option<CertificateDer<'static>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(end_entity.clone().into_owned());
        let name = self.name_override.as_ref().unwrap_or(server_name);
        self.inner
            .verify_server_cert(end_entity, intermediates, name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The certificates of a PEM CA file as trust anchors; an error names the file.
pub fn ca_roots(ca_file: &Path) -> Result<rustls::RootCertStore, DirectoryError> {
    let bad = |e: &dyn std::fmt::Display| {
        DirectoryError::Config(format!("CA file {}: {e}", ca_file.display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in it"));
    }
    Ok(roots)
}

/// A rustls client configuration (ring) for `verifier`.
pub fn config_for(verifier: Arc<ServerVerifier>) -> Result<rustls::ClientConfig, DirectoryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| DirectoryError::Config(format!("TLS: {e}")))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// The configuration for a forest's DCs: trusting only `ca_file`, checking `tls_server_name`
/// instead of each DC's host when given.
pub fn tls_config(
    ca_file: &Path,
    tls_server_name: Option<&str>,
) -> Result<Arc<rustls::ClientConfig>, DirectoryError> {
    let verifier = ServerVerifier::new(ca_roots(ca_file)?, tls_server_name)
        .map_err(|e| DirectoryError::Config(format!("tls_server_name: {e}")))?;
    Ok(Arc::new(config_for(Arc::new(verifier))?))
}

/// What a certificate says, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// The subject, as text.
    pub subject: String,
    /// The issuer, as text.
    pub issuer: String,
    /// Not valid after (Unix seconds).
    pub not_after: i64,
    /// The subjectAltName entries (DNS names and IP addresses), `None` when the certificate
    /// has no subjectAltName extension at all.
    pub names: Option<Vec<String>>,
}

/// Reads the facts of a DER certificate (`None` when it does not parse).
pub fn cert_facts(der: &CertificateDer<'_>) -> Option<CertFacts> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let names = match cert.subject_alternative_name() {
        Ok(Some(san)) => Some(
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    GeneralName::DNSName(d) => Some((*d).to_string()),
                    GeneralName::IPAddress(b) => match b.len() {
                        4 => <[u8; 4]>::try_from(*b)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        16 => <[u8; 16]>::try_from(*b)
                            .ok()
                            .map(|a| std::net::IpAddr::from(a).to_string()),
                        _ => None,
                    },
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    };
    Some(CertFacts {
        subject: cert.subject().to_string(),
        issuer: cert.issuer().to_string(),
        not_after: cert.validity().not_after.timestamp(),
        names,
    })
}

/// A Unix time as `2026-12-07 12:00:00 UTC`.
pub fn utc_text(unix: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// What went wrong with a server's certificate, and what to do, for a TLS handshake to
/// `dialed` (host or IP) that failed with `error`, having seen `seen`. `trusted` names the
/// CA file the check used. `None` when the failure was not about the certificate.
pub fn explain_certificate(
    error: &rustls::Error,
    seen: Option<&CertificateDer<'_>>,
    dialed: &str,
    trusted: &str,
) -> Option<(String, String)> {
    use rustls::CertificateError as C;
    let rustls::Error::InvalidCertificate(cert_error) = error else {
        return None;
    };
    let facts = seen.and_then(cert_facts);
    let who = facts
        .as_ref()
        .map(|f| {
            format!(
                "the certificate of '{}' (issued by '{}')",
                f.subject, f.issuer
            )
        })
        .unwrap_or_else(|| "the certificate".to_string());
    Some(match cert_error {
        C::Expired | C::ExpiredContext { .. } => (
            format!(
                "{who} expired{}",
                facts
                    .as_ref()
                    .map(|f| format!(" on {}", utc_text(f.not_after)))
                    .unwrap_or_default()
            ),
            "renew the server's certificate (or correct this computer's clock if it is wrong)"
                .to_string(),
        ),
        C::NotValidYet | C::NotValidYetContext { .. } => (
            format!("{who} is not valid yet"),
            "check this computer's clock and the server's".to_string(),
        ),
        C::NotValidForName | C::NotValidForNameContext { .. } => match facts.as_ref().map(|f| &f.names) {
            Some(None) => (
                format!("{who} has no subjectAltName at all, so it is valid for no name (Samba AD generates such a certificate by default)"),
                format!("give the DC a certificate for '{dialed}' with a subjectAltName: one from the domain's CA (AD CS), or set Samba's `tls certfile`/`tls keyfile`/`tls cafile` in smb.conf to one; for a DC addressed by IP, also set the forest's tls_server_name to a name the certificate holds"),
            ),
            Some(Some(names)) => (
                format!("{who} is for {}, not for '{dialed}'", if names.is_empty() { "no name".to_string() } else { names.join(", ") }),
                format!("address the server by a name its certificate holds, or for a DC addressed by IP set the forest's tls_server_name to one of: {}", names.join(", ")),
            ),
            None => (
                format!("{who} is not valid for '{dialed}'"),
                "address the server by a name its certificate holds (or set tls_server_name)".to_string(),
            ),
        },
        C::UnknownIssuer => (
            format!("{who} was not issued by a CA in {trusted}"),
            format!("put the CA that issued the server's certificate in {trusted}"),
        ),
        C::Revoked => (
            format!("{who} is revoked"),
            "give the server a new certificate".to_string(),
        ),
        other => (
            format!("{who} was refused: {other:?}"),
            format!("check the server's certificate against {trusted}"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_texts() {
        assert_eq!(utc_text(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc_text(1_795_940_100), "2026-11-29 08:15:00 UTC");
        assert_eq!(utc_text(951_782_400), "2000-02-29 00:00:00 UTC");
    }
}
