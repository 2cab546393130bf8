//! TLS settings for talking to the cloud: rustls with the ring provider (the workspace builds
//! rustls with no default provider), trusting the system's roots and, when given, a CA file
//! (the deployment CA an agent registered with), so that a cloud may move from its generated
//! certificate to a publicly trusted one without its agents registering again.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use crate::error::ClientError;

/// The crypto provider every Passthru TLS client uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file. Fails when the file cannot be read or holds none.
pub fn read_pem_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bytes = std::fs::read(path).map_err(|source| ClientError::Io {
        what: format!("cannot read the CA file {}", path.display()),
        source,
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            ClientError::Config(format!(
                "{} is not a PEM certificate file ({e}); expected -----BEGIN CERTIFICATE----- blocks",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(ClientError::Config(format!(
            "{} holds no certificate; expected -----BEGIN CERTIFICATE----- blocks",
            path.display()
        )));
    }
    Ok(certs)
}

/// The roots to trust: the system's roots, and the certificates of `ca_file` when given.
/// Fails when `ca_file` is unusable, or when none is given and the system has no roots.
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    if let Some(path) = ca_file {
        for cert in read_pem_certificates(path)? {
            roots.add(cert).map_err(|e| {
                ClientError::Config(format!(
                    "{} holds a certificate that cannot be used as a trust anchor: {e}",
                    path.display()
                ))
            })?;
        }
    }
    // Unreadable or unparsable system certificates are skipped: the CA file alone still works.
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if roots.is_empty() {
        return Err(ClientError::Config(
            "no trusted CA certificates were found on this system: pass --ca-file with \
             the CA certificate that issued the cloud's certificate"
                .to_string(),
        ));
    }
    Ok(roots)
}

/// A client configuration (no client certificate) trusting the system's roots and `ca_file`,
/// speaking HTTP/1.1.
pub fn client_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, ClientError> {
    let roots = root_store(ca_file)?;
    let mut config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| ClientError::Config(format!("TLS setup failed: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With a CA file (what an agent registered with), the roots are that CA and every
    /// system root.
    #[test]
    fn a_ca_file_adds_to_the_system_roots() -> Result<(), Box<dyn std::error::Error>> {
        let mut p = rcgen::CertificateParams::default();
        p.distinguished_name
            .push(rcgen::DnType::CommonName, "Passthru root store test CA");
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let key = rcgen::KeyPair::generate()?;
        let ca = p.self_signed(&key)?;
        let path = std::env::temp_dir().join(format!(
            "passthru-roots-{}-{}.pem",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_nanos()
        ));
        std::fs::write(&path, ca.pem())?;
        let system = root_store(None)?;
        let with_ca = root_store(Some(&path))?;
        std::fs::remove_file(&path)?;
        assert!(
            !system.is_empty(),
            "this test needs the system's CA certificates (ca-certificates)"
        );
        assert_eq!(with_ca.len(), system.len() + 1);
        for anchor in &system.roots {
            assert!(with_ca.roots.contains(anchor), "a system root is missing");
        }
        let ours: Vec<_> = with_ca
            .roots
            .iter()
            .filter(|a| !system.roots.contains(a))
            .collect();
        assert_eq!(ours.len(), 1);
        let subject: &[u8] = ours[0].subject.as_ref();
        let cn = b"Passthru root store test CA";
        assert!(subject.windows(cn.len()).any(|w| w == cn));
        Ok(())
    }
}
