//! TLS settings for talking to the cloud: rustls with the ring provider (the workspace builds
//! rustls with no default provider), trusting either one CA file or the system's roots.

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

/// The roots to trust: the certificates of `ca_file`, or the system's roots when `None`.
pub fn root_store(ca_file: Option<&Path>) -> Result<RootCertStore, ClientError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_pem_certificates(path)? {
                roots.add(cert).map_err(|e| {
                    ClientError::Config(format!(
                        "{} holds a certificate that cannot be used as a trust anchor: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
            if roots.is_empty() {
                return Err(ClientError::Config(
                    "no trusted CA certificates were found on this system: pass --ca-file with \
                     the CA certificate that issued the cloud's certificate"
                        .to_string(),
                ));
            }
        }
    }
    Ok(roots)
}

/// A client configuration (no client certificate) trusting `ca_file` or the system's roots,
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
